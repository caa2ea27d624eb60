//! Every storage URL, through the demo app over real HTTP: POST → 303 → GET shows the message
//! once, bulk and ordered delivery, escaping, prefetch, the JSON API, `Vary: Cookie`, and for
//! the server stores two concurrent tabs that each message reaches exactly once.

use flash_integration::Kind;
use flash_integration::flows;

macro_rules! every_flow {
    ($($name:ident => $kind:expr),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn post_redirect_get_once() {
                flows::post_redirect_get_once($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn many_arrive_in_order_once() {
                flows::many_arrive_in_order_once($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn text_is_escaped() {
                flows::text_is_escaped($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn prefetch_consumes_nothing() {
                flows::prefetch_consumes_nothing($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn json_api() {
                flows::json_api($kind).await;
            }
        }
    )*};
}

every_flow! {
    cookie => Kind::Cookie,
    session => Kind::Session,
    cookie_sqlite => Kind::CookieSqlite,
    redis => Kind::Redis,
    postgres => Kind::Postgres,
    mysql => Kind::Mysql,
    sqlite => Kind::Sqlite,
    cookie_redis => Kind::CookieRedis,
    memory => Kind::Memory,
}

macro_rules! two_tabs {
    ($($name:ident => $kind:expr),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            flows::two_tabs_each_message_once($kind).await;
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
