//! Serving the demo on a listener with either framework, until a shutdown future resolves.

use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use flash::storage::Storage;

use crate::{Framework, Serving, Site};

/// How long open requests may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// actix-web workers: a demo needs few.
const ACTIX_WORKERS: usize = 2;

impl Framework {
    /// Serves the demo over `storage` on `listener` with this framework until `shutdown`
    /// resolves, then lets open requests finish. The page says this framework serves it, and
    /// which storage ([`Serving`]). Needs a Tokio runtime (actix-web runs its workers on
    /// threads of their own).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn serve(
        self,
        storage: Arc<dyn Storage>,
        serving: Serving,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let site = Site::new(storage, serving.framework(self.name()));
        match self {
            Framework::Axum => {
                listener.set_nonblocking(true)?;
                let listener = tokio::net::TcpListener::from_std(listener)?;
                axum::serve(listener, site.axum())
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            Framework::Actix => {
                let server = actix_web::HttpServer::new(move || site.actix())
                    .workers(ACTIX_WORKERS)
                    .disable_signals()
                    .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
                    .listen(listener)?
                    .run();
                let handle = server.handle();
                tokio::spawn(async move {
                    shutdown.await;
                    handle.stop(true).await;
                });
                server.await
            }
            Framework::Poem => {
                listener.set_nonblocking(true)?;
                let acceptor = poem::listener::TcpAcceptor::from_std(listener)?;
                poem::Server::new_with_acceptor(acceptor)
                    .run_with_graceful_shutdown(site.poem(), shutdown, Some(SHUTDOWN_GRACE))
                    .await
            }
        }
    }
}
