//! What `com.uid2.Diagnostics1.GetSetup` reports for `uid2ctl doctor`: the facts only the
//! daemon knows (its operator, trust settings, state directory, key source). Paths and
//! URLs only: never a key, token or app id.

use crate::store::KeyOrigin;

use super::Runtime;

/// The daemon's setup as a support engineer needs it (see GetSetup in
/// dbus/com.uid2.Diagnostics1.xml for the key of each field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// This runtime's operator base URL.
    pub operator_url: String,
    /// `ca_file`, or `""`: the system CA store only (src/trust.rs).
    pub ca_file: String,
    /// `request_timeout`, in seconds.
    pub request_timeout: u32,
    /// The state directory.
    pub state_dir: String,
    /// Where the device key came from: `credential`, `key_file` or `generated`.
    pub key_source: &'static str,
}

impl Runtime {
    /// This runtime's [`Setup`].
    pub fn setup(&self) -> Setup {
        let reloadable = self.config().reloadable;
        Setup {
            operator_url: crate::config::shown_url(&reloadable.base_url).to_string(),
            ca_file: reloadable
                .ca_file
                .map(|path| path.display().to_string())
                .unwrap_or_default(),
            request_timeout: u32::try_from(reloadable.request_timeout.as_secs())
                .unwrap_or(u32::MAX),
            state_dir: self.store.dir().display().to_string(),
            key_source: match self.store.key_origin() {
                KeyOrigin::Credential => "credential",
                KeyOrigin::KeyFile => "key_file",
                KeyOrigin::Generated => "generated",
            },
        }
    }
}
