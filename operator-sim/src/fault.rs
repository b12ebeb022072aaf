//! Endpoints and the faults that can be injected into them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// An endpoint of the simulator, for faults, counters and waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v2/token/refresh`
    Refresh,
    /// `POST /v2/token/client-generate` (CSTG)
    ClientGenerate,
    /// `POST /v2/token/generate` (server-side, API key + secret)
    Generate,
    /// `GET /sim/identity` (sim-only convenience)
    SimIdentity,
}

impl Endpoint {
    pub(crate) const ALL: [Endpoint; 4] = [
        Endpoint::Refresh,
        Endpoint::ClientGenerate,
        Endpoint::Generate,
        Endpoint::SimIdentity,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The URL path this endpoint is served at.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Refresh => "/v2/token/refresh",
            Endpoint::ClientGenerate => "/v2/token/client-generate",
            Endpoint::Generate => "/v2/token/generate",
            Endpoint::SimIdentity => "/sim/identity",
        }
    }
}

/// Parses `refresh`, `client-generate` (or `cstg`), `generate`, `identity`.
impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "refresh" => Ok(Endpoint::Refresh),
            "client-generate" | "cstg" => Ok(Endpoint::ClientGenerate),
            "generate" => Ok(Endpoint::Generate),
            "identity" | "sim-identity" => Ok(Endpoint::SimIdentity),
            other => Err(format!(
                "unknown endpoint `{other}` (refresh, client-generate, generate, identity)"
            )),
        }
    }
}

/// What an endpoint does with the next request instead of (or before) answering normally.
///
/// Faults are applied after the request (headers and body) has been read and counted, and
/// before it is processed, so `Status`, `Drop` and `Garbage` never consume a refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Answer with this HTTP status and the operator's unencrypted error body for it:
    /// 400 on refresh `{"status":"error","message":"Error refreshing token"}`, 400 elsewhere
    /// `{"status":"client_error",…}`, 401 `{"status":"unauthorized"}`, 403 on client-generate
    /// `{"status":"invalid_app_name",…}`, other 4xx `client_error`, anything else
    /// `{"status":"unknown"}`. A status ≥ 200 and < 300 gets the same bodies (not encrypted).
    Status(u16),
    /// As [`Fault::Status`], plus a `Retry-After: <secs>` header (e.g. 429 or 503).
    StatusRetryAfter(u16, u64),
    /// Read the request, then close the TCP+TLS connection without any response.
    Drop,
    /// HTTP 200, `text/plain`, with a body that is neither Base64 nor ciphertext.
    Garbage,
    /// Sleep this long, then answer normally.
    Delay(Duration),
    /// Answer normally, but send the answer this long after deciding it (an operator that
    /// accepted the request in time, on a slow network).
    SlowAnswer(Duration),
    /// Answer with the encrypted `{"status":"optout"}`, as for an opted-out user. Needs a
    /// request that would otherwise succeed (a live refresh token, a decryptable payload);
    /// a refresh token answered this way is consumed.
    OptOut,
    /// Like [`Fault::OptOut`] with any status string, e.g. `expired_token`,
    /// `insufficient_user_consent` (as the EUID operator's generate answers it), or
    /// `success` without a body.
    EncryptedStatus(String),
    /// Answer as usual, but a new identity carries this advertising token (e.g. one with
    /// a NUL, which a client must not store). Opt-outs are answered as usual.
    AdvertisingToken(String),
    /// Refuse the request as the real operator does, with its HTTP status and body.
    Refuse(Refusal),
}

