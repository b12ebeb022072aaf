//! Temporary home of the record format until the store owns it.

use serde::{Deserialize, Serialize};

use crate::engine::{Held, Persisted};
use crate::identity::{Identity, Status};

/// The store's name for the device policy record (not a scope).
pub(crate) const POLICY_RECORD: &str = "policy";

#[derive(Serialize, Deserialize)]
struct PolicyRecord {
    version: u32,
    limit_ad_tracking: bool,
}

/// The JSON inside a scope's sealed file.
#[derive(Serialize, Deserialize)]
struct Record {
    version: u32,
    status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity: Option<serde_json::Value>,
    auto_refresh: bool,
    #[serde(default)]
    rejected: bool,
    #[serde(default)]
    opted_out_dii: Vec<String>,
}

/// Why a record was refused. Never holds the record's contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecordError {
    #[error("unreadable record")]
    Unreadable,
    #[error("record version {0} is not supported")]
    Version(u32),
    #[error("unknown status in record")]
    Status,
    #[error("identity: {0}")]
    Identity(crate::identity::ParseError),
    #[error("status and identity disagree")]
    Disagree,
}

pub(crate) fn encode_scope(persisted: &Persisted) -> zeroize::Zeroizing<Vec<u8>> {
    let (status, identity) = match &persisted.held {
        Held::Nothing(status) => (*status, None),
        Held::Identity { identity, fresh } => {
            (*fresh, serde_json::from_str(&identity.to_json()).ok())
        }
    };
    let record = Record {
        version: 1,
        status: status.as_str().to_owned(),
        identity,
        auto_refresh: persisted.auto_refresh,
        rejected: persisted.rejected,
        opted_out_dii: persisted.opted_out_dii.clone(),
    };
    zeroize::Zeroizing::new(serde_json::to_vec(&record).unwrap_or_default())
}

pub(crate) fn decode_scope(bytes: &[u8]) -> Result<Persisted, RecordError> {
    let record: Record = serde_json::from_slice(bytes).map_err(|_| RecordError::Unreadable)?;
    if record.version != 1 {
        return Err(RecordError::Version(record.version));
    }
    let status: Status = record.status.parse().map_err(|_| RecordError::Status)?;
    let held = match (record.identity, status) {
        (Some(value), Status::Established | Status::Refreshed) => Held::Identity {
            identity: Identity::from_value(&value).map_err(RecordError::Identity)?,
            fresh: status,
        },
        (None, status) if !status.holds_identity() => Held::Nothing(status),
        _ => return Err(RecordError::Disagree),
    };
    Ok(Persisted {
        held,
        auto_refresh: record.auto_refresh,
        rejected: record.rejected,
        opted_out_dii: record.opted_out_dii,
    })
}

pub(crate) fn encode_policy(limit_ad_tracking: bool) -> Vec<u8> {
    serde_json::to_vec(&PolicyRecord {
        version: 1,
        limit_ad_tracking,
    })
    .unwrap_or_default()
}

pub(crate) fn decode_policy(bytes: &[u8]) -> Result<bool, RecordError> {
    let record: PolicyRecord =
        serde_json::from_slice(bytes).map_err(|_| RecordError::Unreadable)?;
    if record.version != 1 {
        return Err(RecordError::Version(record.version));
    }
    Ok(record.limit_ad_tracking)
}
