//! The profiles benchmark (`scripts/bench.sh` runs it after `examples/bench.rs`): the release
//! `uid2d` with `[profiles] enabled` on a private bus, against the operator simulator.
//!
//! - A switch between two profiles with 100 app scopes each (every app's answer changes):
//!   the time from calling `SetActiveProfile` to the broker's 100th
//!   `Broker1.IdentityStatusChanged`, against one `SetIdentity` round trip in the same run.
//! - Memory per profile: RssAnon growth as profiles each holding 10 app identities are
//!   added, against the same daemon before.
//!
//!   cargo run --release --example bench_profiles [-- --quick]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use uid2_operator_sim::SimConfig;
use uid2d::client::{Broker1Proxy, Profiles1Proxy};
use uid2d_testkit::{Binaries, Bus, Daemon, DaemonSpec, Operator};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const APPS: usize = 100;

/// RssAnon of `pid`, KiB.
fn rss_anon(pid: i32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| "no RssAnon".into())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_profiles: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (switches, profiles) = if quick { (10, 5) } else { (50, 20) };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let release = Binaries::in_dir(&root.join("target/release"));
    if !release.uid2d.exists() {
        return Err("no target/release/uid2d: run `cargo build --release --bins` first".into());
    }
    let tmp = tempfile::tempdir()?;
    let bus = Bus::start().await;
    let operator = Operator::start(SimConfig::default()).await;
    let config = format!(
        "base_url = \"{}\"\nca_file = \"{}\"\nscope = \"app\"\nmax_scopes = 1000\n[apps]\nbroker_group = \"root\"\n\
         [euid]\nenabled = false\n[profiles]\nenabled = true\n",
        operator.sim.base_url(),
        operator.ca_file.display()
    );
    let daemon = Daemon::start(DaemonSpec {
        uid2d: release.uid2d.clone(),
        bus: &bus,
        config,
        state_dir: tmp.path().join("state"),
        env: Vec::new(),
    })
    .await;
    let conn = bus.connect().await;
    let broker = Broker1Proxy::new(&conn).await?;
    let switch = Profiles1Proxy::new(&conn).await?;
    let app = |i: usize| format!("com.example.app{i:03}");

    // 100 apps with an identity in profile "a", none in "b": every switch changes all.
    switch.set_active_profile("a").await?;
    let mut signals = broker.receive_identity_status_changed().await?;
    let mut next_signal = async || -> Result<()> {
        tokio::time::timeout(Duration::from_secs(60), signals.next())
            .await?
            .ok_or("the signal stream ended")?;
        Ok(())
    };
    let mut set = Vec::with_capacity(APPS);
    for i in 0..APPS {
        let identity = operator
            .sim
            .mint_identity(&format!("u{i}@example.com"))
            .to_string();
        let start = Instant::now();
        broker.set_identity(&app(i), &identity).await?;
        set.push(start.elapsed());
        // Its `established`, so that none is left to count as a switch's.
        next_signal().await?;
    }
    let mut switch_times = Vec::with_capacity(switches);
    for n in 0..switches {
        let to = if n % 2 == 0 { "b" } else { "a" };
        let start = Instant::now();
        switch.set_active_profile(to).await?;
        for _ in 0..APPS {
            next_signal().await?;
        }
        switch_times.push(start.elapsed());
    }
    let (one_set, one_switch) = (median(set), median(switch_times));
    println!("| figure | uid2d | baseline (same run) | ratio |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| profile switch, {APPS} app scopes whose answer changes: SetActiveProfile → the {APPS}th Broker1.IdentityStatusChanged, median of {switches} vs one SetIdentity (median of {APPS}) | {} µs | {} µs | {:.1}× ({:.2}× per app) |",
        one_switch.as_micros(),
        one_set.as_micros(),
        one_switch.as_secs_f64() / one_set.as_secs_f64(),
        one_switch.as_secs_f64() / one_set.as_secs_f64() / APPS as f64,
    );

    // Memory: profiles of 10 apps each, added to the daemon above. The signal stream goes
    // first: a stream nobody reads would hold back the connection's replies.
    drop(signals);
    switch.set_active_profile("").await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_anon(daemon.pid())?;
    for p in 0..profiles {
        switch.set_active_profile(&format!("p{p:02}")).await?;
        for i in 0..10 {
            let identity = operator
                .sim
                .mint_identity(&format!("p{p}-{i}@example.com"))
                .to_string();
            broker.set_identity(&app(i), &identity).await?;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_anon(daemon.pid())?;
    let listed = switch.list_profiles().await?.len();
    println!(
        "| memory per profile of 10 app identities, RssAnon growth over {profiles} profiles ({listed} listed) | {} B | {} KiB before | - |",
        (after.saturating_sub(before) * 1024) / profiles as u64,
        before,
    );
    daemon.stop().await;
    Ok(())
}
