use std::collections::BTreeSet;
use std::path::Path;

use super::keys::{Part, KEYS};
use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("uid2d.toml"))
}

/// Files to create: (path relative to the root, contents).
type Files<'a> = &'a [(&'a str, &'a str)];

/// A temporary root holding `vendor.toml`, `main.toml` and `main.toml.d/`.
struct Root {
    dir: tempfile::TempDir,
    paths: ConfigPaths,
}

impl Root {
    /// `files`: (path relative to the root, contents); a path ending in `/` is a directory.
    fn new(files: Files) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            if name.ends_with('/') {
                std::fs::create_dir_all(&path).unwrap();
            } else {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, text).unwrap();
            }
        }
        let paths = ConfigPaths {
            vendor: dir.path().join("vendor.toml"),
            ..ConfigPaths::for_file(&dir.path().join("main.toml"))
        };
        Self { dir, paths }
    }

    fn load(&self) -> Result<Config, ConfigError> {
        Config::load(&self.paths)
    }
}

#[test]
fn empty_file_and_missing_files_are_defaults() {
    let config = parse("").unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(
        config.reloadable.base_url.as_str(),
        "https://prod.uidapi.com/"
    );
    assert_eq!(config.startup.scope, ScopeMode::Uid);
    assert_eq!(config.reloadable.log_level, LogLevel::Info);
    assert_eq!(config.reloadable.request_timeout.as_secs(), 30);
    assert_eq!(config.reloadable.network_return_spread.as_secs(), 30);
    assert!(!config.startup.rtc);
    assert_eq!(Root::new(&[]).load().unwrap(), Config::default());
}

#[test]
fn every_key_parses() {
    let config = parse(
        r#"
        environment = "euid-integration"
        ca_file = "/etc/uid2d/ca.pem"
        scope = "device"
        device_group = "tvapps"
        admin_group = "tvsettings"
        log_level = "debug"
        rtc = true
        request_timeout = 5
        [generate]
        subscription_id = "sub"
        public_key = "UID2-X-L-key"
        app_name = "com.example.tv"
        "#,
    )
    .unwrap();
    let (startup, reloadable) = (&config.startup, &config.reloadable);
    assert_eq!(reloadable.environment, Environment::EuidIntegration);
    assert_eq!(reloadable.base_url.as_str(), "https://integ.euid.eu/v2");
    assert_eq!(
        reloadable.ca_file.as_deref(),
        Some(Path::new("/etc/uid2d/ca.pem"))
    );
    assert_eq!(startup.scope, ScopeMode::Device);
    assert_eq!(startup.device_group.as_deref(), Some("tvapps"));
    assert_eq!(startup.admin_group.as_deref(), Some("tvsettings"));
    assert_eq!(reloadable.log_level, LogLevel::Debug);
    assert!(startup.rtc);
    assert_eq!(reloadable.request_timeout.as_secs(), 5);
    assert_eq!(reloadable.generate.subscription_id.as_deref(), Some("sub"));
    assert_eq!(
        reloadable.generate.public_key.as_deref(),
        Some("UID2-X-L-key")
    );
    assert_eq!(
        reloadable.generate.app_name.as_deref(),
        Some("com.example.tv")
    );
}

#[test]
fn every_environment_has_its_documented_base() {
    let names = [
        ("production", "https://prod.uidapi.com/"),
        ("integration", "https://operator-integ.uidapi.com/"),
        ("oregon", "https://usw.prod.uidapi.com/"),
        ("singapore", "https://sg.prod.uidapi.com/"),
        ("sydney", "https://au.prod.uidapi.com/"),
        ("tokyo", "https://jp.prod.uidapi.com/"),
        ("global", "https://global.prod.uidapi.com/"),
        ("euid-production", "https://prod.euid.eu/v2"),
        ("euid-integration", "https://integ.euid.eu/v2"),
    ];
    assert_eq!(names.len(), Environment::ALL.len());
    for (name, base) in names {
        let config = parse(&format!("environment = \"{name}\"")).unwrap();
        assert_eq!(config.reloadable.base_url.as_str(), base, "{name}");
        assert_eq!(
            config.reloadable.environment.is_euid(),
            name.starts_with("euid")
        );
    }
}

