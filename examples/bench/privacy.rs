//! Privacy signals' memory: every app scope `max_scopes` allows holding its own signals
//! (a TC string, a GPP string and its section ids, a US Privacy string, all made by the
//! IAB's encoders), against the same calls setting none.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tokio::time::sleep;
use uid2d::client::Broker1Proxy;
use zbus::zvariant::Value;

use super::{mem, ratio, Ctx, Result, Table};

/// `max_scopes`' default: the most scopes that hold signals.
const SCOPES: usize = 256;

/// One case's signals from the committed fixtures (tests/fixtures/privacy), by name.
fn fixture(name: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/privacy/consent-strings.json"
    );
    let all: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
    all["cases"]
        .as_array()
        .and_then(|cases| cases.iter().find(|case| case["name"] == name))
        .and_then(|case| case["signals"].as_object().cloned())
        .ok_or_else(|| format!("no fixture case {name:?}").into())
}

/// A set of every key: a TCF case's, a `usnat` case's, and a US Privacy string.
fn every_key() -> Result<HashMap<String, Value<'static>>> {
    let mut signals = HashMap::new();
    for case in [
        "TCF: vendor 21 with consent, every EUID purpose consented",
        "usnat: notices given, no opt-out",
    ] {
        for (key, value) in fixture(case)? {
            let value = match value {
                serde_json::Value::String(s) => Value::from(s),
                serde_json::Value::Number(n) => {
                    Value::from(i32::try_from(n.as_i64().unwrap_or(0)).unwrap_or(0))
                }
                other => return Err(format!("unexpected fixture value {other}").into()),
            };
            signals.insert(key, value);
        }
    }
    signals.insert("IABUSPrivacy_String".into(), Value::from("1YNN"));
    Ok(signals)
}

/// Sets every key's signals on `SCOPES` app scopes and compares uid2d's memory with that
/// of a uid2d that got the same calls with `{}` (which stores nothing).
pub(super) async fn memory(ctx: &Ctx<'_>, dir: &Path, t: &mut Table) -> Result<()> {
    let full = every_key()?;
    let mut measured = Vec::new();
    for with_signals in [true, false] {
        let state = dir.join(format!("privacy-{with_signals}"));
        let d = ctx.start_with(&state, None, "").await?;
        let broker = Broker1Proxy::new(&ctx.conn).await?;
        for scope in 0..SCOPES {
            let app = format!("com.example.app{scope}");
            let signals: HashMap<&str, Value<'_>> = if with_signals {
                full.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
            } else {
                HashMap::new()
            };
            broker.set_privacy_signals(&app, signals).await?;
        }
        let kept = broker.get_privacy_signals("com.example.app0").await?.len();
        if kept != if with_signals { full.len() } else { 0 } {
            return Err(format!("{kept} keys kept").into());
        }
        sleep(Duration::from_millis(200)).await;
        measured.push(mem(d.pid())?);
        ctx.stop(d).await?;
    }
    let (with, without) = (measured[0], measured[1]);
    let kib = |m: [u64; 3]| format!("{} / {} / {}", m[0], m[1], m[2]);
    t.row(
        &format!(
            "privacy signals: memory, KiB VmRSS / VmHWM / RssAnon: {SCOPES} app scopes with every key vs the same calls with {{}}"
        ),
        kib(with),
        kib(without),
        ratio(with[0] as f64, without[0] as f64),
        "",
    );
    let growth = (with[2] as f64 - without[2] as f64) * 1024.0;
    t.row(
        "  privacy signals: RssAnon growth per scope with signals, bytes",
        format!("{:.0}", growth / SCOPES as f64),
        "-".into(),
        "-".into(),
        "measured",
    );
    Ok(())
}
