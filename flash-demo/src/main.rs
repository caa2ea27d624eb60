//! `cargo run -p flash-demo`: the demo app on http://127.0.0.1:3000, served by axum, or by
//! actix-web with `FLASH_FRAMEWORK=actix` (or `--framework actix`), on poem with `FLASH_FRAMEWORK=poem`.

use std::net::SocketAddr;
use std::process::ExitCode;

use flash_demo::Framework;
use tracing_subscriber::EnvFilter;

/// Where the demo listens unless `FLASH_ADDR` or `--addr` says otherwise.
const DEFAULT_ADDR: &str = "127.0.0.1:3000";
/// The demo's storage unless `FLASH_STORAGE` says otherwise: cookie first, overflow into an
/// embedded SQLite file (nothing to install).
const DEFAULT_STORAGE: &str = "cookie+sqlite://flash-demo.db";
const USAGE: &str = "usage: flash-demo [--addr HOST:PORT] [--framework axum|actix|poem]
environment: FLASH_ADDR (default 127.0.0.1:3000), FLASH_FRAMEWORK (axum, actix or poem, default axum),
             FLASH_STORAGE (default cookie+sqlite://flash-demo.db),
             FLASH_SECRET (at least 32 bytes; when unset, a random one kept in flash-demo.secret
             beside the database file), FLASH_SECRET_FILE (where to keep it instead),
             FLASH_STORAGE_PREVIOUS (the storage being left when FLASH_STORAGE changes: read and
             drained, never written, so no pending message is lost; remove it once its longest
             TTL has passed), FLASH_SECRET_PREVIOUS (the secret it signed with, if it changed),
             FLASH_DEMO_HTMX (htmx 2's htmx.min.js for the page /htmx; default: the copy
             scripts/fetch-htmx fetches into this checkout), RUST_LOG";
/// The htmx file `scripts/fetch-htmx` fetches into this checkout: served when `FLASH_DEMO_HTMX`
/// is unset, so `scripts/fetch-htmx && cargo run -p flash-demo` gives the htmx page its library.
const FETCHED_HTMX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/browser-assets/node_modules/htmx.org/dist/htmx.min.js"
);

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// What went wrong at start-up, said in a sentence.
type StartError = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// What the command line and the environment ask for.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    addr: SocketAddr,
    framework: Framework,
}

/// The listen address: `--addr X` or `--addr=X`, else `FLASH_ADDR`, else the default; the
/// framework: `--framework X` or `--framework=X`, else `FLASH_FRAMEWORK`, else axum.
fn options(mut args: impl Iterator<Item = String>) -> Result<Options, StartError> {
    let mut addr = None;
    let mut framework = None;
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Err(USAGE.into());
        } else if arg == "--addr" {
            addr = Some(
                args.next()
                    .ok_or("--addr needs a value, e.g. --addr 127.0.0.1:3000")?,
            );
        } else if let Some(value) = arg.strip_prefix("--addr=") {
            addr = Some(value.to_owned());
        } else if arg == "--framework" {
            framework = Some(
                args.next()
                    .ok_or("--framework needs a value: axum, actix or poem")?,
            );
        } else if let Some(value) = arg.strip_prefix("--framework=") {
            framework = Some(value.to_owned());
        } else {
            return Err(format!("unknown argument {arg:?}\n{USAGE}").into());
        }
    }
    let addr = addr
        .or_else(|| env("FLASH_ADDR"))
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let addr = addr
        .parse()
        .map_err(|err| format!("the address {addr:?} is not HOST:PORT ({err})"))?;
    let framework = match framework.or_else(|| env(flash_demo::ENV_FRAMEWORK)) {
        Some(name) => name.parse()?,
        None => Framework::default(),
    };
    Ok(Options { addr, framework })
}