#[test]
fn unknown_keys_and_bad_values_name_the_key() {
    let cases = [
        ("enviroment = \"production\"", "`enviroment`"),
        ("environment = \"mars\"", "`environment`"),
        ("scope = \"apps\"", "`scope`"),
        ("[apps]\nlabel = \"(\"", "`apps.label`"),
        ("[apps]\nlabel = \"^x$\"", "`apps.label`"),
        ("[apps]\nunit = \"^app-(?P<app>\"", "`apps.unit`"),
        (
            "[apps]\nuids = { \"me\" = \"com.example.a\" }",
            "`apps.uids`",
        ),
        ("[apps]\nuids = { \"1001\" = \"not an id\" }", "`apps.uids`"),
        ("[apps]\nunknown = \"ignore\"", "`apps.unknown`"),
        ("[apps]\nbroker_group = \"\"", "`apps.broker_group`"),
        (
            "[apps]\ncstg_app_names = { \".bad\" = \"x\" }",
            "`apps.cstg_app_names`",
        ),
        (
            "[apps]\ncstg_app_names = { \"com.example.a\" = \"\" }",
            "`apps.cstg_app_names`",
        ),
        ("max_scopes = 0", "`max_scopes`"),
        ("[apps]\nother = 1", "`apps.other`"),
        ("log_level = \"trace\"", "`log_level`"),
        ("rtc = \"yes\"", "`rtc`"),
        ("[generate]\napp = \"x\"", "`generate.app`"),
        ("generate.app_name = 3", "`generate.app_name`"),
        ("generate = 3", "`generate`"),
        ("[generate.deeper]\nx = 1", "`generate.deeper`"),
        ("base_url = \"http://operator.example.com\"", "`base_url`"),
        ("base_url = \"ftp://localhost\"", "`base_url`"),
        ("base_url = \"not a url\"", "`base_url`"),
        ("scope = \"device\"", "`device_group`"),
        ("[generate]\napp_name = \"\"", "`generate.app_name`"),
        ("admin_group = \"\"", "`admin_group`"),
        ("ca_file = \"\"", "`ca_file`"),
        ("request_timeout = 0", "`request_timeout`"),
        ("request_timeout = 301", "`request_timeout`"),
        ("request_timeout = -1", "`request_timeout`"),
        ("request_timeout = \"30s\"", "`request_timeout`"),
        ("network_return_spread = 601", "`network_return_spread`"),
        ("network_return_spread = -1", "`network_return_spread`"),
        (
            "[diagnostics]\ntextfile = \"uid2d.prom\"",
            "`diagnostics.textfile`",
        ),
        (
            "[diagnostics]\ntextfile = \"/run/uid2d.txt\"",
            "`diagnostics.textfile`",
        ),
        (
            "[diagnostics]\ntextfile_interval = 0",
            "`diagnostics.textfile_interval`",
        ),
        (
            "[diagnostics]\napp_events = 257",
            "`diagnostics.app_events`",
        ),
    ];
    for (text, key) in cases {
        let message = parse(text).unwrap_err().to_string();
        assert!(message.contains(key), "{text:?} gave {message:?}");
        assert!(message.starts_with("uid2d.toml: "), "{message}");
        assert!(!message.contains('\n'), "{message:?}");
    }
    // An unknown key's message lists the keys known beside it.
    let message = parse("[generate]\napp = \"x\"").unwrap_err().to_string();
    assert!(
        message.ends_with("(known: subscription_id, public_key, app_name)"),
        "{message}"
    );
    let message = parse("x = 1").unwrap_err().to_string();
    assert!(
        message.contains(
            "rtc, max_scopes, generate, apps, euid, diagnostics, privacy, eids, capabilities, profiles)"
        ),
        "{message}"
    );
    // Syntax errors are one line too, with the file's name.
    let message = parse("rtc = \n").unwrap_err().to_string();
    assert!(message.starts_with("uid2d.toml: "), "{message}");
    assert!(!message.contains('\n'), "{message:?}");
}

#[test]
fn http_is_allowed_to_loopback_only() {
    for url in [
        "http://127.0.0.1:8080",
        "http://localhost:1",
        "http://[::1]:2",
    ] {
        assert!(parse(&format!("base_url = \"{url}\"")).is_ok(), "{url}");
    }
    let config = parse("base_url = \"https://operator.example.com/some/path\"").unwrap();
    assert_eq!(
        config.reloadable.base_url.host_str(),
        Some("operator.example.com")
    );
}

/// What the layering tests look at: log_level, request_timeout, [generate]'s
/// subscription_id and app_name.
type Seen = (LogLevel, u64, Option<String>, Option<String>);

fn seen(config: &Config) -> Seen {
    let r = &config.reloadable;
    (
        r.log_level,
        r.request_timeout.as_secs(),
        r.generate.subscription_id.clone(),
        r.generate.app_name.clone(),
    )
}

