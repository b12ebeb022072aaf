//! Which app is calling (`scope = "app"`): a pure function from what the bus and the
//! system report about a caller — its LSM label, its systemd unit, its Unix user — to an
//! app id, following the `[apps]` rules of the contract (`DESIGN.md`, "Who is the app").
//! No I/O here: reading the unit is [`crate::dbus`]'s job.

use std::collections::BTreeMap;
use std::fmt;

use regex_lite::Regex;

/// An app id: 1–128 characters of `[A-Za-z0-9._-]`, the first a letter or digit (the
/// contract's syntax). Anything else names no app.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct AppId(String);

/// Why a text is not an app id. Never echoes the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an app id is 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit")]
pub(crate) struct BadAppId;

impl AppId {
    pub(crate) const MAX_LEN: usize = 128;

    /// Checks `text` against the app-id syntax.
    pub(crate) fn new(text: &str) -> Result<Self, BadAppId> {
        let ok = (1..=Self::MAX_LEN).contains(&text.len())
            && text.starts_with(|c: char| c.is_ascii_alphanumeric())
            && is_id_text(text);
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(BadAppId)
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `text` is made of the characters of the contract's ids (app ids, profile ids):
/// `[A-Za-z0-9._-]`, which every file system and D-Bus string carries.
pub(crate) fn is_id_text(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The default `[apps] unit` pattern: the systemd/XDG application-launch convention,
/// `app-[<launcher>-]<app id>(-<random>.scope | @<random>.service | .service)`, where a
/// launcher has no dot and an app id is reverse-DNS (has a dot). Dashes inside the app id
/// are escaped by systemd as `\x2d`, so a bare `-` is always a separator.
pub(crate) const DEFAULT_UNIT_PATTERN: &str = r"^app-(?:[^.\-@\\]+-)?(?P<app>[^\-@]+\.[^\-@]+?)(?:-[^.\-@]+\.scope|@[^@]*\.service|\.service)$";

/// What to do with a caller no rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Unknown {
    /// Its own `uid-N` scope, as with `scope = "uid"`.
    #[default]
    Uid,
    /// Refused with `AccessDenied`.
    Deny,
}

/// A compiled `label`/`unit` pattern; the app id is its `app` group.
#[derive(Debug, Clone)]
pub(crate) struct Pattern(Regex);

/// Why a pattern was refused (config errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadPattern {
    #[error("not a regular expression: {0}")]
    Syntax(String),
    #[error("has no (?P<app>…) group to take the app id from")]
    NoAppGroup,
}

impl Pattern {
    pub(crate) fn new(text: &str) -> Result<Self, BadPattern> {
        let regex = Regex::new(text).map_err(|e| BadPattern::Syntax(e.to_string()))?;
        if !regex.capture_names().any(|name| name == Some("app")) {
            return Err(BadPattern::NoAppGroup);
        }
        Ok(Self(regex))
    }

    /// The `app` group of `text`, if the pattern matches.
    fn app<'t>(&self, text: &'t str) -> Option<&'t str> {
        Some(self.0.captures(text)?.name("app")?.as_str())
    }
}

/// What the bus and the system report about a caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CallerFacts {
    pub uid: u32,
    /// `LinuxSecurityLabel` of `GetConnectionCredentials` (SMACK, AppArmor, SELinux), as
    /// bytes; a trailing NUL is removed before matching.
    pub label: Option<Vec<u8>>,
    /// The systemd unit the caller's process runs in, e.g. `app-gnome-org.example.Tv-42.scope`.
    pub unit: Option<String>,
}

/// Who the caller is, for the access rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolution {
    App(AppId),
    /// No rule names it; `unknown = "uid"`.
    Uid(u32),
    /// No rule names it; `unknown = "deny"`.
    Unknown,
}

/// The `[apps]` rules, compiled.
#[derive(Debug, Clone)]
pub(crate) struct Resolver {
    pub label: Option<Pattern>,
    pub unit: Option<Pattern>,
    pub uids: BTreeMap<u32, AppId>,
    pub unknown: Unknown,
}

