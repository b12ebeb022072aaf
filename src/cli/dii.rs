//! `uid2ctl dii --email V | --phone V`: what client-side generation would send for an
//! email or phone, computed here (no daemon, no request), so that support can compare it
//! with the publisher's own hashing — UID2's hashing tool for a TV.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::dii::{self, DiiError};

/// The lines printed for one value: `normalized=`, `sha256_hex=` (the digest as the UID2
/// docs show it, to spot a hex-encoded hash sent by mistake) and `email_hash=` or
/// `phone_hash=` (standard Base64 of the digest: the CSTG payload's field and value).
///
/// A phone is only checked, never rewritten: UID2 takes E.164 as it is given.
pub(super) fn lines(email: Option<&str>, phone: Option<&str>) -> Result<Vec<String>, DiiError> {
    let (normalized, field) = match (email, phone) {
        (Some(email), _) => (
            Zeroizing::new(dii::normalize_email(email).ok_or(DiiError::Email)?),
            "email_hash",
        ),
        (None, Some(phone)) if dii::is_normalized_phone(phone) => {
            (Zeroizing::new(phone.to_owned()), "phone_hash")
        }
        (None, _) => return Err(DiiError::Phone),
    };
    let digest = Sha256::digest(normalized.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    Ok(vec![
        format!("normalized={}", normalized.as_str()),
        format!("sha256_hex={hex}"),
        format!("{field}={}", dii::hash(&normalized)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_and_a_phone_give_their_normalised_value_and_hashes() {
        // The UID2 docs' "Normalization and Encoding" tables (uid2docs
        // docs/getting-started/gs-normalization-encoding.md).
        assert_eq!(
            lines(Some(" User@Example.com "), None).unwrap(),
            [
                "normalized=user@example.com",
                "sha256_hex=b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514",
                "email_hash=tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVRQ=",
            ]
        );
        assert_eq!(
            lines(None, Some("+12345678901")).unwrap(),
            [
                "normalized=+12345678901",
                "sha256_hex=10e6f0b47054a83359477dcb35231db6de5c69fb1816e1a6b98e192de9e5b9ee",
                "phone_hash=EObwtHBUqDNZR33LNSMdtt5cafsYFuGmuY4ZLenlue4=",
            ]
        );
    }

    #[test]
    fn bad_values_are_named_errors_without_the_value() {
        assert_eq!(lines(Some("no-at-sign"), None), Err(DiiError::Email));
        let error = lines(None, Some("1 (234) 567-8901")).unwrap_err();
        assert_eq!(error, DiiError::Phone);
        assert!(!error.to_string().contains("234"));
    }
}
