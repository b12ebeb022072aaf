//! UID2 wire cryptography, without any I/O: the encrypted response envelope of
//! `/v2/token/refresh` and `/v2/token/client-generate`, the operator's reply JSON, and the
//! client-side generate (CSTG) request.
//!
//! Keys and plaintexts are held in [`Zeroizing`] buffers; no error message carries a byte
//! of a key, a ciphertext or a plaintext.

use std::fmt;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::rand_core::RngCore as _;
use aes_gcm::aead::{Aead, AeadInPlace, OsRng, Payload};
use aes_gcm::aes::Aes192;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, KeyInit, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

use crate::identity::{Identity, ParseError};

const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Longest option string `GenerateIdentity` takes, in bytes. Subscription ids are ten
/// characters, server public keys 133 (`UID2-X-P-` and the Base64 SPKI of a P-256 key),
/// app names reverse-DNS.
pub const MAX_OPTION_LEN: usize = 256;

/// Why a response envelope could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("response body is not standard Base64")]
    NotBase64,
    #[error("response body is too short for an IV and a GCM tag")]
    TooShort,
    #[error("response key is not a 16-, 24- or 32-byte AES key")]
    BadKeyLength,
    #[error("response could not be decrypted (wrong key or tampered body)")]
    Decrypt,
}

/// Opens a UID2 response envelope: Base64 of IV (12) ‖ ciphertext ‖ GCM tag (16),
/// AES-GCM with `key` (AES-128, -192 or -256 by its length), no AAD.
///
/// Whitespace around the Base64 text (a trailing newline) is ignored. The plaintext is
/// the reply JSON itself: refresh and client-generate responses carry no timestamp/nonce
/// prefix.
pub fn open_envelope(body_b64: &str, key: &[u8]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let bytes = STANDARD
        .decode(body_b64.trim_ascii())
        .map_err(|_| EnvelopeError::NotBase64)?;
    let (iv, sealed) = bytes
        .split_first_chunk::<IV_LEN>()
        .filter(|(_, sealed)| sealed.len() >= TAG_LEN)
        .ok_or(EnvelopeError::TooShort)?;
    let nonce = &Nonce::<U12>::from(*iv);
    // Decrypted in place inside a zeroizing buffer; the tag is checked before any byte is
    // decrypted, so a failure leaves no plaintext behind.
    let mut buffer = Zeroizing::new(sealed.to_vec());
    let result = match key.len() {
        16 => Aes128Gcm::new_from_slice(key)
            .map_err(|_| EnvelopeError::BadKeyLength)?
            .decrypt_in_place(nonce, b"", &mut *buffer),
        24 => AesGcm::<Aes192, U12>::new_from_slice(key)
            .map_err(|_| EnvelopeError::BadKeyLength)?
            .decrypt_in_place(nonce, b"", &mut *buffer),
        32 => Aes256Gcm::new_from_slice(key)
            .map_err(|_| EnvelopeError::BadKeyLength)?
            .decrypt_in_place(nonce, b"", &mut *buffer),
        _ => return Err(EnvelopeError::BadKeyLength),
    };
    result.map_err(|_| EnvelopeError::Decrypt)?;
    Ok(buffer)
}

/// A decrypted operator reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorReply {
    /// `{"status":"success","body":{identity}}`.
    Success(Identity),
    /// `{"status":"optout"}`: the user opted out; the identity must be dropped.
    OptOut,
    /// Any other status (e.g. `expired_token`), with the server's message if any.
    /// Both are sanitised: control characters removed, at most 200 characters.
    Other {
        status: String,
        message: Option<String>,
    },
}

/// Why a decrypted reply is not a usable operator reply. Messages name fields only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply is not valid JSON")]
    NotJson,
    #[error("reply is not a JSON object")]
    NotObject,
    #[error("reply has no string field `status`")]
    MissingStatus,
    #[error("success reply carries a bad identity: {0}")]
    BadIdentity(ParseError),
    /// An identity whose `refresh_response_key` could never decrypt its own refresh.
    #[error("success reply carries an identity whose refresh_response_key is not the Base64 of a 16, 24 or 32-byte key")]
    UnusableKey,
}

/// Longest server status/message echoed, in characters.
const MAX_ECHO_CHARS: usize = 200;

