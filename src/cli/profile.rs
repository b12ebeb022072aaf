//! `uid2ctl profile …`: com.uid2.Profiles1 from a shell (root or `[profiles]
//! manager_group`; served while `[profiles] enabled`).

use std::collections::HashMap;

use clap::Subcommand;
use zbus::zvariant::Value;

use super::{say, CliError, OnOff};
use crate::client::Profiles1Proxy;

#[derive(Debug, Subcommand)]
pub(super) enum ProfileCommand {
    /// Print every profile id, one a line (the default profile `""` as an empty line).
    List,
    /// Print the active profile id (an empty line for the default profile).
    Get,
    /// Make ID the active profile (`""` for the default one).
    Set { id: String },
    /// Remove every identity of profile ID, both products, durably; print how many
    /// scopes went. Deleting the active profile switches to the default one first.
    Delete { id: String },
    /// Set profile ID's policy: a child's profile is served nothing.
    Policy {
        id: String,
        #[arg(long, value_name = "on|off")]
        child: Option<OnOff>,
        #[arg(long, value_name = "on|off")]
        limit_ad_tracking: Option<OnOff>,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("profile policy: give --child and/or --limit-ad-tracking")]
pub(super) struct NoPolicy;

pub(super) async fn run(conn: &zbus::Connection, command: ProfileCommand) -> Result<(), CliError> {
    let profiles = Profiles1Proxy::new(conn).await?;
    match command {
        ProfileCommand::List => {
            for id in profiles.list_profiles().await? {
                say(&id);
            }
        }
        ProfileCommand::Get => say(&profiles.get_active_profile().await?),
        ProfileCommand::Set { id } => profiles.set_active_profile(&id).await?,
        ProfileCommand::Delete { id } => say(&profiles.delete_profile(&id).await?.to_string()),
        ProfileCommand::Policy {
            id,
            child,
            limit_ad_tracking,
        } => {
            let mut policy = HashMap::new();
            for (key, state) in [("child", child), ("limit_ad_tracking", limit_ad_tracking)] {
                if let Some(state) = state {
                    policy.insert(key, Value::from(matches!(state, OnOff::On)));
                }
            }
            if policy.is_empty() {
                return Err(NoPolicy.into());
            }
            profiles.set_profile_policy(&id, policy).await?;
        }
    }
    Ok(())
}
