//! The adapter kit fails a broken adapter: a small adapter on flash-core's contract for a
//! made-up `http` 1.x framework passes every kit test, and each mutation of it (a mistake an
//! adapter author could make) is caught by the kit test named beside it.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use flash_core::adapter::{Adapter, RequestParts, Slot};
use flash_core::{Level, Message, Messages};
use flash_testkit::adapter_kit::{self, AdapterApp, KitRequest, KitResponse};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};

/// Which mistake the adapter makes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Good,
    /// Hands over only the `Cookie` header: htmx (and prefetch) headers never reach the core.
    NeverCapturesHtmx,
    /// Hands over no extensions.
    NeverCopiesExtensions,
    /// Memoises the handle in its own extension, which the core then copies: a cycle.
    CopiesItsOwnSlot,
    /// Returns the handler's error without ending the request (poem's `?`).
    LosesMessagesOnHandlerError,
    /// Ends every request as a `200`.
    ConsumesOn5xx,
    /// Hands over `GET` for every method, to the middleware's `begin_with` and to the extractor.
    ConsumesOnHead,
    /// Begins every request without looking at it (`Adapter::begin`): a page that redirects
    /// without asking for its handle cannot hand on what was addressed to it.
    NeverShowsTheRequest,
    /// Hands over no target: nothing is ever addressed.
    NeverGivesTheTarget,
}

trait Mutation: 'static {
    const KIND: Kind;
}

macro_rules! mutation {
    ($($name:ident),*) => {$(
        struct $name;
        impl Mutation for $name {
            const KIND: Kind = Kind::$name;
        }
    )*};
}

mutation!(
    Good,
    NeverCapturesHtmx,
    NeverCopiesExtensions,
    CopiesItsOwnSlot,
    LosesMessagesOnHandlerError,
    ConsumesOn5xx,
    ConsumesOnHead,
    NeverShowsTheRequest,
    NeverGivesTheTarget
);

/// The adapter's own memo of the handle (the `CopiesItsOwnSlot` mistake).
#[derive(Clone)]
struct OwnSlot(Arc<OnceLock<Messages>>);

struct Mini<M>(Adapter, PhantomData<M>);

/// The extractor.
fn flash<M: Mutation>(parts: &Parts) -> Messages {
    let slot = parts.extensions.get::<Slot>().unwrap();
    let mut cookies_only = HeaderMap::new();
    for value in parts.headers.get_all("cookie") {
        cookies_only.append("cookie", value.clone());
    }
    let headers = match M::KIND {
        Kind::NeverCapturesHtmx => &cookies_only,
        _ => &parts.headers,
    };
    let method = match M::KIND {
        Kind::ConsumesOnHead => "GET",
        _ => parts.method.as_str(),
    };
    let extensions = match M::KIND {
        Kind::NeverCopiesExtensions => None,
        _ => Some(&parts.extensions),
    };
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let make = || {
        let request = RequestParts::new(method, headers, extensions);
        let request = match M::KIND {
            Kind::NeverGivesTheTarget => request,
            _ => request.with_target(target),
        };
        slot.messages(request).unwrap()
    };
    match parts.extensions.get::<OwnSlot>() {
        Some(own) => own.0.get_or_init(make).clone(),
        None => make(),
    }
}

fn query<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}

fn status(code: &str) -> StatusCode {
    StatusCode::from_u16(code.parse().unwrap()).unwrap()
}

/// The kit's routes; `Err` is the handler's error.
async fn handle<M: Mutation>(parts: &Parts) -> Result<Response<String>, StatusCode> {
    match parts.uri.path() {
        "/add" => {
            let level = query(parts, "level").map_or(25, |l| l.parse().unwrap());
            flash::<M>(parts).add_message(Level::new(level), query(parts, "text").unwrap());
            if let Some(code) = query(parts, "fail") {
                return Err(status(code));
            }
            let to = query(parts, "to").unwrap_or_default();
            Ok(Response::builder()
                .status(303)
                .header("location", format!("/{to}"))
                .body(String::new())
                .unwrap())
        }
        "/moved" => Ok(Response::builder()
            .status(308)
            .header("location", "/")
            .body(String::new())
            .unwrap()),
        "/idle" => {
            flash::<M>(parts);
            Ok(Response::new("idle".to_owned()))
        }
        _ => {
            let messages = flash::<M>(parts);
            if let Some(text) = query(parts, "now") {
                messages.add_now(Message::new(Level::INFO, text));
            }
            let body = match messages.read().await {
                Ok(list) => list
                    .iter()
                    .map(|m| format!("{} {}\n", m.level.value(), m.text))
                    .collect(),
                Err(_) => "unavailable\n".to_owned(),
            };
            if query(parts, "keep") == Some("1") {
                messages.keep();
            }
            if let Some(code) = query(parts, "fail") {
                return Err(status(code));
            }
            let mut response = Response::new(body);
            *response.status_mut() = status(query(parts, "status").unwrap_or("200"));
            if let Some(vary) = query(parts, "vary") {
                response
                    .headers_mut()
                    .insert("vary", HeaderValue::from_str(vary).unwrap());
            }
            Ok(response)
        }
    }
}

