//! Under systemd (`JOURNAL_STREAM` set) uid2d logs to journald with structured fields.
//! This test stands in for journald: it binds `/run/systemd/journal/socket` itself, so it
//! runs only as root on a machine with no journald there (it says so when it skips).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::Path;

use uid2d_testkit::*;

const SOCKET: &str = "/run/systemd/journal/socket";

/// Removes the socket this test bound, and the directories it made, whatever happens.
struct Bound {
    made: Vec<&'static Path>,
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(SOCKET);
        for dir in &self.made {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The fields of one entry in journald's native protocol: `KEY=value\n`, or for values
/// with a newline `KEY\n` + little-endian u64 length + value + `\n`.
fn fields(mut datagram: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    while !datagram.is_empty() {
        let end = datagram
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(datagram.len());
        let line = &datagram[..end];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            fields.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            datagram = &datagram[(end + 1).min(datagram.len())..];
        } else {
            let rest = &datagram[end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            fields.insert(
                String::from_utf8_lossy(line).into_owned(),
                String::from_utf8_lossy(&rest[8..8 + len]).into_owned(),
            );
            datagram = &rest[(8 + len + 1).min(rest.len())..];
        }
    }
    fields
}

/// Binds the journal socket, unless a live journald (or no permission) is in the way.
fn bind_journal() -> Option<(tokio::net::UnixDatagram, Bound)> {
    if !is_root() {
        eprintln!("skipped: needs root to bind {SOCKET}");
        return None;
    }
    if Path::new(SOCKET).exists() {
        let probe = std::os::unix::net::UnixDatagram::unbound().unwrap();
        match probe.connect(SOCKET) {
            // Left by an earlier run that was killed: nobody listens.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                std::fs::remove_file(SOCKET).unwrap();
            }
            _ => {
                eprintln!("skipped: a journald listens on {SOCKET} here");
                return None;
            }
        }
    }
    // Innermost first, for removal.
    let made = ["/run/systemd/journal", "/run/systemd"]
        .into_iter()
        .map(Path::new)
        .filter(|dir| !dir.exists())
        .collect();
    std::fs::create_dir_all(Path::new(SOCKET).parent().unwrap()).unwrap();
    let bound = Bound { made };
    let socket = tokio::net::UnixDatagram::bind(SOCKET).unwrap();
    Some((socket, bound))
}

#[tokio::test]
async fn logs_reach_journald_with_fields_and_without_secrets() {
    let Some((journal, _bound)) = bind_journal() else {
        return;
    };
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    let bus = Bus::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut spec = operator.spec(&binaries!(), &bus, state.path(), "");
    // systemd sets it to the device and inode of our stderr; uid2d only checks it is set.
    spec.env.push(("JOURNAL_STREAM".into(), "0:0".into()));
    let daemon = Daemon::start(spec).await;
    let conn = bus.connect().await;
    let manager = manager(&conn).await;
    manager
        .set_identity(&operator.identity("user@example.com"))
        .await
        .unwrap();

    let me = format!("uid-{}", nix::unistd::getuid().as_raw());
    let mut entries = Vec::new();
    let changed = within("the status change in the journal", async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = journal.recv(&mut buf).await.unwrap();
            let entry = fields(&buf[..n]);
            entries.push(entry.clone());
            if entry.get("MESSAGE").map(String::as_str) == Some("identity status changed") {
                return entry;
            }
        }
    })
    .await;
    assert_eq!(changed.get("SCOPE"), Some(&me), "{changed:?}");
    assert_eq!(
        changed.get("STATUS").map(String::as_str),
        Some("established")
    );
    // tracing-journald maps INFO to 5 (notice).
    assert_eq!(changed.get("PRIORITY").map(String::as_str), Some("5"));
    // A refresh outcome line carries the product and outcome as journal fields.
    manager.refresh_identity().await.unwrap();
    let refreshed = within("the refresh outcome in the journal", async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = journal.recv(&mut buf).await.unwrap();
            let entry = fields(&buf[..n]);
            entries.push(entry.clone());
            if entry.get("MESSAGE").map(String::as_str) == Some("refresh succeeded") {
                return entry;
            }
        }
    })
    .await;
    assert_eq!(
        refreshed.get("UID2D_PRODUCT").map(String::as_str),
        Some("uid2")
    );
    assert_eq!(
        refreshed.get("UID2D_OUTCOME").map(String::as_str),
        Some("ok")
    );
    assert!(
        !refreshed.contains_key("UID2D_FAILURE_CLASS"),
        "{refreshed:?}"
    );
    assert!(entries
        .iter()
        .any(|e| e.get("MESSAGE").is_some_and(|m| m.starts_with("serving"))));
    // Nothing went to stderr, and nothing secret went to the journal.
    assert!(daemon.log_text().is_empty(), "{}", daemon.log_text());
    let text: Vec<String> = entries
        .iter()
        .flat_map(|e| e.iter().map(|(k, v)| format!("{k}={v}")))
        .collect();
    check_log_for_secrets(&text.join("\n"));
}
