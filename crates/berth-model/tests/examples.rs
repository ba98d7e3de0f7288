//! The example service files of etc/examples load, and each INI twin reads as its TOML file.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use berth_model::ServiceConfig;
use berth_model::config::{LoadContext, Registry, Spec, to_toml};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../etc/examples")
        .join(name)
}

fn load(name: &str) -> ServiceConfig {
    let path = example(name);
    let text = std::fs::read_to_string(&path).unwrap();
    // Loaded as /etc/berth/services/<file>, so both twins are named `registry`.
    let as_installed = Path::new("/etc/berth/services").join(name);
    let checked = ServiceConfig::check(&as_installed, &text, &LoadContext::node("node1"));
    assert!(
        checked.diagnostics.warnings.is_empty(),
        "{name}: {:?}",
        checked.diagnostics.warnings
    );
    checked
        .into_result()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_registry_example_and_its_ini_twin() {
    let toml = load("registry.toml");
    let ini = load("registry.env");
    // The same service, but for where each was read from.
    let eval = |s: &ServiceConfig| {
        let text = to_toml(s).unwrap();
        text.lines().skip(1).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(eval(&toml), eval(&ini));
    let Spec::Container(c) = &toml.resources.last().unwrap().spec else {
        panic!("the last resource is the registry's container");
    };
    assert_eq!(c.run_image, "registry:2");
    assert_eq!(c.run.ports[0].text, "192.0.2.20:5000:5000");
    assert_eq!(
        Registry::parse("https://192.0.2.20:5000").unwrap().host,
        "192.0.2.20:5000"
    );
}
