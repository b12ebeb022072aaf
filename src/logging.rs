//! Logging: journald with structured fields when systemd connected our output to the
//! journal, stderr otherwise; the level can change at run time (SIGHUP).
//!
//! The stderr writer is a few lines here rather than tracing-subscriber's `fmt` layer
//! (its formatting machinery was code every role carried for a terminal run only;
//! docs/benchmarks.md): one line an event, `LEVEL message key=value …`, no timestamp
//! (the journal or the terminal has one), no span context (uid2d opens no spans).

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogLevel;

/// Changes the log level at run time.
#[derive(Debug, Clone)]
pub(crate) struct LogControl(reload::Handle<Targets, tracing_subscriber::Registry>);

impl LogControl {
    pub(crate) fn set_level(&self, level: LogLevel) {
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
pub(crate) fn init_logging(level: LogLevel) -> LogControl {
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
        registry.with(StderrLayer).init();
    }
    LogControl(handle)
}

/// Writes each event as one line to stderr.
#[derive(Debug)]
struct StderrLayer;

impl<S: Subscriber> Layer<S> for StderrLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut line = format_line(event);
        line.push('\n');
        // Nothing to do if stderr is gone.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// `LEVEL message key=value …` for `event`.
fn format_line(event: &Event<'_>) -> String {
    let mut line = Line(format!("{:>5}", event.metadata().level()));
    event.record(&mut line);
    line.0
}

/// An event's fields as text: the message bare, the others as ` key=value`.
struct Line(String);

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => {
                let _ = write!(self.0, " {value}");
            }
            name => {
                let _ = write!(self.0, " {name}={value:?}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.0, " {value:?}");
            }
            name => {
                let _ = write!(self.0, " {name}={value:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line the stderr layer writes for an event.
    #[derive(Debug, Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            self.0.lock().unwrap().push(format_line(event));
        }
    }

    #[test]
    fn an_event_is_its_level_message_and_fields() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                error_kind = "network_watch",
                n = 3,
                "cannot follow ({})",
                "why"
            );
            tracing::info!("plain");
        });
        assert_eq!(
            *capture.0.lock().unwrap(),
            [
                " WARN cannot follow (why) error_kind=\"network_watch\" n=3",
                " INFO plain"
            ]
        );
    }
}
