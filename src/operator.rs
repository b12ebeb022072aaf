//! The HTTPS client for the UID2 operator: `/v2/token/refresh` and
//! `/v2/token/client-generate`.
//!
//! The envelope crypto lives in [`crate::crypto`]; this module only moves bytes and maps
//! HTTP outcomes onto the engine's [`RefreshOutcome`].

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use crate::crypto::{self, OperatorReply};
use crate::engine::RefreshOutcome;
use crate::identity::{Identity, UnixMillis};

mod status;
pub use status::OperatorStatus;

/// Sent as `X-UID2-Client-Version`, as the SDKs send `Android-…`/`ios-…`.
pub const CLIENT_VERSION: &str = concat!("linux-", env!("CARGO_PKG_VERSION"));

/// Operator responses are a few hundred bytes; anything much larger is not one.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// `ca_file` cannot be read: missing, the system's error, not a regular file, or
    /// larger than [`crate::trust::MAX_CA_FILE_LEN`].
    #[error("cannot read ca_file {path}: {source}")]
    CaFile {
        path: std::path::PathBuf,
        source: crate::bounded_file::FileError,
    },
    #[error("ca_file {0} holds no usable PEM certificate")]
    CaPem(std::path::PathBuf),
    #[error("cannot build the HTTPS client: {0}")]
    Client(String),
    /// No root certificate to check the operator's TLS certificate against: the system
    /// store is empty or missing, there is no `ca_file`, and the build has no bundled
    /// roots. Start-up fails with [`crate::daemon::DaemonError::NoTrustRoots`].
    #[error("no trusted root certificate for the operator's TLS: the system CA store (SSL_CERT_FILE, SSL_CERT_DIR, else /etc/ssl/certs) has none and ca_file is not set; install the device's CA bundle, set ca_file, or build with the bundled-roots feature")]
    NoTrustRoots,
}

/// Why a request got no usable answer. Never carries response bytes or keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("cannot reach the operator ({0})")]
    Network(String),
    #[error("the operator answered HTTP {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Http {
        status: u16,
        message: Option<String>,
        /// The body's status, by name ([`OperatorStatus::Other`] for any other body).
        operator_status: OperatorStatus,
    },
    #[error("the operator's response could not be decrypted or parsed ({0})")]
    BadResponse(String),
    #[error("the operator answered status `{0}`")]
    UnexpectedStatus(String),
    /// The request task ended without an answer (it panicked or was cancelled).
    #[error("no answer from the operator (the request was cut short)")]
    NoAnswer,
}

impl Failure {
    /// The operator's refusal, by name: the status of an HTTP 4xx answer (429, "slow
    /// down", is not a refusal), or a decrypted status that is neither `success` nor
    /// `optout`. `None` for every other failure (no answer, 5xx, garbage).
    pub fn refusal(&self) -> Option<OperatorStatus> {
        match self {
            Failure::Http {
                status,
                operator_status,
                ..
            } if (400..500).contains(status) && *status != 429 => Some(*operator_status),
            Failure::UnexpectedStatus(status) => Some(OperatorStatus::of(status, None)),
            _ => None,
        }
    }
}

/// One refresh: the outcome the engine needs, why it failed (for the log), and the
/// operator's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshReport {
    pub outcome: RefreshOutcome,
    pub failure: Option<Failure>,
    /// The answer's `Date` (RFC 9110 §6.6.1: when the operator made it), Unix ms; `None`
    /// without an HTTP answer or a readable `Date`.
    pub date: Option<UnixMillis>,
}

/// The answer to a client-side generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generated {
    Identity(Identity),
    OptOut,
}

#[derive(Debug, Clone)]
pub struct Operator {
    client: reqwest::Client,
    base: Url,
}

