//! The roots the operator's TLS certificate must chain to: the device's own CA store,
//! the config's `ca_file`, and with the `bundled-roots` cargo feature Mozilla's list as
//! compiled in (webpki-roots, for devices without a CA bundle).
//!
//! The system store is what `rustls-native-certs` finds: `SSL_CERT_FILE` and/or
//! `SSL_CERT_DIR` when set (then nothing else), otherwise the distribution's bundle and
//! directory (`/etc/ssl/certs/ca-certificates.crt`, `/etc/ssl/certs`, … as openssl-probe
//! lists them). It is read at start-up and on every reload, so an updated bundle takes
//! effect with SIGHUP.

use std::path::Path;

use tracing::{debug, warn};

use crate::operator::OperatorError;

/// Whether this build carries Mozilla's root list (the `bundled-roots` feature, through
/// reqwest's `rustls-tls-webpki-roots`, which makes them reqwest's built-in roots).
pub(crate) const BUNDLED: bool = cfg!(feature = "bundled-roots");

/// The roots to add to the HTTPS client besides the bundled ones: the system store's,
/// then `ca_file`'s. `NoTrustRoots` when, with `https` set (an `http://` loopback base
/// needs none), there would be no root at all.
pub(crate) fn extra_roots(
    ca_file: Option<&Path>,
    https: bool,
) -> Result<Vec<reqwest::Certificate>, OperatorError> {
    let mut roots = system_roots();
    let system = roots.len();
    if let Some(path) = ca_file {
        roots.extend(ca_file_roots(path)?);
    }
    debug!(
        system,
        ca_file = roots.len() - system,
        bundled = BUNDLED,
        "trust roots"
    );
    if https && roots.is_empty() && !BUNDLED {
        return Err(OperatorError::NoTrustRoots);
    }
    Ok(roots)
}

/// The system store's certificates as DER, each once (sorted and deduplicated by
/// rustls-native-certs); errors are logged. Also `uid2ctl doctor`'s handshake roots.
pub(crate) fn system_store_ders() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        // Paths and I/O or parse errors only: a CA store holds nothing secret.
        warn!("system CA store: {error}");
    }
    found.certs
}

/// The system store's certificates, each once (the bundle and the hashed directory name
/// the same certificates). Unreadable or broken entries are logged and skipped.
fn system_roots() -> Vec<reqwest::Certificate> {
    system_store_ders()
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok())
        .collect()
}

/// The PEM certificates of `ca_file`; a file that cannot be read or holds none is an
/// error (a typo in the path must not silently mean "the system store only").
fn ca_file_roots(path: &Path) -> Result<Vec<reqwest::Certificate>, OperatorError> {
    let pem = std::fs::read(path).map_err(|source| OperatorError::CaFile {
        path: path.to_owned(),
        source,
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|_| OperatorError::CaPem(path.to_owned()))?;
    if certs.is_empty() {
        return Err(OperatorError::CaPem(path.to_owned()));
    }
    Ok(certs)
}
