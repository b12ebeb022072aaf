//! The files uid2d reads by path that root puts in place (the config layers and their
//! drop-ins, `ca_file`): a path that never ends (`/dev/zero`), blocks (a FIFO) or is too
//! large is a named error at once, at start-up and on SIGHUP, never a hang or gigabytes
//! read (src/bounded_file.rs). The real `uid2d` binary; for SIGHUP and `ca_file` with a
//! private bus and the local operator.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};

use uid2d_testkit::*;

/// One config layer's path that must not be read: how to make it, and what the error says.
struct Bad {
    what: &'static str,
    make: fn(&Path),
    says: &'static str,
}

const BAD: [Bad; 3] = [
    Bad {
        what: "a symlink to /dev/zero",
        make: |path| std::os::unix::fs::symlink("/dev/zero", path).unwrap(),
        says: "not a regular file but a character device",
    },
    Bad {
        what: "a FIFO nobody writes to",
        make: |path| nix::unistd::mkfifo(path, nix::sys::stat::Mode::S_IRWXU).unwrap(),
        says: "not a regular file but a FIFO",
    },
    Bad {
        what: "a 2 MiB file",
        make: |path| {
            std::fs::File::create(path)
                .unwrap()
                .set_len(2 * 1024 * 1024)
                .unwrap()
        },
        says: "larger than 1048576 bytes",
    },
];

/// `main`'s drop-in directory, made.
fn dropins(main: &Path) -> PathBuf {
    let mut dir = main.as_os_str().to_owned();
    dir.push(".d");
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// uid2d's start-up with `main` as its config, to its exit: (exit code, stderr).
async fn start_up(main: &Path) -> (Option<i32>, String) {
    let output = binaries!()
        .uid2d_command()
        .arg("--config")
        .arg(main)
        .args(["--bus", "unix:path=/nonexistent"])
        .kill_on_drop(true)
        .output();
    let output = within("uid2d to give up", output).await.unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_config_layer_that_never_ends_blocks_or_is_too_large_stops_start_up_by_name() {
    for bad in BAD {
        for layer in ["main", "drop-in"] {
            let dir = tempfile::tempdir().unwrap();
            let main = dir.path().join("uid2d.toml");
            let path = match layer {
                "main" => main.clone(),
                _ => {
                    std::fs::write(&main, "log_level = \"debug\"\n").unwrap();
                    dropins(&main).join("50-bad.toml")
                }
            };
            (bad.make)(&path);
            let (code, stderr) = start_up(&main).await;
            let what = format!("{} as the {layer}", bad.what);
            assert_eq!(code, Some(1), "{what}: {stderr}");
            assert!(
                stderr.contains(&format!("cannot read {}: {}", path.display(), bad.says)),
                "{what}: {stderr}"
            );
        }
    }
}

#[tokio::test]
async fn a_ca_file_that_never_ends_or_blocks_stops_start_up_by_name() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    let bus = Bus::start().await;
    for bad in &BAD[..2] {
        let state = tempfile::tempdir().unwrap();
        let ca_file = state.path().join("ca.pem");
        (bad.make)(&ca_file);
        let spec = operator.spec(&binaries!(), &bus, state.path(), "");
        // The config file is written by `spawn`; its drop-in directory is known before.
        let main = spec.state_dir.with_extension("run").join("uid2d.toml");
        std::fs::write(
            dropins(&main).join("50-ca.toml"),
            format!("ca_file = \"{}\"\n", ca_file.display()),
        )
        .unwrap();
        let mut daemon = Daemon::spawn(spec, &bus.address);
        let status = daemon.wait_exit().await;
        let log = daemon.own_log();
        assert_eq!(status.code(), Some(1), "{}: {log}", bad.what);
        assert!(
            log.contains(&format!(
                "cannot read ca_file {}: {}",
                ca_file.display(),
                bad.says
            )),
            "{}: {log}",
            bad.what
        );
    }
}

fn sighup(daemon: &Daemon) {
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
}

#[tokio::test]
async fn a_reload_of_files_that_never_end_or_block_is_refused_by_name() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    let bus = Bus::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(operator.spec(&binaries!(), &bus, state.path(), "")).await;
    let conn = bus.connect().await;
    let manager = manager(&conn).await;
    manager
        .set_identity(&operator.identity("user@example.com"))
        .await
        .unwrap();
    let token = manager.get_advertising_token().await.unwrap();
    let dropins = dropins(&daemon.config);
    // A good CA file first: the reloads below are refused for the bad file alone.
    let ca_file = state.path().join("ca.pem");
    std::fs::copy(&operator.ca_file, &ca_file).unwrap();
    let ca_dropin = format!("ca_file = \"{}\"\n", ca_file.display());
    std::fs::write(dropins.join("60-ca.toml"), ca_dropin).unwrap();
    sighup(&daemon);
    daemon.wait_for_notify("Configuration reloaded").await;

    let dropin = dropins.join("50-bad.toml");
    for bad in &BAD {
        let mut cases = vec![(&dropin, "cannot read")];
        if bad.what != "a 2 MiB file" {
            // (2 MiB is under the CA file's limit: that one is a PEM error.)
            cases.push((&ca_file, "cannot read ca_file"));
        }
        for (path, error) in cases {
            let _ = std::fs::remove_file(path);
            (bad.make)(path);
            daemon.messages.clear();
            sighup(&daemon);
            let status = daemon.wait_for_notify("reload refused").await;
            let expected = format!("{error} {}: {}", path.display(), bad.says);
            assert!(status.contains(&expected), "{}: {status}", bad.what);
            assert_eq!(manager.get_advertising_token().await.unwrap(), token);
            std::fs::remove_file(path).unwrap();
        }
        // The files good again: the next reload applies.
        std::fs::copy(&operator.ca_file, &ca_file).unwrap();
        daemon.messages.clear();
        sighup(&daemon);
        daemon.wait_for_notify("Configuration reloaded").await;
    }
}
