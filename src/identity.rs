//! The UID2 identity: its six fields, parsing as the UID2 SDKs accept it, the SDKs'
//! validation order, and the seven identity statuses.
//!
//! Nothing in this module formats a token or key: `Debug` is redacted and every error
//! names a field, never its value.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use serde_json::{Map, Value};
use zeroize::Zeroize;

/// Milliseconds since the Unix epoch, the unit of every UID2 timestamp.
pub type UnixMillis = i64;

/// Longest identity JSON uid2d reads, in bytes, checked before it is parsed
/// ([`ParseError::TooLarge`]): two tokens of [`MAX_TOKEN_LEN`], the key, the times and a
/// response envelope around them, with room for whitespace. A real identity is under
/// 1 KiB.
pub const MAX_IDENTITY_JSON: usize = 16 * 1024;

/// Longest advertising or refresh token accepted, in bytes. Real ones are a few hundred:
/// 388 characters for the refresh tokens of the SDKs' fixtures, 133–220 for advertising
/// tokens; ten times that leaves room for new token versions.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Longest `refresh_response_key` accepted, in bytes: Base64 of a 32-byte key is 44.
pub const MAX_KEY_LEN: usize = 64;

/// The six fields of a UID2 identity (the `body` of a token generate/refresh response).
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    pub advertising_token: String,
    pub refresh_token: String,
    pub identity_expires: UnixMillis,
    pub refresh_from: UnixMillis,
    pub refresh_expires: UnixMillis,
    /// Standard Base64 of the AES key that decrypts the next refresh response.
    pub refresh_response_key: String,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("advertising_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("identity_expires", &self.identity_expires)
            .field("refresh_from", &self.refresh_from)
            .field("refresh_expires", &self.refresh_expires)
            .field("refresh_response_key", &"<redacted>")
            .finish()
    }
}

impl Drop for Identity {
    fn drop(&mut self) {
        self.advertising_token.zeroize();
        self.refresh_token.zeroize();
        self.refresh_response_key.zeroize();
    }
}

/// Why a JSON text is not an identity. Messages name fields, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not valid JSON")]
    NotJson,
    #[error("expected a JSON object")]
    NotObject,
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("field `{0}` must be a string")]
    NotString(&'static str),
    #[error(
        "field `{0}` must be an integer (milliseconds since the epoch), as a number or a string"
    )]
    NotInteger(&'static str),
    #[error("response status is `{0}`, not `success`")]
    NotSuccess(String),
    /// The text is longer than [`MAX_IDENTITY_JSON`]; it was not parsed.
    #[error("the identity JSON is {0} bytes; at most {MAX_IDENTITY_JSON} are accepted")]
    TooLarge(usize),
    /// A token or the key is not Base64 text (see [`is_base64_text`]).
    #[error(
        "field `{0}` must be Base64 text (A-Z, a-z, 0-9, `+`, `/`, `-`, `_`, then at most two `=`)"
    )]
    NotBase64(&'static str),
    /// A token or the key is longer than its limit.
    #[error("field `{field}` is longer than {max} bytes")]
    TooLong { field: &'static str, max: usize },
}

const FIELDS: [&str; 6] = [
    "advertising_token",
    "refresh_token",
    "identity_expires",
    "refresh_from",
    "refresh_expires",
    "refresh_response_key",
];

/// What `SetIdentity` was given ([`Identity::set_input`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetInput {
    Identity(Identity),
    /// The operator's `optout` envelope: the user opted out.
    OptOut,
    /// The operator's `insufficient_user_consent` envelope: nothing to store.
    InsufficientUserConsent,
}

impl Identity {
    /// Parses an identity object, or a whole `{"status":"success","body":{…}}` response.
    ///
    /// Times may be JSON integers or strings holding an integer (as the Android SDK and
    /// the server SDKs' JSON accept); unknown keys are ignored. A text longer than
    /// [`MAX_IDENTITY_JSON`] is refused before it is parsed. (`SetIdentity` takes
    /// [`Identity::set_input`], which also takes the operator's envelopes.)
    #[cfg(any(test, feature = "test-support"))]
    pub fn from_json(text: &str) -> Result<Self, ParseError> {
        if text.len() > MAX_IDENTITY_JSON {
            return Err(ParseError::TooLarge(text.len()));
        }
        let value: Value = serde_json::from_str(text).map_err(|_| ParseError::NotJson)?;
        Self::from_value(&value)
    }

