//! End-to-end tests of the simulator over real TLS, with an independent client-side
//! implementation of the UID2 crypto.
// Helpers here are test code too; a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uid2_operator_sim::{Endpoint, Fault, OperatorSim, SimConfig};

const PATIENCE: Duration = Duration::from_secs(30);

fn fixture(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/uid2")
        .join(relative)
}

fn cstg_vector() -> Value {
    let text = std::fs::read_to_string(fixture("derived/derived-cstg-vector.json"))
        .expect("tests/fixtures/uid2/derived/derived-cstg-vector.json");
    serde_json::from_str(&text).unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn client(sim: &OperatorSim) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).unwrap())
        .resolve("localhost", sim.local_addr())
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

async fn start() -> OperatorSim {
    OperatorSim::start(SimConfig::default()).await.unwrap()
}

/// Opens `Base64(IV ‖ ciphertext ‖ tag)` with `key`, no AAD.
fn decrypt(key: &[u8], body: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD.decode(body.trim()).ok()?;
    if bytes.len() < 28 {
        return None;
    }
    let (iv, sealed) = bytes.split_at(12);
    let iv: [u8; 12] = iv.try_into().ok()?;
    Aes256Gcm::new_from_slice(key)
        .ok()?
        .decrypt(&Nonce::from(iv), sealed)
        .ok()
}

fn decrypt_json(key: &[u8], body: &str) -> Value {
    let plaintext = decrypt(key, body).expect("response decrypts");
    serde_json::from_slice(&plaintext).expect("JSON at byte 0")
}

fn key_of(identity: &Value) -> Vec<u8> {
    STANDARD
        .decode(identity["refresh_response_key"].as_str().unwrap())
        .unwrap()
}

