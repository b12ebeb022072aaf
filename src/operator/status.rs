//! The UID2/EUID operator's status names: the `status` word of its JSON answers, as a
//! closed set, so that a refusal can be counted, logged and explained by name without
//! ever echoing what a server sent.
//!
//! Source: IABTechLab/uid2-operator v5.70.250, `ResponseUtil.ResponseStatus` (the words)
//! and `UIDOperatorVerticle` (which endpoint answers which, with which HTTP status):
//!
//! | endpoint | HTTP | `status` | when |
//! | --- | --- | --- | --- |
//! | client-generate | 200 (encrypted) | `success`, `optout` | |
//! | client-generate | 400 | `client_error` | message `bad subscription_id`: no key pair has this subscription id |
//! | client-generate | 400 | `client_error` | message `payload decryption failed`: the public key is not the subscription's |
//! | client-generate | 400 | `client_error` | any other malformed request |
//! | client-generate | 401 | `unauthorized` | the subscription's key pair is disabled |
//! | client-generate | 403 | `invalid_app_name` | `app_name` not registered for the key pair's site |
//! | client-generate | 403 | `invalid_http_origin` | no `app_name`, and the `Origin` not registered |
//! | refresh | 200 (encrypted) | `success`, `optout` | |
//! | refresh | 400 | `error` | unauthenticated caller (a device): refresh token invalid, expired or spent |
//! | refresh | 400 | `invalid_token`, `expired_token` | the same, to callers with an API key |
//! | refresh | 400 | `client_error` | a malformed request |
//! | refresh | 401 | `unauthorized` | (documented for the endpoint) |
//! | generate (server-side) | 200 (encrypted) | `insufficient_user_consent` | EUID: the TCF string lacks consent |
//! | any | 500 | `unknown` | the operator failed |
//!
//! Older operators answered an expired refresh token with an encrypted
//! `{"status":"expired_token"}` (the Android SDK's fixture), which is read the same way.

/// One status of an operator answer. [`OperatorStatus::Other`] is any status word (or
/// body) not in the table above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorStatus {
    Success,
    OptOut,
    /// `client_error` with the message `bad subscription_id`.
    BadSubscriptionId,
    /// `client_error` with the message `payload decryption failed`.
    PayloadDecryptionFailed,
    ClientError,
    Unauthorized,
    InvalidAppName,
    InvalidHttpOrigin,
    /// `error`: the refresh endpoint's one answer to a device for a refresh token it
    /// will not take.
    Error,
    InvalidToken,
    ExpiredToken,
    InsufficientUserConsent,
    /// `unknown`: the operator's own failure (HTTP 500).
    Unknown,
    Other,
}

impl OperatorStatus {
    /// Every status, [`OperatorStatus::Other`] last.
    pub const ALL: [OperatorStatus; 14] = [
        OperatorStatus::Success,
        OperatorStatus::OptOut,
        OperatorStatus::BadSubscriptionId,
        OperatorStatus::PayloadDecryptionFailed,
        OperatorStatus::ClientError,
        OperatorStatus::Unauthorized,
        OperatorStatus::InvalidAppName,
        OperatorStatus::InvalidHttpOrigin,
        OperatorStatus::Error,
        OperatorStatus::InvalidToken,
        OperatorStatus::ExpiredToken,
        OperatorStatus::InsufficientUserConsent,
        OperatorStatus::Unknown,
        OperatorStatus::Other,
    ];

