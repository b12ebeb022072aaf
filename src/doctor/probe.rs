//! The operator check: a TCP connection and a TLS handshake to the base URL with the
//! daemon's trust settings (the system CA store, bundled roots in a `bundled-roots`
//! build, plus `ca_file`, as the daemon's HTTP client has them; src/trust.rs). No request is sent: no token, nothing an operator logs.

use std::io::Write as _;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use url::Url;

/// Connects to `url`'s host and port and completes a TLS handshake that verifies the
/// server's certificate for that host against the daemon's roots and the PEM
/// certificates of `ca_file`. Each connect, read and write waits at most `timeout`.
/// `Ok` says what was checked; `Err` is why it failed (a named, one-line reason).
/// An `http://` URL (loopback only, see the config) is checked with TCP alone.
pub(crate) fn handshake(
    url: &Url,
    ca_file: Option<&Path>,
    timeout: Duration,
) -> Result<String, String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    let port = url
        .port_or_known_default()
        .ok_or("the URL has no port for its scheme")?;
    let addresses: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last = format!("{host} resolved to no address");
    let mut stream = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("cannot connect to {address}: {e}"),
        }
    }
    let mut stream = stream.ok_or(last)?;
    if url.scheme() == "http" {
        return Ok("TCP connection made (plain http on loopback, no TLS)".to_owned());
    }
    let io = |e: std::io::Error| format!("TLS handshake failed: {e}");
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    // The daemon's roots (src/trust.rs), read as the daemon reads them.
    let config = crate::trust::Roots::load()
        .client_config(ca_file, true)
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|e| format!("not a TLS server name: {e}"))?;
    let mut tls =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| format!("TLS: {e}"))?;
    while tls.is_handshaking() {
        tls.complete_io(&mut stream).map_err(io)?;
    }
    let version = tls
        .protocol_version()
        .map_or_else(|| "TLS".to_owned(), |v| format!("{v:?}"));
    tls.send_close_notify();
    // Best effort: the answer is already known.
    let _ = tls.complete_io(&mut stream);
    let _ = stream.flush();
    let trust = match (ca_file.is_some(), crate::trust::BUNDLED) {
        (false, false) => "the system CA store",
        (true, false) => "the system CA store + ca_file",
        (false, true) => "the system CA store + bundled roots",
        (true, true) => "the system CA store + bundled roots + ca_file",
    };
    Ok(format!(
        "TLS handshake done ({version}, certificate trusted by {trust}); no request sent"
    ))
}