/// A refusal of the real operator (IABTechLab/uid2-operator v5.70.250,
/// `UIDOperatorVerticle`): its HTTP status, `status` and `message`, unencrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 403 `invalid_app_name` "unexpected app name" (client-generate: the app name is
    /// not registered for the subscription's site).
    InvalidAppName,
    /// 403 `invalid_http_origin` "unexpected http origin" (client-generate without an
    /// app name, from an origin not registered).
    InvalidHttpOrigin,
    /// 400 `client_error` "bad subscription_id" (client-generate: no such key pair).
    BadSubscriptionId,
    /// 400 `client_error` "payload decryption failed" (client-generate: the public key
    /// is not the subscription's).
    PayloadDecryptionFailed,
    /// 400 `client_error` "required parameters: payload, iv, public_key".
    ClientError,
    /// 401 `unauthorized` "Unauthorized" (client-generate: the key pair is disabled).
    Unauthorized,
    /// 400 `error` "Error refreshing token" (refresh, to a caller without an API key).
    Error,
    /// 400 `invalid_token` "Invalid Token presented" (refresh, to an API-key caller).
    InvalidToken,
    /// 400 `expired_token` "Expired Token presented" (refresh, to an API-key caller).
    ExpiredToken,
    /// 500 `unknown` "Unknown State".
    Unknown,
}

impl Refusal {
    /// Every refusal, for tests that drive each one.
    pub const ALL: [Refusal; 10] = [
        Refusal::InvalidAppName,
        Refusal::InvalidHttpOrigin,
        Refusal::BadSubscriptionId,
        Refusal::PayloadDecryptionFailed,
        Refusal::ClientError,
        Refusal::Unauthorized,
        Refusal::Error,
        Refusal::InvalidToken,
        Refusal::ExpiredToken,
        Refusal::Unknown,
    ];

    /// The name in `refuse:NAME`: the status, except `bad_subscription_id` and
    /// `payload_decryption_failed` (two `client_error`s).
    pub fn name(self) -> &'static str {
        self.answer().0
    }

    /// `(name, HTTP status, status, message)`.
    pub(crate) fn answer(self) -> (&'static str, u16, &'static str, &'static str) {
        match self {
            Refusal::InvalidAppName => (
                "invalid_app_name",
                403,
                "invalid_app_name",
                "unexpected app name",
            ),
            Refusal::InvalidHttpOrigin => (
                "invalid_http_origin",
                403,
                "invalid_http_origin",
                "unexpected http origin",
            ),
            Refusal::BadSubscriptionId => (
                "bad_subscription_id",
                400,
                "client_error",
                "bad subscription_id",
            ),
            Refusal::PayloadDecryptionFailed => (
                "payload_decryption_failed",
                400,
                "client_error",
                "payload decryption failed",
            ),
            Refusal::ClientError => (
                "client_error",
                400,
                "client_error",
                "required parameters: payload, iv, public_key",
            ),
            Refusal::Unauthorized => ("unauthorized", 401, "unauthorized", "Unauthorized"),
            Refusal::Error => ("error", 400, "error", "Error refreshing token"),
            Refusal::InvalidToken => (
                "invalid_token",
                400,
                "invalid_token",
                "Invalid Token presented",
            ),
            Refusal::ExpiredToken => (
                "expired_token",
                400,
                "expired_token",
                "Expired Token presented",
            ),
            Refusal::Unknown => ("unknown", 500, "unknown", "Unknown State"),
        }
    }
}

impl FromStr for Refusal {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Refusal::ALL
            .into_iter()
            .find(|r| r.name() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Refusal::ALL.iter().map(|r| r.name()).collect();
                format!("unknown refusal `{s}` ({})", names.join(", "))
            })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::None => write!(f, "none"),
            Fault::Status(code) => write!(f, "{code}"),
            Fault::StatusRetryAfter(code, secs) => write!(f, "{code}:{secs}"),
            Fault::Drop => write!(f, "drop"),
            Fault::Garbage => write!(f, "garbage"),
            Fault::Delay(d) => write!(f, "delay:{}", d.as_secs_f64()),
            Fault::SlowAnswer(d) => write!(f, "slow:{}", d.as_secs_f64()),
            Fault::OptOut => write!(f, "optout"),
            Fault::EncryptedStatus(s) => write!(f, "encrypted:{s}"),
            Fault::AdvertisingToken(t) => write!(f, "token:{t}"),
            Fault::Refuse(refusal) => write!(f, "refuse:{}", refusal.name()),
        }
    }
}

