//! `uid2ctl inspect --app ID`: an app's last events (`GetAppEvents`), one line each for a
//! person, with the fixed hint of its operator status or cause (src/hints.rs).

use std::collections::HashMap;

use zbus::zvariant::OwnedValue;

use super::human_time;
use crate::hints;

/// The lines for `events` (as `GetAppEvents` gives them, oldest first) at `now_ms`:
///
/// ```text
/// 2026-12-10T09:12:03Z (3 min ago) uid2 generate status=no_identity operator_status=invalid_app_name http_status=403
///   the app name sent is not registered … (fix: publisher)
/// ```
///
/// Keys without anything to say (`""`, 0) are left out; the hint line only where the
/// operator status or the reason has one.
pub(super) fn lines(events: &[HashMap<String, OwnedValue>], now_ms: i64) -> Vec<String> {
    if events.is_empty() {
        return vec![
            "no events: none since uid2d started, or [diagnostics] app_events = 0".to_owned(),
        ];
    }
    let mut out = Vec::with_capacity(events.len() * 2);
    for event in events {
        let text = |key: &str| {
            event
                .get(key)
                .and_then(|v| <&str>::try_from(v).ok())
                .unwrap_or_default()
                .to_owned()
        };
        let time = event
            .get("time")
            .and_then(|v| i64::try_from(v).ok())
            .unwrap_or_default();
        let http_status = event
            .get("http_status")
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or_default();
        let (kind, operator_status, reason) =
            (text("kind"), text("operator_status"), text("reason"));
        let mut line = format!(
            "{} ({}) {} {kind}",
            human_time::rfc3339(time),
            human_time::relative(time, now_ms),
            text("product"),
        );
        for (key, value) in [
            ("status", text("status")),
            ("operator_status", operator_status.clone()),
            (
                "http_status",
                if http_status == 0 {
                    String::new()
                } else {
                    http_status.to_string()
                },
            ),
            ("reason", reason.clone()),
        ] {
            if !value.is_empty() {
                line.push_str(&format!(" {key}={value}"));
            }
        }
        out.push(line);
        if let Some(hint) = hints::for_event(&kind, &operator_status, &reason) {
            out.push(format!("  {hint}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::Str;

    fn event(
        kind: &str,
        status: &str,
        operator_status: &str,
        http: u16,
        reason: &str,
    ) -> HashMap<String, OwnedValue> {
        let text = |s: &str| OwnedValue::from(Str::from(s.to_owned()));
        HashMap::from([
            ("time".to_owned(), OwnedValue::from(1_796_902_994_772_i64)),
            ("product".to_owned(), text("uid2")),
            ("kind".to_owned(), text(kind)),
            ("status".to_owned(), text(status)),
            ("operator_status".to_owned(), text(operator_status)),
            ("http_status".to_owned(), OwnedValue::from(http)),
            ("reason".to_owned(), text(reason)),
        ])
    }

    #[test]
    fn each_event_is_a_line_with_its_hint_where_it_has_one() {
        let now = 1_796_902_994_772 + 180_000;
        let events = [
            event("generate", "no_identity", "invalid_app_name", 403, ""),
            event("status", "established", "", 0, ""),
            event("refresh", "expired", "", 0, "offline"),
        ];
        let lines = lines(&events, now);
        assert_eq!(
            lines[0],
            "2026-12-10T11:43:14Z (3 min ago) uid2 generate status=no_identity \
             operator_status=invalid_app_name http_status=403"
        );
        assert!(lines[1].starts_with("  the app name sent is not registered"));
        assert!(lines[1].ends_with("(fix: publisher)"));
        assert_eq!(
            lines[2],
            "2026-12-10T11:43:14Z (3 min ago) uid2 status status=established"
        );
        assert_eq!(
            lines[3],
            "2026-12-10T11:43:14Z (3 min ago) uid2 refresh status=expired reason=offline"
        );
        assert!(lines[4].starts_with("  the device has no default route"));
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn no_events_says_so() {
        assert_eq!(lines(&[], 0).len(), 1);
    }
}