#[test]
fn later_layers_override_the_keys_they_set() {
    use LogLevel::*;
    let some = |s: &str| Some(s.to_owned());
    let cases: [(&str, Files, Seen); 9] = [
        ("nothing", &[], (Info, 30, None, None)),
        (
            "vendor only",
            &[("vendor.toml", "log_level = \"debug\"\nrequest_timeout = 5")],
            (Debug, 5, None, None),
        ),
        (
            "main over vendor, per key",
            &[
                ("vendor.toml", "log_level = \"debug\"\nrequest_timeout = 5"),
                ("main.toml", "log_level = \"warn\""),
            ],
            (Warn, 5, None, None),
        ),
        (
            "drop-in over main and vendor",
            &[
                ("vendor.toml", "log_level = \"debug\""),
                ("main.toml", "log_level = \"warn\"\nrequest_timeout = 7"),
                ("main.toml.d/50-x.toml", "log_level = \"error\""),
            ],
            (Error, 7, None, None),
        ),
        (
            "drop-in without main",
            &[
                ("vendor.toml", "request_timeout = 9"),
                ("main.toml.d/50-x.toml", "log_level = \"error\""),
            ],
            (Error, 9, None, None),
        ),
        (
            "drop-ins in lexical, not numeric, order",
            &[
                ("main.toml.d/9-c.toml", "log_level = \"debug\""),
                (
                    "main.toml.d/10-a.toml",
                    "log_level = \"error\"\nrequest_timeout = 3",
                ),
                ("main.toml.d/20-b.toml", "log_level = \"warn\""),
            ],
            (Debug, 3, None, None),
        ),
        (
            "hidden files, other names and directories are not drop-ins",
            &[
                ("main.toml.d/.hidden.toml", "log_level = \"error\""),
                ("main.toml.d/50-x.toml.bak", "log_level = \"error\""),
                ("main.toml.d/50-x.conf", "log_level = \"error\""),
                ("main.toml.d/toml", "log_level = \"error\""),
                ("main.toml.d/dir.toml/", ""),
                ("main.toml.d/50-x.toml", "log_level = \"warn\""),
            ],
            (Warn, 30, None, None),
        ),
        (
            "[generate] merges per key",
            &[
                (
                    "vendor.toml",
                    "[generate]\nsubscription_id = \"vendor\"\napp_name = \"vendor.app\"",
                ),
                (
                    "main.toml.d/50-x.toml",
                    "generate.app_name = \"device.app\"",
                ),
            ],
            (Info, 30, some("vendor"), some("device.app")),
        ),
        (
            "an empty [generate] keeps the earlier values",
            &[
                ("vendor.toml", "[generate]\nsubscription_id = \"vendor\""),
                ("main.toml", "[generate]\n"),
            ],
            (Info, 30, some("vendor"), None),
        ),
    ];
    for (name, files, expected) in cases {
        let config = Root::new(files)
            .load()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(seen(&config), expected, "{name}");
    }
}

#[test]
fn an_error_in_any_layer_names_that_file_and_the_key() {
    let cases: [(&str, Files, &str, &str); 6] = [
        (
            "unknown key in a drop-in",
            &[
                ("main.toml", "log_level = \"warn\""),
                ("main.toml.d/10-ok.toml", "rtc = true"),
                ("main.toml.d/20-bad.toml", "[generate]\napp = \"x\""),
            ],
            "main.toml.d/20-bad.toml",
            "`generate.app`",
        ),
        (
            "bad value in the vendor file",
            &[("vendor.toml", "request_timeout = 0"), ("main.toml", "")],
            "vendor.toml",
            "`request_timeout`",
        ),
        (
            "unknown key in the main file",
            &[("main.toml", "scopes = \"uid\"")],
            "main.toml",
            "`scopes`",
        ),
        (
            "syntax error in a drop-in",
            &[("main.toml.d/50-x.toml", "rtc = ")],
            "main.toml.d/50-x.toml",
            "",
        ),
        (
            "device scope without a group names the file that asked for it",
            &[
                ("vendor.toml", "admin_group = \"tvsettings\""),
                ("main.toml.d/50-device.toml", "scope = \"device\""),
            ],
            "main.toml.d/50-device.toml",
            "`device_group`",
        ),
        (
            "a later layer does not hide an earlier bad one",
            &[
                ("vendor.toml", "log_level = \"loud\""),
                ("main.toml", "log_level = \"info\""),
            ],
            "vendor.toml",
            "`log_level`",
        ),
    ];
    for (name, files, file, key) in cases {
        let root = Root::new(files);
        let message = root.load().unwrap_err().to_string();
        let path = root.dir.path().join(file);
        assert!(
            message.starts_with(&format!("{}: ", path.display())),
            "{name}: {message}"
        );
        assert!(message.contains(key), "{name}: {message}");
    }
    // A device group from another layer satisfies the device scope.
    let root = Root::new(&[
        ("vendor.toml", "device_group = \"tvapps\""),
        ("main.toml.d/50-device.toml", "scope = \"device\""),
    ]);
    assert_eq!(root.load().unwrap().startup.scope, ScopeMode::Device);
}

#[test]
fn an_unreadable_drop_in_directory_is_an_error_naming_it() {
    let root = Root::new(&[("main.toml.d", "not a directory")]);
    let message = root.load().unwrap_err().to_string();
    let dir = root.dir.path().join("main.toml.d");
    assert!(
        message.starts_with(&format!("cannot read {}: ", dir.display())),
        "{message}"
    );
}

