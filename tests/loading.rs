//! Start-up reads the first 64 scopes' state files before READY=1 and any others after
//! it, so start-up time does not grow with their number. A call for a scope reads that
//! scope's file first: no answer depends on how far start-up has got, and it never undoes
//! a change.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::sync::Arc;

use uid2d::clock::SystemClock;
use uid2d::identity::Status;
use uid2d::runtime::ScopeKey;
use uid2d::store::Store;
use uid2d_testkit::*;

/// More than one batch (64): some are read before READY=1, some after.
const SCOPES: u32 = 70;

/// `SCOPES` scopes stored by one service; returns each scope's advertising token.
async fn stored(operator: &Operator, state: &std::path::Path) -> Vec<String> {
    let store = Arc::new(Store::open(state, None).unwrap());
    let clock = Arc::new(SystemClock::new(false));
    let service = in_process_service(operator, store, "", clock).await;
    let mut tokens = Vec::new();
    for uid in 1..=SCOPES {
        let identity = operator.identity(&format!("user{uid}@example.com"));
        service
            .set_identity(ScopeKey::uid(uid), &identity)
            .await
            .unwrap();
        tokens.push(secrets_of(&identity)[0].clone());
    }
    tokens
}

#[tokio::test]
async fn a_call_reads_its_scope_first_and_the_pass_never_undoes_a_change() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let tokens = stored(&operator, &state).await;

    let store = Arc::new(Store::open(&state, None).unwrap());
    let service = unloaded_service(&operator, store, "", Arc::new(SystemClock::new(false)));
    assert!(!service.loaded());
    // Nothing is in memory before the pass or a call reads it.
    assert_eq!(service.scope_count(), 0);

    // A read reads the caller's scope first.
    let seven = ScopeKey::uid(7);
    assert_eq!(
        service.status(seven.clone()).await.unwrap(),
        Status::Established
    );
    assert_eq!(
        service.advertising_token(seven.clone()).await.unwrap(),
        tokens[6]
    );
    assert_eq!(service.scope_count(), 1);

    // A change to a scope the pass has not reached: the change reads the file first, and
    // the pass must not put the old identity back.
    let twelve = ScopeKey::uid(12);
    let newer = operator.identity("newer@example.com");
    service.set_identity(twelve.clone(), &newer).await.unwrap();
    // Another, reset before it was ever read.
    let three = ScopeKey::uid(3);
    service.reset(three.clone()).await.unwrap();

    let report = service.load().await.unwrap();
    assert!(service.loaded());
    // Every file was read once, by a call or by the pass.
    assert_eq!(report.scopes, SCOPES as usize, "{report:?}");
    assert!(report.set_aside.is_empty());
    assert_eq!(
        service.advertising_token(twelve.clone()).await.unwrap(),
        secrets_of(&newer)[0]
    );
    assert_eq!(
        service.status(three.clone()).await.unwrap(),
        Status::NoIdentity
    );
    for uid in (1..=SCOPES).filter(|uid| ![3, 12].contains(uid)) {
        let key = ScopeKey::uid(uid);
        assert_eq!(
            service.status(key.clone()).await.unwrap(),
            Status::Established,
            "{key}"
        );
        assert_eq!(
            service.advertising_token(key.clone()).await.unwrap(),
            tokens[uid as usize - 1]
        );
    }

    // What is on disk now is what a fresh start reads.
    drop(service);
    let store = Arc::new(Store::open(&state, None).unwrap());
    let again = in_process_service(&operator, store, "", Arc::new(SystemClock::new(false))).await;
    assert_eq!(
        again.advertising_token(twelve.clone()).await.unwrap(),
        secrets_of(&newer)[0]
    );
    assert_eq!(
        again.status(three.clone()).await.unwrap(),
        Status::NoIdentity
    );
    assert_eq!(again.scope_count(), SCOPES as usize - 1);
}

/// The real daemon: every stored scope answered, those read after READY=1 too, and
/// STATUS= counts them once all are read.
#[tokio::test]
async fn the_daemon_serves_stored_scopes_read_after_ready() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = operator.spec(&binaries!(), &bus, dir.path(), "");
    let _tokens = stored(&operator, &spec.state_dir).await;
    // The caller's own scope (tests run as root or as a user: either is a uid scope).
    let me = nix::unistd::getuid().as_raw();
    let identity = operator.identity("me@example.com");
    {
        let store = Arc::new(Store::open(&spec.state_dir, None).unwrap());
        let service =
            in_process_service(&operator, store, "", Arc::new(SystemClock::new(false))).await;
        service
            .set_identity(ScopeKey::uid(me), &identity)
            .await
            .unwrap();
    }
    let expected = if (1..=SCOPES).contains(&me) {
        SCOPES
    } else {
        SCOPES + 1
    };

    let mut daemon = Daemon::start(spec).await;
    let conn = bus.connect().await;
    assert_eq!(
        manager(&conn).await.get_advertising_token().await.unwrap(),
        secrets_of(&identity)[0]
    );
    daemon
        .wait_for_notify(&format!("Serving {expected} stored identities"))
        .await;
    daemon.stop().await;
}

/// A file that opens but holds a record this build cannot read (a newer version after a
/// downgrade) is set aside, not left for the next write to overwrite.
#[tokio::test]
async fn an_unreadable_record_is_set_aside_and_the_scope_starts_empty() {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 30 * 86400).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let record = br#"{"version":2,"status":"established","auto_refresh":true}"#;
    Store::open(&state, None)
        .unwrap()
        .save("uid-5", record)
        .unwrap();
    let store = Arc::new(Store::open(&state, None).unwrap());
    let unloaded = unloaded_service(&operator, store, "", Arc::new(SystemClock::new(false)));
    let report = unloaded.load().await.unwrap();
    assert_eq!(report.set_aside, ["uid-5"]);
    assert_eq!(
        unloaded.status(ScopeKey::uid(5)).await.unwrap(),
        Status::NoIdentity
    );
    let names: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.contains(&"uid-5.state".to_owned()), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("uid-5.state.corrupt-")),
        "{names:?}"
    );
}
