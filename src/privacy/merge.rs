//! The three layers of signals merged key by key: an app's key wins over the device's, the
//! device's over the config's (`[privacy.device]`). Borrowing, so a decision per call costs
//! no copy.

use super::signals::{GppSid, GppString, Signals, TcString, UsPrivacy};

/// Where a signal came from: `GetConsent`'s `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Source {
    /// No layer holds a signal that decided.
    None,
    /// `[privacy.device]` in the config.
    Config,
    /// `com.uid2.Privacy1.SetDevicePrivacySignals`.
    Device,
    /// The app's own `SetPrivacySignals`.
    App,
}

impl Source {
    /// `app`, `device`, `config` or `none`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::None => "none",
            Source::Config => "config",
            Source::Device => "device",
            Source::App => "app",
        }
    }
}

/// Each key's winning value and the layer it came from.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Merged<'a> {
    pub(crate) tc_string: Option<(&'a TcString, Source)>,
    pub(crate) gdpr_applies: Option<(bool, Source)>,
    pub(crate) gpp_string: Option<(&'a GppString, Source)>,
    pub(crate) gpp_sid: Option<(&'a GppSid, Source)>,
    pub(crate) us_privacy: Option<(&'a UsPrivacy, Source)>,
}

/// Merges the layers key by key: `app` over `device` over `config`.
pub(crate) fn merge<'a>(app: &'a Signals, device: &'a Signals, config: &'a Signals) -> Merged<'a> {
    let layers = [
        (app, Source::App),
        (device, Source::Device),
        (config, Source::Config),
    ];
    fn first<'a, T: 'a>(
        layers: &[(&'a Signals, Source); 3],
        get: impl Fn(&'a Signals) -> Option<T>,
    ) -> Option<(T, Source)> {
        layers
            .iter()
            .find_map(|(signals, source)| Some((get(signals)?, *source)))
    }
    Merged {
        tc_string: first(&layers, |s| s.tc_string.as_ref()),
        gdpr_applies: first(&layers, |s| s.gdpr_applies),
        gpp_string: first(&layers, |s| s.gpp_string.as_ref()),
        gpp_sid: first(&layers, |s| s.gpp_sid.as_ref()),
        us_privacy: first(&layers, |s| s.us_privacy.as_ref()),
    }
}

impl Merged<'_> {
    /// The most specific layer that gave any key; [`Source::None`] when none did.
    pub(crate) fn top_source(&self) -> Source {
        [
            self.tc_string.map(|(_, s)| s),
            self.gdpr_applies.map(|(_, s)| s),
            self.gpp_string.map(|(_, s)| s),
            self.gpp_sid.map(|(_, s)| s),
            self.us_privacy.map(|(_, s)| s),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(Source::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::signals::Raw;

    #[test]
    fn each_key_comes_from_the_most_specific_layer_that_sets_it() {
        let app = Signals::of(&[("IABUSPrivacy_String", Raw::Str("1YYN"))]);
        let device = Signals::of(&[
            ("IABUSPrivacy_String", Raw::Str("1NNN")),
            ("IABTCF_gdprApplies", Raw::Int(0)),
        ]);
        let config = Signals::of(&[
            ("IABTCF_gdprApplies", Raw::Int(1)),
            ("IABGPP_GppSID", Raw::Str("7")),
        ]);
        let merged = merge(&app, &device, &config);
        let (usp, source) = merged.us_privacy.expect("us_privacy");
        assert_eq!((usp.as_str(), source), ("1YYN", Source::App));
        assert_eq!(merged.gdpr_applies, Some((false, Source::Device)));
        let (sid, source) = merged.gpp_sid.expect("gpp_sid");
        assert_eq!((sid.ids(), source), (Some(&[7][..]), Source::Config));
        assert!(merged.tc_string.is_none() && merged.gpp_string.is_none());
        assert_eq!(merged.top_source(), Source::App);

        let empty = Signals::default();
        assert_eq!(merge(&empty, &empty, &config).top_source(), Source::Config);
        assert_eq!(merge(&empty, &empty, &empty).top_source(), Source::None);
    }
}
