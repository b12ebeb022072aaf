//! The documented D-Bus contract (`dbus/*.xml`) against live introspection.

use std::collections::BTreeMap;

/// The introspection XML of `path` at `destination`.
pub async fn introspect(conn: &zbus::Connection, destination: &str, path: &str) -> String {
    zbus::fdo::IntrospectableProxy::builder(conn)
        .destination(destination.to_owned())
        .and_then(|b| b.path(path.to_owned()))
        .expect("a destination and path")
        .build()
        .await
        .expect("an Introspectable proxy")
        .introspect()
        .await
        .unwrap_or_else(|e| panic!("introspecting {destination} {path}: {e}"))
}

/// A comparable summary of one interface: members with their args (name, type,
/// direction), properties with type and access, annotations. Panics if `xml` is not
/// introspection XML or lacks `interface`.
pub fn interface_summary(xml: &str, interface: &str) -> BTreeMap<String, String> {
    let node = zbus_xml::Node::from_reader(xml.as_bytes()).expect("valid introspection XML");
    let iface = node
        .interfaces()
        .iter()
        .find(|i| i.name() == interface)
        .unwrap_or_else(|| panic!("{interface} in the XML"));
    let args = |args: &[zbus_xml::Arg]| {
        args.iter()
            .map(|a| {
                format!(
                    "{}:{:?}:{:?}",
                    a.name().unwrap_or("?"),
                    a.ty(),
                    a.direction()
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let annotations = |list: &[zbus_xml::Annotation]| {
        let mut items: Vec<String> = list
            .iter()
            .map(|a| format!("{}={}", a.name(), a.value()))
            .collect();
        items.sort();
        items.join(",")
    };
    let mut out = BTreeMap::new();
    for m in iface.methods() {
        out.insert(format!("method {}", m.name()), args(m.args()));
    }
    for s in iface.signals() {
        out.insert(format!("signal {}", s.name()), args(s.args()));
    }
    for p in iface.properties() {
        out.insert(
            format!("property {}", p.name()),
            format!(
                "{:?}:{:?}:{}",
                p.ty(),
                p.access(),
                annotations(p.annotations())
            ),
        );
    }
    out
}