/// Parses the decrypted JSON of a refresh or client-generate response.
pub fn parse_reply(plaintext: &[u8]) -> Result<OperatorReply, ReplyError> {
    let value: Value = serde_json::from_slice(plaintext).map_err(|_| ReplyError::NotJson)?;
    // The parsed tree holds copies of the tokens and key: wipe them however we leave.
    let value = WipeOnDrop(value);
    let object = value.0.as_object().ok_or(ReplyError::NotObject)?;
    let status = object
        .get("status")
        .and_then(Value::as_str)
        .ok_or(ReplyError::MissingStatus)?;
    match status {
        "success" => {
            let body = object
                .get("body")
                .ok_or(ReplyError::BadIdentity(ParseError::Missing("body")))?;
            // What the operator hands out is stored and served like what an app sets:
            // the same rules (Base64 tokens, a usable key), or the answer is a failure.
            let identity = Identity::from_value(body).map_err(ReplyError::BadIdentity)?;
            if identity.response_key().is_none() {
                return Err(ReplyError::UnusableKey);
            }
            Ok(OperatorReply::Success(identity))
        }
        "optout" => Ok(OperatorReply::OptOut),
        _ => Ok(OperatorReply::Other {
            status: sanitize(status),
            message: object.get("message").and_then(Value::as_str).map(sanitize),
        }),
    }
}

/// Server texts are not secret, but they end up in logs and D-Bus errors: keep them short
/// and free of control characters (no terminal escapes, no forged log lines).
fn sanitize(text: &str) -> String {
    let mut clean: String = text.chars().filter(|c| !c.is_control()).collect();
    if let Some((cut, _)) = clean.char_indices().nth(MAX_ECHO_CHARS) {
        clean.truncate(cut);
        clean.push('…');
    }
    clean
}

struct WipeOnDrop(Value);

impl Drop for WipeOnDrop {
    fn drop(&mut self) {
        fn wipe(value: &mut Value) {
            match value {
                Value::String(s) => s.zeroize(),
                Value::Array(items) => items.iter_mut().for_each(wipe),
                Value::Object(map) => map.values_mut().for_each(wipe),
                _ => {}
            }
        }
        wipe(&mut self.0);
    }
}

/// Why a client-side generate request could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CstgError {
    #[error("server public key is too short (expected a 9-character prefix and Base64)")]
    TooShort,
    #[error("server public key is not Base64 after its 9-character prefix")]
    NotBase64,
    #[error("server public key is not a DER SubjectPublicKeyInfo of a P-256 key")]
    NotP256Key,
    #[error("client-side generate encryption failed")]
    Crypto,
}

/// The operator's client-side public key (UID2 Portal "server public key").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPublicKey(p256::PublicKey);

impl ServerPublicKey {
    /// Length of the prefix (`UID2-X-P-`, `UID2-X-I-`, `UID2-X-L-`, …) that precedes the
    /// Base64. Like the SDKs, its content is not checked.
    pub const PREFIX_CHARS: usize = 9;

    /// Parses `<9-character prefix><Base64 of DER SubjectPublicKeyInfo>`; the key must be
    /// on P-256. Whitespace around the string is ignored.
    pub fn parse(s: &str) -> Result<Self, CstgError> {
        let s = s.trim();
        // Counted in characters, as the SDKs do, so a non-ASCII prefix cannot split a char.
        let start = s
            .char_indices()
            .nth(Self::PREFIX_CHARS)
            .map(|(at, _)| at)
            .ok_or(CstgError::TooShort)?;
        let der = STANDARD
            .decode(&s[start..])
            .map_err(|_| CstgError::NotBase64)?;
        // Checks the algorithm (id-ecPublicKey), the curve (prime256v1) and the point.
        p256::PublicKey::from_public_key_der(&der)
            .map(ServerPublicKey)
            .map_err(|_| CstgError::NotP256Key)
    }

    #[cfg(any(test, feature = "test-support"))]
    pub fn as_public_key(&self) -> &p256::PublicKey {
        &self.0
    }
}

/// A built `/v2/token/client-generate` request and the key of its response.
pub struct CstgRequest {
    /// The JSON request body.
    pub body: String,
    /// The ECDH secret: the AES-256-GCM key of the response (see [`CstgRequest::open_response`]).
    pub shared_secret: Zeroizing<[u8; 32]>,
}