#[test]
fn config_file_takes_the_place_of_the_main_file_with_its_own_drop_ins() {
    assert_eq!(
        ConfigPaths::system(),
        ConfigPaths {
            vendor: "/usr/lib/uid2d/uid2d.toml".into(),
            main: "/etc/uid2d/uid2d.toml".into(),
            dropins: "/etc/uid2d/uid2d.toml.d".into(),
        }
    );
    let custom = ConfigPaths::for_file(Path::new("/srv/uid2d/test.toml"));
    assert_eq!(custom.vendor, Path::new("/usr/lib/uid2d/uid2d.toml"));
    assert_eq!(custom.main, Path::new("/srv/uid2d/test.toml"));
    assert_eq!(custom.dropins, Path::new("/srv/uid2d/test.toml.d"));

    // Loaded: the vendor file first, then FILE, then FILE.d; /etc's drop-ins are not
    // FILE's.
    let root = Root::new(&[
        ("vendor.toml", "log_level = \"debug\"\nrequest_timeout = 5"),
        ("custom.toml", "request_timeout = 6\nrtc = true"),
        ("custom.toml.d/50-x.toml", "log_level = \"warn\""),
        ("main.toml.d/50-x.toml", "log_level = \"error\""),
    ]);
    let paths = ConfigPaths {
        vendor: root.paths.vendor.clone(),
        ..ConfigPaths::for_file(&root.dir.path().join("custom.toml"))
    };
    let config = Config::load(&paths).unwrap();
    assert_eq!(seen(&config), (LogLevel::Warn, 6, None, None));
    assert!(config.startup.rtc);
}

#[test]
fn a_reload_names_the_start_up_keys_it_cannot_apply() {
    let base = "scope = \"device\"\ndevice_group = \"tvapps\"\nlog_level = \"info\"";
    let cases: [(&str, &[&str]); 7] = [
        (base, &[]),
        (
            "scope = \"device\"\ndevice_group = \"tvapps\"\nlog_level = \"debug\"\n\
             request_timeout = 9\nenvironment = \"integration\"\n[generate]\napp_name = \"a\"",
            &[],
        ),
        ("scope = \"uid\"\ndevice_group = \"tvapps\"", &["scope"]),
        ("", &["scope", "device_group"]),
        (
            "scope = \"device\"\ndevice_group = \"other\"\nadmin_group = \"tvsettings\"",
            &["device_group", "admin_group"],
        ),
        (
            "scope = \"device\"\ndevice_group = \"tvapps\"\nrtc = true",
            &["rtc"],
        ),
        (
            "device_group = \"x\"\nadmin_group = \"y\"\nrtc = true",
            &["scope", "device_group", "admin_group", "rtc"],
        ),
    ];
    let running = parse(base).unwrap();
    for (text, expected) in cases {
        let new = parse(text).unwrap();
        assert_eq!(running.restart_needed(&new), expected, "{text:?}");
        // What runs afterwards: the new reloadable part, the running start-up part.
        let after = running.reloaded(new.clone());
        assert_eq!(after.startup, running.startup, "{text:?}");
        assert_eq!(after.reloadable, new.reloadable, "{text:?}");
        assert!(after.restart_needed(&running).is_empty());
    }
}

#[test]
fn restart_needed_covers_exactly_the_start_up_keys_of_the_table() {
    let running = Config::default();
    let all = parse(concat!(
        "scope = \"device\"\ndevice_group = \"g\"\nadmin_group = \"a\"\nrtc = true\n",
        "max_scopes = 9\n[apps]\nlabel = \"^(?P<app>.+)$\"\nunit = \"\"\n",
        "uids = { \"1\" = \"com.example.a\" }\nunknown = \"deny\"\nbroker_group = \"b\"\n",
        "[euid]\nenabled = false\n[diagnostics]\napp_events = 0\n",
        "[capabilities]\ndefault = [\"token\"]\ngroups = { \"g\" = [\"manage\"] }\n",
        "[profiles]\nenabled = true\nsource = \"logind\"\nmanager_group = \"p\"\n",
    ))
    .unwrap();
    let restart: BTreeSet<&str> = running.restart_needed(&all).into_iter().collect();
    // App entries are not keys of the table: any app id may be one.
    assert!(!restart.contains("capabilities.<app id>"));
    let with_app = parse("[capabilities]\n\"com.example.a\" = []").unwrap();
    assert_eq!(running.restart_needed(&with_app), ["capabilities.<app id>"]);
    let startup: BTreeSet<&str> = KEYS
        .iter()
        .filter(|key| key.part == Part::Startup)
        .map(|key| key.name)
        .collect();
    assert_eq!(restart, startup);
}