    /// `SetIdentity`'s input: an identity (as [`Identity::from_json`] takes it), or one of
    /// the operator's envelopes that carry none — `{"status":"optout"}` (also the web
    /// SDK's identity shape with `"status":"optout"` beside other fields) and
    /// `{"status":"insufficient_user_consent"}` (the EUID operator's answer to a generate
    /// without TCF consent; UID2 `/v2/token/generate` docs, EUID operator).
    pub fn set_input(text: &str) -> Result<SetInput, ParseError> {
        if text.len() > MAX_IDENTITY_JSON {
            return Err(ParseError::TooLarge(text.len()));
        }
        let value: Value = serde_json::from_str(text).map_err(|_| ParseError::NotJson)?;
        match value.get("status").and_then(Value::as_str) {
            Some("optout") => Ok(SetInput::OptOut),
            Some("insufficient_user_consent") => Ok(SetInput::InsufficientUserConsent),
            _ => Self::from_value(&value).map(SetInput::Identity),
        }
    }

    /// As [`Identity::from_json`], from an already parsed value.
    ///
    /// Every identity uid2d holds came through here (from an app, the operator or the
    /// store), so each can be served back: its tokens and key are Base64 text of bounded
    /// length ([`is_base64_text`]), never a character D-Bus cannot carry.
    pub fn from_value(value: &Value) -> Result<Self, ParseError> {
        let object = value.as_object().ok_or(ParseError::NotObject)?;
        if !object.contains_key("advertising_token") {
            if let Some(body) = object.get("body") {
                if let Some(status) = object.get("status").and_then(Value::as_str) {
                    if status != "success" {
                        return Err(ParseError::NotSuccess(sanitize_status(status)));
                    }
                }
                return Self::from_object(body.as_object().ok_or(ParseError::NotObject)?);
            }
        }
        Self::from_object(object)
    }

    fn from_object(object: &Map<String, Value>) -> Result<Self, ParseError> {
        Ok(Self {
            advertising_token: base64_field(object, FIELDS[0], MAX_TOKEN_LEN)?,
            refresh_token: base64_field(object, FIELDS[1], MAX_TOKEN_LEN)?,
            identity_expires: time_field(object, FIELDS[2])?,
            refresh_from: time_field(object, FIELDS[3])?,
            refresh_expires: time_field(object, FIELDS[4])?,
            refresh_response_key: base64_field(object, FIELDS[5], MAX_KEY_LEN)?,
        })
    }

    /// The identity as the SDKs serialise it: exactly the six snake_case keys.
    pub fn to_json(&self) -> String {
        let mut object = Map::new();
        object.insert(FIELDS[0].into(), self.advertising_token.clone().into());
        object.insert(FIELDS[1].into(), self.refresh_token.clone().into());
        object.insert(FIELDS[2].into(), self.identity_expires.into());
        object.insert(FIELDS[3].into(), self.refresh_from.into());
        object.insert(FIELDS[4].into(), self.refresh_expires.into());
        object.insert(FIELDS[5].into(), self.refresh_response_key.clone().into());
        Value::Object(object).to_string()
    }

    /// The decoded `refresh_response_key`, if it is Base64 of an AES-128/192/256 key.
    ///
    /// The SDKs do not check this; uid2d does at `SetIdentity`, because an identity whose
    /// key cannot decrypt the refresh response can never be refreshed.
    pub fn response_key(&self) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(self.refresh_response_key.as_bytes())
            .ok()?;
        matches!(key.len(), 16 | 24 | 32).then(|| zeroize::Zeroizing::new(key))
    }
}

/// Server status strings are echoed in errors only when they look like a status word.
fn sanitize_status(status: &str) -> String {
    if status.len() <= 32
        && status
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        status.to_owned()
    } else {
        "<unrecognised>".to_owned()
    }
}

/// Whether `text` is Base64 text as UID2 tokens and keys are: the characters of RFC 4648's
/// `base64` and `base64url` alphabets (`A`–`Z`, `a`–`z`, `0`–`9`, `+`, `/`, `-`, `_`),
/// then at most two `=` of padding. UID2 v2 tokens and refresh tokens are standard Base64
/// (`AgAAA…==`, the SDKs' fixtures), v3/v4 advertising tokens base64url (`A4AAA…`); the
/// empty text passes (an empty token is the SDKs' `invalid`, decided by [`validate`]).
/// Such text is plain ASCII: D-Bus, JSON, HTTP bodies and journald carry it unchanged.
pub fn is_base64_text(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    text.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
}