impl CstgRequest {
    /// Opens the HTTP-200 response to this request (same envelope as refresh, keyed with
    /// the shared secret).
    #[cfg(any(test, feature = "test-support"))]
    pub fn open_response(&self, body_b64: &str) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        open_envelope(body_b64, &self.shared_secret[..])
    }
}

impl fmt::Debug for CstgRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CstgRequest")
            .field("body_len", &self.body.len())
            .field("shared_secret", &"<redacted>")
            .finish()
    }
}

/// The request body; field order as the SDKs send it (the server does not care).
#[derive(serde::Serialize)]
struct CstgBody<'a> {
    payload: &'a str,
    iv: &'a str,
    public_key: &'a str,
    timestamp: i64,
    subscription_id: &'a str,
    app_name: &'a str,
}

/// The AAD that binds timestamp and app name: the compact JSON array
/// `[<timestamp_ms>,"<app_name>"]`.
///
/// The server rebuilds it with its own JSON encoder, which escapes `"`, `\` and control
/// characters but not `/`; serde_json does exactly the same, so the bytes agree.
fn cstg_aad(timestamp_ms: i64, app_name: &str) -> Result<Vec<u8>, CstgError> {
    serde_json::to_vec(&(timestamp_ms, app_name)).map_err(|_| CstgError::Crypto)
}

/// Builds a client-side generate request with a given ephemeral key and IV (deterministic;
/// for tests and conformance vectors; use [`build_cstg_request_random`] otherwise).
///
/// `payload_json` is the plaintext, e.g. [`crate::dii::Dii::payload_json`]. The ECDH
/// X coordinate is used directly as the AES-256-GCM key (no KDF), as the operator does.
pub fn build_cstg_request(
    server_key: &ServerPublicKey,
    payload_json: &[u8],
    subscription_id: &str,
    app_name: &str,
    timestamp_ms: i64,
    ephemeral: &p256::SecretKey,
    iv: [u8; 12],
) -> Result<CstgRequest, CstgError> {
    let shared =
        p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), server_key.0.as_affine());
    let mut shared_secret = Zeroizing::new([0u8; 32]);
    shared_secret.copy_from_slice(shared.raw_secret_bytes());
    drop(shared); // zeroizes its own copy

    let aad = cstg_aad(timestamp_ms, app_name)?;
    let sealed = Aes256Gcm::new_from_slice(&shared_secret[..])
        .map_err(|_| CstgError::Crypto)?
        .encrypt(
            &Nonce::<U12>::from(iv),
            Payload {
                msg: payload_json,
                aad: &aad,
            },
        )
        .map_err(|_| CstgError::Crypto)?;

    // Uncompressed point in a DER SubjectPublicKeyInfo (91 bytes), as the SDKs send it.
    let public_key = ephemeral
        .public_key()
        .to_public_key_der()
        .map_err(|_| CstgError::Crypto)?;

    let body = serde_json::to_string(&CstgBody {
        payload: &STANDARD.encode(&sealed),
        iv: &STANDARD.encode(iv),
        public_key: &STANDARD.encode(public_key.as_bytes()),
        timestamp: timestamp_ms,
        subscription_id,
        app_name,
    })
    .map_err(|_| CstgError::Crypto)?;
    Ok(CstgRequest {
        body,
        shared_secret,
    })
}

