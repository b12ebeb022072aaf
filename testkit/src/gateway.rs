//! The real `uid2-gateway` binary for the HTML5 tests.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::net::UnixDatagram;
use tokio::process::Child;

use crate::{check_log_for_secrets, our_command, Bus, PATIENCE};

/// The real `uid2-gateway`, ready once it sent READY=1; its log is scanned for secrets on
/// drop.
#[derive(Debug)]
pub struct Gateway {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts `binary` (the test's `CARGO_BIN_EXE_uid2-gateway`) on `bus`, listening on a
    /// free loopback port, with `extra` arguments.
    pub async fn start(binary: &str, bus: &Bus, extra: &[&str]) -> Gateway {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let notify_path = dir.path().join("notify");
        let notify = UnixDatagram::bind(&notify_path).expect("a notify socket");
        let log = dir.path().join("gateway.log");
        let mut child = our_command(binary)
            .args(["--bus", &bus.address, "--listen", "127.0.0.1:0"])
            .args(["--log-level", "debug"])
            .args(extra)
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the gateway's log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("uid2-gateway starts");
        let mut buf = [0u8; 512];
        loop {
            let n = tokio::select! {
                n = notify.recv(&mut buf) => n.expect("the notify socket"),
                status = child.wait() => panic!(
                    "uid2-gateway exited ({status:?}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
                () = tokio::time::sleep(PATIENCE) => panic!("no READY=1 from uid2-gateway"),
            };
            if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
                break;
            }
        }
        Gateway {
            child,
            log,
            _dir: dir,
        }
    }

    /// Asserts it is still running: it did not stop on whatever the test threw at it.
    pub fn assert_running(&mut self) {
        assert!(
            self.child
                .try_wait()
                .expect("the gateway's status")
                .is_none(),
            "uid2-gateway exited:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        if std::thread::panicking() {
            eprintln!("uid2-gateway's log:\n{log}");
        } else {
            check_log_for_secrets(&log);
        }
    }
}