#[test]
fn profiles_table_defaults_keys_and_a_reload_that_changes_it() {
    use crate::profile::{ProfileSource, ProfilesConfig};
    let defaults = parse("").unwrap();
    assert_eq!(defaults.startup.profiles, ProfilesConfig::default());
    assert!(!defaults.startup.profiles.enabled);
    let on =
        parse("[profiles]\nenabled = true\nsource = \"logind\"\nmanager_group = \"tvprofiles\"")
            .unwrap();
    assert_eq!(
        on.startup.profiles,
        ProfilesConfig {
            enabled: true,
            source: ProfileSource::Logind,
            manager_group: Some("tvprofiles".into()),
        }
    );
    // A reload keeps the running [profiles] and names each changed key.
    assert_eq!(
        defaults.restart_needed(&on),
        [
            "profiles.enabled",
            "profiles.source",
            "profiles.manager_group"
        ]
    );
    assert_eq!(
        defaults.reloaded(on).startup.profiles,
        ProfilesConfig::default()
    );
    for (text, key) in [
        ("[profiles]\nenabled = \"yes\"", "profiles.enabled"),
        ("[profiles]\nsource = \"dbus\"", "profiles.source"),
        ("[profiles]\nmanager_group = \"\"", "profiles.manager_group"),
    ] {
        let e = parse(text).expect_err(text).to_string();
        assert!(e.contains(key), "{e}");
    }
    let e = parse("[profiles]\nenable = true")
        .expect_err("unknown")
        .to_string();
    assert!(
        e.contains("profiles.enable") && e.contains("manager_group"),
        "{e}"
    );
}

#[test]
fn euid_table_defaults_keys_and_the_euid_config() {
    let defaults = parse("").unwrap();
    assert!(defaults.startup.euid_enabled);
    let euid = &defaults.reloadable.euid;
    assert_eq!(euid.environment, Environment::EuidProduction);
    assert_eq!(euid.base_url.as_str(), "https://prod.euid.eu/v2");
    assert_eq!(euid.generate, GenerateConfig::default());

    let config = parse(
        r#"
        environment = "integration"
        [generate]
        app_name = "uid2.app"
        [euid]
        enabled = false
        environment = "euid-integration"
        [euid.generate]
        subscription_id = "eu-sub"
        public_key = "EUID-X-I-key"
        app_name = "euid.app"
        "#,
    )
    .unwrap();
    assert!(!config.startup.euid_enabled);
    let euid = config.for_euid();
    assert_eq!(euid.reloadable.environment, Environment::EuidIntegration);
    assert_eq!(
        euid.reloadable.base_url.as_str(),
        "https://integ.euid.eu/v2"
    );
    assert_eq!(
        euid.reloadable.generate.app_name.as_deref(),
        Some("euid.app")
    );
    assert_eq!(
        euid.reloadable.generate.subscription_id.as_deref(),
        Some("eu-sub")
    );
    // Everything else is the top-level config's; the top level is untouched.
    assert_eq!(euid.startup, config.startup);
    assert_eq!(
        euid.reloadable.request_timeout,
        config.reloadable.request_timeout
    );
    assert_eq!(config.reloadable.environment, Environment::Integration);
    assert_eq!(
        config.reloadable.generate.app_name.as_deref(),
        Some("uid2.app")
    );

    // base_url wins over the environment, as at the top level.
    let custom = parse("[euid]\nbase_url = \"https://127.0.0.1:8443/v2\"").unwrap();
    assert_eq!(
        custom.for_euid().reloadable.base_url.as_str(),
        "https://127.0.0.1:8443/v2"
    );
    assert_eq!(
        custom.for_euid().reloadable.environment,
        Environment::EuidProduction
    );

    // Bad values name the dotted key.
    for (text, key, reason) in [
        (
            "[euid]\nenvironment = \"production\"",
            "euid.environment",
            "euid-production",
        ),
        (
            "[euid]\nenvironment = \"mars\"",
            "euid.environment",
            "unknown variant",
        ),
        ("[euid]\nenabled = \"yes\"", "euid.enabled", "bool"),
        (
            "[euid]\nbase_url = \"http://example.com/v2\"",
            "euid.base_url",
            "loopback",
        ),
        (
            "[euid.generate]\napp_name = \"\"",
            "euid.generate.app_name",
            "empty",
        ),
        ("euid = 1", "euid", "table"),
    ] {
        let message = parse(text).unwrap_err().to_string();
        assert!(
            message.contains(&format!("`{key}`")) && message.contains(reason),
            "{text:?}: {message}"
        );
    }
    let unknown = parse("[euid]\nscope = \"uid\"").unwrap_err().to_string();
    assert!(unknown.contains("`euid.scope`"), "{unknown}");
    assert!(
        unknown.contains("enabled, environment, base_url, generate"),
        "{unknown}"
    );

    // enabled needs a restart; the rest of [euid] is reloaded.
    let running = parse("").unwrap();
    assert_eq!(
        running.restart_needed(&parse("[euid]\nenabled = false").unwrap()),
        ["euid.enabled"]
    );
    assert!(running
        .restart_needed(&parse("[euid]\nenvironment = \"euid-integration\"").unwrap())
        .is_empty());
}

/// `dist/uid2d.toml`'s keys, commented out or not: (dotted name, line without the `#`).
fn dist_keys(dist: &str) -> Vec<(String, String)> {
    let mut table = String::new();
    let mut keys = Vec::new();
    for line in dist.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = format!("{name}.");
        } else if let Some((key, _)) = line.split_once(" = ") {
            // Lower case, or an IAB key name (`IABTCF_TCString`).
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                keys.push((format!("{table}{key}"), line.to_owned()));
            }
        }
    }
    keys
}

