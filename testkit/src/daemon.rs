//! The real `uid2d` binary, started as systemd would: `NOTIFY_SOCKET` is ours, stderr goes
//! to a log file that is scanned for secrets when the [`Daemon`] goes.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Instant;

use nix::sys::signal::Signal;
use tokio::net::UnixDatagram;
use tokio::process::{Child, Command};

use crate::{our_binary, our_command, secrets::check_log_for_secrets, within, Bus, PATIENCE};

/// What to run: see [`crate::Operator::spec`] for the usual one.
#[derive(Debug)]
pub struct DaemonSpec<'a> {
    /// The `uid2d` binary (e.g. [`crate::Binaries::uid2d`]).
    pub uid2d: PathBuf,
    /// The bus [`Daemon::start`] puts it on.
    pub bus: &'a Bus,
    /// The config file's text.
    pub config: String,
    /// `--state-dir`; its config, notify socket and log go to `<state_dir>.run/`.
    pub state_dir: PathBuf,
    /// Extra environment. `WATCHDOG_USEC` also sets `WATCHDOG_PID` to uid2d's pid, as
    /// systemd does.
    pub env: Vec<(String, String)>,
}

/// A `uid2d` process. Dropping it kills the process and scans its part of the log for
/// secrets (unless the test is already panicking).
#[derive(Debug)]
pub struct Daemon {
    /// The process (behind `sh` with `WATCHDOG_USEC`, which execs it: same pid).
    pub child: Child,
    /// Its `--state-dir`.
    pub state_dir: PathBuf,
    /// Its stderr, appended to across restarts on the same state directory.
    pub log: PathBuf,
    /// Its `--config` file: rewrite it and send SIGHUP to reload.
    pub config: PathBuf,
    /// Its `NOTIFY_SOCKET` messages, read as they arrive by a task of ours (as systemd
    /// reads them: a datagram queue left unread fills after 10 messages).
    notify: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// The socket's path.
    pub notify_path: PathBuf,
    /// Every notify message received so far, oldest first (a test may clear it).
    pub messages: Vec<String>,
    /// Just before fork+exec: start-up times are measured from here.
    pub spawned_at: Instant,
    /// Where this process's part of the log starts.
    log_start: u64,
}

impl Daemon {
    /// Starts uid2d on `spec.bus` and waits for READY=1 on our notify socket.
    pub async fn start(spec: DaemonSpec<'_>) -> Daemon {
        let address = spec.bus.address.clone();
        let mut daemon = Daemon::spawn(spec, &address);
        daemon.wait_for_notify("READY=1").await;
        daemon
    }

    /// Starts uid2d on the bus at `bus_address` (which need not be a bus); does not wait.
    pub fn spawn(spec: DaemonSpec<'_>, bus_address: &str) -> Daemon {
        let run_dir = spec.state_dir.with_extension("run");
        std::fs::create_dir_all(&run_dir).expect("run dir");
        let config = run_dir.join("uid2d.toml");
        std::fs::write(&config, &spec.config).expect("write uid2d's config");
        let notify_path = run_dir.join(format!("notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&notify_path);
        let socket = UnixDatagram::bind(&notify_path).expect("notify socket");
        let (sender, notify) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(received) = socket.recv(&mut buf).await {
                let message = String::from_utf8_lossy(&buf[..received]).into_owned();
                if sender.send(message).is_err() {
                    return;
                }
            }
        });
        let log = run_dir.join("uid2d.log");
        let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("uid2d's log file");
        // systemd sets WATCHDOG_PID to the service's pid; only a shell that then execs
        // uid2d knows it in advance.
        let mut command = if spec.env.iter().any(|(k, _)| k == "WATCHDOG_USEC") {
            let mut sh = Command::new("sh");
            sh.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
                .args(our_binary(&spec.uid2d));
            sh
        } else {
            our_command(&spec.uid2d)
        };
        command
            .arg("--bus")
            .arg(bus_address)
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(&spec.state_dir)
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("JOURNAL_STREAM")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", spec.uid2d.display()));
        Daemon {
            child,
            state_dir: spec.state_dir,
            log,
            config,
            notify,
            notify_path,
            messages: Vec::new(),
            spawned_at,
            log_start,
        }
    }

