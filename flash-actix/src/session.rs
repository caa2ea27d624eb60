//! The actix-session bridge (feature `actix-session`): flash's session storage over the
//! `actix_session::Session` of the request.
//!
//! actix-session's `Session` is bound to its worker thread (`Rc<RefCell<…>>`) while flash's
//! storages are `Send`: the middleware hands the storage a copy of the session's values
//! ([`ActixSession`]) and, once flash has saved, writes what the storage changed back into the
//! `Session`, which actix-session's middleware (outside flash's) then persists. The update
//! rules stay flash-core's and flash-session's; this only carries the values across.

//!
//! Without the feature there is no bridge: the middleware hands over no extensions, and
//! flash-core says once that a storage reading them cannot load.

#[cfg(feature = "actix-session")]
pub use bridge::*;

#[cfg(not(feature = "actix-session"))]
pub use none::*;

/// No session to bridge (the feature `actix-session` is off).
#[cfg(not(feature = "actix-session"))]
mod none {
    use actix_web::HttpRequest;
    use flash_core::http::Extensions;

    /// The service [`FlashMiddleware`](crate::FlashMiddleware) wraps around the application:
    /// without the feature `actix-session` there is no bridge, and it is flash's
    /// [`FlashService`](crate::FlashService) itself.
    pub type Bridged<S> = S;

    pub(crate) fn bridge<S>(service: S) -> S {
        service
    }

    pub(crate) fn extensions(_: &HttpRequest) -> Option<Extensions> {
        None
    }
}

#[cfg(feature = "actix-session")]
mod bridge {
    use std::borrow::Cow;
    use std::cell::OnceCell;
    use std::collections::{BTreeMap, HashMap};
    use std::fmt;
    use std::sync::{Arc, Mutex, MutexGuard};

    use std::future::Future;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::task::{Context, Poll};

    use actix_session::{Session, SessionExt as _};
    use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
    use actix_web::{HttpMessage as _, HttpRequest};
    use async_trait::async_trait;
    use flash_core::http::Extensions;
    use flash_core::{Error, ErrorKind, Result};
    use flash_session::{BridgedSession, SessionHandle, SessionStorage};
    use serde_json::Value;

    /// [`SessionStorage`] over the actix-session session of each request (feature
    /// `actix-session`). Any `SessionStorage` works under [`FlashMiddleware`](crate::FlashMiddleware)
    /// (the `flash` facade's `session` too): the middleware also hands the session over as a
    /// [`BridgedSession`].
    pub type ActixSessionStorage = SessionStorage<ActixSession>;

    /// What to tell the developer when the request has no actix-session session.
    const MISSING: &str = "no actix-session session in the request: wrap \
         actix_session::SessionMiddleware outside flash_actix::FlashMiddleware (in actix-web, call \
         `.wrap(session_middleware)` after `.wrap(flash_middleware)`: the middleware registered last \
         runs first)";

    /// The actix-session `Session` of one request as flash's session storage reads and writes it
    /// (feature `actix-session`): a [`flash_session::SessionHandle`] that is `Send`.
    ///
    /// [`FlashMiddleware`](crate::FlashMiddleware) makes it when a handler first asks for its
    /// messages and the storage keeps them in the session: it copies the session's values (the
    /// JSON texts actix-session holds; reading them does not mark the session changed), hands the
    /// copy to the storage in the request extensions (as `ActixSession`, and as a
    /// [`BridgedSession`] for any other `SessionStorage`), and after flash's save writes the keys the
    /// storage changed back with `Session::insert` and `Session::remove`. A request whose messages
    /// were neither read nor added changes nothing, so actix-session does not rewrite the session.
    ///
    /// actix-session's `SessionMiddleware` must wrap `FlashMiddleware`. When it does not (it is
    /// missing, or registered before flash's, hence inside it, where it persists the session
    /// before flash saves), every call fails with [`ErrorKind::Config`] and a message saying so:
    /// the handler's read returns it, a save hands it to the error hook, and the page is served.
    #[derive(Clone)]
    pub struct ActixSession {
        /// `None`: no actix-session middleware outside flash's.
        copy: Option<Arc<Mutex<Copied>>>,
    }