#[test]
fn dist_config_names_every_key_and_its_examples_are_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/uid2d.toml");
    let dist = std::fs::read_to_string(&path).unwrap();
    let named: BTreeSet<String> = dist_keys(&dist).into_iter().map(|(k, _)| k).collect();
    let known: BTreeSet<String> = KEYS.iter().map(|key| key.name.to_owned()).collect();
    assert_eq!(
        named, known,
        "dist/uid2d.toml must name every key of config::keys::KEYS, and no other"
    );
    // As shipped it changes nothing: every key is commented out.
    assert_eq!(Config::parse(&dist, &path).unwrap(), Config::default());
    // Uncommented, every example value is accepted.
    let uncommented: String = dist
        .lines()
        .map(|line| line.trim_start_matches('#').trim())
        .filter(|line| {
            (line.starts_with('[') && line.ends_with(']')) || !dist_keys(line).is_empty()
        })
        .map(|line| format!("{line}\n"))
        .collect();
    Config::parse(&uncommented, &path).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
}

#[test]
fn apps_keys_parse_into_the_rules() {
    let config = parse(concat!(
        "scope = \"app\"\n[apps]\nlabel = '^User::Pkg::(?P<app>[^:]+)$'\nunit = \"\"\n",
        "uids = { \"1001\" = \"com.example.news\" }\nunknown = \"deny\"\n",
        "broker_group = \"tvruntime\"\n",
        "cstg_app_names = { \"com.example.news\" = \"com.example.news.tv\" }\n",
    ))
    .unwrap();
    let apps = &config.startup.apps;
    assert_eq!(config.startup.scope, ScopeMode::App);
    assert_eq!(apps.unit, None, "unit = \"\" disables the unit rule");
    assert_eq!(apps.unknown, crate::apps::Unknown::Deny);
    assert_eq!(apps.broker_group.as_deref(), Some("tvruntime"));
    assert_eq!(
        apps.uids.get(&1001).map(|a| a.as_str()),
        Some("com.example.news")
    );
    let app = crate::apps::AppId::new("com.example.news").unwrap();
    assert_eq!(
        config
            .reloadable
            .cstg_app_names
            .get(&app)
            .map(String::as_str),
        Some("com.example.news.tv")
    );
    assert!(apps.resolver().is_ok());
    // The default: the app-launch convention for units, unknown callers get a uid scope.
    let defaults = Config::default().startup;
    assert_eq!(
        defaults.apps.unit.as_deref(),
        Some(crate::apps::DEFAULT_UNIT_PATTERN)
    );
    assert_eq!(defaults.max_scopes, 256);
}

#[test]
fn diagnostics_app_events_defaults_to_32_and_takes_0_to_256() {
    assert_eq!(Config::default().startup.app_events, 32);
    assert_eq!(parse("").unwrap().startup.app_events, 32);
    for count in [0, 1, 256] {
        let text = format!("[diagnostics]\napp_events = {count}\n");
        assert_eq!(parse(&text).unwrap().startup.app_events, count);
    }
    for bad in ["-1", "257", "\"32\"", "1.5"] {
        let text = format!("[diagnostics]\napp_events = {bad}\n");
        let message = parse(&text).unwrap_err().to_string();
        assert!(
            message.contains("`diagnostics.app_events`"),
            "{bad}: {message}"
        );
    }
}

#[test]
fn diagnostics_textfile_is_off_by_default_and_parses() {
    let defaults = Config::default().reloadable;
    assert_eq!(defaults.textfile, None);
    assert_eq!(defaults.textfile_interval.as_secs(), 60);
    let config = parse("[diagnostics]\ntextfile = \"/run/x/uid2d.prom\"\ntextfile_interval = 5\n")
        .unwrap()
        .reloadable;
    assert_eq!(
        config.textfile.as_deref(),
        Some(Path::new("/run/x/uid2d.prom"))
    );
    assert_eq!(config.textfile_interval.as_secs(), 5);
    let off = parse("[diagnostics]\ntextfile = \"\"\n")
        .unwrap()
        .reloadable;
    assert_eq!(off.textfile, None);
}

