//! `cargo run -p flash-demo`: the demo app on http://127.0.0.1:3000.

use std::net::SocketAddr;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// Where the demo listens unless `FLASH_ADDR` or `--addr` says otherwise.
const DEFAULT_ADDR: &str = "127.0.0.1:3000";
/// The demo's storage unless `FLASH_STORAGE` says otherwise: cookie first, overflow into an
/// embedded SQLite file (nothing to install).
const DEFAULT_STORAGE: &str = "cookie+sqlite://flash-demo.db";
/// The secret used when `FLASH_SECRET` is unset: public, so for development only.
const DEV_SECRET: &str = "flash-demo development secret: public, never use it in production";

const USAGE: &str = "usage: flash-demo [--addr HOST:PORT]
environment: FLASH_ADDR (default 127.0.0.1:3000), FLASH_STORAGE (default cookie+sqlite://flash-demo.db),
             FLASH_SECRET (at least 32 bytes; a public development secret when unset), RUST_LOG";

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

/// The listen address: `--addr X` or `--addr=X`, else `FLASH_ADDR`, else the default.
fn listen_addr(mut args: impl Iterator<Item = String>) -> Result<SocketAddr, StartError> {
    let mut addr = None;
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
        } else {
            return Err(format!("unknown argument {arg:?}\n{USAGE}").into());
        }
    }
    let addr = addr
        .or_else(|| env("FLASH_ADDR"))
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    addr.parse()
        .map_err(|err| format!("the address {addr:?} is not HOST:PORT ({err})").into())
}

async fn run() -> Result<(), StartError> {
    let addr = listen_addr(std::env::args().skip(1))?;
    let mut config = flash::StorageConfig::from_vars(|name| match name {
        flash::ENV_STORAGE => Some(env(name).unwrap_or_else(|| DEFAULT_STORAGE.to_owned())),
        _ => env(name),
    })?;
    if env(flash::ENV_SECRET).is_none() {
        tracing::warn!(
            "FLASH_SECRET is not set: signing with the demo's public development secret. \
             Set FLASH_SECRET (32 bytes or more, random) for anything but a local try-out."
        );
        config = config.secret(DEV_SECRET);
    }
    let storage = config
        .open()
        .await
        .map_err(|err| format!("cannot open the storage {config}: {err}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
    let local = listener.local_addr()?;
    tracing::info!("flash demo on http://{local} (storage: {config}); Ctrl-C stops it");
    axum::serve(listener, flash_demo::app(storage))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C (or SIGTERM on Unix): the server then finishes open requests and stops.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
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
    fn the_address_comes_from_the_flag() {
        let expected: SocketAddr = "127.0.0.1:8080".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(
            listen_addr(args(&["--addr", "127.0.0.1:8080"])).ok(),
            Some(expected)
        );
        assert_eq!(
            listen_addr(args(&["--addr=127.0.0.1:8080"])).ok(),
            Some(expected)
        );
        for bad in [
            &["--addr"][..],
            &["--addr", "nowhere"],
            &["--port", "1"],
            &["--help"],
        ] {
            assert!(listen_addr(args(bad)).is_err(), "{bad:?}");
        }
    }
}
