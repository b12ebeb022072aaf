//! The benchmark runner (issue 8): starts a private dbus-daemon, the operator simulator
//! and the release `uid2d`, and prints one table of figures, each beside a baseline
//! measured in the same run. Exits non-zero only if it could not measure.
//!
//!   scripts/bench.sh [--quick]       (builds --release first)

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use uid2_operator_sim::{OperatorSim, SimConfig};
use uid2d::client::Manager1Proxy;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn status_field(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the comm.
    fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
}

/// Voluntary context switches of the runtime thread (the main thread: uid2d runs one).
/// tokio's blocking-pool threads come and go, so they are left out.
fn ctx_switches(pid: u32) -> u64 {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("voluntary_ctxt_switches"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}

struct Bus {
    child: Child,
    address: String,
}

fn start_bus(dir: &Path) -> Result<Bus> {
    let config = dir.join("bus.conf");
    std::fs::write(
        &config,
        format!(
            "<busconfig><type>session</type><listen>unix:path={}/bus</listen><auth>EXTERNAL</auth>\
             <policy context=\"default\"><allow user=\"*\"/><allow send_destination=\"*\" eavesdrop=\"true\"/><allow eavesdrop=\"true\"/><allow own=\"*\"/></policy></busconfig>",
            dir.display()
        ),
    )?;
    let mut child = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .args(["--nofork", "--nosyslog", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    Ok(Bus {
        child,
        address: line.trim().to_owned(),
    })
}

/// Starts uid2d and returns it with the time from exec to READY=1.
fn start_uid2d(
    bin: &Path,
    bus: &str,
    config: &Path,
    state: &Path,
    watchdog: bool,
) -> Result<(Child, Duration)> {
    let socket_path = state.with_extension(format!("notify{}", fastrand::u32(..)));
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path)?;
    socket.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut command = if watchdog {
        let mut sh = Command::new("sh");
        sh.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
            .arg(bin)
            .env("WATCHDOG_USEC", "10000000");
        sh
    } else {
        Command::new(bin)
    };
    let started = Instant::now();
    let child = command
        .arg("--bus")
        .arg(bus)
        .arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(state)
        .env("NOTIFY_SOCKET", &socket_path)
        .env_remove("JOURNAL_STREAM")
        .stderr(Stdio::null())
        .spawn()?;
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.recv(&mut buf)?;
        if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
            let _ = std::fs::remove_file(&socket_path);
            return Ok((child, started.elapsed()));
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn row(table: &mut Vec<[String; 4]>, what: &str, ours: String, base: String, ratio: String) {
    table.push([what.to_owned(), ours, base, ratio]);
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 2_000 } else { 10_000 };
    let idle_secs = if quick { 10 } else { 60 };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = root.join("target/release/uid2d");
    if !bin.exists() {
        return Err("build first: cargo build --release".into());
    }
    let dir = tempfile::tempdir()?;
    let bus = start_bus(dir.path())?;
    let sim = OperatorSim::start(SimConfig::default()).await?;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem())?;
    let config = dir.path().join("uid2d.toml");
    std::fs::write(
        &config,
        format!(
            "base_url = \"{}\"\nca_file = \"{}\"\n",
            sim.base_url(),
            ca.display()
        ),
    )?;
    let state = dir.path().join("state");
    let mut table: Vec<[String; 4]> = Vec::new();

    // Start-up with no scopes.
    let mut startups = Vec::new();
    for _ in 0..10 {
        let (mut child, took) = start_uid2d(&bin, &bus.address, &config, &state, false)?;
        startups.push(took);
        child.kill()?;
        child.wait()?;
    }
    startups.sort();
    let (mut daemon, _) = start_uid2d(&bin, &bus.address, &config, &state, false)?;
    let pid = daemon.id();
    let conn = zbus::connection::Builder::address(bus.address.as_str())?
        .build()
        .await?;
    let manager = Manager1Proxy::new(&conn).await?;
    manager
        .set_identity(&sim.mint_identity("bench@example.com").to_string())
        .await?;
    let peer = zbus::fdo::PeerProxy::builder(&conn)
        .destination("com.uid2.Manager")?
        .path("/com/uid2/Manager")?
        .build()
        .await?;
    let bus_rss = status_field(bus.child.id(), "VmRSS:");
    let idle = (
        status_field(pid, "VmRSS:"),
        status_field(pid, "VmHWM:"),
        status_field(pid, "RssAnon:"),
    );

    // Latency: one client, sequential calls.
    let mut ours = Vec::with_capacity(n);
    let mut floor = Vec::with_capacity(n);
    for _ in 0..500 {
        manager.get_advertising_token().await?;
        peer.ping().await?;
    }
    for _ in 0..n {
        let t = Instant::now();
        manager.get_advertising_token().await?;
        ours.push(t.elapsed());
        let t = Instant::now();
        peer.ping().await?;
        floor.push(t.elapsed());
    }
    ours.sort();
    floor.sort();
    let (m1, m0) = (percentile(&ours, 0.5), percentile(&floor, 0.5));
    let (p1, p0) = (percentile(&ours, 0.99), percentile(&floor, 0.99));
    row(
        &mut table,
        "latency median (GetAdvertisingToken vs Peer.Ping)",
        format!("{m1:?}"),
        format!("{m0:?}"),
        format!("{:.2}", m1.as_secs_f64() / m0.as_secs_f64()),
    );
    row(
        &mut table,
        "latency p99",
        format!("{p1:?}"),
        format!("{p0:?}"),
        format!("{:.2}", p1.as_secs_f64() / p0.as_secs_f64()),
    );

    // Throughput: 8 connections at once.
    let rate = |ping: bool| {
        let address = bus.address.clone();
        async move {
            let started = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let address = address.clone();
                tasks.push(tokio::spawn(async move {
                    let conn = zbus::connection::Builder::address(address.as_str())?
                        .build()
                        .await?;
                    let m = Manager1Proxy::new(&conn).await?;
                    let p = zbus::fdo::PeerProxy::builder(&conn)
                        .destination("com.uid2.Manager")?
                        .path("/com/uid2/Manager")?
                        .build()
                        .await?;
                    for _ in 0..n / 8 {
                        if ping {
                            p.ping().await?;
                        } else {
                            m.get_advertising_token().await?;
                        }
                    }
                    Ok::<_, zbus::Error>(())
                }));
            }
            for task in tasks {
                task.await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            }
            Ok::<f64, String>((n / 8 * 8) as f64 / started.elapsed().as_secs_f64())
        }
    };
    let tput_ours = rate(false).await?;
    let tput_floor = rate(true).await?;
    row(
        &mut table,
        "throughput, 8 clients (calls/s)",
        format!("{tput_ours:.0}"),
        format!("{tput_floor:.0}"),
        format!("{:.2}", tput_ours / tput_floor),
    );

    let after = (
        status_field(pid, "VmRSS:"),
        status_field(pid, "VmHWM:"),
        status_field(pid, "RssAnon:"),
    );
    row(
        &mut table,
        "memory idle: VmRSS / VmHWM / RssAnon (KiB) vs dbus-daemon VmRSS",
        format!("{} / {} / {}", idle.0, idle.1, idle.2),
        format!("{bus_rss}"),
        format!("{:.2}", idle.0 as f64 / bus_rss as f64),
    );
    row(
        &mut table,
        &format!(
            "memory after {} calls: VmRSS / VmHWM / RssAnon (KiB)",
            2 * n + 1000 + n / 8 * 16
        ),
        format!("{} / {} / {}", after.0, after.1, after.2),
        format!("{bus_rss}"),
        format!("{:.2}", after.0 as f64 / bus_rss as f64),
    );

    // Refresh cost: CPU of 20 refreshes vs 20 pings, in clock ticks (10 ms each).
    let before = cpu_ticks(pid);
    for _ in 0..20 {
        manager.refresh_identity().await?;
    }
    let refresh_ticks = cpu_ticks(pid) - before;
    let before = cpu_ticks(pid);
    for _ in 0..20 {
        peer.ping().await?;
    }
    let ping_ticks = cpu_ticks(pid) - before;
    row(
        &mut table,
        "CPU per refresh incl. TLS (ms) vs per Ping",
        format!("{:.1}", refresh_ticks as f64 * 10.0 / 20.0),
        format!("{:.1}", ping_ticks as f64 * 10.0 / 20.0),
        "-".into(),
    );

    // Wake-ups: idle, nothing due for an hour.
    drop(manager);
    drop(peer);
    drop(conn);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let c0 = ctx_switches(pid);
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let idle_wakeups = ctx_switches(pid).saturating_sub(c0);
    daemon.kill()?;
    daemon.wait()?;
    let (mut dog, _) = start_uid2d(&bin, &bus.address, &config, &state, true)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let c0 = ctx_switches(dog.id());
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let dog_wakeups = ctx_switches(dog.id()).saturating_sub(c0);
    dog.kill()?;
    dog.wait()?;
    row(
        &mut table,
        &format!(
            "wake-ups idle {idle_secs} s (voluntary ctx switches), no watchdog vs 10 s watchdog"
        ),
        format!("{idle_wakeups}"),
        format!("{dog_wakeups}"),
        "-".into(),
    );

    // 1,000 stored scopes: start-up and memory.
    let store = uid2d::store::Store::open(&state, None)?;
    let identity = sim.mint_identity("scope@example.com");
    for uid in 1000..2000 {
        let record = serde_json::json!({"version":1,"status":"established","identity":identity,"auto_refresh":true,"rejected":false,"opted_out_dii":[]});
        store.save(&format!("uid-{uid}"), record.to_string().as_bytes())?;
    }
    drop(store);
    let mut startups_1k = Vec::new();
    let mut rss_1k = 0;
    for _ in 0..10 {
        let (mut child, took) = start_uid2d(&bin, &bus.address, &config, &state, false)?;
        startups_1k.push(took);
        rss_1k = status_field(child.id(), "VmRSS:");
        child.kill()?;
        child.wait()?;
    }
    startups_1k.sort();
    row(
        &mut table,
        "start-up exec → READY=1, median of 10: 1,000 scopes vs none",
        format!("{:?}", percentile(&startups_1k, 0.5)),
        format!("{:?}", percentile(&startups, 0.5)),
        format!(
            "{:.2}",
            percentile(&startups_1k, 0.5).as_secs_f64() / percentile(&startups, 0.5).as_secs_f64()
        ),
    );
    row(
        &mut table,
        "VmRSS with 1,000 scopes vs idle (KiB); per scope",
        format!("{rss_1k}"),
        format!("{}", idle.0),
        format!("{:.2} KiB/scope", (rss_1k as f64 - idle.0 as f64) / 1000.0),
    );

    // Size.
    for (name, path) in [
        ("x86_64", "target/dist/uid2d"),
        ("aarch64", "target/aarch64-unknown-linux-gnu/dist/uid2d"),
    ] {
        let size = std::fs::metadata(root.join(path))
            .map(|m| format!("{} bytes", m.len()))
            .unwrap_or_else(|_| "not built (cross/build.sh)".into());
        row(
            &mut table,
            &format!("size, stripped dist uid2d, {name}"),
            size,
            "-".into(),
            "-".into(),
        );
    }

    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_owned();
    println!(
        "machine: {} cores, {model}; {n} calls per series{}",
        std::thread::available_parallelism()?.get(),
        if quick { " (--quick)" } else { "" }
    );
    println!("| figure | uid2d | baseline | ratio |\n| --- | --- | --- | --- |");
    for [a, b, c, d] in &table {
        println!("| {a} | {b} | {c} | {d} |");
    }
    let mut bus = bus;
    bus.child.kill()?;
    Ok(())
}