async fn run() -> Result<(), StartError> {
    let Options { addr, framework } = options(std::env::args().skip(1))?;
    let storage_url = env(flash::env::ENV_STORAGE).unwrap_or_else(|| DEFAULT_STORAGE.to_owned());
    let mut config = flash::StorageConfig::from_vars(|name| match name {
        flash::env::ENV_STORAGE => Some(storage_url.clone()),
        _ => env(name),
    })?;
    if env(flash::env::ENV_SECRET).is_none() {
        config = config.secret(own_secret(&storage_url)?);
    }
    let storage = config
        .open()
        .await
        .map_err(|err| format!("cannot open the storage {config}: {err}"))?;
    let shutdown = shutdown_signal();
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
    let local = listener.local_addr()?;
    let htmx = env(flash_demo::ENV_HTMX).unwrap_or_else(|| FETCHED_HTMX.to_owned());
    let serving = flash_demo::Serving::new(&storage_url)
        .framework(framework.name())
        .htmx_script(&htmx);
    #[cfg(feature = "metrics")]
    let serving = serving.with_metrics();
    if std::path::Path::new(&htmx).is_file() {
        tracing::info!("the htmx page /htmx loads htmx from {htmx}");
    } else {
        tracing::info!(
            "no htmx file at {htmx}: the page /htmx works as a plain form (run scripts/fetch-htmx \
             or set {})",
            flash_demo::ENV_HTMX
        );
    }
    tracing::info!(
        "flash demo on http://{local} (storage: {}, framework: {}); Ctrl-C stops it",
        serving.storage(),
        serving.framework_name()
    );
    framework
        .serve(storage, serving, listener, shutdown)
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// The demo's own random secret, kept in a file (never printed): `FLASH_SECRET_FILE`, else
/// beside the SQLite database file, else in the working directory.
fn own_secret(storage_url: &str) -> Result<String, StartError> {
    let path = env(flash_demo::secret::ENV_SECRET_FILE)
        .map_or_else(|| flash_demo::secret::path_for(storage_url), Into::into);
    let (secret, origin) = flash_demo::secret::load_or_create(&path)
        .map_err(|err| format!("cannot keep the demo's secret in {}: {err}", path.display()))?;
    let how = match origin {
        flash_demo::secret::Origin::Created => "made now and stored (mode 0600) in",
        flash_demo::secret::Origin::Found => "read from",
    };
    tracing::warn!(
        "FLASH_SECRET is not set: signing with the demo's own random secret, {how} {}. Set \
         FLASH_SECRET (32 bytes or more, random) for anything but a local try-out.",
        path.display()
    );
    Ok(secret)
}

/// Resolves on Ctrl-C (or SIGTERM on Unix): the server then finishes open requests and stops.
///
/// The handlers are installed here, before the demo says it serves, so a Ctrl-C right after
/// that line stops it cleanly instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        [SignalKind::interrupt(), SignalKind::terminate()].map(|kind| {
            signal(kind)
                .inspect_err(|err| tracing::warn!(%err, "cannot listen for {kind:?}"))
                .ok()
        })
    };
    async move {
        #[cfg(unix)]
        {
            let [interrupt, terminate] = signals;
            let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {}
                () = wait(terminate) => {}
            }
        }
        #[cfg(not(unix))]
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn the_address_and_framework_come_from_the_flags() {
        let expected: SocketAddr = "127.0.0.1:8080".parse().unwrap_or_else(|_| unreachable!());
        let addr = |list: &[&str]| options(args(list)).ok().map(|o| o.addr);
        assert_eq!(addr(&["--addr", "127.0.0.1:8080"]), Some(expected));
        assert_eq!(addr(&["--addr=127.0.0.1:8080"]), Some(expected));
        let framework = |list: &[&str]| options(args(list)).ok().map(|o| o.framework);
        assert_eq!(framework(&["--framework", "actix"]), Some(Framework::Actix));
        assert_eq!(framework(&["--framework=axum"]), Some(Framework::Axum));
        for bad in [
            &["--addr"][..],
            &["--addr", "nowhere"],
            &["--port", "1"],
            &["--help"],
            &["--framework"],
            &["--framework", "rocket"],
        ] {
            assert!(options(args(bad)).is_err(), "{bad:?}");
        }
    }
}