#[test]
fn privacy_and_eids_keys_parse_with_their_defaults() {
    use crate::privacy::{Jurisdiction, TcfPurposes, TrackingAuthorization};
    let defaults = Config::default().reloadable;
    assert!(defaults.privacy.enforce);
    assert_eq!(defaults.privacy.jurisdiction, Jurisdiction::Auto);
    assert_eq!(defaults.privacy.tcf_vendor_id, 21);
    assert_eq!(
        defaults.privacy.tcf_purposes,
        TcfPurposes::new(&[1, 2, 3, 4, 7, 10]).unwrap()
    );
    assert_eq!(
        defaults.privacy.tracking_authorization_default,
        TrackingAuthorization::Authorized
    );
    assert!(defaults.privacy.device.is_empty());
    assert_eq!(defaults.eids, crate::privacy::EidsConfig::default());

    let config = parse(concat!(
        "[privacy]\nenforce = false\njurisdiction = \"eea\"\ntcf_vendor_id = 755\n",
        "tcf_purposes = [1, 3]\ntracking_authorization_default = \"not_determined\"\n",
        "[privacy.device]\nIABTCF_gdprApplies = 1\nIABUSPrivacy_String = \"1YNN\"\n",
        "IABGPP_GppSID = \"2_7\"\n",
        "[eids]\nmatcher = \"news.example.com\"\nmm = 3\n",
        "[eids.inserter]\n\"com.example.news\" = \"news.example.com\"\n",
    ))
    .unwrap()
    .reloadable;
    let privacy = &config.privacy;
    assert!(!privacy.enforce);
    assert_eq!(privacy.jurisdiction, Jurisdiction::Eea);
    assert_eq!(privacy.tcf_vendor_id, 755);
    assert_eq!(privacy.tcf_purposes, TcfPurposes::new(&[3, 1]).unwrap());
    assert_eq!(
        privacy.tracking_authorization_default,
        TrackingAuthorization::NotDetermined
    );
    assert_eq!(privacy.device.gdpr_applies, Some(true));
    assert_eq!(
        privacy.device.gpp_sid.as_ref().and_then(|s| s.ids()),
        Some(&[2, 7][..])
    );
    assert_eq!(config.eids.matcher.as_deref(), Some("news.example.com"));
    assert_eq!(config.eids.mm, Some(3));
    let app = crate::apps::AppId::new("com.example.news").unwrap();
    assert_eq!(
        config.eids.inserter.get(&app).map(String::as_str),
        Some("news.example.com")
    );
}

#[test]
fn privacy_and_eids_bad_values_name_the_key_never_the_value() {
    let cases = [
        ("[privacy]\nenforce = 1", "`privacy.enforce`"),
        ("[privacy]\njurisdiction = \"eu\"", "`privacy.jurisdiction`"),
        ("[privacy]\ntcf_vendor_id = 0", "`privacy.tcf_vendor_id`"),
        (
            "[privacy]\ntcf_vendor_id = 65536",
            "`privacy.tcf_vendor_id`",
        ),
        ("[privacy]\ntcf_purposes = []", "`privacy.tcf_purposes`"),
        ("[privacy]\ntcf_purposes = [0, 1]", "`privacy.tcf_purposes`"),
        (
            "[privacy]\ntcf_purposes = [\"1\"]",
            "`privacy.tcf_purposes`",
        ),
        (
            "[privacy]\ntracking_authorization_default = \"denied\"",
            "`privacy.tracking_authorization_default`",
        ),
        ("[privacy]\nus_rules = \"mspa\"", "`privacy.us_rules`"),
        (
            "[privacy.device]\nIABTCF_TCString = \"SECRETnotatcstring\"",
            "`privacy.device.IABTCF_TCString`",
        ),
        (
            "[privacy.device]\nIABTCF_gdprApplies = 2",
            "`privacy.device.IABTCF_gdprApplies`",
        ),
        (
            "[privacy.device]\nIABTCF_gdprApplies = \"1\"",
            "`privacy.device.IABTCF_gdprApplies`",
        ),
        (
            "[privacy.device]\nIABGPP_HDR_GppString = \"DBABM~SECRETsection\"",
            "`privacy.device.IABGPP_HDR_GppString`",
        ),
        (
            "[privacy.device]\nIABGPP_GppSID = \"2_x\"",
            "`privacy.device.IABGPP_GppSID`",
        ),
        (
            "[privacy.device]\nIABUSPrivacy_String = \"1YXN\"",
            "`privacy.device.IABUSPrivacy_String`",
        ),
        (
            "[privacy.device]\nIABTCF_PurposeConsents = \"1\"",
            "`privacy.device.IABTCF_PurposeConsents`",
        ),
        ("[eids]\nmatcher = \"not a domain\"", "`eids.matcher`"),
        ("[eids]\nmm = 6", "`eids.mm`"),
        ("[eids]\nmm = -1", "`eids.mm`"),
        (
            "[eids.inserter]\n\".bad\" = \"a.example\"",
            "`eids.inserter`",
        ),
        (
            "[eids.inserter]\n\"com.example.a\" = \"localhost\"",
            "`eids.inserter`",
        ),
        ("[eids]\nsource = \"uidapi.com\"", "`eids.source`"),
    ];
    for (text, key) in cases {
        let message = parse(text).unwrap_err().to_string();
        assert!(message.contains(key), "{text:?} gave {message:?}");
        assert!(!message.contains("SECRET"), "{message}");
        assert!(!message.contains('\n'), "{message:?}");
    }
    let unknown = parse("[privacy.device]\nIABTCF_Other = 1")
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("(known: IABTCF_TCString, IABTCF_gdprApplies, IABGPP_HDR_GppString, IABGPP_GppSID, IABUSPrivacy_String)"),
        "{unknown}"
    );
}