    /// Waits until a notify message containing `needle` has arrived (it may be in
    /// [`Daemon::messages`] already); returns it. Panics if uid2d exits first.
    pub async fn wait_for_notify(&mut self, needle: &str) -> String {
        self.wait_for_notify_where(needle, |m| m.contains(needle))
            .await
    }

    /// As [`Daemon::wait_for_notify`], for the first message `accept` takes; `what` names
    /// it in the panic.
    pub async fn wait_for_notify_where(
        &mut self,
        what: &str,
        accept: impl Fn(&str) -> bool,
    ) -> String {
        if let Some(found) = self.messages.iter().find(|m| accept(m)) {
            return found.clone();
        }
        loop {
            let message = tokio::select! {
                message = self.notify.recv() => message.expect("the notify reader runs"),
                status = self.child.wait() => {
                    // It may have sent the message just before it exited, still on its way
                    // through the reader.
                    if let Some(found) = self.flush().await.into_iter().find(|m| accept(m)) {
                        return found;
                    }
                    panic!(
                        "uid2d exited ({status:?}) before sending {what}; log:\n{}",
                        self.own_log()
                    )
                }
                () = tokio::time::sleep(PATIENCE) => panic!("no {what} from uid2d"),
            };
            self.messages.push(message.clone());
            if accept(&message) {
                return message;
            }
        }
    }

    /// Every notify message uid2d sent up to now, read through the reader: a marker sent
    /// to the socket after them comes back after them (a datagram socket keeps order), so
    /// none is still on its way. Returns them (also appended to [`Daemon::messages`]).
    async fn flush(&mut self) -> Vec<String> {
        let marker = format!("testkit-flush-{}", std::process::id());
        let sender = std::os::unix::net::UnixDatagram::unbound().expect("a datagram socket");
        sender
            .send_to(marker.as_bytes(), &self.notify_path)
            .expect("send to the notify socket");
        let mut read = Vec::new();
        loop {
            let message = within("the notify reader", self.notify.recv())
                .await
                .expect("the notify reader runs");
            if message == marker {
                return read;
            }
            self.messages.push(message.clone());
            read.push(message);
        }
    }

    /// Takes the notify messages that have arrived but were not read yet, without
    /// waiting; returns them (they are also appended to [`Daemon::messages`]).
    pub fn receive_pending(&mut self) -> &[String] {
        let start = self.messages.len();
        while let Ok(message) = self.notify.try_recv() {
            self.messages.push(message);
        }
        &self.messages[start..]
    }

    /// Its pid. Panics once it has been reaped.
    pub fn pid(&self) -> i32 {
        let pid = self.child.id().expect("uid2d still running");
        i32::try_from(pid).expect("a pid fits i32")
    }

    /// Sends it `signal`.
    pub fn signal(&self, signal: Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)
            .unwrap_or_else(|e| panic!("send {signal} to uid2d: {e}"));
    }

    /// Waits for it to exit on its own (e.g. after its bus died); returns how it ended.
    /// Its log stays readable afterwards.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        within("uid2d to exit", self.child.wait())
            .await
            .expect("wait for uid2d")
    }

    /// SIGTERM, then waits for it to exit; returns how it ended.
    pub async fn stop(mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        self.wait_exit().await
    }

    /// SIGKILL, as a crash or power cut would; returns once it is reaped.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = within("uid2d to die", self.child.wait()).await;
    }

    /// The whole log file: earlier processes on the same state directory too.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// This process's part of the log.
    pub fn own_log(&self) -> String {
        let log = self.log_text();
        let start = usize::try_from(self.log_start).unwrap_or(0).min(log.len());
        log.get(start..).unwrap_or(&log).to_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            check_log_for_secrets(&self.own_log());
        }
    }
}
