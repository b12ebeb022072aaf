//! A local UID2 operator with real TLS and real UID2 crypto, for uid2d's integration tests
//! (in-process) and for developers integrating offline (the `uid2-operator-sim` binary).
//!
//! # Endpoints
//!
//! - `POST /v2/token/refresh`: body = a refresh token minted by this sim. Live token → 200,
//!   `text/plain`, Base64(IV ‖ AES-256-GCM ciphertext ‖ tag) of
//!   `{"status":"success","body":{identity}}` under the old identity's
//!   `refresh_response_key`; the old token is then spent. Unknown, spent or expired token →
//!   400 `{"status":"error","message":"Error refreshing token"}`. DII
//!   `refresh-optout@example.com` or `+00000000000` → 200 encrypted `{"status":"optout"}`.
//! - `POST /v2/token/client-generate` (CSTG): the operator's local-test key pair
//!   ([`CSTG_PUBLIC_KEY`]), subscription [`CSTG_SUBSCRIPTION_ID`] by default, timestamps
//!   within [`SimConfig::timestamp_tolerance`] of the sim's clock. DII `optout@example.com`
//!   or `+00000000002` → encrypted opt-out.
//! - `POST /v2/token/generate`: server-side generate for publisher backends and the UID2
//!   server SDKs: `Authorization: Bearer <api_key>`, body and answer in the API-key envelope
//!   (version 1, timestamp, nonce) under `api_secret`.
//! - `GET /sim/identity?email=…` (or `phone=`, `email_hash=`, `phone_hash=`): sim only; an
//!   identity as a publisher backend would hand it to the TV, as plain JSON; for
//!   `optout@example.com` / `+00000000002` the operator's `{"status":"optout"}`, for
//!   `insufficient-consent@example.com` / `+00000000003` `{"status":"insufficient_user_consent"}`
//!   (also what `/v2/token/generate` and CSTG answer for them).
//! - `POST /sim/fault?endpoint=refresh&fault=503:30[&count=N]`: sim only; sets a fault on a
//!   running binary (syntax of [`Fault`]'s `FromStr`).
//! - `GET /ops/healthcheck` → `OK`.
//!
//! Identity times come from the sim's clock (real time plus an adjustable offset), so tests
//! can replay fixed vectors and age tokens without sleeping.
//!
//! # Runtime
//!
//! The server runs as tasks on the caller's Tokio runtime. A test that blocks its thread
//! (e.g. `std::thread::sleep`, blocking process waits) stalls a current-thread runtime's
//! server too: await instead, or use `#[tokio::test(flavor = "multi_thread")]`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod crypto;
mod fault;
mod server;
mod state;
mod tls;

pub use fault::{Endpoint, Fault, Refusal};

use state::{lock, millis, Dii, Shared};

