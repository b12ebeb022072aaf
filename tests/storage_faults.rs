//! Storage failures while running (ENOSPC, EROFS, EIO): the daemon's service stays up,
//! keeps serving from memory, reports the error, retries, and recovers. In-process, with
//! the store's fault-injection seam (a full tmpfs needs mount privileges).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::sync::Arc;

use nix::errno::Errno;
use uid2d::client::StatValue;
use uid2d::error::Error;
use uid2d::identity::Identity;
use uid2d::runtime::{Runtime, ScopeKey};
use uid2d::store::{Fault, Store, WriteStep};
use uid2d_testkit::*;

struct Rig {
    operator: Operator,
    state: tempfile::TempDir,
    store: Arc<Store>,
    service: Arc<Runtime>,
}

async fn rig() -> Rig {
    let operator = Operator::with_lifetimes(3600, 4 * 3600, 86400).await;
    let state = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(state.path(), None).unwrap());
    let service = in_process_service(
        &operator,
        store.clone(),
        "",
        Arc::new(uid2d::clock::SystemClock::new(false)),
    )
    .await;
    let retry = service.clone();
    tokio::spawn(async move { retry.retry_unsaved().await });
    Rig {
        operator,
        state,
        store,
        service,
    }
}

const ME: ScopeKey = ScopeKey::uid(1000);

#[tokio::test]
async fn set_identity_reports_storage_errors_and_keeps_the_old_one() {
    let rig = rig().await;
    rig.service
        .set_identity(ME.clone(), &rig.operator.identity("old@example.com"))
        .await
        .unwrap();
    let old = rig.service.identity_json(ME.clone()).await.unwrap();
    for (step, errno) in [
        (WriteStep::Create, Errno::ENOSPC),
        (WriteStep::Write, Errno::ENOSPC),
        (WriteStep::Fsync, Errno::EIO),
        (WriteStep::Rename, Errno::EROFS),
    ] {
        rig.store.inject_fault(Fault::Fail(step, errno));
        let error = rig
            .service
            .set_identity(ME.clone(), &rig.operator.identity("new@example.com"))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Storage(_)), "{step:?}: {error:?}");
        assert_eq!(
            rig.service.identity_json(ME.clone()).await.unwrap(),
            old,
            "{step:?}"
        );
    }
    // And on disk too.
    let loaded = Store::open(rig.state.path(), None)
        .unwrap()
        .load_all()
        .unwrap();
    assert_eq!(loaded.scopes.len(), 1);
}