/// Parses `none`, `drop`, `garbage`, `optout`, `delay:<secs>`, `slow:<secs>` (fractions allowed),
/// `<code>`, `<code>:<retry-after secs>`, `encrypted:<status>`, `token:<advertising token>`,
/// `refuse:<refusal>`.
impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || {
            format!("bad fault `{s}` (none, drop, garbage, optout, delay:SECS, slow:SECS, CODE, CODE:RETRY_AFTER_SECS, encrypted:STATUS, token:TOKEN, refuse:REFUSAL)")
        };
        match s.to_ascii_lowercase().as_str() {
            "none" => return Ok(Fault::None),
            "drop" => return Ok(Fault::Drop),
            "garbage" => return Ok(Fault::Garbage),
            "optout" | "opt-out" => return Ok(Fault::OptOut),
            _ => {}
        }
        if let Some(secs) = s.strip_prefix("delay:") {
            let secs: f64 = secs.parse().map_err(|_| bad())?;
            return Duration::try_from_secs_f64(secs)
                .map(Fault::Delay)
                .map_err(|_| bad());
        }
        if let Some(secs) = s.strip_prefix("slow:") {
            let secs: f64 = secs.parse().map_err(|_| bad())?;
            return Duration::try_from_secs_f64(secs)
                .map(Fault::SlowAnswer)
                .map_err(|_| bad());
        }
        if let Some(refusal) = s.strip_prefix("refuse:") {
            return refusal.parse().map(Fault::Refuse);
        }
        if let Some(status) = s.strip_prefix("encrypted:") {
            return Ok(Fault::EncryptedStatus(status.to_owned()));
        }
        if let Some(token) = s.strip_prefix("token:") {
            return Ok(Fault::AdvertisingToken(token.to_owned()));
        }
        let parse_code = |c: &str| match c.parse::<u16>() {
            Ok(code @ 100..=999) => Ok(code),
            _ => Err(bad()),
        };
        match s.split_once(':') {
            None => Ok(Fault::Status(parse_code(s)?)),
            Some((code, secs)) => Ok(Fault::StatusRetryAfter(
                parse_code(code)?,
                secs.parse().map_err(|_| bad())?,
            )),
        }
    }
}

/// The fault currently set on one endpoint, optionally for a limited number of requests.
#[derive(Debug, Default)]
pub(crate) struct FaultSlot {
    fault: Fault,
    remaining: Option<u64>,
}

impl FaultSlot {
    pub(crate) fn set(&mut self, fault: Fault, times: Option<u64>) {
        if times == Some(0) {
            *self = FaultSlot::default();
        } else {
            self.fault = fault;
            self.remaining = times;
        }
    }

    /// The fault for the request being handled; counts down a limited fault.
    pub(crate) fn take(&mut self) -> Fault {
        let fault = self.fault.clone();
        if let Some(remaining) = self.remaining.as_mut() {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                *self = FaultSlot::default();
            }
        }
        fault
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_print() {
        for text in [
            "none",
            "drop",
            "garbage",
            "optout",
            "500",
            "503:30",
            "delay:1.5",
            "slow:2",
            "encrypted:expired_token",
            "token:A4AAAxyz",
            "refuse:invalid_http_origin",
            "refuse:bad_subscription_id",
        ] {
            let fault: Fault = text.parse().unwrap();
            assert_eq!(fault.to_string(), text);
        }
        assert!("5000".parse::<Fault>().is_err());
        assert!("delay:x".parse::<Fault>().is_err());
        assert!("delay:-1".parse::<Fault>().is_err());
        assert!("banana".parse::<Fault>().is_err());
        assert!("refuse:banana".parse::<Fault>().is_err());
        for refusal in Refusal::ALL {
            let fault: Fault = format!("refuse:{}", refusal.name()).parse().unwrap();
            assert_eq!(fault, Fault::Refuse(refusal));
        }
    }

    #[test]
    fn limited_fault_reverts_to_none() {
        let mut slot = FaultSlot::default();
        slot.set(Fault::Drop, Some(2));
        assert_eq!(slot.take(), Fault::Drop);
        assert_eq!(slot.take(), Fault::Drop);
        assert_eq!(slot.take(), Fault::None);
        slot.set(Fault::Garbage, None);
        assert_eq!(slot.take(), Fault::Garbage);
        assert_eq!(slot.take(), Fault::Garbage);
    }
}
