//! The support engineer's hints: one fixed line per (event kind, operator status or local
//! cause) saying what it means, what to fix, and who fixes it. A pure table, so every
//! line is reviewed here and tested; `uid2ctl doctor` prints them beside the refusal
//! counters, and `uid2ctl inspect --app ID` beside an app's events (docs/support.md).
//!
//! The operator statuses are those of [`OperatorStatus`] (src/operator/status.rs says
//! which endpoint answers which); the local causes are the `reason` words uid2d gives
//! when it did not ask the operator, or got no answer. Hints are fixed text: they never
//! hold a token, a key, an app id, an email or a phone.

pub(crate) use crate::app_events::EventKind;
use crate::operator::OperatorStatus;

/// Who acts on a hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The app's publisher: its UID2 account, CSTG settings, backend, app.
    Publisher,
    /// The device maker or integrator: config, network, clock, storage.
    Oem,
    /// The person in front of the TV: their choices.
    User,
    /// The UID2 (or EUID) operator's side.
    Operator,
    /// uid2d's maintainers: a bug to report.
    Maintainers,
    /// Nothing to fix: working as intended.
    Nobody,
}

impl Owner {
    /// `publisher`, `OEM`, `user`, `operator`, `uid2d maintainers`, `nobody`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Owner::Publisher => "publisher",
            Owner::Oem => "OEM",
            Owner::User => "user",
            Owner::Operator => "operator",
            Owner::Maintainers => "uid2d maintainers",
            Owner::Nobody => "nobody",
        }
    }
}

/// One hint: a sentence (what it means and what to do) and who does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hint {
    pub text: &'static str,
    pub owner: Owner,
}

impl std::fmt::Display for Hint {
    /// `<text> (fix: <owner>)`, one line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (fix: {})", self.text, self.owner.as_str())
    }
}

const fn hint(text: &'static str, owner: Owner) -> Hint {
    Hint { text, owner }
}

/// For an operator status its request could not have got (e.g. `invalid_app_name` on a
/// refresh): not something to guess at.
const UNEXPECTED: Hint = hint(
    "the operator answered a status it does not give for this request; report it with the journal line",
    Owner::Maintainers,
);

/// The hint for the operator's answer `status` to a refresh or a generate; other kinds
/// do not talk to the operator and get [`UNEXPECTED`].
pub(crate) fn for_operator(kind: EventKind, status: OperatorStatus) -> Hint {
    use OperatorStatus as S;
    match (kind, status) {
        (EventKind::Refresh, S::Success) => hint("refreshed: a new token is served", Owner::Nobody),
        (EventKind::Generate, S::Success) => hint("generated: the identity is stored and served", Owner::Nobody),
        (EventKind::Refresh | EventKind::Generate, S::OptOut) => hint(
            "the person opted out of UID2/EUID: no token is served, and generate is not sent again for this email or phone until a reset",
            Owner::User,
        ),
        (EventKind::Generate, S::InvalidAppName) => hint(
            "the app name sent is not registered for this subscription's site: register it with UID2 for these CSTG settings ([apps] cstg_app_names maps an app id to its registered name)",
            Owner::Publisher,
        ),
        (EventKind::Generate, S::InvalidHttpOrigin) => hint(
            "no app name was sent, so the operator checked a web origin: set [generate] app_name, or the app's name in [apps] cstg_app_names",
            Owner::Oem,
        ),
        (EventKind::Generate, S::Unauthorized) => hint(
            "the subscription's CSTG key pair is disabled: ask UID2 to enable it or for new CSTG settings",
            Owner::Publisher,
        ),
        (EventKind::Generate, S::BadSubscriptionId) => hint(
            "this operator knows no such subscription_id: check [generate] subscription_id, and that the settings are for this environment (integration and production differ)",
            Owner::Oem,
        ),
        (EventKind::Generate, S::PayloadDecryptionFailed) => hint(
            "the public_key is not the one of this subscription_id: take both from the same CSTG settings",
            Owner::Oem,
        ),
        (EventKind::Generate, S::ClientError) => hint(
            "the operator found the request malformed: a uid2d bug; report it with uid2d's version",
            Owner::Maintainers,
        ),
        (EventKind::Refresh, S::Error | S::InvalidToken) => hint(
            "the operator will not take this refresh token (unknown, expired or already used, e.g. by a copy of the identity refreshed elsewhere); uid2d stops retrying it and the app needs a new identity",
            Owner::Publisher,
        ),
        (EventKind::Refresh, S::ExpiredToken) => hint(
            "the refresh token expired (refresh_expires passed, e.g. the TV was off for weeks): the app needs a new identity from its backend or GenerateIdentity",
            Owner::Publisher,
        ),
        (EventKind::Refresh, S::Unauthorized) => hint(
            "the operator refused the refresh as unauthorized: check that the operator URL is the environment the identity came from",
            Owner::Oem,
        ),
        (EventKind::Refresh, S::ClientError) => hint(
            "the operator found the refresh malformed: the refresh token was cut or altered on its way from the publisher's backend, or a uid2d bug",
            Owner::Publisher,
        ),
        (EventKind::Refresh | EventKind::Generate, S::InsufficientUserConsent) => hint(
            "the operator found the person's consent insufficient (EUID: the TCF string lacks consent for the required purposes); nothing is served until the CMP records consent",
            Owner::User,
        ),
        (EventKind::Refresh | EventKind::Generate, S::Unknown) => hint(
            "the operator failed (HTTP 500); uid2d retries with backoff, nothing to fix on the device",
            Owner::Operator,
        ),
        (EventKind::Refresh | EventKind::Generate, S::Other) => hint(
            "an answer that is not the operator's (a proxy or captive portal) or a status this uid2d does not know: look at http_status and the journal line",
            Owner::Oem,
        ),
        _ => UNEXPECTED,
    }
}

