//! The daemon's runtime in-process: for seams the binary cannot reach without root (an
//! untrusted clock, a failing disk). Tied to the runtime's constructors.

use std::path::Path;
use std::sync::Arc;

use uid2d::clock::Clock;
use uid2d::device::{Device, PolicyRecord, ProductSetup};
use uid2d::runtime::{Runtime, Shelf};
use uid2d::store::Store;

use crate::Operator;

/// The service against `operator`, on `store`, with `clock` and `extra_config` lines,
/// after start-up has read its state.
pub async fn in_process_service(
    operator: &Operator,
    store: Arc<Store>,
    extra_config: &str,
    clock: Arc<dyn Clock>,
) -> Arc<Runtime> {
    in_process_device(operator, store, extra_config, clock)
        .await
        .top_level()
        .clone()
}

/// [`in_process_service`]'s device (one product, UID2), for the device's own changes.
pub async fn in_process_device(
    operator: &Operator,
    store: Arc<Store>,
    extra_config: &str,
    clock: Arc<dyn Clock>,
) -> Arc<Device> {
    let device = unloaded_device(operator, store, extra_config, clock);
    device
        .top_level()
        .load()
        .await
        .expect("load the stored state");
    device
}

/// [`in_process_service`] before start-up has read any state file.
pub fn unloaded_service(
    operator: &Operator,
    store: Arc<Store>,
    extra_config: &str,
    clock: Arc<dyn Clock>,
) -> Arc<Runtime> {
    unloaded_device(operator, store, extra_config, clock)
        .top_level()
        .clone()
}

fn unloaded_device(
    operator: &Operator,
    store: Arc<Store>,
    extra_config: &str,
    clock: Arc<dyn Clock>,
) -> Arc<Device> {
    let config = uid2d::config::Config::parse(
        &format!("{}{extra_config}", operator.config_toml()),
        Path::new("test.toml"),
    )
    .expect("config");
    let reloadable = &config.reloadable;
    let tls = uid2d::trust::Roots::load()
        .client_config(
            reloadable.ca_file.as_deref(),
            reloadable.base_url.scheme() == "https",
        )
        .expect("TLS roots");
    let client = uid2d::operator::Operator::new(
        reloadable.base_url.clone(),
        tls,
        reloadable.request_timeout,
    )
    .expect("operator client");
    let setup = ProductSetup {
        config,
        operator: client,
        shelf: Shelf::Main,
    };
    Arc::new(Device::new(
        store,
        clock,
        uid2d::engine::Policy::default(),
        PolicyRecord::default(),
        setup,
        Vec::new(),
    ))
}