#[test]
fn privacy_device_keys_layer_key_by_key_and_a_reload_applies_them() {
    let root = Root::new(&[
        (
            "vendor.toml",
            "[privacy.device]\nIABTCF_gdprApplies = 1\nIABUSPrivacy_String = \"1YNN\"\n",
        ),
        (
            "main.toml.d/50-us.toml",
            "[privacy.device]\nIABTCF_gdprApplies = 0\n",
        ),
    ]);
    let config = root.load().unwrap();
    let device = &config.reloadable.privacy.device;
    assert_eq!(device.gdpr_applies, Some(false), "the drop-in's key");
    assert_eq!(
        device.us_privacy.as_ref().map(|u| u.as_str()),
        Some("1YNN"),
        "the vendor file's other key is kept"
    );
    // Every [privacy] and [eids] key is applied by a reload.
    let running = Config::default();
    assert!(running.restart_needed(&config).is_empty());
    assert_eq!(
        running.reloaded(config.clone()).reloadable.privacy,
        config.reloadable.privacy
    );
}

#[test]
fn capabilities_parse_per_app_and_group_and_bad_ones_name_the_key() {
    use crate::capabilities::{Capabilities, Capability};
    let defaults = parse("").unwrap();
    assert_eq!(defaults.startup.capabilities.default, Capabilities::DEFAULT);
    assert!(defaults.startup.capabilities.apps.is_empty());
    let config = parse(concat!(
        "[capabilities]\ndefault = [\"token\"]\n",
        "groups = { \"tvsettings\" = [\"manage\", \"diagnostics\"] }\n",
        "\"com.example.news\" = [\"token\", \"generate\"]\n",
        "\"com.example.kids\" = []\n",
    ))
    .unwrap();
    let capabilities = &config.startup.capabilities;
    assert_eq!(capabilities.default, Capabilities::of(&[Capability::Token]));
    assert_eq!(
        capabilities.groups["tvsettings"],
        Capabilities::of(&[Capability::Manage, Capability::Diagnostics])
    );
    let news = crate::apps::AppId::new("com.example.news").unwrap();
    assert_eq!(
        capabilities.apps[&news],
        Capabilities::of(&[Capability::Token, Capability::Generate])
    );
    assert_eq!(capabilities.apps.len(), 2);
    for (text, key, reason) in [
        (
            "[capabilities]\ndefault = [\"tokens\"]",
            "`capabilities.default`",
            "unknown capability `tokens`",
        ),
        (
            "[capabilities]\ndefault = \"token\"",
            "`capabilities.default`",
            "must be a list of capability names",
        ),
        (
            "[capabilities]\ngroups = { \"g\" = [\"root\"] }",
            "`capabilities.groups`",
            "group `g`: unknown capability `root`",
        ),
        (
            "[capabilities]\ngroups = [\"manage\"]",
            "`capabilities.groups`",
            "must be a table",
        ),
        (
            "[capabilities]\n\"com.example.a\" = [\"admin\"]",
            "`capabilities.<app id>`",
            "app `com.example.a`: unknown capability `admin`",
        ),
        (
            "[capabilities]\ncom.example.a = [\"token\"]",
            "`capabilities.<app id>`",
            "quote a dotted app id",
        ),
        (
            "[capabilities]\n\"-bad\" = [\"token\"]",
            "`capabilities.<app id>`",
            "an app id is",
        ),
        ("capabilities = 1", "`capabilities`", "must be a table"),
    ] {
        let message = parse(text).unwrap_err().to_string();
        assert!(
            message.contains(key) && message.contains(reason),
            "{text:?}: {message}"
        );
    }
    // A later file replaces what it sets, app by app.
    let layered = Root::new(&[
        (
            "vendor.toml",
            "[capabilities]\n\"com.example.a\" = []\n\"com.example.b\" = []",
        ),
        (
            "main.toml",
            "[capabilities]\n\"com.example.a\" = [\"token\"]",
        ),
    ])
    .load()
    .unwrap();
    let a = crate::apps::AppId::new("com.example.a").unwrap();
    assert_eq!(
        layered.startup.capabilities.apps[&a],
        Capabilities::of(&[Capability::Token])
    );
    assert_eq!(layered.startup.capabilities.apps.len(), 2);
}

#[test]
fn tracking_request_timeout_is_1_to_20_seconds() {
    assert_eq!(
        parse("").unwrap().reloadable.tracking_request_timeout,
        Duration::from_secs(20)
    );
    assert_eq!(
        parse("[privacy]\ntracking_request_timeout = 1")
            .unwrap()
            .reloadable
            .tracking_request_timeout,
        Duration::from_secs(1)
    );
    for bad in ["0", "21", "\"5\""] {
        let message = parse(&format!("[privacy]\ntracking_request_timeout = {bad}"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("`privacy.tracking_request_timeout`"),
            "{message}"
        );
    }
}