/// A token or key field: a string of Base64 text of at most `max` bytes.
fn base64_field(
    object: &Map<String, Value>,
    name: &'static str,
    max: usize,
) -> Result<String, ParseError> {
    match object.get(name) {
        None => Err(ParseError::Missing(name)),
        Some(Value::String(s)) if s.len() > max => Err(ParseError::TooLong { field: name, max }),
        Some(Value::String(s)) if !is_base64_text(s) => Err(ParseError::NotBase64(name)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ParseError::NotString(name)),
    }
}

fn time_field(object: &Map<String, Value>, name: &'static str) -> Result<UnixMillis, ParseError> {
    match object.get(name) {
        None => Err(ParseError::Missing(name)),
        Some(Value::Number(n)) => n.as_i64().ok_or(ParseError::NotInteger(name)),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| ParseError::NotInteger(name)),
        Some(_) => Err(ParseError::NotInteger(name)),
    }
}

/// The seven identity statuses, with the UID2 SDKs' numeric codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Established,
    Refreshed,
    Expired,
    NoIdentity,
    Invalid,
    RefreshExpired,
    OptOut,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Established,
        Status::Refreshed,
        Status::Expired,
        Status::NoIdentity,
        Status::Invalid,
        Status::RefreshExpired,
        Status::OptOut,
    ];

    /// The status string of the D-Bus contract.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Established => "established",
            Status::Refreshed => "refreshed",
            Status::Expired => "expired",
            Status::NoIdentity => "no_identity",
            Status::Invalid => "invalid",
            Status::RefreshExpired => "refresh_expired",
            Status::OptOut => "opt_out",
        }
    }

    /// The numeric code of the Android/iOS SDKs' `IdentityStatus`.
    #[cfg(any(test, feature = "test-support"))]
    pub fn code(self) -> i32 {
        match self {
            Status::Established => 0,
            Status::Refreshed => 1,
            Status::Expired => 100,
            Status::NoIdentity => -1,
            Status::Invalid => -2,
            Status::RefreshExpired => -3,
            Status::OptOut => -4,
        }
    }

    /// Whether an identity is held in this status (it is dropped in the others).
    pub fn holds_identity(self) -> bool {
        matches!(
            self,
            Status::Established | Status::Refreshed | Status::Expired
        )
    }

    /// Whether `GetAdvertisingToken` may return the token in this status.
    pub fn serves_token(self) -> bool {
        matches!(self, Status::Established | Status::Refreshed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown status string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown identity status")]
pub struct UnknownStatus;

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(UnknownStatus)
    }
}

