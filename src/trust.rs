//! The roots the operator's TLS certificate must chain to: the device's own CA store,
//! the config's `ca_file`, and with the `bundled-roots` cargo feature Mozilla's list as
//! compiled in (webpki-roots, for devices without a CA bundle).
//!
//! The system store is what `rustls-native-certs` finds: `SSL_CERT_FILE` and/or
//! `SSL_CERT_DIR` when set (then nothing else), otherwise the distribution's bundle and
//! directory (`/etc/ssl/certs/ca-certificates.crt`, `/etc/ssl/certs`, … as openssl-probe
//! lists them). It is read once per config load ([`Roots::load`]: start-up and every
//! SIGHUP, so an updated bundle takes effect with a reload), and the parsed root store is
//! shared by every client built from that load with the same `ca_file`: the UID2 and EUID
//! operator clients hold one copy, not one each (a parsed store of Debian's 146 roots is
//! ~170 KiB of heap, docs/benchmarks.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use tracing::{debug, warn};

use crate::operator::OperatorError;

/// Whether this build carries Mozilla's root list (the `bundled-roots` feature).
pub const BUNDLED: bool = cfg!(feature = "bundled-roots");

/// The most `ca_file` may hold, in bytes: a whole distribution bundle is a few hundred KiB
/// (Debian 12's: 215 KiB). No more than this is read of a larger file.
pub const MAX_CA_FILE_LEN: u64 = 4 * 1024 * 1024;

/// The roots of one config load: the system store (and the bundled roots) parsed once,
/// and each `ca_file`'s store built on it once.
#[derive(Debug)]
pub struct Roots {
    /// The system store, plus the bundled roots in a `bundled-roots` build.
    base: Arc<RootCertStore>,
    /// Stores with a `ca_file`'s roots added, by path.
    with_ca_file: Vec<(PathBuf, Arc<RootCertStore>)>,
}

impl Roots {
    /// Reads and parses the system store. Unreadable or broken entries are logged (paths
    /// and parse errors only: a CA store holds nothing secret) and skipped.
    pub fn load() -> Self {
        let mut base = RootCertStore::empty();
        let (added, ignored) = base.add_parsable_certificates(system_store_ders());
        #[cfg(feature = "bundled-roots")]
        base.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        debug!(system = added, ignored, bundled = BUNDLED, "trust roots");
        Self {
            base: Arc::new(base),
            with_ca_file: Vec::new(),
        }
    }

    /// The roots for one client: the system store's (and bundled ones), then the PEM
    /// certificates of `ca_file`. Errors: [`OperatorError::CaFile`] when `ca_file` cannot
    /// be read, [`OperatorError::CaPem`] when it holds no usable certificate (a typo in
    /// the path must not silently mean "the system store only"), and
    /// [`OperatorError::NoTrustRoots`] when with `https` set (an `http://` loopback base
    /// needs none) there would be no root at all.
    pub fn store(
        &mut self,
        ca_file: Option<&Path>,
        https: bool,
    ) -> Result<Arc<RootCertStore>, OperatorError> {
        let store = match ca_file {
            None => self.base.clone(),
            Some(path) => match self.with_ca_file.iter().find(|(p, _)| p == path) {
                Some((_, store)) => store.clone(),
                None => {
                    let mut store = (*self.base).clone();
                    for cert in ca_file_roots(path)? {
                        store
                            .add(cert)
                            .map_err(|_| OperatorError::CaPem(path.to_owned()))?;
                    }
                    let store = Arc::new(store);
                    self.with_ca_file.push((path.to_owned(), store.clone()));
                    store
                }
            },
        };
        if https && store.is_empty() {
            return Err(OperatorError::NoTrustRoots);
        }
        Ok(store)
    }

    /// A rustls client config over [`Roots::store`] (same errors), with ring and rustls'
    /// safe default protocol versions (TLS 1.2 and 1.3). Its verifier holds the shared
    /// store, so clones of it and configs for the same `ca_file` share one copy.
    pub fn client_config(
        &mut self,
        ca_file: Option<&Path>,
        https: bool,
    ) -> Result<ClientConfig, OperatorError> {
        let store = self.store(ca_file, https)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| OperatorError::Client(e.to_string()))?
            .with_root_certificates(store)
            .with_no_client_auth())
    }
}

/// The system store's certificates as DER, each once (sorted and deduplicated by
/// rustls-native-certs: the bundle and the hashed directory name the same ones); errors
/// are logged.
fn system_store_ders() -> Vec<CertificateDer<'static>> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        warn!("system CA store: {error}");
    }
    found.certs
}

/// The PEM certificates of `ca_file`: an error when it cannot be read (also when it is
/// not a regular file or larger than [`MAX_CA_FILE_LEN`]) or holds none.
fn ca_file_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, OperatorError> {
    let error = |source| OperatorError::CaFile {
        path: path.to_owned(),
        source,
    };
    let pem = crate::bounded_file::read(path, MAX_CA_FILE_LEN)
        .map_err(error)?
        .ok_or_else(|| error(std::io::Error::from_raw_os_error(nix::libc::ENOENT).into()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| OperatorError::CaPem(path.to_owned()))?;
    if certs.is_empty() {
        return Err(OperatorError::CaPem(path.to_owned()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_file(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, body).expect("write");
        path
    }

    #[test]
    fn ca_file_errors_are_named_and_a_missing_file_is_not_the_system_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut roots = Roots::load();
        let missing = dir.path().join("nope.pem");
        assert!(matches!(
            roots.store(Some(&missing), true),
            Err(OperatorError::CaFile { .. })
        ));
        let empty = pem_file(dir.path(), "not a certificate\n");
        assert!(matches!(
            roots.store(Some(&empty), true),
            Err(OperatorError::CaPem(_))
        ));
    }

    #[tokio::test]
    async fn clients_with_the_same_ca_file_share_one_store() {
        let sim = uid2_operator_sim::OperatorSim::start(Default::default())
            .await
            .expect("operator sim");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = pem_file(dir.path(), &sim.ca_pem());
        let mut roots = Roots::load();
        let first = roots.store(Some(&path), true).expect("store");
        let second = roots.store(Some(&path), true).expect("store");
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(first.len(), roots.base.len() + 1);
        assert!(Arc::ptr_eq(
            &roots.store(None, false).expect("store"),
            &roots.base
        ));
    }
}
