//! Logging: journald with structured fields when systemd connected our output to the
//! journal, stderr otherwise; the level can change at run time (SIGHUP).

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogLevel;

/// Changes the log level at run time.
#[derive(Debug, Clone)]
pub struct LogControl(reload::Handle<Targets, tracing_subscriber::Registry>);

impl LogControl {
    pub fn set_level(&self, level: LogLevel) {
        let _ = self.0.modify(|filter| *filter = log_filter(level));
    }
}

/// `log_level` applies to uid2d's own events; libraries (zbus, hyper…) only say warnings.
fn log_filter(level: LogLevel) -> Targets {
    Targets::new()
        .with_default(LevelFilter::WARN.min(LevelFilter::from_level(level.as_tracing())))
        .with_target("uid2d", level.as_tracing())
}

/// Installs the global subscriber; call once, before the daemon runs.
pub fn init_logging(level: LogLevel) -> LogControl {
    let (filter, handle) = reload::Layer::new(log_filter(level));
    let journald = std::env::var_os("JOURNAL_STREAM")
        .is_some()
        .then(|| tracing_journald::layer().ok())
        .flatten()
        .map(|layer| layer.with_field_prefix(None));
    let registry = tracing_subscriber::registry().with(filter);
    if let Some(journald) = journald {
        registry.with(journald).init();
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(false)
                    .with_target(false),
            )
            .init();
    }
    LogControl(handle)
}