/// The middleware.
async fn serve<M: Mutation>(adapter: &Adapter, mut request: Request<()>) -> Response<String> {
    let in_flight = match M::KIND {
        Kind::NeverShowsTheRequest => adapter.begin(),
        Kind::NeverGivesTheTarget => {
            let (method, headers) = (request.method().as_str(), request.headers());
            adapter.begin_with(RequestParts::new(
                method,
                headers,
                Some(request.extensions()),
            ))
        }
        Kind::ConsumesOnHead => adapter.begin_with(RequestParts::http(
            &Method::GET,
            request.uri(),
            request.headers(),
            request.extensions(),
        )),
        _ => adapter.begin_with(RequestParts::from(&request)),
    };
    // As poem does: `HEAD` on a route made for `GET` alone reaches the `GET` handler as a `GET`.
    if request.uri().path() == "/page" && request.method() == Method::HEAD {
        *request.method_mut() = Method::GET;
    }
    request.extensions_mut().insert(in_flight.slot());
    if M::KIND == Kind::CopiesItsOwnSlot {
        request.extensions_mut().insert(OwnSlot(Arc::default()));
    }
    let (parts, ()) = request.into_parts();
    match handle::<M>(&parts).await {
        Ok(mut response) if M::KIND == Kind::ConsumesOn5xx => {
            in_flight
                .finish_headers(200, false, response.headers_mut())
                .await;
            response
        }
        Ok(response) => in_flight.finish(response).await,
        Err(code) => {
            let mut response = Response::new("failed".to_owned());
            *response.status_mut() = code;
            if M::KIND == Kind::LosesMessagesOnHandlerError {
                return response;
            }
            let code = code.as_u16();
            in_flight
                .finish_headers(code, true, response.headers_mut())
                .await;
            response
        }
    }
}

impl<M: Mutation> AdapterApp for Mini<M> {
    async fn build(adapter: Adapter) -> Self {
        Mini(adapter, PhantomData)
    }

    async fn send(&self, request: KitRequest) -> KitResponse {
        let mut builder = Request::builder().method(request.method).uri(&request.uri);
        for (name, value) in &request.headers {
            builder = builder.header(name, HeaderValue::from_bytes(value).unwrap());
        }
        if let Some(session) = request.session {
            builder = builder.extension(session);
        }
        let response = serve::<M>(&self.0, builder.body(()).unwrap()).await;
        KitResponse {
            status: response.status().as_u16(),
            headers: response
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
            body: response.into_body(),
        }
    }
}

/// The good adapter passes the whole kit.
mod good {
    flash_testkit::adapter_tests!(super::Mini<super::Good>);
}

/// Whether the kit test fails (panics) against the adapter.
fn caught<F: Future<Output = ()>>(test: F) -> bool {
    std::panic::catch_unwind(AssertUnwindSafe(|| adapter_kit::run(test))).is_err()
}

#[test]
fn an_adapter_that_never_captures_htmx_is_caught() {
    type A = Mini<NeverCapturesHtmx>;
    assert!(caught(
        adapter_kit::htmx_requests_get_their_messages_in_hx_trigger::<A>()
    ));
}

#[test]
fn an_adapter_that_never_copies_extensions_is_caught() {
    type A = Mini<NeverCopiesExtensions>;
    assert!(caught(
        adapter_kit::a_storage_reads_the_requests_extension::<A>()
    ));
}

#[test]
fn an_adapter_that_copies_its_own_slot_is_caught() {
    type A = Mini<CopiesItsOwnSlot>;
    assert!(caught(
        adapter_kit::the_handle_and_extensions_are_freed::<A>()
    ));
}

#[test]
fn an_adapter_that_loses_messages_on_a_handler_error_is_caught() {
    type A = Mini<LosesMessagesOnHandlerError>;
    assert!(caught(adapter_kit::a_handler_error_loses_nothing::<A>()));
}

#[test]
fn an_adapter_that_consumes_on_a_5xx_is_caught() {
    type A = Mini<ConsumesOn5xx>;
    assert!(caught(adapter_kit::a_5xx_response_consumes_nothing::<A>()));
}

#[test]
fn an_adapter_that_consumes_on_head_is_caught() {
    type A = Mini<ConsumesOnHead>;
    assert!(caught(adapter_kit::head_and_options_never_consume::<A>()));
    assert!(caught(
        adapter_kit::head_through_a_get_route_never_consumes::<A>()
    ));
}

/// An adapter that begins without the request shows its extractor's method alone, which a
/// framework may have rewritten (`HEAD` served as `GET`).
#[test]
fn an_adapter_that_begins_blind_consumes_on_a_head_through_a_get_route() {
    type A = Mini<NeverShowsTheRequest>;
    assert!(caught(
        adapter_kit::head_through_a_get_route_never_consumes::<A>()
    ));
}

#[test]
fn an_adapter_that_never_shows_flash_the_request_is_caught() {
    type A = Mini<NeverShowsTheRequest>;
    assert!(caught(
        adapter_kit::a_redirect_hands_on_what_was_addressed_to_it::<A>()
    ));
}

#[test]
fn an_adapter_that_never_gives_the_target_is_caught() {
    type A = Mini<NeverGivesTheTarget>;
    assert!(caught(
        adapter_kit::a_redirect_hands_on_what_was_addressed_to_it::<A>()
    ));
}
