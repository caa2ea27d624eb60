//! A kit test whose server is unreachable fails, unless the run opts in to skipping with
//! `FLASH_TESTKIT_SKIP_UNREACHABLE=1` (never under `CI=true`); a skipped test says so in the
//! test output, where `cargo test` shows it, not in output the harness captures.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::process::Command;

use flash_core::storage::MemoryStore;
use flash_testkit::keyed_kit as kit;
use flash_testkit::urls::ENV_SKIP_UNREACHABLE;
use flash_testkit::{Harness, KeyedFactory, Options, Unreachable, tests, unavailable};

/// Set for the child processes: the child tests do nothing in a run of their own (say, with
/// `--include-ignored`).
const CHILD: &str = "FLASH_TESTKIT_UNREACHABLE_CHILD";

fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// A keyed-store factory whose server is down.
async fn down(_: Options) -> Option<MemoryStore> {
    unavailable("a server that is down", "connection refused")
}

/// A conformance factory that finds nothing and says nothing.
async fn silent(_: Options) -> Option<Harness> {
    None
}

/// Run only as a child process of the tests below (hence ignored): the kit test of a store
/// whose server is down, under the environment the parent chose.
#[test]
#[ignore = "run as a child process by the tests of this file"]
fn child_keyed_kit_against_a_down_server() {
    if !in_child() {
        return;
    }
    // As `keyed_store_tests!` expands it.
    flash_testkit::__named(
        concat!(module_path!(), "::child_keyed_kit_against_a_down_server"),
        || kit::run(down, kit::append_keeps_order),
    );
}

#[test]
#[ignore = "run as a child process by the tests of this file"]
fn child_conformance_against_a_silent_factory() {
    if !in_child() {
        return;
    }
    // As `conformance_tests!` expands it.
    flash_testkit::__named(
        concat!(
            module_path!(),
            "::child_conformance_against_a_silent_factory"
        ),
        || {
            flash_testkit::run(
                "add_counts_and_added_new",
                silent,
                tests::add_counts_and_added_new,
            )
        },
    );
}

/// Runs `test` of this binary in a child process with `env` (`CI` and the opt-in cleared
/// first); returns whether it passed and its stdout.
fn child(test: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([test, "--exact", "--ignored", "--test-threads=1"])
        .env_remove("CI")
        .env_remove(ENV_SKIP_UNREACHABLE)
        .env(CHILD, "1");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn the_policy_fails_unless_opted_in_outside_ci() {
    use Unreachable::{Fail, Skip};
    assert_eq!(Unreachable::from_values(None, None), Fail);
    assert_eq!(Unreachable::from_values(None, Some("0")), Fail);
    assert_eq!(Unreachable::from_values(None, Some("")), Fail);
    assert_eq!(Unreachable::from_values(None, Some("1")), Skip);
    assert_eq!(Unreachable::from_values(Some("false"), Some("true")), Skip);
    assert_eq!(Unreachable::from_values(Some("true"), Some("1")), Fail);
    assert_eq!(Unreachable::from_values(Some("1"), Some("1")), Fail);
}

#[test]
fn an_unreachable_server_fails_the_kits_by_default() {
    for test in [
        "child_keyed_kit_against_a_down_server",
        "child_conformance_against_a_silent_factory",
    ] {
        let (passed, stdout) = child(test, &[]);
        assert!(
            !passed,
            "{test} passed against an unreachable server:\n{stdout}"
        );
        assert!(stdout.contains("FAILED"), "{stdout}");
        let (passed, _) = child(test, &[("CI", "true"), (ENV_SKIP_UNREACHABLE, "1")]);
        assert!(!passed, "{test} was skipped under CI=true");
    }
}

#[test]
fn an_opted_in_skip_shows_in_the_test_output() {
    for test in [
        "child_keyed_kit_against_a_down_server",
        "child_conformance_against_a_silent_factory",
    ] {
        let (passed, stdout) = child(test, &[(ENV_SKIP_UNREACHABLE, "1")]);
        assert!(
            passed,
            "{test} failed although skipping was opted in:\n{stdout}"
        );
        // On one test thread the harness has written `test <name> ... ` already: the line
        // reads `test <name> ... SKIPPED <name>: ...` and `ok` follows.
        let line = stdout
            .lines()
            .find(|line| line.contains("SKIPPED "))
            .unwrap_or_else(|| panic!("no SKIPPED line in the test output:\n{stdout}"));
        assert!(
            line.contains(&format!("SKIPPED {test}: ")),
            "the line names the test: {line}"
        );
        assert_eq!(
            stdout.matches("SKIPPED").count(),
            1,
            "one line per skipped test:\n{stdout}"
        );
        assert!(line.contains(ENV_SKIP_UNREACHABLE), "{line}");
    }
}

/// Called by hand, a kit test on an unreachable factory panics in this process too (unless
/// this very run opted in).
#[test]
fn a_kit_test_by_hand_panics_on_an_unreachable_store() {
    let failed = std::panic::catch_unwind(|| {
        kit::run(|_| async { None::<MemoryStore> }, kit::append_keeps_order)
    })
    .is_err();
    assert_eq!(failed, Unreachable::from_env() == Unreachable::Fail);
    let _ = KeyedFactory::new(down);
}