/// A refused `SetIdentity` leaves nothing unsaved, so nothing is retried: the health
/// must still follow the flash (a probe of the state directory) and not stay failing
/// until a restart, as it did when the first error latched it.
#[tokio::test]
async fn a_refused_write_is_failing_storage_only_until_the_flash_takes_writes_again() {
    let rig = rig().await;
    let mut storage = rig.service.watch_storage();
    rig.store
        .inject_fault(Fault::Fail(WriteStep::Write, Errno::ENOSPC));
    let error = rig
        .service
        .set_identity(ME.clone(), &rig.operator.identity("me@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Storage(_)), "{error:?}");
    let failing = rig.service.storage_error().expect("storage is failing");
    assert!(failing.contains("No space left"), "{failing}");
    assert_eq!(stat(&rig.service, "storage_ok"), StatValue::Flag(false));
    // The app inspector has it as the app's event.
    let events: Vec<_> = rig
        .service
        .app_events(&ME)
        .into_iter()
        .filter(|e| e.kind.as_str() == "storage")
        .map(|e| e.details.reason)
        .collect();
    assert_eq!(events, [Some("storage")]);

    // The fault was for one write: the next probe lands and the health is good again,
    // with nothing else written.
    within(
        "the storage health to recover",
        storage.wait_for(|health| health.failing.is_none()),
    )
    .await
    .unwrap();
    assert_eq!(stat(&rig.service, "storage_ok"), StatValue::Flag(true));
    assert_eq!(stat(&rig.service, "storage_errors"), StatValue::Count(1));
    assert_eq!(
        rig.service.status(ME.clone()).await.unwrap().as_str(),
        "no_identity"
    );
}

/// The window between the operator's answer and its durable write is the write itself:
/// it does not wait behind another app's write (here one held as a slow flash would hold
/// it). Until then a kill lost the answer, and with it the rotated refresh token.
#[tokio::test]
async fn a_slow_write_of_one_app_does_not_hold_back_another_apps_refresh_answer() {
    let rig = rig().await;
    let (slow, other) = (ScopeKey::uid(1001), ScopeKey::uid(1002));
    rig.service
        .set_identity(other.clone(), &rig.operator.identity("other@example.com"))
        .await
        .unwrap();

    let mut hold = rig.store.hold_next_save();
    let set = tokio::spawn({
        let service = rig.service.clone();
        let identity = rig.operator.identity("slow@example.com");
        async move { service.set_identity(slow, &identity).await }
    });
    within("the slow write to start", hold.reached()).await;

    // The other app's refresh: answered, and on disk, while the slow write still hangs.
    let refreshed = within(
        "the other app's refresh",
        rig.service.refresh(other.clone()),
    )
    .await
    .unwrap();
    assert_eq!(refreshed.as_str(), "refreshed");
    let served = Identity::from_json(&rig.service.identity_json(other).await.unwrap()).unwrap();
    let on_disk = Store::open(rig.state.path(), None)
        .unwrap()
        .load_all()
        .unwrap();
    let (_, record) = on_disk
        .scopes
        .iter()
        .find(|(name, _)| name == "uid-1002")
        .expect("the other app's file");
    let record: serde_json::Value = serde_json::from_slice(record).unwrap();
    assert_eq!(
        record["identity"]["refresh_token"],
        served.refresh_token.as_str()
    );
    assert!(!set.is_finished(), "the slow write was not held");

    hold.release();
    assert_eq!(set.await.unwrap().unwrap().as_str(), "established");
}

fn stat(runtime: &Arc<Runtime>, key: &str) -> StatValue {
    runtime
        .stats()
        .into_iter()
        .find(|(name, _)| name == key)
        .unwrap_or_else(|| panic!("no {key} in GetStats"))
        .1
}

#[tokio::test]
async fn refreshed_identity_is_served_from_memory_and_saved_when_space_returns() {
    let rig = rig().await;
    rig.service
        .set_identity(ME.clone(), &rig.operator.identity("me@example.com"))
        .await
        .unwrap();
    let before = rig.service.advertising_token(ME.clone()).await.unwrap();
    let mut storage = rig.service.watch_storage();

    // The disk is full when the refresh answer comes back: the operator has already
    // rotated the refresh token, so losing the answer would lose the identity.
    rig.store
        .inject_fault(Fault::Fail(WriteStep::Write, Errno::ENOSPC));
    assert_eq!(
        rig.service.refresh(ME.clone()).await.unwrap().as_str(),
        "refreshed"
    );
    let after = rig.service.advertising_token(ME.clone()).await.unwrap();
    assert_ne!(after, before);
    let error = within(
        "the storage error",
        storage.wait_for(|health| health.failing.is_some()),
    )
    .await
    .unwrap()
    .failing
    .clone()
    .unwrap();
    assert!(error.contains("No space left"), "{error}");

    // The retry lands (the fault was one write); the error clears.
    within(
        "storage recovery",
        storage.wait_for(|health| health.failing.is_none()),
    )
    .await
    .unwrap();
    let loaded = Store::open(rig.state.path(), None)
        .unwrap()
        .load_all()
        .unwrap();
    let (_, record) = &loaded.scopes[0];
    let record: serde_json::Value = serde_json::from_slice(record).unwrap();
    assert_eq!(record["identity"]["advertising_token"], after.as_str());
}
