//! The daemon's runtime in-process: for seams the binary cannot reach without root (an
//! untrusted clock, a failing disk). Tied to the runtime's constructors.

use std::path::Path;
use std::sync::Arc;

use uid2d::clock::Clock;
use uid2d::runtime::Runtime;
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
    let service = unloaded_service(operator, store, extra_config, clock);
    service.load().await.expect("load the stored state");
    service
}

/// [`in_process_service`] before start-up has read any state file.
pub fn unloaded_service(
    operator: &Operator,
    store: Arc<Store>,
    extra_config: &str,
    clock: Arc<dyn Clock>,
) -> Arc<Runtime> {
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
    Runtime::new(
        config,
        client,
        store,
        clock,
        uid2d::engine::Policy::default(),
    )
}
