//! The app inspector's memory: every app scope `max_scopes` allows with a full event
//! ring, against the same calls to a uid2d that keeps no events (`app_events = 0`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tokio::time::sleep;
use uid2d::client::{Broker1Proxy, Diagnostics1Proxy, Manager1Proxy};
use zbus::zvariant::Value;

use super::{mem, ratio, Ctx, Result, Table};

/// `max_scopes`' default: the most scopes that keep events.
const SCOPES: usize = 256;
/// `[diagnostics] app_events`' default.
const EVENTS: usize = 32;

/// Fills `SCOPES` rings of `EVENTS` events each and compares uid2d's memory with that of
/// a uid2d that answered the same calls keeping none. The events are generate calls
/// refused by limit ad tracking: no request, no write, only the event (and the same
/// work in both).
pub(super) async fn memory(ctx: &Ctx<'_>, dir: &Path, generate: &str, t: &mut Table) -> Result<()> {
    let mut measured = Vec::new();
    for app_events in [EVENTS, 0] {
        let extra = format!("{generate}[diagnostics]\napp_events = {app_events}\n");
        let state = dir.join(format!("inspector-{app_events}"));
        let d = ctx.start_with(&state, None, &extra).await?;
        Manager1Proxy::new(&ctx.conn)
            .await?
            .set_limit_ad_tracking(true)
            .await?;
        let broker = Broker1Proxy::new(&ctx.conn).await?;
        for scope in 0..SCOPES {
            let app = format!("com.example.app{scope}");
            for _ in 0..EVENTS {
                let options: HashMap<&str, Value<'_>> = HashMap::new();
                let refused = broker
                    .generate_identity(&app, "email", "bench@example.com", options)
                    .await;
                if refused.is_ok() {
                    return Err("a generate under limit ad tracking succeeded".into());
                }
            }
        }
        let kept = Diagnostics1Proxy::new(&ctx.conn)
            .await?
            .get_app_events("com.example.app0", 0)
            .await?
            .len();
        if kept != app_events {
            return Err(format!("{kept} events kept, {app_events} expected").into());
        }
        sleep(Duration::from_millis(200)).await;
        measured.push(mem(d.pid())?);
        ctx.stop(d).await?;
    }
    let (full, empty) = (measured[0], measured[1]);
    let kib = |m: [u64; 3]| format!("{} / {} / {}", m[0], m[1], m[2]);
    t.row(
        &format!(
            "app inspector: memory, KiB VmRSS / VmHWM / RssAnon: {SCOPES} app scopes × {EVENTS} events kept vs the same calls with app_events = 0"
        ),
        kib(full),
        kib(empty),
        ratio(full[0] as f64, empty[0] as f64),
        "",
    );
    let growth = (full[2] as f64 - empty[2] as f64) * 1024.0;
    t.row(
        &format!("  app inspector: RssAnon growth per scope with a full ring of {EVENTS} / per event, bytes"),
        format!(
            "{:.0} / {:.1}",
            growth / SCOPES as f64,
            growth / (SCOPES * EVENTS) as f64
        ),
        "-".into(),
        "-".into(),
        "≤ 2 KB per scope",
    );
    Ok(())
}