async fn post_refresh(sim: &OperatorSim, http: &reqwest::Client, token: &str) -> reqwest::Response {
    http.post(format!("{}/v2/token/refresh", sim.base_url()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-UID2-Client-Version", "uid2d-test-0.1")
        .body(token.to_owned())
        .send()
        .await
        .expect("refresh request")
}

/// Refreshes `identity`, returning the decrypted answer.
async fn refresh(sim: &OperatorSim, http: &reqwest::Client, identity: &Value) -> Value {
    let response = post_refresh(sim, http, identity["refresh_token"].as_str().unwrap()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain");
    decrypt_json(&key_of(identity), &response.text().await.unwrap())
}

fn assert_identity(identity: &Value, now: i64, config: &SimConfig) {
    let fields = [
        "advertising_token",
        "refresh_token",
        "identity_expires",
        "refresh_from",
        "refresh_expires",
        "refresh_response_key",
    ];
    let object = identity.as_object().expect("identity object");
    assert_eq!(object.len(), 6, "{identity}");
    for field in fields {
        assert!(object.contains_key(field), "{field} missing in {identity}");
    }
    assert!(identity["advertising_token"].as_str().unwrap().len() > 100);
    let refresh_token = identity["refresh_token"].as_str().unwrap();
    assert_eq!(refresh_token.len(), 388);
    assert!(STANDARD.decode(refresh_token).is_ok());
    assert_eq!(key_of(identity).len(), 32);
    let ms = |d: Duration| d.as_millis() as i64;
    let near = |field: &str, lifetime: Duration| {
        let value = identity[field].as_i64().unwrap();
        let expected = now + ms(lifetime);
        assert!(
            (value - expected).abs() < 60_000,
            "{field} = {value}, expected ≈ {expected}"
        );
    };
    near("refresh_from", config.refresh_after);
    near("identity_expires", config.identity_lifetime);
    near("refresh_expires", config.refresh_lifetime);
}

fn hash(dii: &str) -> String {
    STANDARD.encode(Sha256::digest(dii.as_bytes()))
}

/// A CSTG request body built from scratch with a fresh client key, and the shared secret.
fn cstg_body(payload: &Value, timestamp: Value, app_name: &str) -> (Value, [u8; 32]) {
    let server_der = STANDARD
        .decode(&uid2_operator_sim::CSTG_PUBLIC_KEY[9..])
        .unwrap();
    let server = p256::PublicKey::from_public_key_der(&server_der).unwrap();
    let client = p256::SecretKey::random(&mut OsRng);
    let shared = p256::ecdh::diffie_hellman(client.to_nonzero_scalar(), server.as_affine());
    let mut secret = [0u8; 32];
    secret.copy_from_slice(shared.raw_secret_bytes());
    let mut iv = [0u8; 12];
    OsRng.fill_bytes(&mut iv);
    let ts = match &timestamp {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let aad = format!("[{ts},\"{app_name}\"]");
    let ciphertext = Aes256Gcm::new_from_slice(&secret)
        .unwrap()
        .encrypt(
            &Nonce::from(iv),
            Payload {
                msg: payload.to_string().as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        .unwrap();
    let public_key = client.public_key().to_public_key_der().unwrap();
    let body = json!({
        "payload": STANDARD.encode(ciphertext),
        "iv": STANDARD.encode(iv),
        "public_key": STANDARD.encode(public_key.as_bytes()),
        "timestamp": timestamp,
        "subscription_id": uid2_operator_sim::CSTG_SUBSCRIPTION_ID,
        "app_name": app_name,
    });
    (body, secret)
}

async fn post_json(
    sim: &OperatorSim,
    http: &reqwest::Client,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    http.post(format!("{}{path}", sim.base_url()))
        .body(body.to_string())
        .send()
        .await
        .expect("request")
}

async fn cstg(sim: &OperatorSim, http: &reqwest::Client, payload: Value) -> Value {
    let (body, secret) = cstg_body(&payload, json!(sim.now_ms()), "com.example.app");
    let response = post_json(sim, http, "/v2/token/client-generate", &body).await;
    assert_eq!(response.status(), 200);
    decrypt_json(&secret, &response.text().await.unwrap())
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

#[tokio::test]
async fn refresh_round_trip_then_old_token_is_refused() {
    let sim = start().await;
    let http = client(&sim);
    let identity = sim.mint_identity("user@example.com");
    assert_identity(&identity, sim.now_ms(), sim.config());

    let answer = refresh(&sim, &http, &identity).await;
    assert_eq!(answer["status"], "success");
    let next = &answer["body"];
    assert_identity(next, sim.now_ms(), sim.config());
    assert_ne!(next["refresh_token"], identity["refresh_token"]);
    assert_ne!(next["advertising_token"], identity["advertising_token"]);

    let replay = post_refresh(&sim, &http, identity["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        error_of(replay).await,
        (
            400,
            json!({"status": "error", "message": "Error refreshing token"})
        )
    );
    let last = sim.last_request(Endpoint::Refresh).unwrap();
    assert_eq!(last.header("x-uid2-client-version"), Some("uid2d-test-0.1"));
    assert_eq!(
        last.body,
        identity["refresh_token"].as_str().unwrap().as_bytes()
    );

    // The new identity refreshes in turn.
    assert_eq!(refresh(&sim, &http, next).await["status"], "success");
    assert_eq!(sim.requests(Endpoint::Refresh), 3);
    assert_eq!(sim.successes(Endpoint::Refresh), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_and_expired_refresh_tokens_are_refused() {
    let sim = start().await;
    let http = client(&sim);
    for body in ["", "nonsense", &STANDARD.encode([7u8; 291])] {
        let (status, error) = error_of(post_refresh(&sim, &http, body).await).await;
        assert_eq!(status, 400);
        assert_eq!(error["status"], "error");
    }
    let identity = sim.mint_identity("user@example.com");
    let token = identity["refresh_token"].as_str().unwrap();
    assert!(sim.is_refresh_token_live(token));
    sim.advance_clock(sim.config().refresh_lifetime);
    assert!(!sim.is_refresh_token_live(token));
    let (status, error) = error_of(post_refresh(&sim, &http, token).await).await;
    assert_eq!((status, &error["status"]), (400, &json!("error")));

    // A caller with the API key (a server SDK) learns why.
    let with_key = |token: &str| {
        http.post(format!("{}/v2/token/refresh", sim.base_url()))
            .header("Authorization", "Bearer sim-api-key")
            .body(token.to_owned())
            .send()
    };
    let (status, error) = error_of(with_key(token).await.unwrap()).await;
    assert_eq!((status, &error["status"]), (400, &json!("expired_token")));
    let (status, error) = error_of(with_key("nonsense").await.unwrap()).await;
    assert_eq!((status, &error["status"]), (400, &json!("invalid_token")));
}

#[tokio::test]
async fn refresh_opt_out_diis_answer_opt_out() {
    let sim = start().await;
    let http = client(&sim);
    for dii in [
        "refresh-optout@example.com",
        " Refresh-OptOut@Example.com ",
        "+00000000000",
    ] {
        let identity = sim.mint_identity(dii);
        assert_eq!(
            refresh(&sim, &http, &identity).await,
            json!({"status": "optout"}),
            "{dii}"
        );
    }
    let ordinary = sim.mint_identity("+12345678901");
    assert_eq!(refresh(&sim, &http, &ordinary).await["status"], "success");
}

#[tokio::test]
async fn status_faults_answer_error_bodies_and_keep_the_token() {
    let sim = start().await;
    let http = client(&sim);
    let identity = sim.mint_identity("user@example.com");
    let token = identity["refresh_token"].as_str().unwrap();
    let cases = [
        (Fault::Status(500), 500, json!({"status": "unknown"})),
        (
            Fault::Status(400),
            400,
            json!({"status": "error", "message": "Error refreshing token"}),
        ),
        (Fault::Status(401), 401, json!({"status": "unauthorized"})),
    ];
    for (fault, status, body) in cases {
        sim.set_fault(Endpoint::Refresh, fault);
        assert_eq!(
            error_of(post_refresh(&sim, &http, token).await).await,
            (status, body)
        );
    }
    sim.set_fault(Endpoint::Refresh, Fault::StatusRetryAfter(503, 7));
    let response = post_refresh(&sim, &http, token).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(sim.successes(Endpoint::Refresh), 0);

    sim.set_fault(Endpoint::Refresh, Fault::None);
    assert_eq!(refresh(&sim, &http, &identity).await["status"], "success");
    assert_eq!(sim.requests(Endpoint::Refresh), 5);
}

#[tokio::test]
async fn drop_fault_closes_the_connection_without_an_answer() {
    let sim = start().await;
    let identity = sim.mint_identity("user@example.com");
    sim.set_fault(Endpoint::Refresh, Fault::Drop);
    let result = client(&sim)
        .post(format!("{}/v2/token/refresh", sim.base_url()))
        .body(identity["refresh_token"].as_str().unwrap().to_owned())
        .send()
        .await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(sim.requests(Endpoint::Refresh), 1);
    sim.set_fault(Endpoint::Refresh, Fault::None);
    assert_eq!(
        refresh(&sim, &client(&sim), &identity).await["status"],
        "success"
    );
}

#[tokio::test]
async fn garbage_delay_opt_out_and_encrypted_status_faults() {
    let sim = start().await;
    let http = client(&sim);
    let identity = sim.mint_identity("user@example.com");
    let token = identity["refresh_token"].as_str().unwrap();

    sim.set_fault(Endpoint::Refresh, Fault::Garbage);
    let response = post_refresh(&sim, &http, token).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(STANDARD.decode(body.trim()).is_err());
    assert!(decrypt(&key_of(&identity), &body).is_none());

    let delay = Duration::from_millis(300);
    sim.set_fault(Endpoint::Refresh, Fault::Delay(delay));
    let started = Instant::now();
    let answer = refresh(&sim, &http, &identity).await;
    assert!(started.elapsed() >= delay);
    assert_eq!(answer["status"], "success");

    let identity = &answer["body"];
    sim.set_fault(
        Endpoint::Refresh,
        Fault::EncryptedStatus("expired_token".into()),
    );
    let second = sim.mint_identity("user@example.com");
    assert_eq!(
        refresh(&sim, &http, &second).await,
        json!({"status": "expired_token"})
    );

    sim.set_fault(Endpoint::Refresh, Fault::OptOut);
    assert_eq!(
        refresh(&sim, &http, identity).await,
        json!({"status": "optout"})
    );
    // An opt-out answer spends the token.
    let replay = post_refresh(&sim, &http, identity["refresh_token"].as_str().unwrap()).await;
    assert_eq!(replay.status(), 400);
}

#[tokio::test]
async fn limited_faults_revert_and_waiters_wake() {
    let sim = start().await;
    let http = client(&sim);
    let identity = sim.mint_identity("user@example.com");
    sim.set_fault_times(Endpoint::Refresh, Fault::Status(500), 2);
    let token = identity["refresh_token"].as_str().unwrap().to_owned();
    let background = {
        let http = http.clone();
        let url = format!("{}/v2/token/refresh", sim.base_url());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..3 {
                let response = http.post(&url).body(token.clone()).send().await.unwrap();
                statuses.push(response.status().as_u16());
            }
            statuses
        })
    };
    tokio::time::timeout(PATIENCE, sim.wait_for_requests(Endpoint::Refresh, 3))
        .await
        .expect("three requests");
    tokio::time::timeout(PATIENCE, sim.wait_for_successes(Endpoint::Refresh, 1))
        .await
        .expect("one success");
    assert_eq!(background.await.unwrap(), vec![500, 500, 200]);
}

#[tokio::test]
async fn client_generate_accepts_the_derived_vector() {
    let vector = cstg_vector();
    let timestamp = vector["timestamp_ms"].as_i64().unwrap();
    let real_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let sim = OperatorSim::start(SimConfig {
        clock_offset_ms: timestamp - real_now,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(sim.public_key(), vector["server_public_key_string"]);
    assert_eq!(sim.subscription_id(), "4WvryDGbR5");
    let http = client(&sim);
    let secret = hex(vector["ecdh_shared_secret_hex_used_directly_as_aes256_key"]
        .as_str()
        .unwrap());
    let request = vector["expected_request_body_fields"].clone();

    let response = post_json(&sim, &http, "/v2/token/client-generate", &request).await;
    assert_eq!(response.status(), 200);
    let answer = decrypt_json(&secret, &response.text().await.unwrap());
    assert_eq!(answer["status"], "success");
    assert_identity(&answer["body"], sim.now_ms(), sim.config());

    // Android sends the timestamp as a string.
    let mut as_string = request.clone();
    as_string["timestamp"] = json!(timestamp.to_string());
    let response = post_json(&sim, &http, "/v2/token/client-generate", &as_string).await;
    assert_eq!(response.status(), 200);
    let identity = decrypt_json(&secret, &response.text().await.unwrap())["body"].clone();
    assert_eq!(refresh(&sim, &http, &identity).await["status"], "success");

    // With the real clock the vector is years old.
    sim.set_clock_offset_ms(0);
    let response = post_json(&sim, &http, "/v2/token/client-generate", &request).await;
    assert_eq!(
        error_of(response).await,
        (
            400,
            json!({"status": "client_error", "message": "invalid timestamp"})
        )
    );
}

#[tokio::test]
async fn client_generate_rejects_bad_requests() {
    let sim = OperatorSim::start(SimConfig {
        allowed_app_names: Some(vec!["com.example.app".into()]),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let http = client(&sim);
    let payload = json!({"email_hash": hash("user@example.com")});
    let (good, _) = cstg_body(&payload, json!(sim.now_ms()), "com.example.app");
    let message =
        |status: u16, text: &str| (status, json!({"status": "client_error", "message": text}));
    let mut cases: Vec<(Value, (u16, Value))> = Vec::new();

    let mut bad = good.clone();
    bad["subscription_id"] = json!("nope");
    cases.push((bad, message(400, "bad subscription_id")));
    let mut bad = good.clone();
    bad["iv"] = json!(STANDARD.encode([0u8; 16]));
    cases.push((bad, message(400, "bad iv")));
    let mut bad = good.clone();
    bad["public_key"] = json!("bm90IGEga2V5");
    cases.push((bad, message(400, "bad public key")));
    let mut bad = good.clone();
    let mut ciphertext = STANDARD.decode(good["payload"].as_str().unwrap()).unwrap();
    ciphertext[0] ^= 1;
    bad["payload"] = json!(STANDARD.encode(ciphertext));
    cases.push((bad, message(400, "payload decryption failed")));
    let mut bad = good.clone();
    bad["timestamp"] = json!(sim.now_ms() + 1); // AAD no longer matches
    cases.push((bad, message(400, "payload decryption failed")));
    let mut bad = good.clone();
    bad["timestamp"] = json!(sim.now_ms() - 120_000);
    cases.push((bad, message(400, "invalid timestamp")));
    let mut bad = good.clone();
    bad.as_object_mut().unwrap().remove("iv");
    cases.push((
        bad,
        message(400, "required parameters: payload, iv, public_key"),
    ));
    let (bad, _) = cstg_body(&payload, json!(sim.now_ms()), "com.other.app");
    cases.push((
        bad,
        (
            403,
            json!({"status": "invalid_app_name", "message": "unexpected app name"}),
        ),
    ));
    let (bad, _) = cstg_body(
        &json!({"email_hash": hash("a@b.c"), "phone_hash": hash("+1234567890")}),
        json!(sim.now_ms()),
        "com.example.app",
    );
    cases.push((
        bad,
        message(400, "please provide exactly one of: email_hash, phone_hash"),
    ));
    let (bad, _) = cstg_body(
        &json!({"email_hash": "short"}),
        json!(sim.now_ms()),
        "com.example.app",
    );
    cases.push((
        bad,
        message(400, "invalid hash: expected Base64 of a SHA-256 digest"),
    ));

    for (body, expected) in cases {
        let response = post_json(&sim, &http, "/v2/token/client-generate", &body).await;
        assert_eq!(error_of(response).await, expected, "{body}");
    }
    let response = http
        .post(format!("{}/v2/token/client-generate", sim.base_url()))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(response).await,
        message(400, "json payload is not valid")
    );
    assert_eq!(sim.successes(Endpoint::ClientGenerate), 0);

    // The same client-built request goes through once the app name is allowed.
    let response = post_json(&sim, &http, "/v2/token/client-generate", &good).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn client_generate_opt_out_and_faults() {
    let sim = start().await;
    let http = client(&sim);
    for payload in [
        json!({"email_hash": hash("optout@example.com")}),
        json!({"phone_hash": hash("+00000000002")}),
    ] {
        assert_eq!(
            cstg(&sim, &http, payload).await,
            json!({"status": "optout"})
        );
    }
    let answer = cstg(
        &sim,
        &http,
        json!({"email_hash": hash("refresh-optout@example.com")}),
    )
    .await;
    assert_eq!(answer["status"], "success");
    assert_eq!(
        refresh(&sim, &http, &answer["body"]).await,
        json!({"status": "optout"})
    );

    sim.set_fault(Endpoint::ClientGenerate, Fault::OptOut);
    let payload = json!({"email_hash": hash("user@example.com")});
    assert_eq!(
        cstg(&sim, &http, payload.clone()).await,
        json!({"status": "optout"})
    );
    sim.set_fault(Endpoint::ClientGenerate, Fault::Status(400));
    let (body, _) = cstg_body(&payload, json!(sim.now_ms()), "com.example.app");
    let (status, error) =
        error_of(post_json(&sim, &http, "/v2/token/client-generate", &body).await).await;
    assert_eq!((status, &error["status"]), (400, &json!("client_error")));
    sim.set_fault(Endpoint::ClientGenerate, Fault::None);
    assert_eq!(cstg(&sim, &http, payload).await["status"], "success");
}

/// The API-key envelope of `/v2/token/generate`, built independently of the sim.
async fn server_generate(
    sim: &OperatorSim,
    http: &reqwest::Client,
    api_key: &str,
    secret: &[u8],
    request: &Value,
) -> (u16, Option<Value>) {
    let mut nonce = [0u8; 8];
    OsRng.fill_bytes(&mut nonce);
    let mut plaintext = sim.now_ms().to_be_bytes().to_vec();
    plaintext.extend_from_slice(&nonce);
    plaintext.extend_from_slice(request.to_string().as_bytes());
    let mut iv = [0u8; 12];
    OsRng.fill_bytes(&mut iv);
    let sealed = Aes256Gcm::new_from_slice(secret)
        .unwrap()
        .encrypt(&Nonce::from(iv), plaintext.as_slice())
        .unwrap();
    let mut envelope = vec![1u8];
    envelope.extend_from_slice(&iv);
    envelope.extend_from_slice(&sealed);
    let response = http
        .post(format!("{}/v2/token/generate", sim.base_url()))
        .header("Authorization", format!("Bearer {api_key}"))
        .body(STANDARD.encode(envelope))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    if status != 200 {
        return (status, serde_json::from_str(&body).ok());
    }
    let plaintext = decrypt(secret, &body).expect("generate answer decrypts");
    let stamp = i64::from_be_bytes(plaintext[..8].try_into().unwrap());
    assert!((stamp - sim.now_ms()).abs() < 60_000);
    assert_eq!(
        &plaintext[8..16],
        &nonce,
        "the answer echoes the request nonce"
    );
    (
        status,
        Some(serde_json::from_slice(&plaintext[16..]).unwrap()),
    )
}

#[tokio::test]
async fn server_side_generate() {
    let sim = start().await;
    let http = client(&sim);
    let key = uid2_operator_sim::DEFAULT_API_KEY;
    let secret = STANDARD
        .decode(uid2_operator_sim::DEFAULT_API_SECRET)
        .unwrap();
    for request in [
        json!({"email": "User@Example.com"}),
        json!({"email_hash": hash("user@example.com")}),
        json!({"phone": "+12345678901", "optout_check": 1}),
        json!({"phone_hash": hash("+12345678901")}),
    ] {
        let (status, answer) = server_generate(&sim, &http, key, &secret, &request).await;
        assert_eq!(status, 200);
        let answer = answer.unwrap();
        assert_eq!(answer["status"], "success", "{request}");
        assert_identity(&answer["body"], sim.now_ms(), sim.config());
        assert_eq!(
            refresh(&sim, &http, &answer["body"]).await["status"],
            "success"
        );
    }
    let (_, answer) = server_generate(
        &sim,
        &http,
        key,
        &secret,
        &json!({"email": "optout@example.com"}),
    )
    .await;
    assert_eq!(answer, Some(json!({"status": "optout"})));

    let (status, answer) =
        server_generate(&sim, &http, "wrong", &secret, &json!({"email": "a@b.c"})).await;
    assert_eq!(
        (status, answer.unwrap()["status"].clone()),
        (401, json!("unauthorized"))
    );
    let (status, answer) =
        server_generate(&sim, &http, key, &[9u8; 32], &json!({"email": "a@b.c"})).await;
    assert_eq!(
        (status, answer.unwrap()["status"].clone()),
        (400, json!("client_error"))
    );
    let (status, _) = server_generate(
        &sim,
        &http,
        key,
        &secret,
        &json!({"email": "a@b.c", "phone": "+1234567890"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(sim.requests(Endpoint::Generate), 8);
    assert_eq!(sim.successes(Endpoint::Generate), 5);
}

#[tokio::test]
async fn sim_identity_health_and_unknown_paths() {
    let sim = start().await;
    let http = client(&sim);
    // By name, through the certificate's DNS SAN.
    let port = sim.local_addr().port();
    let get = |path: &str| http.get(format!("https://localhost:{port}{path}")).send();

    let response = get("/sim/identity?email=user%40example.com").await.unwrap();
    assert_eq!(response.status(), 200);
    let identity: Value = response.json_value().await;
    assert_identity(&identity, sim.now_ms(), sim.config());
    assert!(sim.is_refresh_token_live(identity["refresh_token"].as_str().unwrap()));
    let response = get("/sim/identity?phone=%2B00000000000").await.unwrap();
    let identity: Value = response.json_value().await;
    assert_eq!(
        refresh(&sim, &http, &identity).await,
        json!({"status": "optout"})
    );
    for bad in [
        "/sim/identity",
        "/sim/identity?email=nope",
        "/sim/identity?name=x",
    ] {
        assert_eq!(get(bad).await.unwrap().status(), 400, "{bad}");
    }
    assert_eq!(sim.requests(Endpoint::SimIdentity), 5);

    let response = get("/ops/healthcheck").await.unwrap();
    assert_eq!(response.text().await.unwrap(), "OK");
    assert_eq!(get("/nowhere").await.unwrap().status(), 404);
    assert_eq!(get("/v2/token/refresh").await.unwrap().status(), 405);
    assert_eq!(sim.requests(Endpoint::Refresh), 1);
}

#[tokio::test]
async fn faults_can_be_set_over_http() {
    let sim = start().await;
    let http = client(&sim);
    let set = |query: &str| {
        http.post(format!("{}/sim/fault?{query}", sim.base_url()))
            .send()
    };
    assert_eq!(
        set("endpoint=refresh&fault=503:30&count=1")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        set("endpoint=nowhere&fault=drop").await.unwrap().status(),
        400
    );
    assert_eq!(
        set("endpoint=refresh&fault=banana").await.unwrap().status(),
        400
    );
    let identity = sim.mint_identity("user@example.com");
    let response = post_refresh(&sim, &http, identity["refresh_token"].as_str().unwrap()).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "30");
    assert_eq!(refresh(&sim, &http, &identity).await["status"], "success");
}

#[tokio::test]
async fn malformed_requests_get_client_errors_not_panics() {
    let sim = start().await;
    let http = client(&sim);
    let bodies: [&[u8]; 6] = [
        b"",
        b"\xff\xfe\x00",
        b"[]",
        b"{\"payload\":5}",
        b"AQ==",
        &[b'A'; 60_000],
    ];
    for path in [
        "/v2/token/refresh",
        "/v2/token/client-generate",
        "/v2/token/generate",
    ] {
        for body in bodies {
            let response = http
                .post(format!("{}{path}", sim.base_url()))
                .header("Authorization", "Bearer sim-api-key")
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            assert!((400..500).contains(&status), "{path}: {status}");
        }
    }
    let response = http
        .post(format!("{}/v2/token/refresh", sim.base_url()))
        .body(vec![b'A'; 200_000])
        .send()
        .await;
    assert!(response.map(|r| r.status().as_u16() == 413).unwrap_or(true));
    // Still serving.
    let identity = sim.mint_identity("user@example.com");
    assert_eq!(refresh(&sim, &http, &identity).await["status"], "success");
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let sim = start().await;
    let addr = sim.local_addr();
    sim.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn bad_api_secret_is_refused_at_start() {
    let error = OperatorSim::start(SimConfig {
        api_secret: "c2hvcnQ=".into(),
        ..SimConfig::default()
    })
    .await
    .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_str(&self.text().await.unwrap()).unwrap()
    }
}

#[test]
fn embedded_key_pair_is_the_operator_fixture() {
    let text = std::fs::read_to_string(fixture("operator/client_side_keypairs.json")).unwrap();
    let pairs: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(pairs[0]["public_key"], uid2_operator_sim::CSTG_PUBLIC_KEY);
    assert_eq!(
        pairs[0]["subscription_id"],
        uid2_operator_sim::CSTG_SUBSCRIPTION_ID
    );
    assert_eq!(
        cstg_vector()["server_private_key_string"],
        pairs[0]["private_key"]
    );
}

#[tokio::test]
async fn binary_serves_with_a_fault_and_stops_on_sigterm() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let ca_file =
        std::env::temp_dir().join(format!("uid2-operator-sim-test-{}.pem", std::process::id()));
    // Under emulation (tests built for ARM) the binary runs behind the same runner.
    let mut argv: Vec<String> = std::env::var("UID2D_TEST_RUNNER")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    argv.push(env!("CARGO_BIN_EXE_uid2-operator-sim").to_owned());
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--refresh-after",
            "5",
            "--fault",
            "refresh=500",
        ])
        .arg("--ca-out")
        .arg(&ca_file)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = std::collections::HashMap::new();
    while printed.len() < 6 {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let (key, value) = line.split_once('=').unwrap();
        printed.insert(key.to_owned(), value.to_owned());
    }
    assert_eq!(
        printed["cstg_public_key"],
        uid2_operator_sim::CSTG_PUBLIC_KEY
    );
    assert_eq!(printed["cstg_subscription_id"], "4WvryDGbR5");
    let base_url = &printed["base_url"];
    let ca = std::fs::read(&ca_file).unwrap();
    let _ = std::fs::remove_file(&ca_file);
    let http = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();

    let identity: Value = http
        .get(format!("{base_url}/sim/identity?email=a@example.com"))
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    let (from, expires) = (
        identity["refresh_from"].as_i64().unwrap(),
        identity["identity_expires"].as_i64().unwrap(),
    );
    assert_eq!(
        expires - from,
        72 * 3_600_000 - 5_000,
        "--refresh-after 5 applies"
    );
    let response = http
        .post(format!("{base_url}/v2/token/refresh"))
        .body(identity["refresh_token"].as_str().unwrap().to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
