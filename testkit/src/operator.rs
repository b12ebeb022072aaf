//! The local UID2 operator (`uid2-operator-sim`, real TLS and crypto).

use std::path::{Path, PathBuf};
use std::time::Duration;

use uid2_operator_sim::{OperatorSim, SimConfig};

use crate::{secrets, Binaries, Bus, DaemonSpec};

/// A running operator and its CA written to a file, for uid2d's `ca_file`.
#[derive(Debug)]
pub struct Operator {
    /// The simulator: mint identities, count requests, inject faults.
    pub sim: OperatorSim,
    /// Its CA certificate, PEM.
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Operator {
    /// An operator with `config`.
    pub async fn start(config: SimConfig) -> Operator {
        let sim = OperatorSim::start(config).await.expect("operator sim");
        let dir = tempfile::tempdir().expect("tempdir for the CA");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, sim.ca_pem()).expect("write the CA");
        Operator {
            sim,
            ca_file,
            _dir: dir,
        }
    }

    /// An operator whose identities are due for refresh `refresh_after` seconds after
    /// minting, expire after `identity` s and can be refreshed for `refresh` s.
    pub async fn with_lifetimes(refresh_after: u64, identity: u64, refresh: u64) -> Operator {
        Self::start(SimConfig {
            refresh_after: Duration::from_secs(refresh_after),
            identity_lifetime: Duration::from_secs(identity),
            refresh_lifetime: Duration::from_secs(refresh),
            ..SimConfig::default()
        })
        .await
    }

    /// An identity as a publisher's backend would hand it to the TV, as JSON text. Its
    /// secrets join those no daemon log may contain.
    pub fn identity(&self, email: &str) -> String {
        let identity = self.sim.mint_identity(email).to_string();
        for secret in secrets::secrets_of(&identity) {
            secrets::remember_secret(secret);
        }
        identity
    }

    /// `bins.uid2d` against this operator on `bus`, its state under `state`, plus `extra`
    /// config lines.
    pub fn spec<'a>(
        &self,
        bins: &Binaries,
        bus: &'a Bus,
        state: &Path,
        extra: &str,
    ) -> DaemonSpec<'a> {
        DaemonSpec {
            uid2d: bins.uid2d.clone(),
            bus,
            config: format!("{}{extra}", self.config_toml()),
            state_dir: state.join("state"),
            env: Vec::new(),
        }
    }

    /// uid2d's config for this operator (debug logging, so the secret scan sees more).
    pub fn config_toml(&self) -> String {
        format!(
            "base_url = \"{}\"\nca_file = \"{}\"\nlog_level = \"debug\"\n",
            self.sim.base_url(),
            self.ca_file.display()
        )
    }
}

/// Config lines for tests of other features that serve one app both products: the
/// contract denies UID2 where GDPR applies and EUID where it does not, so one app is
/// served both tokens only with `[privacy] enforce = false` (tests/privacy.rs tests the
/// decision itself).
pub const NO_CONSENT_ENFORCEMENT: &str = "[privacy]\nenforce = false\n";

/// uid2d with a UID2 operator at `base_url` and another as the EUID one at
/// `[euid] base_url` (ending in `/v2`, as the real EUID bases do), one `ca_file` holding
/// both test CAs. Both operators' identities are due for refresh after an hour, expire
/// after an hour and can be refreshed for a day.
#[derive(Debug)]
pub struct BothProducts {
    /// The UID2 operator.
    pub uid2: Operator,
    /// The EUID operator.
    pub euid: Operator,
    /// uid2d.
    pub daemon: crate::Daemon,
    /// The private bus.
    pub bus: crate::Bus,
    _dir: tempfile::TempDir,
}

impl BothProducts {
    /// Starts `bins.uid2d` with `extra` top-level config lines.
    pub async fn start(bins: &crate::Binaries, extra: &str) -> BothProducts {
        let uid2 = Operator::with_lifetimes(3600, 3600, 86400).await;
        let euid = Operator::with_lifetimes(3600, 3600, 86400).await;
        let bus = crate::Bus::start().await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca = dir.path().join("both-cas.pem");
        std::fs::write(&ca, format!("{}{}", uid2.sim.ca_pem(), euid.sim.ca_pem()))
            .expect("the CA file");
        let config = format!(
            "base_url = \"{}\"\nca_file = \"{}\"\nlog_level = \"debug\"\n{extra}\
             [euid]\nbase_url = \"{}/v2\"\n",
            uid2.sim.base_url(),
            ca.display(),
            euid.sim.base_url(),
        );
        let daemon = crate::Daemon::start(crate::DaemonSpec {
            uid2d: bins.uid2d.clone(),
            bus: &bus,
            config,
            state_dir: dir.path().join("state"),
            env: Vec::new(),
        })
        .await;
        BothProducts {
            uid2,
            euid,
            daemon,
            bus,
            _dir: dir,
        }
    }

    /// The UID2 and the EUID object, on a new connection.
    pub async fn objects(
        &self,
    ) -> (
        uid2d::client::Manager1Proxy<'static>,
        uid2d::client::Manager1Proxy<'static>,
    ) {
        let conn = self.bus.connect().await;
        (
            crate::manager(&conn).await,
            uid2d::client::euid_manager(&conn)
                .await
                .expect("the EUID object's proxy"),
        )
    }
}
