//! `uid2-operator-sim`: a local UID2 operator for offline integration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use uid2_operator_sim::{Endpoint, Fault, OperatorSim, SimConfig};

/// A local UID2 operator with real TLS and real UID2 crypto (test keys only).
///
/// Serves /v2/token/refresh, /v2/token/client-generate, /v2/token/generate,
/// GET /sim/identity?email=… and POST /sim/fault?endpoint=…&fault=…[&count=N]
/// until Ctrl-C or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "uid2-operator-sim", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Write the test CA certificate (PEM) here; clients must trust it.
    #[arg(long, value_name = "FILE")]
    ca_out: Option<PathBuf>,
    /// Seconds from minting until refresh_from.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    refresh_after: u64,
    /// Seconds from minting until identity_expires.
    #[arg(long, value_name = "SECS", default_value_t = 72 * 3600)]
    identity_lifetime: u64,
    /// Seconds from minting until refresh_expires.
    #[arg(long, value_name = "SECS", default_value_t = 30 * 24 * 3600)]
    refresh_lifetime: u64,
    /// Only accept these CSTG app names (repeatable); default any.
    #[arg(long = "app-name", value_name = "NAME")]
    app_names: Vec<String>,
    /// API key for /v2/token/generate.
    #[arg(long, default_value = uid2_operator_sim::DEFAULT_API_KEY)]
    api_key: String,
    /// Client secret (Base64 of 32 bytes) for /v2/token/generate.
    #[arg(long, default_value = uid2_operator_sim::DEFAULT_API_SECRET)]
    api_secret: String,
    /// Extra DNS name or IP for the server certificate (repeatable).
    #[arg(long = "san", value_name = "NAME")]
    sans: Vec<String>,
    /// A fault, ENDPOINT=FAULT (repeatable). ENDPOINT: refresh, client-generate, generate,
    /// identity. FAULT: none, drop, garbage, optout, delay:SECS, CODE, CODE:RETRY_AFTER_SECS,
    /// encrypted:STATUS, token:TOKEN, refuse:REFUSAL (invalid_app_name, invalid_http_origin,
    /// bad_subscription_id, payload_decryption_failed, client_error, unauthorized, error,
    /// invalid_token, expired_token, unknown).
    #[arg(long = "fault", value_name = "ENDPOINT=FAULT", value_parser = parse_fault)]
    faults: Vec<(Endpoint, Fault)>,
}

fn parse_fault(text: &str) -> Result<(Endpoint, Fault), String> {
    let (endpoint, fault) = text
        .split_once('=')
        .ok_or_else(|| format!("expected ENDPOINT=FAULT, got `{text}`"))?;
    Ok((endpoint.parse()?, fault.parse()?))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = SimConfig {
        refresh_after: Duration::from_secs(args.refresh_after),
        identity_lifetime: Duration::from_secs(args.identity_lifetime),
        refresh_lifetime: Duration::from_secs(args.refresh_lifetime),
        allowed_app_names: (!args.app_names.is_empty()).then_some(args.app_names),
        api_key: args.api_key,
        api_secret: args.api_secret,
        extra_sans: args.sans,
        ..SimConfig::default()
    };
    let sim = match OperatorSim::start_on(args.listen, config).await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!(
                "uid2-operator-sim: cannot start on {}: {error}",
                args.listen
            );
            return ExitCode::FAILURE;
        }
    };
    for (endpoint, fault) in args.faults {
        sim.set_fault(endpoint, fault);
    }
    if let Some(path) = &args.ca_out {
        if let Err(error) = std::fs::write(path, sim.ca_pem()) {
            eprintln!(
                "uid2-operator-sim: cannot write {}: {error}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    }
    println!("base_url={}", sim.base_url());
    if let Some(path) = &args.ca_out {
        println!("ca_file={}", path.display());
    }
    println!("cstg_public_key={}", sim.public_key());
    println!("cstg_subscription_id={}", sim.subscription_id());
    println!("api_key={}", sim.config().api_key);
    println!("api_secret={}", sim.config().api_secret);

    wait_for_stop().await;
    sim.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