/// The local causes: why uid2d did not ask the operator, or got no answer. The words of
/// an event's `reason` and of the journal (`UID2D_FAILURE_CLASS`), with their hints.
pub(crate) const CAUSES: [(&str, Hint); 20] = [
    ("clock_untrusted", hint("the device clock is not synchronised yet, and the operator refuses requests more than a minute off: nothing was sent; check NTP", Owner::Oem)),
    ("offline", hint("the device has no default route: nothing was sent; uid2d refreshes on its own when the network returns", Owner::Oem)),
    ("limit_ad_tracking", hint("the device's limit ad tracking setting is on: no token is served and nothing is sent, by the person's choice", Owner::User)),
    ("network", hint("the operator could not be reached (DNS, TLS, proxy, firewall): run uid2ctl doctor, whose operator line says why; uid2d retries", Owner::Oem)),
    ("timeout", hint("the operator did not answer within request_timeout: a slow network or operator; uid2d retries with backoff", Owner::Oem)),
    ("http_5xx", hint("the operator is failing or asked to slow down (5xx, 429): uid2d retries with backoff, nothing to fix on the device", Owner::Operator)),
    ("undecryptable", hint("the answer did not decrypt: the identity's refresh_response_key does not belong to its refresh token (changed in the publisher's backend), or something on the path altered the body", Owner::Publisher)),
    ("storage", hint("the app's state file could not be written (full or read-only state partition): uid2d keeps serving from memory and writes when it can; see uid2ctl doctor", Owner::Oem)),
    ("refresh_expired", hint("the refresh token's lifetime is over: the app needs a new identity from its backend or GenerateIdentity", Owner::Publisher)),
    ("opted_out_before", hint("this email or phone answered opt-out before, so generate was not sent again; a reset of the app's identity clears it", Owner::User)),
    ("app_name_denied", hint("the app asked to generate under another app's name, which uid2d refuses: the app must leave app_name out", Owner::Publisher)),
    ("gdpr_applies", hint("GDPR applies to this person, where UID2 is not offered: nothing is served; EUID is the product for the EEA and the UK", Owner::Nobody)),
    ("us_opt_out", hint("the person's US privacy signals opt out of sale, sharing or targeted advertising: nothing is served, as the law requires", Owner::User)),
    ("gdpr_not_applicable", hint("EUID needs GDPR to apply, and the signals say it does not here: UID2 is the product for this person", Owner::Nobody)),
    ("no_consent_signal", hint("EUID needs a TCF consent string and none was set: the app's CMP (SetPrivacySignals) or the device's must provide one", Owner::Publisher)),
    ("tcf_insufficient", hint("the TCF string lacks consent or legitimate interest for the vendor and purposes EUID needs: the person's choice in the CMP", Owner::User)),
    ("child", hint("the active profile is a child's: nothing is served", Owner::Nobody)),
    ("tracking_denied", hint("the person denied tracking authorization for this app: nothing is served until they allow it", Owner::User)),
    ("consent_granted", hint("nothing denies serving any more (signals, settings or profile changed): tokens are served and refreshing resumes", Owner::Nobody)),
    ("profile_switched", hint("another profile became active, or the profile's policy changed: the app now sees that profile's identity and decision", Owner::Nobody)),
];

/// The hint for a local cause `reason`, if it is one of [`CAUSES`].
pub(crate) fn for_cause(reason: &str) -> Option<Hint> {
    CAUSES
        .iter()
        .find(|(name, _)| *name == reason)
        .map(|(_, hint)| *hint)
}

/// The hint for one event: by its operator status when it has one, else by its reason.
/// `None` when neither names something in the table (e.g. an event without a cause).
pub(crate) fn for_event(kind: &str, operator_status: &str, reason: &str) -> Option<Hint> {
    let kind = EventKind::from_name(kind)?;
    match OperatorStatus::from_name(operator_status) {
        Some(status) => Some(for_operator(kind, status)),
        None => for_cause(reason),
    }
}

#[cfg(test)]
mod tests;
