//! Every storage URL, through the demo app over real HTTP, on both frameworks (axum and
//! actix-web): POST → 303 → GET shows the message once, bulk and ordered delivery, escaping,
//! prefetch, the JSON API, `Vary: Cookie`, and for the server stores two concurrent tabs that
//! each message reaches exactly once.
#![allow(clippy::unwrap_used)]

use flash_integration::flows;
use flash_integration::{Framework, Kind};

/// The flows of one storage on one framework.
macro_rules! flows_on {
    ($framework:ident => $fw:expr, $kind:expr) => {
        mod $framework {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn post_redirect_get_once() {
                flows::post_redirect_get_once($fw, $kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn many_arrive_in_order_once() {
                flows::many_arrive_in_order_once($fw, $kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn text_is_escaped() {
                flows::text_is_escaped($fw, $kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn prefetch_consumes_nothing() {
                flows::prefetch_consumes_nothing($fw, $kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn json_api() {
                flows::json_api($fw, $kind).await;
            }
        }
    };
}

/// Every flow of each storage, on both frameworks.
macro_rules! every_flow {
    ($($name:ident => $kind:expr),* $(,)?) => {$(
        mod $name {
            use super::*;

            flows_on!(axum => Framework::Axum, $kind);
            flows_on!(actix => Framework::Actix, $kind);
            flows_on!(poem => Framework::Poem, $kind);
        }
    )*};
}

every_flow! {
    cookie => Kind::Cookie,
    cookie_sqlite => Kind::CookieSqlite,
    redis => Kind::Redis,
    postgres => Kind::Postgres,
    mysql => Kind::Mysql,
    sqlite => Kind::Sqlite,
    cookie_redis => Kind::CookieRedis,
    memory => Kind::Memory,
}

// The session storage: a tower-sessions session on axum, actix-session's on actix-web, poem's
// own on poem.
mod session {
    use super::*;

    flows_on!(axum => Framework::Axum, Kind::Session);
    flows_on!(actix => Framework::Actix, Kind::Session);
    flows_on!(poem => Framework::Poem, Kind::Session);
}

macro_rules! two_tabs {
    ($($name:ident => $kind:expr),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn axum() {
                flows::two_tabs_each_message_once(Framework::Axum, $kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn actix() {
                flows::two_tabs_each_message_once(Framework::Actix, $kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn poem() {
                flows::two_tabs_each_message_once(Framework::Poem, $kind).await;
            }
        }
    )*};
}

// Only the keyed server stores promise exactly-once delivery across concurrent requests: a
// cookie (alone or in front of a store) and a session are read and rewritten whole.
mod two_tabs {
    use super::*;

    two_tabs! {
        redis => Kind::Redis,
        postgres => Kind::Postgres,
        mysql => Kind::Mysql,
        sqlite => Kind::Sqlite,
        memory => Kind::Memory,
    }
}