/// Builds a client-side generate request with a fresh ephemeral key and a random IV.
pub fn build_cstg_request_random(
    server_key: &ServerPublicKey,
    payload_json: &[u8],
    subscription_id: &str,
    app_name: &str,
    timestamp_ms: i64,
) -> Result<CstgRequest, CstgError> {
    // A new key per request: the shared secret is then unique to this request.
    let ephemeral = p256::SecretKey::random(&mut OsRng);
    let mut iv = [0u8; IV_LEN];
    OsRng.fill_bytes(&mut iv);
    build_cstg_request(
        server_key,
        payload_json,
        subscription_id,
        app_name,
        timestamp_ms,
        &ephemeral,
        iv,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::DecodePrivateKey as _;

    fn fixture_path(path: &str) -> String {
        format!("{}/tests/fixtures/uid2/{path}", env!("CARGO_MANIFEST_DIR"))
    }

    fn fixture(path: &str) -> String {
        let full = fixture_path(path);
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
    }

    fn json(path: &str) -> Value {
        serde_json::from_str(&fixture(path)).unwrap()
    }

    fn b64(text: &str) -> Vec<u8> {
        STANDARD.decode(text).unwrap()
    }

    fn hex(text: &str) -> Vec<u8> {
        assert_eq!(text.len() % 2, 0);
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    // Keys from PROVENANCE.md (Android TestData constants).
    const SUCCESS_KEY: &str = "mJ8UtxUs4eUennG/h1v5pcxbtSHLSkzVZ1es4a3gLME=";
    const OPTOUT_KEY: &str = "DIMOwK7qL6kNfzlkKNdFk2wfXhml75Rcu4FnTFnODo8=";
    const IOS_SERVER_KEY: &str = "UID2-X-I-MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEKAbPfOz7u25g1fL6riU7p2eeqhjmpALPeYoyjvZmZ1xM2NM8UeOmDZmCIBnKyRZ97pz5bMCjrs38WM22O7LJuw==";

    fn key_for(encrypted_file: &str) -> &'static str {
        match encrypted_file {
            "refresh-token-200-success-encrypted.txt" => SUCCESS_KEY,
            "refresh-token-200-optout-encrypted.txt" => OPTOUT_KEY,
            other => panic!("no key known for fixture {other}"),
        }
    }

    fn seal(key: &[u8], iv: [u8; 12], plaintext: &[u8]) -> String {
        let nonce = &Nonce::<U12>::from(iv);
        let sealed = match key.len() {
            16 => Aes128Gcm::new_from_slice(key)
                .unwrap()
                .encrypt(nonce, plaintext),
            24 => AesGcm::<Aes192, U12>::new_from_slice(key)
                .unwrap()
                .encrypt(nonce, plaintext),
            32 => Aes256Gcm::new_from_slice(key)
                .unwrap()
                .encrypt(nonce, plaintext),
            _ => unreachable!(),
        }
        .unwrap();
        STANDARD.encode([&iv[..], &sealed].concat())
    }

    #[test]
    fn every_encrypted_fixture_decrypts_to_its_decrypted_twin() {
        let mut count = 0;
        for dir in ["android", "ios"] {
            let mut names: Vec<String> = std::fs::read_dir(fixture_path(dir))
                .unwrap()
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .filter(|name| name.ends_with("-encrypted.txt"))
                .collect();
            names.sort();
            for name in names {
                let body = fixture(&format!("{dir}/{name}"));
                let plain = open_envelope(&body, &b64(key_for(&name))).unwrap();
                let twin = name.replace("-encrypted.txt", "-decrypted.json");
                let expected = json(&format!("{dir}/{twin}"));
                let got: Value = serde_json::from_slice(&plain).unwrap();
                assert_eq!(got, expected, "{dir}/{name}");
                if name.contains("optout") {
                    assert_eq!(&plain[..], br#"{"status":"optout"}"#);
                } else {
                    assert_eq!(plain.len(), 955);
                }
                count += 1;
            }
        }
        assert_eq!(count, 4);
    }

    #[test]
    fn envelope_errors() {
        let body = fixture("android/refresh-token-200-success-encrypted.txt");
        let key = b64(SUCCESS_KEY);
        assert_eq!(
            open_envelope(&body, &b64(OPTOUT_KEY)).unwrap_err(),
            EnvelopeError::Decrypt
        );
        assert_eq!(
            open_envelope("not base64!", &key).unwrap_err(),
            EnvelopeError::NotBase64
        );
        assert_eq!(
            open_envelope(&body[..body.trim_end().len() - 1], &key).unwrap_err(),
            EnvelopeError::NotBase64
        );
        // Shorter than IV + tag.
        let bytes = b64(body.trim_end());
        let short = STANDARD.encode(&bytes[..IV_LEN + TAG_LEN - 1]);
        assert_eq!(
            open_envelope(&short, &key).unwrap_err(),
            EnvelopeError::TooShort
        );
        assert_eq!(
            open_envelope("", &key).unwrap_err(),
            EnvelopeError::TooShort
        );
        // Truncated but long enough: the tag no longer matches.
        let truncated = STANDARD.encode(&bytes[..bytes.len() - 1]);
        assert_eq!(
            open_envelope(&truncated, &key).unwrap_err(),
            EnvelopeError::Decrypt
        );
        // Tampered ciphertext.
        let mut tampered = bytes.clone();
        tampered[20] ^= 1;
        assert_eq!(
            open_envelope(&STANDARD.encode(&tampered), &key).unwrap_err(),
            EnvelopeError::Decrypt
        );
        for bad_len in [0, 15, 31, 33] {
            assert_eq!(
                open_envelope(&body, &vec![7; bad_len]).unwrap_err(),
                EnvelopeError::BadKeyLength
            );
        }
        // Messages carry no input.
        for err in [
            EnvelopeError::NotBase64,
            EnvelopeError::TooShort,
            EnvelopeError::BadKeyLength,
            EnvelopeError::Decrypt,
        ] {
            let text = err.to_string();
            assert!(!text.contains(&body[..8]) && !text.contains(&SUCCESS_KEY[..8]));
        }
    }

    #[test]
    fn envelope_key_sizes_and_whitespace() {
        for len in [16, 24, 32] {
            let key: Vec<u8> = (0..len as u8).collect();
            let body = seal(&key, [9; 12], br#"{"status":"optout"}"#);
            let wrapped = format!("  {body}\r\n");
            assert_eq!(
                &open_envelope(&wrapped, &key).unwrap()[..],
                br#"{"status":"optout"}"#
            );
        }
        // An empty plaintext is a valid (if useless) envelope.
        let key = [1u8; 32];
        assert!(open_envelope(&seal(&key, [0; 12], b""), &key)
            .unwrap()
            .is_empty());
    }

    fn assert_fixture_identity(id: &Identity, path: &str) {
        let body = &json(path)["body"];
        let expected = Identity::from_value(body).unwrap();
        assert_eq!(id, &expected);
        assert_eq!(
            id.advertising_token,
            body["advertising_token"].as_str().unwrap()
        );
        assert_eq!(id.refresh_token, body["refresh_token"].as_str().unwrap());
        assert_eq!(
            id.refresh_response_key,
            body["refresh_response_key"].as_str().unwrap()
        );
    }

    #[test]
    fn parse_reply_on_decrypted_fixtures() {
        for dir in ["android", "ios"] {
            let path = format!("{dir}/refresh-token-200-success-decrypted.json");
            let OperatorReply::Success(id) = parse_reply(fixture(&path).as_bytes()).unwrap() else {
                panic!("{path}: not a success");
            };
            assert_eq!(id.identity_expires, 1_675_272_748_539);
            assert_eq!(id.refresh_from, 1_675_272_148_539);
            assert_eq!(id.refresh_expires, 1_677_863_848_539);
            assert_eq!(
                id.refresh_response_key,
                "ZsLNtb55Kr9vGEDj2nTiYN4rqL6ofXcnvXKyI0oVdyM="
            );
            assert_eq!(id.refresh_token.len(), 388);
            assert_fixture_identity(&id, &path);

            let path = format!("{dir}/refresh-token-200-optout-decrypted.json");
            assert_eq!(
                parse_reply(fixture(&path).as_bytes()),
                Ok(OperatorReply::OptOut)
            );
        }
        assert_eq!(
            parse_reply(fixture("android/refresh-token-200-expired-decrypted.json").as_bytes()),
            Ok(OperatorReply::Other {
                status: "expired_token".into(),
                message: None
            })
        );
        assert_eq!(
            parse_reply(fixture("ios/refresh-token-400-client-error.json").as_bytes()),
            Ok(OperatorReply::Other {
                status: "client_error".into(),
                message: Some("Client Error".into())
            })
        );
        assert_eq!(
            parse_reply(fixture("ios/refresh-token-401-unauthorized.json").as_bytes()),
            Ok(OperatorReply::Other {
                status: "unauthorized".into(),
                message: None
            })
        );
    }

    #[test]
    fn ios_generate_keys_open_the_refresh_fixtures() {
        for (generated, refreshed, twin) in [
            (
                "ios/generate-token-200-success.json",
                "ios/refresh-token-200-success-encrypted.txt",
                "ios/refresh-token-200-success-decrypted.json",
            ),
            // Misnamed upstream: a success whose refresh then opts out.
            (
                "ios/generate-token-200-optout.json",
                "ios/refresh-token-200-optout-encrypted.txt",
                "ios/refresh-token-200-optout-decrypted.json",
            ),
        ] {
            let OperatorReply::Success(id) = parse_reply(fixture(generated).as_bytes()).unwrap()
            else {
                panic!("{generated}: not a success");
            };
            assert_fixture_identity(&id, generated);
            let key = id.response_key().unwrap();
            let plain = open_envelope(&fixture(refreshed), &key).unwrap();
            assert_eq!(
                parse_reply(&plain).unwrap(),
                parse_reply(fixture(twin).as_bytes()).unwrap()
            );
        }
    }

    #[test]
    fn parse_reply_errors_and_sanitising() {
        assert_eq!(parse_reply(b"{"), Err(ReplyError::NotJson));
        assert_eq!(parse_reply(b"\xff"), Err(ReplyError::NotJson));
        assert_eq!(parse_reply(b"[]"), Err(ReplyError::NotObject));
        assert_eq!(parse_reply(b"{}"), Err(ReplyError::MissingStatus));
        assert_eq!(
            parse_reply(br#"{"status":1}"#),
            Err(ReplyError::MissingStatus)
        );
        assert_eq!(
            parse_reply(br#"{"status":"success"}"#),
            Err(ReplyError::BadIdentity(ParseError::Missing("body")))
        );
        assert_eq!(
            parse_reply(br#"{"status":"success","body":[]}"#),
            Err(ReplyError::BadIdentity(ParseError::NotObject))
        );
        let mut value = json("android/refresh-token-200-success-decrypted.json");
        value["body"]
            .as_object_mut()
            .unwrap()
            .remove("refresh_token");
        let err = parse_reply(value.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err,
            ReplyError::BadIdentity(ParseError::Missing("refresh_token"))
        );
        assert!(err.to_string().contains("refresh_token"));
        let token = value["body"]["advertising_token"].as_str().unwrap();
        assert!(!err.to_string().contains(token));

        // An identity uid2d could not serve or refresh is not a success.
        let good = json("android/refresh-token-200-success-decrypted.json");
        let mut nul = good.clone();
        nul["body"]["advertising_token"] = "A4\u{0}B".into();
        assert_eq!(
            parse_reply(nul.to_string().as_bytes()),
            Err(ReplyError::BadIdentity(ParseError::NotBase64(
                "advertising_token"
            )))
        );
        let mut short_key = good.clone();
        short_key["body"]["refresh_response_key"] = "c2hvcnQ=".into();
        assert_eq!(
            parse_reply(short_key.to_string().as_bytes()),
            Err(ReplyError::UnusableKey)
        );

        let long = "x".repeat(500);
        let text = format!(r#"{{"status":"bad\u001b[31m_thing","message":"line\nbreak {long}"}}"#);
        let OperatorReply::Other { status, message } = parse_reply(text.as_bytes()).unwrap() else {
            panic!("not Other");
        };
        assert_eq!(status, "bad[31m_thing");
        let message = message.unwrap();
        assert!(message.starts_with("linebreak xxx"));
        assert_eq!(message.chars().count(), MAX_ECHO_CHARS + 1);
        assert!(message.ends_with('…'));
    }

    struct Vector(Value);

    impl Vector {
        fn load() -> Self {
            Vector(json("derived/derived-cstg-vector.json"))
        }
        fn str(&self, key: &str) -> &str {
            self.0[key].as_str().unwrap()
        }
        fn server_key(&self) -> ServerPublicKey {
            ServerPublicKey::parse(self.str("server_public_key_string")).unwrap()
        }
        fn server_secret(&self) -> p256::SecretKey {
            let text = self.str("server_private_key_string");
            p256::SecretKey::from_pkcs8_der(&b64(&text[9..])).unwrap()
        }
        fn build(&self) -> CstgRequest {
            let client =
                p256::SecretKey::from_slice(&hex(self.str("client_private_key_scalar_hex")))
                    .unwrap();
            let iv: [u8; 12] = hex(self.str("iv_hex")).try_into().unwrap();
            let fields = &self.0["expected_request_body_fields"];
            build_cstg_request(
                &self.server_key(),
                self.str("payload_plaintext_utf8").as_bytes(),
                fields["subscription_id"].as_str().unwrap(),
                self.str("app_name"),
                self.0["timestamp_ms"].as_i64().unwrap(),
                &client,
                iv,
            )
            .unwrap()
        }
    }

    /// What the operator does with a request: ECDH with its private key, rebuild the AAD
    /// from the parsed body, decrypt.
    fn server_decrypt(server: &p256::SecretKey, body: &str) -> (Vec<u8>, [u8; 32]) {
        let body: Value = serde_json::from_str(body).unwrap();
        let client =
            p256::PublicKey::from_public_key_der(&b64(body["public_key"].as_str().unwrap()))
                .unwrap();
        let shared = p256::ecdh::diffie_hellman(server.to_nonzero_scalar(), client.as_affine());
        let secret: [u8; 32] = (*shared.raw_secret_bytes()).into();
        let aad = format!(
            "[{},{}]",
            body["timestamp"].as_i64().unwrap(),
            body["app_name"]
        );
        let iv: [u8; 12] = b64(body["iv"].as_str().unwrap()).try_into().unwrap();
        let plain = Aes256Gcm::new_from_slice(&secret)
            .unwrap()
            .decrypt(
                &Nonce::<U12>::from(iv),
                Payload {
                    msg: &b64(body["payload"].as_str().unwrap()),
                    aad: aad.as_bytes(),
                },
            )
            .unwrap();
        (plain, secret)
    }

    #[test]
    fn cstg_request_matches_the_derived_vector() {
        let v = Vector::load();
        let request = v.build();
        let body: Value = serde_json::from_str(&request.body).unwrap();
        let expected = &v.0["expected_request_body_fields"];
        let body_fields = body.as_object().unwrap();
        assert_eq!(body_fields.len(), 6);
        for (key, value) in expected.as_object().unwrap() {
            assert_eq!(&body[key], value, "field {key}");
        }
        assert!(body["timestamp"].is_i64(), "timestamp is a JSON number");
        assert_eq!(
            body["payload"].as_str(),
            Some(v.str("payload_ciphertext_plus_tag_b64"))
        );
        assert_eq!(
            body["public_key"].as_str(),
            Some(v.str("client_public_key_spki_der_b64"))
        );
        assert_eq!(b64(body["public_key"].as_str().unwrap()).len(), 91);
        assert_eq!(
            request.shared_secret.to_vec(),
            hex(v.str("ecdh_shared_secret_hex_used_directly_as_aes256_key"))
        );
        assert_eq!(
            cstg_aad(v.0["timestamp_ms"].as_i64().unwrap(), v.str("app_name")).unwrap(),
            v.str("aad_utf8").as_bytes()
        );
        // The server side agrees on the secret and recovers the payload.
        let (plain, secret) = server_decrypt(&v.server_secret(), &request.body);
        assert_eq!(plain, v.str("payload_plaintext_utf8").as_bytes());
        assert_eq!(secret, *request.shared_secret);
        assert!(!format!("{request:?}").contains(&request.body));
    }

    #[test]
    fn cstg_vector_responses_decrypt_with_the_secret() {
        let v = Vector::load();
        let request = v.build();
        let examples = v.0["response_examples"].as_array().unwrap();
        assert_eq!(examples.len(), 2);
        let mut replies = Vec::new();
        for example in examples {
            let body = example["response_body_b64"].as_str().unwrap();
            let plain = request.open_response(body).unwrap();
            assert_eq!(
                &plain[..],
                example["plaintext_utf8"].as_str().unwrap().as_bytes()
            );
            let iv = hex(example["iv_hex"].as_str().unwrap());
            assert_eq!(&b64(body)[..12], &iv[..]);
            replies.push(parse_reply(&plain).unwrap());
        }
        assert_eq!(replies[0], OperatorReply::OptOut);
        let OperatorReply::Success(id) = &replies[1] else {
            panic!("second example is not a success");
        };
        assert_eq!(id.advertising_token, "adv");
        assert_eq!(id.refresh_token, "ref");
        assert_eq!(id.identity_expires, 1_700_003_600_000);
        assert_eq!(id.refresh_from, 1_700_001_800_000);
        assert_eq!(id.refresh_expires, 1_702_592_000_000);
        assert_eq!(
            id.refresh_response_key,
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
        );
        assert_eq!(id.response_key().map(|k| k.len()), Some(32));
        // Another key cannot open them.
        assert_eq!(
            open_envelope(examples[0]["response_body_b64"].as_str().unwrap(), &[0; 32]),
            Err(EnvelopeError::Decrypt)
        );
    }

    #[test]
    fn random_requests_are_fresh_and_accepted_by_the_server() {
        let v = Vector::load();
        let server_key = v.server_key();
        let payload = v.str("payload_plaintext_utf8").as_bytes();
        let app = r#"tv.app/"quoted"\slash"#;
        let a = build_cstg_request_random(&server_key, payload, "sub", app, 12_345).unwrap();
        let b = build_cstg_request_random(&server_key, payload, "sub", app, 12_345).unwrap();
        assert_ne!(*a.shared_secret, *b.shared_secret);
        for request in [&a, &b] {
            let body: Value = serde_json::from_str(&request.body).unwrap();
            assert_eq!(body["app_name"], app);
            assert_eq!(body["subscription_id"], "sub");
            assert_eq!(body["timestamp"], 12_345);
            assert_eq!(b64(body["public_key"].as_str().unwrap()).len(), 91);
            assert_eq!(
                b64(body["payload"].as_str().unwrap()).len(),
                payload.len() + TAG_LEN
            );
            let (plain, secret) = server_decrypt(&v.server_secret(), &request.body);
            assert_eq!(plain, payload);
            assert_eq!(secret, *request.shared_secret);
        }
        let a_body: Value = serde_json::from_str(&a.body).unwrap();
        let b_body: Value = serde_json::from_str(&b.body).unwrap();
        assert_ne!(a_body["iv"], b_body["iv"]);
        assert_ne!(a_body["public_key"], b_body["public_key"]);
    }

    #[test]
    fn aad_escapes_like_the_server() {
        assert_eq!(
            cstg_aad(12_345, "com.uid2.test").unwrap(),
            br#"[12345,"com.uid2.test"]"#
        );
        assert_eq!(cstg_aad(-1, "a/b\"c\\d").unwrap(), br#"[-1,"a/b\"c\\d"]"#);
    }

    #[test]
    fn server_public_keys() {
        let ios = ServerPublicKey::parse(IOS_SERVER_KEY).unwrap();
        assert_eq!(
            ios.as_public_key().to_public_key_der().unwrap().as_bytes(),
            &b64(&IOS_SERVER_KEY[9..])[..]
        );
        // The prefix's content is not checked, only its length.
        assert_eq!(
            ServerPublicKey::parse(&format!("ABCDEFGHI{}", &IOS_SERVER_KEY[9..])).unwrap(),
            ios
        );
        assert_eq!(
            ServerPublicKey::parse(&format!(" {IOS_SERVER_KEY}\n")).unwrap(),
            ios
        );
        assert_eq!(
            ServerPublicKey::parse("not-an-encoded-public-key"),
            Err(CstgError::NotBase64)
        );
        assert_eq!(
            ServerPublicKey::parse("UID2-X-I-"),
            Err(CstgError::TooShort)
        );
        assert_eq!(ServerPublicKey::parse(""), Err(CstgError::TooShort));
        // Without its prefix the Base64 is cut in the wrong place.
        assert!(ServerPublicKey::parse(&IOS_SERVER_KEY[9..]).is_err());
        // Valid Base64, not a key.
        assert_eq!(
            ServerPublicKey::parse("UID2-X-I-AAAAAAAA"),
            Err(CstgError::NotP256Key)
        );
        // An Ed25519 SubjectPublicKeyInfo (RFC 8410 example): right format, wrong curve.
        assert_eq!(
            ServerPublicKey::parse(
                "UID2-X-I-MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="
            ),
            Err(CstgError::NotP256Key)
        );
        // A P-256 header with a point that is not on the curve.
        let mut der = b64(&IOS_SERVER_KEY[9..]);
        der[90] ^= 1;
        assert_eq!(
            ServerPublicKey::parse(&format!("UID2-X-I-{}", STANDARD.encode(&der))),
            Err(CstgError::NotP256Key)
        );
        for err in [
            CstgError::TooShort,
            CstgError::NotBase64,
            CstgError::NotP256Key,
        ] {
            assert!(!err.to_string().contains("MFkw"));
        }
    }
}
