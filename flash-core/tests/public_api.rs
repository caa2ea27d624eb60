//! flash-core's public API names no type of a crate other than those it chose to expose: the
//! list in its Cargo.toml under `[package.metadata.cargo_check_external_types]` (the list
//! `cargo-check-external-types` reads), plus `std`, `core` and `alloc`.
//!
//! `cargo-check-external-types` needs a nightly toolchain; this check runs on the stable one: it
//! builds flash-core's rustdoc JSON with every feature (`RUSTC_BOOTSTRAP=1`, into its own target
//! directory beside the test's, so it never waits for the running build and stays incremental),
//! walks every public item, and fails naming each foreign path that is not allowed and where it
//! appears. Blanket and auto-trait impls are skipped: they come from the other crate, not from
//! flash-core's API.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const ALWAYS_ALLOWED: &[&str] = &["std", "core", "alloc"];

/// The allow list of flash-core's Cargo.toml.
fn allowed() -> Vec<String> {
    let manifest = include_str!("../Cargo.toml");
    let section = manifest
        .split_once("[package.metadata.cargo_check_external_types]")
        .expect("the allow-list section in flash-core/Cargo.toml")
        .1;
    let list = section
        .split_once("allowed_external_types = [")
        .expect("allowed_external_types")
        .1
        .split_once(']')
        .expect("the end of the list")
        .0;
    list.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter_map(|line| line.strip_prefix('"')?.split_once('"').map(|(s, _)| s))
        .map(str::to_owned)
        .collect()
}

fn is_allowed(path: &str, allowed: &[String]) -> bool {
    let krate = path.split("::").next().unwrap_or(path);
    ALWAYS_ALLOWED.contains(&krate)
        || allowed.iter().any(|entry| match entry.strip_suffix("::*") {
            Some(prefix) => path == prefix || path.starts_with(&format!("{prefix}::")),
            None => path == entry,
        })
}

/// The directory the test binary was built in: `<target>/<profile>/deps/…`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .expect("<target>/<profile>/deps/<binary>")
}

fn rustdoc_json() -> Value {
    let target = target_dir().join("public-api");
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "rustdoc",
            "--quiet",
            "--lib",
            "--all-features",
            "--manifest-path",
        ])
        .arg(manifest)
        .arg("--target-dir")
        .arg(&target)
        .args(["--", "-Z", "unstable-options", "--output-format", "json"])
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("RUSTDOCFLAGS")
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo rustdoc failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json = std::fs::read(target.join("doc/flash_core.json")).expect("the rustdoc JSON");
    serde_json::from_slice(&json).expect("rustdoc JSON parses")
}

/// Every foreign path the public items name, with the items that name it.
fn foreign_paths(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let paths = &doc["paths"];
    let crates = &doc["external_crates"];
    let foreign = |id: &Value| -> Option<String> {
        let summary = &paths[id.as_u64()?.to_string()];
        let crate_id = summary["crate_id"].as_u64()?;
        if crate_id == 0 {
            return None;
        }
        let path: Vec<&str> = summary["path"]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        Some(if path.is_empty() {
            crates[crate_id.to_string()]["name"].as_str()?.to_owned()
        } else {
            path.join("::")
        })
    };
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let index = doc["index"].as_object().expect("an index");
    for (id, item) in index {
        if item["crate_id"].as_u64() != Some(0) {
            continue;
        }
        let inner = &item["inner"];
        let impl_ = &inner["impl"];
        if !impl_.is_null() && (!impl_["blanket_impl"].is_null() || impl_["is_synthetic"] == true) {
            continue;
        }
        let name = item["name"]
            .as_str()
            .or(inner["use"]["name"].as_str())
            .map_or_else(|| format!("item {id}"), str::to_owned);
        if let Some(target) = inner["use"]["id"].as_u64().map(Value::from)
            && let Some(path) = foreign(&target)
        {
            found
                .entry(path)
                .or_default()
                .insert(format!("pub use {name}"));
            continue;
        }
        let mut stack = vec![inner];
        while let Some(value) = stack.pop() {
            match value {
                Value::Object(map) => {
                    // A path to a type or trait: `{ "path": …, "id": …, "args": … }`.
                    if map.contains_key("path")
                        && map.contains_key("args")
                        && let Some(path) = map.get("id").and_then(&foreign)
                    {
                        found.entry(path).or_default().insert(name.clone());
                    }
                    stack.extend(map.values());
                }
                Value::Array(values) => stack.extend(values),
                _ => {}
            }
        }
    }
    found
}

#[test]
fn the_allow_list_is_read() {
    let allowed = allowed();
    assert!(allowed.iter().any(|a| a == "http::*"), "{allowed:?}");
    assert!(is_allowed("http::header::map::HeaderMap", &allowed));
    assert!(is_allowed("core::option::Option", &allowed));
    assert!(!is_allowed("tokio::task::JoinHandle", &allowed));
    assert!(
        !is_allowed("httparse::Header", &allowed),
        "a prefix is not a crate"
    );
}

#[test]
fn the_public_api_names_only_allowed_foreign_types() {
    let doc = rustdoc_json();
    let found = foreign_paths(&doc);
    assert!(
        found.contains_key("http::header::map::HeaderMap"),
        "the walk sees the public API: {found:?}"
    );
    let allowed = allowed();
    let offending: Vec<String> = found
        .iter()
        .filter(|(path, _)| !is_allowed(path, &allowed))
        .map(|(path, items)| {
            let items: Vec<&str> = items.iter().map(String::as_str).collect();
            format!("{path} (in {})", items.join(", "))
        })
        .collect();
    assert!(
        offending.is_empty(),
        "flash-core's public API names foreign types not in \
         [package.metadata.cargo_check_external_types] of flash-core/Cargo.toml: hide them, or \
         add them there if they are meant to be public:\n  {}",
        offending.join("\n  ")
    );
}