impl Resolver {
    /// The rules in the contract's order: label, unit, UID map, then `unknown`. A rule
    /// whose match is not a valid app id names no app (the next rule is tried).
    pub(crate) fn resolve(&self, facts: &CallerFacts) -> Resolution {
        let label = facts.label.as_deref().map(|label| {
            let label = label.strip_suffix(&[0]).unwrap_or(label);
            String::from_utf8_lossy(label).into_owned()
        });
        let from_label = self
            .label
            .as_ref()
            .zip(label.as_deref())
            .and_then(|(pattern, label)| pattern.app(label))
            .and_then(|id| AppId::new(id).ok());
        let from_unit = || {
            let (pattern, unit) = self.unit.as_ref().zip(facts.unit.as_deref())?;
            AppId::new(&unescape_unit(pattern.app(unit)?)).ok()
        };
        if let Some(app) = from_label
            .or_else(from_unit)
            .or_else(|| self.uids.get(&facts.uid).cloned())
        {
            return Resolution::App(app);
        }
        match self.unknown {
            Unknown::Uid => Resolution::Uid(facts.uid),
            Unknown::Deny => Resolution::Unknown,
        }
    }
}

/// Decodes systemd's `\xNN` escapes in a unit name part (`org.foo\x2dbar` → `org.foo-bar`).
/// A malformed escape is kept as it is (and then fails the app-id syntax).
pub(crate) fn unescape_unit(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("\\x") {
        out.push_str(&rest[..at]);
        let hex = rest.get(at + 2..at + 4);
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) if byte.is_ascii() => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            _ => {
                out.push_str("\\x");
                rest = &rest[at + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Which cgroup hierarchy a `/proc/PID/cgroup` path is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hierarchy {
    /// cgroup v2: the `0::` line.
    Unified,
    /// systemd's own cgroup v1 hierarchy (`name=systemd`), on a legacy set-up.
    Systemd,
}

/// The cgroup in a `/proc/PID/cgroup` text: the unified (`0::`) line's path, else the
/// `name=systemd` line's.
pub(crate) fn cgroup_of(text: &str) -> Option<(Hierarchy, &str)> {
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| (Hierarchy::Unified, path))
        .or_else(|| {
            text.lines().find_map(|line| {
                let (_, path) = line.split_once(":name=systemd:")?;
                Some((Hierarchy::Systemd, path))
            })
        })
}

/// Where `hierarchy` is mounted, from a `/proc/self/mountinfo` text (proc(5)): the first
/// such mount's root within the hierarchy (`/` unless only a subtree is mounted) and its
/// mount point. Octal escapes (`\040`) are left as they are: such a path is not found
/// later, which trusts nothing.
pub(crate) fn mount_of(mountinfo: &str, hierarchy: Hierarchy) -> Option<(&str, &str)> {
    mountinfo.lines().find_map(|line| {
        let (mount, filesystem) = line.split_once(" - ")?;
        let mut mount = mount.split(' ').skip(3);
        let (root, point) = (mount.next()?, mount.next()?);
        let mut filesystem = filesystem.split(' ');
        let (kind, _source) = (filesystem.next()?, filesystem.next()?);
        let options = filesystem.next().unwrap_or_default();
        let found = match hierarchy {
            Hierarchy::Unified => kind == "cgroup2",
            Hierarchy::Systemd => {
                kind == "cgroup" && options.split(',').any(|o| o == "name=systemd")
            }
        };
        found.then_some((root, point))
    })
}

/// The innermost systemd unit (`.scope` or `.service`) on the cgroup `path` whose name its
/// processes could not have chosen.
///
/// Whoever may write a cgroup directory may create cgroups in it under any name, and move
/// its own processes into them: that is how systemd hands a subtree to a user
/// (`Delegate=`, every `user@UID.service`, "Control Group APIs and Delegation"). So a name
/// counts only where every directory above it, from the hierarchy's root down, is one only
/// root may write, as `only_root_writes` says of a directory given by its path within the
/// hierarchy (`""` for the root). Below the first other directory nothing is trusted and
/// the innermost unit above it is the answer: the delegated unit itself, as systemd's
/// `GetUnitByPID` answers for any process in its subtree. A path leaving the reader's
/// cgroup namespace (`..`) names nothing.
pub(crate) fn trusted_unit(
    path: &str,
    mut only_root_writes: impl FnMut(&str) -> bool,
) -> Option<String> {
    let mut unit = None;
    let mut parent = String::new();
    for part in path.split('/').filter(|part| !part.is_empty()) {
        if part == ".." || part == "." {
            return None;
        }
        if !only_root_writes(&parent) {
            break;
        }
        if part.ends_with(".scope") || part.ends_with(".service") {
            unit = Some(part);
        }
        parent.push('/');
        parent.push_str(part);
    }
    unit.map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_unit() -> Pattern {
        Pattern::new(DEFAULT_UNIT_PATTERN).expect("the default pattern compiles")
    }

    #[test]
    fn app_ids_follow_the_contract_syntax() {
        for good in ["com.example.news", "a", "9x", "A.b_c-d", &"a".repeat(128)] {
            assert!(AppId::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".x",
            "-x",
            "_x",
            "a b",
            "a/b",
            "é",
            "a\\x2d",
            &"a".repeat(129),
        ] {
            assert_eq!(AppId::new(bad), Err(BadAppId), "{bad}");
        }
    }

    #[test]
    fn the_default_unit_pattern_reads_names_seen_in_the_wild() {
        let unit = default_unit();
        let table = [
            // GNOME Shell launching a desktop app.
            (
                "app-gnome-org.gnome.Terminal-4242.scope",
                Some("org.gnome.Terminal"),
            ),
            // KDE Plasma (no launcher part, service form).
            (
                "app-org.kde.konsole@a1b2c3.service",
                Some("org.kde.konsole"),
            ),
            // Flatpak-started.
            (
                "app-flatpak-org.mozilla.firefox-12345.scope",
                Some("org.mozilla.firefox"),
            ),
            // systemd-run --unit=app-… .
            ("app-com.example.news.service", Some("com.example.news")),
            (
                "app-tvlauncher-com.example.news@1.service",
                Some("com.example.news"),
            ),
            // A dash inside the app id, escaped by systemd.
            (
                "app-gnome-org.foo\\x2dbar.App-77.scope",
                Some("org.foo-bar.App"),
            ),
            // Not reverse-DNS: no app id.
            ("app-gnome-firefox-1234.scope", None),
            // Not an app unit.
            ("session-3.scope", None),
            ("user@1000.service", None),
            ("dbus.service", None),
            ("app.slice", None),
        ];
        for (name, expected) in table {
            let got = unit.app(name).map(unescape_unit);
            assert_eq!(got.as_deref(), expected, "{name}");
        }
    }

    #[test]
    fn the_cgroup_is_the_unified_line_else_systemds() {
        let unified = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-org.gnome.Terminal-4242.scope\n";
        assert_eq!(
            cgroup_of(unified),
            Some((
                Hierarchy::Unified,
                "/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-org.gnome.Terminal-4242.scope"
            ))
        );
        // The unified line wins when present, even at the root.
        let hybrid = "9:name=systemd:/system.slice/tv.service\n8:pids:/\n0::/\n";
        assert_eq!(cgroup_of(hybrid), Some((Hierarchy::Unified, "/")));
        let legacy = "9:name=systemd:/system.slice/app-com.example.news.service\n8:pids:/\n";
        assert_eq!(
            cgroup_of(legacy),
            Some((
                Hierarchy::Systemd,
                "/system.slice/app-com.example.news.service"
            ))
        );
        assert_eq!(cgroup_of("garbage"), None);
    }

    #[test]
    fn hierarchies_are_found_in_mountinfo() {
        let mountinfo = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/pids rw,nosuid shared:12 - cgroup cgroup rw,pids
";
        assert_eq!(
            mount_of(mountinfo, Hierarchy::Unified),
            Some(("/", "/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            mount_of(mountinfo, Hierarchy::Systemd),
            Some(("/", "/sys/fs/cgroup/systemd"))
        );
        let container =
            "40 39 0:30 /machine.slice/tv.scope /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n";
        assert_eq!(
            mount_of(container, Hierarchy::Unified),
            Some(("/machine.slice/tv.scope", "/sys/fs/cgroup"))
        );
        assert_eq!(mount_of(container, Hierarchy::Systemd), None);
        assert_eq!(mount_of("garbage\n", Hierarchy::Unified), None);
    }

    #[test]
    fn units_below_a_directory_a_user_may_write_are_not_trusted() {
        // Directories systemd hands to a user (chowned to it), by their path.
        let delegated = [
            "/user.slice/user-1000.slice/user@1000.service",
            "/system.slice/tv.service",
        ];
        let only_root = |dir: &str| {
            !delegated
                .iter()
                .any(|d| dir == *d || dir.starts_with(&format!("{d}/")))
        };
        let table = [
            // A unit systemd made for the app: every directory above it is root's.
            ("/app.slice/app-tv-com.example.news-7.scope", Some("app-tv-com.example.news-7.scope")),
            ("/system.slice/app-com.example.news.service", Some("app-com.example.news.service")),
            // Made by the user's own manager (or by the user) in its delegated subtree: the
            // delegated unit is the answer, as GetUnitByPID would say.
            (
                "/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-org.gnome.Terminal-4242.scope",
                Some("user@1000.service"),
            ),
            ("/system.slice/tv.service/app-tv-com.example.news-9.scope", Some("tv.service")),
            ("/system.slice/tv.service/x/y/app-tv-com.example.news-9.scope", Some("tv.service")),
            // No unit at all, or outside the reader's namespace.
            ("/", None),
            ("/init.scope/../app-tv-com.example.news-7.scope", None),
        ];
        for (path, expected) in table {
            assert_eq!(trusted_unit(path, only_root).as_deref(), expected, "{path}");
        }
        // A root directory others may write trusts nothing.
        assert_eq!(
            trusted_unit("/app-tv-com.example.news-7.scope", |_| false),
            None
        );
    }

    fn resolver(unknown: Unknown) -> Resolver {
        Resolver {
            label: Some(Pattern::new("^User::Pkg::(?P<app>[^:]+)$").unwrap()),
            unit: Some(default_unit()),
            uids: BTreeMap::from([(1001, AppId::new("com.example.mapped").unwrap())]),
            unknown,
        }
    }

    #[test]
    fn the_rules_apply_in_order_label_unit_uid_then_unknown() {
        let r = resolver(Unknown::Uid);
        let app = |id: &str| Resolution::App(AppId::new(id).unwrap());
        let facts = |uid, label: Option<&[u8]>, unit: Option<&str>| CallerFacts {
            uid,
            label: label.map(<[u8]>::to_vec),
            unit: unit.map(str::to_owned),
        };
        let unit = Some("app-tv-com.example.unit-1.scope");
        let table = [
            // SMACK-shaped label (with the bus's trailing NUL) wins over everything.
            (
                facts(1001, Some(b"User::Pkg::com.example.smack\0"), unit),
                app("com.example.smack"),
            ),
            // AppArmor- and SELinux-shaped labels do not match this pattern: the unit decides.
            (
                facts(1000, Some(b"/usr/bin/tvapp (enforce)"), unit),
                app("com.example.unit"),
            ),
            (
                facts(1000, Some(b"system_u:system_r:tv_app_t:s0"), unit),
                app("com.example.unit"),
            ),
            // A label whose app part is not an app id names no app.
            (
                facts(1000, Some(b"User::Pkg::bad id"), None),
                Resolution::Uid(1000),
            ),
            // The UID map.
            (
                facts(1001, None, Some("session-2.scope")),
                app("com.example.mapped"),
            ),
            // Nothing names it.
            (facts(1002, None, None), Resolution::Uid(1002)),
        ];
        for (facts, expected) in table {
            assert_eq!(r.resolve(&facts), expected, "{facts:?}");
        }
        let deny = resolver(Unknown::Deny);
        assert_eq!(deny.resolve(&facts(1002, None, None)), Resolution::Unknown);
        // AppArmor and SELinux shapes with patterns written for them.
        let apparmor = Resolver {
            label: Some(Pattern::new(r"^tvapp\.(?P<app>[A-Za-z0-9.]+) \(enforce\)$").unwrap()),
            ..resolver(Unknown::Deny)
        };
        assert_eq!(
            apparmor.resolve(&facts(5, Some(b"tvapp.com.example.aa (enforce)\0"), None)),
            app("com.example.aa")
        );
        let selinux = Resolver {
            label: Some(Pattern::new(r"^u:r:app_(?P<app>[a-z0-9_]+)_t:s0$").unwrap()),
            ..resolver(Unknown::Deny)
        };
        assert_eq!(
            selinux.resolve(&facts(5, Some(b"u:r:app_news_t:s0"), None)),
            app("news")
        );
    }

    #[test]
    fn patterns_need_an_app_group() {
        assert_eq!(Pattern::new("^x$").unwrap_err(), BadPattern::NoAppGroup);
        assert!(matches!(
            Pattern::new("(").unwrap_err(),
            BadPattern::Syntax(_)
        ));
    }

    #[test]
    fn escapes_decode_and_bad_ones_stay() {
        assert_eq!(unescape_unit(r"a\x2db\x2ec"), "a-b.c");
        assert_eq!(unescape_unit(r"a\x2"), r"a\x2");
        assert_eq!(unescape_unit(r"a\xzz"), r"a\xzz");
    }
}