/// The client-side (CSTG) public key the sim answers for: the uid2-operator's **local-test**
/// key pair (`client_side_keypairs.json` in IABTechLab/uid2-operator's test resources,
/// Apache-2.0; copied under tests/fixtures/uid2/operator/). A public test fixture, not a
/// credential for any real UID2 environment.
pub const CSTG_PUBLIC_KEY: &str = "UID2-X-L-MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEtXJdTSZAYHvoRDWiehMHoWF1BNPuqLs5w2ZHiAZ1IJc7O4/z0ojPTB0V+KYX/wxQK0hxx6kxCvHj335eI/ZQsQ==";
/// The private half of [`CSTG_PUBLIC_KEY`] (same public fixture).
pub(crate) const CSTG_PRIVATE_KEY: &str = "UID2-Y-L-MEECAQAwEwYHKoZIzj0CAQYIKoZIzj0DAQcEJzAlAgEBBCC5kOSRVD+qhAZqf0L4LGbmAhdy5HpIptwXE72jxhwo6w==";
/// The subscription id that goes with [`CSTG_PUBLIC_KEY`] in the same fixture.
pub const CSTG_SUBSCRIPTION_ID: &str = "4WvryDGbR5";
/// Default API key for `POST /v2/token/generate`.
pub const DEFAULT_API_KEY: &str = "sim-api-key";
/// Default client secret for `POST /v2/token/generate`: Base64 of the bytes 0x00..=0x1f.
pub const DEFAULT_API_SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Settings of a simulator; [`Default`] is production-like lifetimes on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// `refresh_from = now + refresh_after`. Default 1 h.
    pub refresh_after: Duration,
    /// `identity_expires = now + identity_lifetime`. Default 72 h.
    pub identity_lifetime: Duration,
    /// `refresh_expires = now + refresh_lifetime`; later refreshes are refused. Default 30 days.
    pub refresh_lifetime: Duration,
    /// CSTG subscription id to accept. Default [`CSTG_SUBSCRIPTION_ID`].
    pub subscription_id: String,
    /// If set, CSTG `app_name` must match one of these (ASCII case-insensitive), else 403
    /// `invalid_app_name`. Default `None` (any app).
    pub allowed_app_names: Option<Vec<String>>,
    /// Bearer API key for `/v2/token/generate`. Default [`DEFAULT_API_KEY`].
    pub api_key: String,
    /// Client secret for `/v2/token/generate`, Base64 of 32 bytes. Default [`DEFAULT_API_SECRET`].
    pub api_secret: String,
    /// Largest accepted |request timestamp − sim clock| for CSTG and generate. Default 60 s.
    pub timestamp_tolerance: Duration,
    /// Initial offset of the sim's clock from real time, in ms (may be negative); see
    /// [`OperatorSim::set_clock_offset_ms`]. Default 0.
    pub clock_offset_ms: i64,
    /// Extra subject alternative names (DNS names or IP literals) for the leaf certificate,
    /// beyond `localhost`, `127.0.0.1`, `::1` and the bound IP. Default none.
    pub extra_sans: Vec<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            refresh_after: Duration::from_secs(3600),
            identity_lifetime: Duration::from_secs(72 * 3600),
            refresh_lifetime: Duration::from_secs(30 * 24 * 3600),
            subscription_id: CSTG_SUBSCRIPTION_ID.to_owned(),
            allowed_app_names: None,
            api_key: DEFAULT_API_KEY.to_owned(),
            api_secret: DEFAULT_API_SECRET.to_owned(),
            timestamp_tolerance: Duration::from_secs(60),
            clock_offset_ms: 0,
            extra_sans: Vec::new(),
        }
    }
}

/// One request as the sim received it (the last one per endpoint is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path_and_query: String,
    /// Header names are lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running simulator. Dropping it stops the server (as [`OperatorSim::shutdown`] does,
/// without waiting).
pub struct OperatorSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: String,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for OperatorSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorSim")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn invalid_input(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.to_owned())
}