impl Operator {
    /// `base` must already be validated (https, or http to loopback: see config). `tls`
    /// carries the roots, from [`crate::trust::Roots::client_config`]: clients built from
    /// one [`crate::trust::Roots`] share its parsed store.
    pub fn new(
        base: Url,
        tls: rustls::ClientConfig,
        timeout: Duration,
    ) -> Result<Self, OperatorError> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .https_only(!crate::config::is_loopback(&base))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(CLIENT_VERSION)
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|e| OperatorError::Client(e.to_string()))?;
        Ok(Self { client, base })
    }

    /// The base URL with its path replaced (EUID bases end in `/v2`).
    pub fn endpoint(&self, path: &str) -> Url {
        endpoint(&self.base, path)
    }

    /// `POST /v2/token/refresh` with the refresh token as the body.
    pub async fn refresh(&self, identity: &Identity) -> RefreshReport {
        let Some(key) = identity.response_key() else {
            // SetIdentity refuses such identities; one restored from an older store is
            // dead for good.
            return report(
                RefreshOutcome::Rejected,
                Failure::BadResponse("refresh_response_key is not usable".into()),
            );
        };
        let response = self
            .client
            .post(self.endpoint("/v2/token/refresh"))
            .header("X-UID2-Client-Version", CLIENT_VERSION)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(identity.refresh_token.clone())
            .send()
            .await;
        let (status, headers, body) = match read(response).await {
            Ok(parts) => parts,
            Err(failure) => return failed(failure, None),
        };
        RefreshReport {
            date: date(&headers),
            ..refresh_answer(status, &headers, &body, &key)
        }
    }

    /// `POST /v2/token/client-generate` with a request built by
    /// [`crypto::build_cstg_request`]; the answer is decrypted with its shared secret.
    pub async fn client_generate(
        &self,
        request: &crypto::CstgRequest,
    ) -> Result<Generated, Failure> {
        let response = self
            .client
            .post(self.endpoint("/v2/token/client-generate"))
            .header("X-UID2-Client-Version", CLIENT_VERSION)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(request.body.clone())
            .send()
            .await;
        let (status, _, body) = read(response).await?;
        if status != StatusCode::OK {
            return Err(http_failure(status, &body));
        }
        match open(&body, request.shared_secret.as_slice())? {
            OperatorReply::Success(identity) => Ok(Generated::Identity(identity)),
            OperatorReply::OptOut => Ok(Generated::OptOut),
            OperatorReply::Other { status, .. } => Err(Failure::UnexpectedStatus(status)),
        }
    }
}

/// What an HTTP answer to a refresh means (`key` opens its body).
fn refresh_answer(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    key: &[u8],
) -> RefreshReport {
    if status != StatusCode::OK {
        let failure = http_failure(status, body);
        return if matches!(status.as_u16(), 400 | 401) {
            report(RefreshOutcome::Rejected, failure)
        } else {
            failed(failure, retry_after(headers))
        };
    }
    match open(body, key) {
        Ok(OperatorReply::Success(identity)) => answered(RefreshOutcome::Success(identity)),
        Ok(OperatorReply::OptOut) => answered(RefreshOutcome::OptOut),
        // The SDKs read `expired_token` as "this refresh token is dead".
        Ok(OperatorReply::Other { status, .. }) if status == "expired_token" => {
            report(RefreshOutcome::Rejected, Failure::UnexpectedStatus(status))
        }
        Ok(OperatorReply::Other { status, .. }) => failed(Failure::UnexpectedStatus(status), None),
        Err(failure) => failed(failure, None),
    }
}

/// The answer's `Date` header, Unix ms.
fn date(headers: &HeaderMap) -> Option<UnixMillis> {
    let date = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    let at = httpdate::parse_http_date(date).ok()?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    UnixMillis::try_from(ms).ok()
}

fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(path);
    url.set_query(None);
    url.set_fragment(None);
    url
}

fn answered(outcome: RefreshOutcome) -> RefreshReport {
    RefreshReport {
        outcome,
        failure: None,
        date: None,
    }
}

fn report(outcome: RefreshOutcome, failure: Failure) -> RefreshReport {
    RefreshReport {
        outcome,
        failure: Some(failure),
        date: None,
    }
}

fn failed(failure: Failure, retry_after_ms: Option<u64>) -> RefreshReport {
    report(RefreshOutcome::Failed { retry_after_ms }, failure)
}