    /// The session's values when the handle was made, and what the storage changed since.
    #[derive(Default)]
    struct Copied {
        /// actix-session's values: JSON texts.
        values: HashMap<String, String>,
        /// Keys set (`Some`) or removed (`None`).
        changed: BTreeMap<String, Option<Value>>,
    }

    impl ActixSession {
        fn copy_of(session: &Session) -> Self {
            let values = session.entries().clone();
            ActixSession {
                copy: Some(Arc::new(Mutex::new(Copied {
                    values,
                    changed: BTreeMap::new(),
                }))),
            }
        }

        fn missing() -> Self {
            ActixSession { copy: None }
        }

        fn lock(&self) -> Result<MutexGuard<'_, Copied>> {
            match &self.copy {
                Some(copy) => Ok(copy.lock().unwrap_or_else(|p| p.into_inner())),
                None => Err(Error::new(ErrorKind::Config, MISSING)),
            }
        }

        /// Writes the keys the storage changed into `session`; a key whose value is the one the
        /// session already holds is left alone, so the session is not marked changed for nothing.
        fn write_back(&self, session: &Session) {
            let Some(copy) = &self.copy else {
                return;
            };
            let changed =
                std::mem::take(&mut copy.lock().unwrap_or_else(|p| p.into_inner()).changed);
            for (key, value) in changed {
                match value {
                    Some(value) => {
                        let same =
                            match (serde_json::to_string(&value), session.entries().get(&key)) {
                                (Ok(text), Some(held)) => text == *held,
                                _ => false,
                            };
                        if same {
                            continue;
                        }
                        if let Err(err) = session.insert(key.as_str(), value) {
                            tracing::error!(%key, error = %err,
                                "flash messages could not be written into the actix-session session");
                        }
                    }
                    None => {
                        if session.contains_key(&key) {
                            session.remove(&key);
                        }
                    }
                }
            }
        }
    }

    impl fmt::Debug for ActixSession {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            // Session values can be personal data: show only the keys.
            match self.lock() {
                Ok(copy) => f
                    .debug_struct("ActixSession")
                    .field("keys", &copy.values.keys().collect::<Vec<_>>())
                    .field("changed", &copy.changed.keys().collect::<Vec<_>>())
                    .finish(),
                Err(_) => f.write_str("ActixSession(missing)"),
            }
        }
    }

    #[async_trait]
    impl SessionHandle for ActixSession {
        async fn get(&self, key: &str) -> Result<Option<Value>> {
            let copy = self.lock()?;
            if let Some(changed) = copy.changed.get(key) {
                return Ok(changed.clone());
            }
            copy.values
                .get(key)
                .map(|text| serde_json::from_str(text))
                .transpose()
                .map_err(|err| {
                    Error::with_source(ErrorKind::Decode, "reading the actix-session session", err)
                })
        }

        async fn insert(&self, key: &str, value: Value) -> Result<()> {
            self.lock()?.changed.insert(key.to_owned(), Some(value));
            Ok(())
        }

        async fn remove(&self, key: &str) -> Result<()> {
            self.lock()?.changed.insert(key.to_owned(), None);
            Ok(())
        }

        fn missing_layer() -> Cow<'static, str> {
            Cow::Borrowed(MISSING)
        }
    }

    /// The service [`FlashMiddleware`](crate::FlashMiddleware) wraps around the application
    /// with the feature `actix-session`: flash's [`FlashService`](crate::FlashService) behind
    /// the bridge, which finds actix-session's session before flash's service runs and writes
    /// what flash changed back into it once flash is done, before actix-session's middleware
    /// (outside) persists it.
    #[derive(Clone, Debug)]
    pub struct Bridged<S> {
        service: S,
        uses_extensions: bool,
    }

    pub(crate) fn bridge<S>(service: crate::FlashService<S>) -> Bridged<crate::FlashService<S>> {
        // Only a storage that reads request extensions needs the session.
        let uses_extensions = service.adapter.uses_extensions();
        Bridged {
            service,
            uses_extensions,
        }
    }

    impl<S, B> Service<ServiceRequest> for Bridged<S>
    where
        S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    {
        type Response = ServiceResponse<B>;
        type Error = actix_web::Error;
        type Future = WriteBack<S::Future>;

        actix_web::dev::forward_ready!(service);

        fn call(&self, request: ServiceRequest) -> Self::Future {
            if self.uses_extensions {
                capture(&request);
            }
            WriteBack {
                future: self.service.call(request),
                bridged: self.uses_extensions,
            }
        }
    }

    pin_project_lite::pin_project! {
        /// The future of [`Bridged`]: flash's service, then the write-back into the session.
        #[must_use = "futures do nothing unless polled"]
        pub struct WriteBack<F> {
            #[pin]
            future: F,
            // Whether the request has a bridge to write back through.
            bridged: bool,
        }
    }

    impl<F, B> Future for WriteBack<F>
    where
        F: Future<Output = std::result::Result<ServiceResponse<B>, actix_web::Error>>,
    {
        type Output = F::Output;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            let this = self.project();
            let result = std::task::ready!(this.future.poll(cx));
            if *this.bridged
                && let Ok(response) = &result
            {
                write_back(response.request());
            }
            Poll::Ready(result)
        }
    }

    impl<F> fmt::Debug for WriteBack<F> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("WriteBack").finish_non_exhaustive()
        }
    }

    /// One request's bridge, kept in the request's extensions: the session actix-session's
    /// middleware loaded (found before the inner service runs), and the handle given to the
    /// storage.
    pub(crate) struct Bridge {
        session: Option<Session>,
        handle: OnceCell<ActixSession>,
    }

    impl Bridge {
        /// The extensions the storage reads: the session's handle (its values copied at the first
        /// call), as `ActixSession` and as a [`BridgedSession`].
        fn extensions(&self) -> Extensions {
            let handle = self.handle.get_or_init(|| match &self.session {
                Some(session) => ActixSession::copy_of(session),
                None => ActixSession::missing(),
            });
            let mut extensions = Extensions::new();
            extensions.insert(handle.clone());
            extensions.insert(BridgedSession::new(handle.clone()));
            extensions
        }
    }

    /// The bridge of `request`, as it enters flash's middleware (so that the session found is
    /// one a middleware outside flash's put there), when the storage keeps messages in the
    /// session: put in the request's extensions, for [`extensions`] and [`write_back`].
    fn capture(request: &ServiceRequest) {
        let bridge = Bridge {
            session: outer_session(request),
            handle: OnceCell::new(),
        };
        request.extensions_mut().insert(Rc::new(bridge));
    }

    /// The extensions the storage reads, when the request has a bridge.
    pub(crate) fn extensions(request: &HttpRequest) -> Option<Extensions> {
        let bridge = request.extensions().get::<Rc<Bridge>>()?.clone();
        Some(bridge.extensions())
    }

    /// After flash's save: what the storage changed goes into the actix `Session` of `request`.
    fn write_back(request: &HttpRequest) {
        let bridge = request.extensions().get::<Rc<Bridge>>().cloned();
        if let Some(bridge) = bridge
            && let (Some(session), Some(handle)) = (&bridge.session, bridge.handle.get())
        {
            handle.write_back(session);
        }
    }

    /// The session actix-session's middleware put in the request, when one ran before flash's.
    ///
    /// actix-session keeps its state in the request extensions under a private type, and
    /// `get_session` makes a detached session when there is none: so a probe session is made in an
    /// empty map, the request's extensions are laid over it (their session, when there is one,
    /// replaces the probe), and the session the request then holds is compared with the probe.
    /// Without a session middleware the probe stays, as the session `get_session` would have made.
    fn outer_session(request: &ServiceRequest) -> Option<Session> {
        let theirs = std::mem::take(&mut *request.extensions_mut());
        let probe = request.get_session();
        {
            let mut extensions = request.extensions_mut();
            let mut merged = std::mem::take(&mut *extensions);
            merged.extend(theirs);
            *extensions = merged;
        }
        let session = request.get_session();
        let detached = std::ptr::eq(&*session.entries(), &*probe.entries());
        (!detached).then_some(session)
    }
}
