//! `GenerateIdentity`: client-side token generation (`/v2/token/client-generate`).

use std::sync::Arc;

use tracing::{info, warn};

use super::{Durability, Runtime, ScopeKey};
use crate::app_events::{Details, EventKind};
use crate::crypto;
use crate::dii::{self, Dii, DiiKind};
use crate::engine::{Event, SetError};
use crate::error::{Denied, Error, GenerateFailed, InvalidArgument, InvalidIdentity};
use crate::identity::Status;
use crate::operator::{Generated, OperatorStatus};
use crate::privacy::Reason;

/// Options of one `GenerateIdentity` call; `None` falls back to the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateOptions {
    pub subscription_id: Option<String>,
    pub public_key: Option<String>,
    pub app_name: Option<String>,
}

/// The option given, else the config's; empty counts as absent.
fn pick(
    given: Option<String>,
    default: &Option<String>,
    name: &'static str,
) -> Result<String, InvalidArgument> {
    given
        .or_else(|| default.clone())
        .filter(|v| !v.is_empty())
        .ok_or(InvalidArgument::MissingOption(name))
}

/// What one `GenerateIdentity` sends: the DII and the request's options, checked.
struct Request {
    dii: Dii,
    subscription_id: String,
    app_name: String,
    server_key: crypto::ServerPublicKey,
}

impl Runtime {
    /// Validates, builds the encrypted request, sends it, and stores the answer like
    /// `SetIdentity` would. Bad input is refused before anything is sent.
    pub async fn generate(
        self: &Arc<Self>,
        key: ScopeKey,
        kind: &str,
        value: &str,
        options: GenerateOptions,
    ) -> Result<Status, Error> {
        let result = self.try_generate(key.clone(), kind, value, options).await;
        if let Err(e) = &result {
            self.record_not_sent(&key, EventKind::Generate, e);
        }
        result
    }

    async fn try_generate(
        self: &Arc<Self>,
        key: ScopeKey,
        kind: &str,
        value: &str,
        options: GenerateOptions,
    ) -> Result<Status, Error> {
        let Request {
            dii,
            subscription_id,
            app_name,
            server_key,
        } = self.request(&key, kind, value, options)?;
        // The scope's decision, as the engine holds it: nothing is sent while denied.
        let (denied, opted_out) = self
            .read(key.clone(), |s, _| {
                (s.denied(), s.dii_opted_out(dii.hash()))
            })
            .await?;
        match denied {
            Some(Reason::LimitAdTracking) => return Err(GenerateFailed::LimitAdTracking.into()),
            Some(reason) => return Err(Error::ConsentRequired(reason)),
            None => {}
        }
        self.check_room(&key)?;
        if opted_out {
            // The operator said opt-out for this person; do not ask again until reset.
            info!(
                scope = %key,
                uid2d_product = self.product().as_str(),
                uid2d_outcome = "opt_out",
                "generate skipped: this DII opted out before"
            );
            return self
                .opt_out(&key, &dii, Details::because("opted_out_before"))
                .await;
        }
        let now = self.clock.now();
        if !now.trusted {
            return Err(GenerateFailed::ClockUntrusted.into());
        }
        let request = crypto::build_cstg_request_random(
            &server_key,
            dii.payload_json().as_bytes(),
            &subscription_id,
            &app_name,
            now.wall,
        )
        .map_err(GenerateFailed::Request)?;
        let answer = self.settings().operator.client_generate(&request).await;
        self.generated(&key, &dii, answer).await
    }

