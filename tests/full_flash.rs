//! A full flash, then room again, under the real daemon: its state directory is a small
//! tmpfs that the test fills and empties. While full, every face of the storage health
//! says so (GetStats `storage_ok`, STATUS=, the Prometheus text file, `uid2ctl doctor`);
//! once writes land again, every face says healthy, without a restart. Needs root (to
//! mount the tmpfs); skipped, saying so, otherwise.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use uid2d_testkit::*;

/// A tmpfs of `size` mounted at `dir` for the life of the value (detached on drop, also
/// when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs at {}", dir.display());
        Tmpfs(dir.to_owned())
    }

    /// Fills it with one file, up to ENOSPC; removing that file gives the room back.
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = [0u8; 4096];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOSPC as i32) => break,
                Err(e) => panic!("fill the tmpfs: {e}"),
            }
        }
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("--lazy")
            .arg(&self.0)
            .status();
    }
}

/// Runs `uid2ctl --bus ADDRESS doctor`: its `state directory` line.
async fn doctor_state_line(bus: &Bus) -> String {
    let out = binaries!()
        .uid2ctl_command()
        .args(["--bus", &bus.address, "doctor"])
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    report
        .lines()
        .find(|l| l.contains(" state directory: "))
        .unwrap_or_else(|| panic!("no state directory line in:\n{report}"))
        .to_owned()
}

async fn storage_ok(conn: &zbus::Connection) -> bool {
    bool::try_from(get_stats(conn).await.get("storage_ok").expect("storage_ok")).unwrap()
}

/// Waits until `path` holds `line`. There is no event to await for another process's
/// rename, so this polls (a safety net, never a timing assertion).
async fn text_file_says(path: &Path, line: &str) {
    within(&format!("`{line}` in the text file"), async {
        loop {
            if std::fs::read_to_string(path).is_ok_and(|t| t.lines().any(|l| l == line)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Waits for a STATUS= line sent after the messages seen so far that `accept` takes.
async fn next_status(daemon: &mut Daemon, what: &str, accept: impl Fn(&str) -> bool) -> String {
    daemon.messages.clear();
    daemon
        .wait_for_notify_where(what, |m| m.starts_with("STATUS=") && accept(m))
        .await
}

/// Gives the room back (removes `filler`), waits for the daemon's own recovery (a STATUS=
/// line without the storage error), then checks the other faces.
async fn room_again(filler: &Path, daemon: &mut Daemon, bus: &Bus, prom: &Path) {
    std::fs::remove_file(filler).unwrap();
    next_status(daemon, "STATUS= without the storage error", |m| {
        !m.contains("storage error")
    })
    .await;
    assert!(storage_ok(&bus.connect().await).await);
    text_file_says(prom, HEALTHY).await;
    let line = doctor_state_line(bus).await;
    assert!(line.starts_with("OK state directory: "), "{line}");
}

const FAILING: &str = "uid2d_storage_ok{product=\"uid2\"} 0";
const HEALTHY: &str = "uid2d_storage_ok{product=\"uid2\"} 1";

#[tokio::test]
async fn every_health_face_follows_a_full_flash_and_its_recovery() {
    if !is_root() {
        eprintln!("skipped: needs root to mount a tmpfs");
        return;
    }
    let bus = Bus::start().await;
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let base = tempfile::tempdir().unwrap();
    let prom = base.path().join("uid2d.prom");
    // The state directory is the tmpfs; the daemon's log and config (`state.run/`) and
    // the text file are beside it, on a disk with room.
    let flash = Tmpfs::mount(&base.path().join("state"), "512k");
    let extra = format!(
        "[diagnostics]\ntextfile = \"{}\"\ntextfile_interval = 1\n",
        prom.display()
    );
    let mut daemon = Daemon::start(operator.spec(&binaries!(), &bus, base.path(), &extra)).await;
    let conn = bus.connect().await;
    let manager = manager(&conn).await;
    manager
        .set_identity(&operator.identity("first@example.com"))
        .await
        .unwrap();
    let first = manager.get_advertising_token().await.unwrap();
    text_file_says(&prom, HEALTHY).await;

    // 1. Full: a SetIdentity is refused and changes nothing. Nothing is left unsaved, so
    //    only the daemon's probes of the directory can see the room come back.
    let filler = flash.fill();
    let error = manager
        .set_identity(&operator.identity("second@example.com"))
        .await
        .unwrap_err();
    assert_eq!(error_name(&error), "Storage");
    assert_eq!(manager.get_advertising_token().await.unwrap(), first);
    assert!(!storage_ok(&conn).await);
    text_file_says(&prom, FAILING).await;
    let status = daemon
        .wait_for_notify_where("STATUS= with the storage error", |m| {
            m.contains("uid2 storage error")
        })
        .await;
    assert!(status.contains("No space left on device"), "{status}");
    let line = doctor_state_line(&bus).await;
    assert!(
        line.starts_with("FAIL state directory: ") && line.contains("No space left"),
        "{line}"
    );

    room_again(&filler, &mut daemon, &bus, &prom).await;

    // 2. Full again while a refresh answer comes: the new identity is served from memory,
    //    kept unsaved and written when the room returns.
    let filler = flash.fill();
    assert_eq!(manager.refresh_identity().await.unwrap(), "refreshed");
    let refreshed = manager.get_advertising_token().await.unwrap();
    assert_ne!(refreshed, first);
    assert!(!storage_ok(&conn).await);
    text_file_says(&prom, FAILING).await;
    room_again(&filler, &mut daemon, &bus, &prom).await;

    // What is on the flash is what is served: a restart reads the refreshed identity.
    daemon.stop().await;
    let _daemon = Daemon::start(operator.spec(&binaries!(), &bus, base.path(), &extra)).await;
    let conn = bus.connect().await;
    assert_eq!(
        uid2d_testkit::manager(&conn)
            .await
            .get_advertising_token()
            .await
            .unwrap(),
        refreshed
    );
}
