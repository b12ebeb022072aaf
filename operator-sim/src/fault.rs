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
    /// Like [`Fault::OptOut`] with any status string, e.g. `expired_token`, or `success`
    /// without a body.
    EncryptedStatus(String),
    /// Answer as usual, but a new identity carries this advertising token (e.g. one with
    /// a NUL, which a client must not store). Opt-outs are answered as usual.
    AdvertisingToken(String),
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
        }
    }
}

/// Parses `none`, `drop`, `garbage`, `optout`, `delay:<secs>`, `slow:<secs>` (fractions allowed),
/// `<code>`, `<code>:<retry-after secs>`, `encrypted:<status>`, `token:<advertising token>`.
impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || {
            format!("bad fault `{s}` (none, drop, garbage, optout, delay:SECS, slow:SECS, CODE, CODE:RETRY_AFTER_SECS, encrypted:STATUS, token:TOKEN)")
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
        ] {
            let fault: Fault = text.parse().unwrap();
            assert_eq!(fault.to_string(), text);
        }
        assert!("5000".parse::<Fault>().is_err());
        assert!("delay:x".parse::<Fault>().is_err());
        assert!("delay:-1".parse::<Fault>().is_err());
        assert!("banana".parse::<Fault>().is_err());
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