impl OperatorSim {
    /// Starts on `127.0.0.1` with a free port.
    pub async fn start(config: SimConfig) -> io::Result<OperatorSim> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Starts on `addr` (port 0 picks a free port). Fails on a bad `api_secret` or if the
    /// address cannot be bound.
    pub async fn start_on(addr: SocketAddr, config: SimConfig) -> io::Result<OperatorSim> {
        let api_secret = crypto::decode_key(&config.api_secret)
            .ok_or_else(|| invalid_input("api_secret must be Base64 of 32 bytes"))?;
        let cstg_key = crypto::parse_private_key(CSTG_PRIVATE_KEY)
            .ok_or_else(|| io::Error::other("embedded CSTG private key does not parse"))?;
        let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        if !addr.ip().is_unspecified() {
            names.push(addr.ip().to_string());
        }
        names.extend(config.extra_sans.iter().cloned());
        let tls = tls::make(&names)?;

        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config, cstg_key, api_secret));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(server::serve(
            listener,
            tokio_rustls::TlsAcceptor::from(tls.server_config),
            shared.clone(),
            shutdown_rx,
        ));
        Ok(OperatorSim {
            shared,
            addr,
            ca_pem: tls.ca_pem,
            shutdown,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>` (an unspecified bind address is reported as loopback).
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            });
        }
        format!("https://{addr}")
    }

    /// PEM of the throw-away CA that signed the server's certificate: what clients trust.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The CSTG server public key string clients are configured with.
    pub fn public_key(&self) -> &'static str {
        CSTG_PUBLIC_KEY
    }

    /// The CSTG subscription id this sim accepts.
    pub fn subscription_id(&self) -> &str {
        &self.shared.config.subscription_id
    }

    /// The settings the sim was started with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// Applies `fault` to every following request on `endpoint` until changed.
    pub fn set_fault(&self, endpoint: Endpoint, fault: Fault) {
        lock(&self.shared.endpoint(endpoint).fault).set(fault, None);
    }

    /// Applies `fault` to the next `times` requests on `endpoint`, then reverts to
    /// [`Fault::None`]. `times == 0` clears the fault at once.
    pub fn set_fault_times(&self, endpoint: Endpoint, fault: Fault, times: u64) {
        lock(&self.shared.endpoint(endpoint).fault).set(fault, Some(times));
    }

    /// Requests received on `endpoint` so far, faulted ones included.
    pub fn requests(&self, endpoint: Endpoint) -> u64 {
        self.shared
            .endpoint(endpoint)
            .requests
            .load(Ordering::SeqCst)
    }

    /// Requests on `endpoint` answered with HTTP 200 by the normal path (success or
    /// opt-out); faulted `Garbage`/`Status(2xx)` answers are not counted.
    pub fn successes(&self, endpoint: Endpoint) -> u64 {
        self.shared
            .endpoint(endpoint)
            .successes
            .load(Ordering::SeqCst)
    }

    /// The last request received on `endpoint`.
    pub fn last_request(&self, endpoint: Endpoint) -> Option<RecordedRequest> {
        lock(&self.shared.endpoint(endpoint).last).clone()
    }

    /// Resolves once `requests(endpoint) >= at_least`. A request counts as soon as its
    /// body has been read, before any fault or delay. No timeout of its own: wrap it in
    /// `tokio::time::timeout`.
    pub async fn wait_for_requests(&self, endpoint: Endpoint, at_least: u64) {
        self.wait_until(|| self.requests(endpoint) >= at_least)
            .await;
    }

    /// Resolves once `successes(endpoint) >= at_least`, i.e. after the answer was built.
    pub async fn wait_for_successes(&self, endpoint: Endpoint, at_least: u64) {
        self.wait_until(|| self.successes(endpoint) >= at_least)
            .await;
    }

    async fn wait_until(&self, done: impl Fn() -> bool) {
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            // Register before checking, so a change between the check and the await wakes us.
            notified.as_mut().enable();
            if done() {
                return;
            }
            notified.await;
        }
    }

    /// What `GET /sim/identity` answers for `dii`: an identity, or for the test DIIs
    /// `optout@example.com` / `+00000000002` the operator's `{"status":"optout"}` and for
    /// `insufficient-consent@example.com` / `+00000000003` its
    /// `{"status":"insufficient_user_consent"}`, as a publisher backend would pass them on.
    pub fn backend_answer(&self, dii: &str) -> serde_json::Value {
        self.shared.backend_answer(Dii::from_raw(dii))
    }

    /// Mints an identity for a raw email (or a phone number starting with `+`) and registers
    /// its refresh token, as a publisher backend calling generate would. Returns the
    /// six-field identity object.
    pub fn mint_identity(&self, dii: &str) -> serde_json::Value {
        self.shared.mint(Dii::from_raw(dii))
    }

    /// Whether this sim ever issued `refresh_token`, spent or not (crash tests: a stored
    /// identity must be one the operator really handed out, never a torn one).
    pub fn issued(&self, refresh_token: &str) -> bool {
        self.shared.issued(refresh_token)
    }

    /// Whether `refresh_token` would be accepted by a refresh now (known, unspent, unexpired).
    pub fn is_refresh_token_live(&self, refresh_token: &str) -> bool {
        self.shared.is_live(refresh_token)
    }

    /// The sim's clock: ms since the Unix epoch, offset included.
    pub fn now_ms(&self) -> i64 {
        self.shared.now_ms()
    }

    /// Sets the clock offset from real time (ms, may be negative).
    pub fn set_clock_offset_ms(&self, offset_ms: i64) {
        self.shared.set_clock_offset_ms(offset_ms);
    }

    /// Moves the sim's clock forward by `by`, e.g. to expire refresh tokens.
    pub fn advance_clock(&self, by: Duration) {
        let offset = self.shared.clock_offset_ms().saturating_add(millis(by));
        self.shared.set_clock_offset_ms(offset);
    }

    /// Stops accepting, closes open connections and waits for the server task to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for OperatorSim {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
