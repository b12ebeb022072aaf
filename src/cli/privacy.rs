//! `uid2ctl privacy …` and `uid2ctl bid-signals`: the privacy signals of the caller's scope
//! (or an app's with `--app`, or the device's with `--device`), the consent decision, and
//! `GetBidSignals`' JSON.

use std::collections::{BTreeMap, HashMap};

use clap::{Args as ClapArgs, Subcommand};
use zbus::zvariant::{OwnedValue, Value};

use super::{json_value, say, CliError, Target};
use crate::client::Privacy1Proxy;

/// The one IAB key whose type is an integer (`i`); every other is a string (`s`).
const GDPR_APPLIES: &str = "IABTCF_gdprApplies";

#[derive(Debug, Subcommand)]
pub(super) enum PrivacyCommand {
    /// Replace the signals with KEY=VALUE pairs (none: clear them); print the consent
    /// (`granted`|`denied`) of the caller's scope, or nothing with `--device`.
    /// Keys: IABTCF_TCString, IABTCF_gdprApplies (0|1), IABGPP_HDR_GppString,
    /// IABGPP_GppSID, IABUSPrivacy_String.
    Set {
        #[command(flatten)]
        layer: Layer,
        #[arg(value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// Print the signals as set, one `KEY=VALUE` a line (or one JSON object with `--json`).
    Get {
        #[command(flatten)]
        layer: Layer,
        #[arg(long)]
        json: bool,
    },
    /// Print the consent decision (consent, reason, source, jurisdiction, gdpr_applies),
    /// one `key=value` a line (or JSON with `--json`).
    Consent {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, ClapArgs)]
pub(super) struct Layer {
    /// The device's signals (com.uid2.Privacy1: root or admin_group) instead of the scope's.
    #[arg(long)]
    device: bool,
}

#[derive(Debug, ClapArgs)]
pub(super) struct BidSignals {
    /// `ortb26` (user.eids, default), `ortb25` (user.ext.eids) or `compatible` (both).
    #[arg(long)]
    placement: Option<String>,
    /// `auto` (default: the object's own), `uid2` or `euid`.
    #[arg(long)]
    product: Option<String>,
}

/// Runs `uid2ctl privacy …`.
pub(super) async fn privacy(
    conn: &zbus::Connection,
    target: &Target<'_>,
    command: PrivacyCommand,
) -> Result<(), CliError> {
    match command {
        PrivacyCommand::Set { layer, pairs } => {
            let signals = parse_pairs(&pairs)?;
            if layer.device {
                Privacy1Proxy::new(conn)
                    .await?
                    .set_device_privacy_signals(signals)
                    .await?;
            } else {
                say(&target.set_privacy(signals).await?);
            }
        }
        PrivacyCommand::Get { layer, json } => {
            let signals = if layer.device {
                Privacy1Proxy::new(conn)
                    .await?
                    .get_device_privacy_signals()
                    .await?
            } else {
                target.privacy().await?
            };
            print_dict(signals, json);
        }
        PrivacyCommand::Consent { json } => print_dict(target.consent().await?, json),
    }
    Ok(())
}

/// Runs `uid2ctl bid-signals`: prints the JSON object.
pub(super) async fn bid_signals(target: &Target<'_>, args: BidSignals) -> Result<(), CliError> {
    let mut options: HashMap<&str, Value<'_>> = HashMap::new();
    if let Some(placement) = &args.placement {
        options.insert("placement", Value::from(placement.as_str()));
    }
    if let Some(product) = &args.product {
        options.insert("product", Value::from(product.as_str()));
    }
    say(&target.bid_signals(options).await?);
    Ok(())
}

/// `KEY=VALUE` pairs as `SetPrivacySignals`' `a{sv}`: `IABTCF_gdprApplies` an integer,
/// every other value a string (uid2d checks the keys and decodes the values).
fn parse_pairs(pairs: &[String]) -> Result<HashMap<&str, Value<'_>>, CliError> {
    pairs
        .iter()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| CliError::Usage(format!("{pair:?} is not KEY=VALUE")))?;
            let value = if key == GDPR_APPLIES {
                let n = value
                    .parse::<i32>()
                    .map_err(|_| CliError::Usage(format!("{GDPR_APPLIES} must be 0 or 1")))?;
                Value::from(n)
            } else {
                Value::from(value)
            };
            Ok((key, value))
        })
        .collect()
}

/// An `a{sv}` of strings and integers: sorted `key=value` lines, or one JSON object.
fn print_dict(dict: HashMap<String, OwnedValue>, json: bool) {
    let sorted: BTreeMap<String, serde_json::Value> = dict
        .iter()
        .map(|(key, value)| (key.clone(), json_value(value)))
        .collect();
    if json {
        say(&serde_json::Value::from(serde_json::Map::from_iter(sorted)).to_string());
        return;
    }
    for (key, value) in sorted {
        match value {
            serde_json::Value::String(s) => say(&format!("{key}={s}")),
            other => say(&format!("{key}={other}")),
        }
    }
}