/// The SDKs' validation ("identity package") in their order; the first match wins.
///
/// `now` is `None` while the wall clock is not trusted (before NTP on a TV without an
/// RTC): the expiry checks are then skipped, because a local clock that may be decades off
/// must not throw away a good identity; the operator's answer decides instead.
/// `is_new` is Android's rule: no identity was held before.
pub fn validate(identity: Option<&Identity>, is_new: bool, now: Option<UnixMillis>) -> Status {
    let Some(identity) = identity else {
        return Status::NoIdentity;
    };
    if identity.advertising_token.is_empty() || identity.refresh_token.is_empty() {
        return Status::Invalid;
    }
    if let Some(now) = now {
        if identity.refresh_expires <= now {
            return Status::RefreshExpired;
        }
        if identity.identity_expires <= now {
            return Status::Expired;
        }
    }
    if is_new {
        Status::Established
    } else {
        Status::Refreshed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> String {
        let full = format!("{}/tests/fixtures/uid2/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
    }

    #[test]
    fn parses_android_fixture() {
        // The fixture's made-up key `response key` is not Base64 text: uid2d has always
        // refused it (`SetIdentity` needs a usable key), now already while parsing.
        let text = fixture("android/identity-valid.json");
        assert_eq!(
            Identity::from_json(&text),
            Err(ParseError::NotBase64("refresh_response_key"))
        );
        let id = Identity::from_json(&text.replace("response key", "responsekey")).unwrap();
        assert_eq!(id.advertising_token, "token");
        assert_eq!(id.refresh_token, "refresh");
        assert_eq!(id.identity_expires, 123_456);
        assert_eq!(id.refresh_from, 321);
        assert_eq!(id.refresh_expires, 654_321);
        assert_eq!(id.refresh_response_key, "responsekey");
        assert!(id.response_key().is_none(), "not a key's length");
    }

    #[test]
    fn tokens_and_key_must_be_base64_text_of_bounded_length() {
        let good = fixture("ios/uididentity.json");
        let value: Value = serde_json::from_str(&good).unwrap();
        // Standard and URL-safe Base64, padded or not, and the empty token (`invalid`).
        for ok in ["AgAAA+/x==", "A4AAA-_x", "abc=", ""] {
            let mut object = value.clone();
            object["advertising_token"] = ok.into();
            assert!(Identity::from_value(&object).is_ok(), "{ok:?}");
        }
        let long_token = "A".repeat(MAX_TOKEN_LEN + 1);
        let long_key = "A".repeat(MAX_KEY_LEN + 1);
        for (field, max) in [
            ("advertising_token", MAX_TOKEN_LEN),
            ("refresh_token", MAX_TOKEN_LEN),
            ("refresh_response_key", MAX_KEY_LEN),
        ] {
            // NUL is what D-Bus cannot carry; the rest is not Base64 either.
            for bad in [r"A4\u0000B", "A4 B", r"A4\u00e9", r"A4\nB", "a=b", "abc==="] {
                let text = good.replacen(
                    &format!("\"{}\"", value[field].as_str().unwrap()),
                    &format!("\"{bad}\""),
                    1,
                );
                assert_eq!(
                    Identity::from_json(&text),
                    Err(ParseError::NotBase64(field)),
                    "{field} = {bad:?}"
                );
            }
            let mut object = value.clone();
            object[field] = if max == MAX_KEY_LEN {
                &long_key
            } else {
                &long_token
            }
            .as_str()
            .into();
            assert_eq!(
                Identity::from_value(&object),
                Err(ParseError::TooLong { field, max })
            );
            object[field] = "A".repeat(max).into();
            assert!(
                Identity::from_value(&object).is_ok(),
                "{field} at its limit"
            );
        }
    }

    #[test]
    fn size_is_checked_before_parsing() {
        // Not JSON, but too large is what it is told first: nothing of it was parsed.
        let text = "[".repeat(MAX_IDENTITY_JSON + 1);
        assert_eq!(
            Identity::from_json(&text),
            Err(ParseError::TooLarge(MAX_IDENTITY_JSON + 1))
        );
        assert!(ParseError::TooLarge(MAX_IDENTITY_JSON + 1)
            .to_string()
            .contains("16384"));
        // An identity with both tokens at their limit fits.
        let id = Identity {
            advertising_token: "A".repeat(MAX_TOKEN_LEN),
            refresh_token: "R".repeat(MAX_TOKEN_LEN),
            identity_expires: i64::MAX,
            refresh_from: i64::MAX,
            refresh_expires: i64::MAX,
            refresh_response_key: "K".repeat(MAX_KEY_LEN),
        };
        let whole = format!(r#"{{"status":"success","body":{}}}"#, id.to_json());
        assert!(
            whole.len() < MAX_IDENTITY_JSON / 2 + 1024,
            "{}",
            whole.len()
        );
        assert_eq!(Identity::from_json(&whole), Ok(id));
    }

    #[test]
    fn each_missing_field_is_named() {
        let text = fixture("android/identity-valid.json");
        let value: Value = serde_json::from_str(&text).unwrap();
        for field in FIELDS {
            let mut object = value.as_object().unwrap().clone();
            object.remove(field);
            assert_eq!(
                Identity::from_value(&Value::Object(object)),
                Err(ParseError::Missing(field))
            );
        }
    }

    #[test]
    fn parses_ios_fixture_and_round_trips() {
        let id = Identity::from_json(&fixture("ios/uididentity.json")).unwrap();
        assert_eq!(id.identity_expires, 1_633_643_601_000);
        assert_eq!(id.refresh_from, 1_633_643_001_000);
        assert_eq!(id.refresh_expires, 1_636_322_000_000);
        assert_eq!(id.response_key().map(|k| k.len()), Some(16));
        assert_eq!(Identity::from_json(&id.to_json()).unwrap(), id);
        let reparsed: Value = serde_json::from_str(&id.to_json()).unwrap();
        assert_eq!(reparsed.as_object().unwrap().len(), 6);
    }

    #[test]
    fn accepts_whole_success_response_and_string_times() {
        let id = Identity::from_json(&fixture("android/refresh-token-200-success-decrypted.json"))
            .unwrap();
        assert_eq!(id.refresh_token.len(), 388);
        assert_eq!(id.response_key().map(|k| k.len()), Some(32));
        let text = r#"{"advertising_token":"a","refresh_token":"r","identity_expires":"1700000000000",
            "refresh_from":" 1699999999999","refresh_expires":1800000000000,"refresh_response_key":"k"}"#;
        let id = Identity::from_json(text).unwrap();
        assert_eq!(id.identity_expires, 1_700_000_000_000);
        assert_eq!(id.refresh_from, 1_699_999_999_999);
    }

    #[test]
    fn rejects_wrong_types_without_echoing_values() {
        let text = r#"{"advertising_token":"SECRET","refresh_token":"r","identity_expires":1.6E12,
            "refresh_from":1,"refresh_expires":2,"refresh_response_key":"k"}"#;
        let err = Identity::from_json(text).unwrap_err();
        assert_eq!(err, ParseError::NotInteger("identity_expires"));
        assert!(!err.to_string().contains("SECRET"));
        let text = r#"{"advertising_token":null,"refresh_token":"r","identity_expires":1,
            "refresh_from":1,"refresh_expires":2,"refresh_response_key":"k"}"#;
        assert_eq!(
            Identity::from_json(text),
            Err(ParseError::NotString("advertising_token"))
        );
        assert_eq!(Identity::from_json("{"), Err(ParseError::NotJson));
        assert_eq!(Identity::from_json("[]"), Err(ParseError::NotObject));
        assert_eq!(
            Identity::from_json(&fixture("android/refresh-token-200-optout-decrypted.json")),
            Err(ParseError::Missing("advertising_token"))
        );
        assert_eq!(
            Identity::from_json(r#"{"status":"optout","body":{}}"#),
            Err(ParseError::NotSuccess("optout".into()))
        );
    }

    #[test]
    fn debug_is_redacted() {
        let id = Identity::from_json(&fixture("ios/uididentity.json")).unwrap();
        let shown = format!("{id:?}");
        assert!(!shown.contains(&id.advertising_token));
        assert!(!shown.contains(&id.refresh_token));
        assert!(!shown.contains(&id.refresh_response_key));
    }

    #[test]
    fn statuses_have_sdk_names_and_codes() {
        let expected = [
            ("established", 0),
            ("refreshed", 1),
            ("expired", 100),
            ("no_identity", -1),
            ("invalid", -2),
            ("refresh_expired", -3),
            ("opt_out", -4),
        ];
        for (status, (name, code)) in Status::ALL.into_iter().zip(expected) {
            assert_eq!(status.as_str(), name);
            assert_eq!(status.code(), code);
            assert_eq!(name.parse::<Status>(), Ok(status));
        }
        assert!("Established".parse::<Status>().is_err());
    }

    #[test]
    fn validation_follows_sdk_order() {
        let id = |adv: &str, refresh: &str, expires, refresh_expires| Identity {
            advertising_token: adv.into(),
            refresh_token: refresh.into(),
            identity_expires: expires,
            refresh_from: 0,
            refresh_expires,
            refresh_response_key: String::new(),
        };
        let now = Some(1_000);
        assert_eq!(validate(None, true, now), Status::NoIdentity);
        // Empty tokens win over expiry.
        assert_eq!(
            validate(Some(&id("", "r", 0, 0)), true, now),
            Status::Invalid
        );
        assert_eq!(
            validate(Some(&id("a", "", 0, 0)), true, now),
            Status::Invalid
        );
        // Expiry is inclusive: `expires <= now`.
        assert_eq!(
            validate(Some(&id("a", "r", 0, 1_000)), true, now),
            Status::RefreshExpired
        );
        assert_eq!(
            validate(Some(&id("a", "r", 1_000, 1_001)), true, now),
            Status::Expired
        );
        assert_eq!(
            validate(Some(&id("a", "r", 1_001, 2_000)), true, now),
            Status::Established
        );
        assert_eq!(
            validate(Some(&id("a", "r", 1_001, 2_000)), false, now),
            Status::Refreshed
        );
        // An untrusted clock never expires an identity.
        assert_eq!(
            validate(Some(&id("a", "r", 0, 0)), true, None),
            Status::Established
        );
    }
}