    /// Checks a `GenerateIdentity` call's input and resolves its options against the
    /// config: `InvalidArgument` (or `AccessDenied` for a borrowed app name) before
    /// anything is sent.
    fn request(
        &self,
        key: &ScopeKey,
        kind: &str,
        value: &str,
        options: GenerateOptions,
    ) -> Result<Request, Error> {
        let kind: DiiKind = kind.parse().map_err(|_| InvalidArgument::Kind)?;
        if value.len() > dii::MAX_VALUE_LEN {
            return Err(InvalidArgument::ValueTooLong.into());
        }
        for (name, given) in [
            ("subscription_id", &options.subscription_id),
            ("public_key", &options.public_key),
            ("app_name", &options.app_name),
        ] {
            if given
                .as_ref()
                .is_some_and(|v| v.len() > crypto::MAX_OPTION_LEN)
            {
                return Err(InvalidArgument::OptionTooLong(name).into());
            }
        }
        let dii = Dii::new(kind, value).map_err(InvalidArgument::Dii)?;
        let settings = self.settings();
        let defaults = &settings.config.reloadable.generate;
        let subscription_id = pick(
            options.subscription_id,
            &defaults.subscription_id,
            "subscription_id",
        )?;
        let public_key = pick(options.public_key, &defaults.public_key, "public_key")?;
        // An app scope sends its own registered name, never one the caller picks: the
        // operator binds tokens to app names.
        let app_name = match key.app() {
            Some(app) => {
                let own = settings
                    .config
                    .reloadable
                    .cstg_app_names
                    .get(app)
                    .cloned()
                    .unwrap_or_else(|| app.to_string());
                if options.app_name.is_some_and(|asked| asked != own) {
                    return Err(Denied::AppName.into());
                }
                own
            }
            None => pick(options.app_name, &defaults.app_name, "app_name")?,
        };
        let server_key =
            crypto::ServerPublicKey::parse(&public_key).map_err(InvalidArgument::PublicKey)?;
        Ok(Request {
            dii,
            subscription_id,
            app_name,
            server_key,
        })
    }

    /// Stores, counts and logs the operator's answer to a generate request for `dii`.
    async fn generated(
        self: &Arc<Self>,
        key: &ScopeKey,
        dii: &Dii,
        answer: Result<Generated, crate::operator::Failure>,
    ) -> Result<Status, Error> {
        match answer {
            Ok(Generated::Identity(identity)) => {
                let outcome = (
                    EventKind::Generate,
                    Details::answered(OperatorStatus::Success),
                );
                let status = self
                    .change_after(
                        key,
                        Event::Set(identity),
                        Durability::BeforeReply,
                        Some(outcome),
                    )
                    .await
                    // An identity the engine refuses is the operator's fault here.
                    .map_err(|e| match e {
                        Error::InvalidIdentity(InvalidIdentity::Refused(reason)) => {
                            GenerateFailed::Unusable(SetError::Invalid(reason)).into()
                        }
                        Error::IdentityExpired => {
                            GenerateFailed::Unusable(SetError::Expired).into()
                        }
                        other => other,
                    })?;
                self.count_generate_ok(false);
                info!(
                    scope = %key,
                    uid2d_product = self.product().as_str(),
                    uid2d_outcome = "ok",
                    "identity generated"
                );
                Ok(status)
            }
            Ok(Generated::OptOut) => {
                self.count_generate_ok(true);
                info!(
                    scope = %key,
                    uid2d_product = self.product().as_str(),
                    uid2d_outcome = "opt_out",
                    "generate answered opt-out"
                );
                self.opt_out(key, dii, Details::answered(OperatorStatus::OptOut))
                    .await
            }
            Err(failure) => {
                self.count_generate_failed(&failure);
                self.record(key, EventKind::Generate, self.failure_details(&failure));
                warn!(
                    scope = %key,
                    error_kind = "generate_failed",
                    uid2d_product = self.product().as_str(),
                    uid2d_outcome = "failed",
                    uid2d_failure_class = super::FailureClass::of(&failure).as_str(),
                    uid2d_operator_status = failure.refusal().map(OperatorStatus::as_str),
                    "generate failed: {failure}"
                );
                Err(GenerateFailed::Operator(failure).into())
            }
        }
    }

    /// Records a generate opt-out for `dii` (the identity is dropped, the DII remembered),
    /// and the app event `details` of the generate.
    async fn opt_out(
        self: &Arc<Self>,
        key: &ScopeKey,
        dii: &Dii,
        details: Details,
    ) -> Result<Status, Error> {
        let event = Event::GenerateOptOut {
            dii_hash: dii.hash().to_owned(),
        };
        self.change_after(
            key,
            event,
            Durability::BeforeReply,
            Some((EventKind::Generate, details)),
        )
        .await?;
        Ok(Status::OptOut)
    }
}