async fn read(
    response: reqwest::Result<reqwest::Response>,
) -> Result<(StatusCode, HeaderMap, Vec<u8>), Failure> {
    let mut response = response.map_err(network)?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(network)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(Failure::BadResponse("response too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, headers, body))
}

fn network(mut e: reqwest::Error) -> Failure {
    if let Some(url) = e.url_mut() {
        *url = crate::config::shown_url(url);
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "connection dropped"
    } else {
        "request failed"
    };
    // The URL without its userinfo is public configuration, never a secret; the error
    // chain says why (DNS, TLS, reset…) without any payload.
    let mut detail = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    Failure::Network(detail)
}

fn open(body: &[u8], key: &[u8]) -> Result<OperatorReply, Failure> {
    let text =
        std::str::from_utf8(body).map_err(|_| Failure::BadResponse("body is not text".into()))?;
    let plain =
        crypto::open_envelope(text, key).map_err(|e| Failure::BadResponse(e.to_string()))?;
    crypto::parse_reply(&plain).map_err(|e| Failure::BadResponse(e.to_string()))
}

fn http_failure(status: StatusCode, body: &[u8]) -> Failure {
    Failure::Http {
        status: status.as_u16(),
        message: error_message(body),
        operator_status: OperatorStatus::of_body(body),
    }
}

/// The `message` of an operator error body (`{"status":…,"message":…}`), if printable.
fn error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = value
        .get("message")
        .or_else(|| value.get("status"))?
        .as_str()?;
    let clean: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    (!clean.is_empty()).then_some(clean)
}

/// `Retry-After` as delay-seconds, or as an HTTP-date read against the response's own
/// `Date` (a TV's clock may be wrong; the server's two dates are consistent).
fn retry_after(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1_000));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let date = headers
        .get(reqwest::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .unwrap_or_else(SystemTime::now);
    let delay = at.duration_since(date).ok()?;
    u64::try_from(delay.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, DATE};

    #[test]
    fn endpoint_replaces_the_base_path() {
        let cases = [
            (
                "https://prod.uidapi.com",
                "https://prod.uidapi.com/v2/token/refresh",
            ),
            (
                "https://prod.euid.eu/v2",
                "https://prod.euid.eu/v2/token/refresh",
            ),
            (
                "https://integ.euid.eu/v2/",
                "https://integ.euid.eu/v2/token/refresh",
            ),
            (
                "http://localhost:8080/path?x=1",
                "http://localhost:8080/v2/token/refresh",
            ),
        ];
        for (base, expected) in cases {
            let base = Url::parse(base).unwrap();
            assert_eq!(endpoint(&base, "/v2/token/refresh").as_str(), expected);
        }
    }

    #[test]
    fn every_environment_resolves_to_its_refresh_and_generate_urls() {
        for environment in crate::config::Environment::ALL {
            let base = Url::parse(environment.base_url()).unwrap();
            for path in ["/v2/token/refresh", "/v2/token/client-generate"] {
                let url = endpoint(&base, path);
                assert_eq!(url.scheme(), "https");
                assert_eq!(url.path(), path, "{environment:?}");
                assert_eq!(url.host_str(), base.host_str());
            }
        }
    }

    #[test]
    fn client_version_header_names_linux() {
        assert!(CLIENT_VERSION.starts_with("linux-"));
        assert!(CLIENT_VERSION.len() > "linux-".len());
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&headers), Some(120_000));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        headers.insert(
            DATE,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:48:37 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(60_000));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn refusals_are_4xx_answers_and_decrypted_statuses() {
        let http =
            |status: u16, body: &[u8]| http_failure(StatusCode::from_u16(status).unwrap(), body);
        let app_name = br#"{"status":"invalid_app_name","message":"unexpected app name"}"#;
        assert_eq!(
            http(403, app_name).refusal(),
            Some(OperatorStatus::InvalidAppName)
        );
        assert_eq!(http(400, b"<html>").refusal(), Some(OperatorStatus::Other));
        assert_eq!(http(429, br#"{"status":"unknown"}"#).refusal(), None);
        assert_eq!(http(500, br#"{"status":"unknown"}"#).refusal(), None);
        assert_eq!(
            Failure::UnexpectedStatus("expired_token".into()).refusal(),
            Some(OperatorStatus::ExpiredToken)
        );
        assert_eq!(Failure::NoAnswer.refusal(), None);
        assert_eq!(Failure::Network("timed out".into()).refusal(), None);
    }

    #[test]
    fn error_messages_are_short_and_clean() {
        assert_eq!(
            error_message(br#"{"status":"client_error","message":"bad subscription_id"}"#),
            Some("bad subscription_id".into())
        );
        assert_eq!(
            error_message(br#"{"status":"unauthorized"}"#),
            Some("unauthorized".into())
        );
        assert_eq!(error_message(b"<html>"), None);
        let long = format!(r#"{{"message":"{}\u0007"}}"#, "x".repeat(500));
        assert_eq!(error_message(long.as_bytes()).map(|m| m.len()), Some(200));
    }
}