    /// The name: the operator's own word, except `bad_subscription_id` and
    /// `payload_decryption_failed` (two `client_error`s told apart by the operator's fixed
    /// message, because their fixes differ) and `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorStatus::Success => "success",
            OperatorStatus::OptOut => "optout",
            OperatorStatus::BadSubscriptionId => "bad_subscription_id",
            OperatorStatus::PayloadDecryptionFailed => "payload_decryption_failed",
            OperatorStatus::ClientError => "client_error",
            OperatorStatus::Unauthorized => "unauthorized",
            OperatorStatus::InvalidAppName => "invalid_app_name",
            OperatorStatus::InvalidHttpOrigin => "invalid_http_origin",
            OperatorStatus::Error => "error",
            OperatorStatus::InvalidToken => "invalid_token",
            OperatorStatus::ExpiredToken => "expired_token",
            OperatorStatus::InsufficientUserConsent => "insufficient_user_consent",
            OperatorStatus::Unknown => "unknown",
            OperatorStatus::Other => "other",
        }
    }

    /// The status of an answer whose `status` field is `status` and `message` field
    /// `message`. Exact words only (ASCII case aside): anything else is `Other`.
    pub fn of(status: &str, message: Option<&str>) -> OperatorStatus {
        let word = status.trim();
        let message = message.map(str::trim).unwrap_or_default();
        if word.eq_ignore_ascii_case("client_error") {
            if message.eq_ignore_ascii_case("bad subscription_id") {
                return OperatorStatus::BadSubscriptionId;
            }
            if message.eq_ignore_ascii_case("payload decryption failed") {
                return OperatorStatus::PayloadDecryptionFailed;
            }
        }
        Self::ALL
            .into_iter()
            .filter(|s| {
                !matches!(
                    s,
                    OperatorStatus::BadSubscriptionId | OperatorStatus::PayloadDecryptionFailed
                )
            })
            .find(|s| s.as_str().eq_ignore_ascii_case(word))
            .unwrap_or(OperatorStatus::Other)
    }

    /// The status of an unencrypted error body (`{"status":…,"message":…}`); `Other`
    /// when it is not such JSON (a proxy's or captive portal's page).
    pub fn of_body(body: &[u8]) -> OperatorStatus {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return OperatorStatus::Other;
        };
        let text = |key: &str| value.get(key).and_then(serde_json::Value::as_str);
        match text("status") {
            Some(status) => Self::of(status, text("message")),
            None => OperatorStatus::Other,
        }
    }

    /// The status named `name` (an [`OperatorStatus::as_str`]), if it is one.
    pub fn from_name(name: &str) -> Option<OperatorStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for OperatorStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operators_bodies_are_named() {
        // The bodies of UIDOperatorVerticle and the iOS SDK's fixtures.
        let cases: [(&[u8], OperatorStatus); 12] = [
            (
                br#"{"status":"client_error","message":"bad subscription_id"}"#,
                OperatorStatus::BadSubscriptionId,
            ),
            (
                br#"{"status":"client_error","message":"payload decryption failed"}"#,
                OperatorStatus::PayloadDecryptionFailed,
            ),
            (
                br#"{"status":"client_error","message":"Client Error"}"#,
                OperatorStatus::ClientError,
            ),
            (
                br#"{"status":"unauthorized"}"#,
                OperatorStatus::Unauthorized,
            ),
            (
                br#"{"status":"invalid_app_name","message":"unexpected app name"}"#,
                OperatorStatus::InvalidAppName,
            ),
            (
                br#"{"status":"invalid_http_origin","message":"unexpected http origin"}"#,
                OperatorStatus::InvalidHttpOrigin,
            ),
            (
                br#"{"status":"error","message":"Error refreshing token"}"#,
                OperatorStatus::Error,
            ),
            (
                br#"{"status":"invalid_token","message":"Invalid Token"}"#,
                OperatorStatus::InvalidToken,
            ),
            (
                br#"{"status":"expired_token","message":"Expired Token presented"}"#,
                OperatorStatus::ExpiredToken,
            ),
            (
                br#"{"status":"unknown","message":"Unknown State"}"#,
                OperatorStatus::Unknown,
            ),
            (b"<html>403 Forbidden</html>", OperatorStatus::Other),
            (
                br#"{"status":"<script>","message":"x"}"#,
                OperatorStatus::Other,
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                OperatorStatus::of_body(body),
                expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            OperatorStatus::of("insufficient_user_consent", None),
            OperatorStatus::InsufficientUserConsent
        );
        assert_eq!(OperatorStatus::of("optout", None), OperatorStatus::OptOut);
    }

    #[test]
    fn names_are_short_words_and_round_trip() {
        for status in OperatorStatus::ALL {
            let name = status.as_str();
            assert!(name.len() <= 32);
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(OperatorStatus::from_name(name), Some(status));
        }
        // Our own refinements are not words an operator sends.
        assert_eq!(
            OperatorStatus::of("bad_subscription_id", None),
            OperatorStatus::Other
        );
        assert_eq!(OperatorStatus::from_name("rejected_4xx"), None);
    }
}
