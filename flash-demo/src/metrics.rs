//! `GET /metrics`: flash's counters and histograms ([`flash::observe`]) in Prometheus'
//! text format, through `metrics-exporter-prometheus` (the demo's `metrics` feature, on by
//! default).

use std::sync::OnceLock;

use flash::observe::STORE_CALL_DURATION;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Store call latency buckets, in seconds: a loopback Redis answers in well under a
/// millisecond, a call at the default deadline takes 2 s.
const BUCKETS: [f64; 12] = [
    0.000_25, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder, installed by the first call; `None` when another
/// `metrics` recorder was installed first (the demo then serves no `/metrics`).
pub(crate) fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(STORE_CALL_DURATION.to_owned()), &BUCKETS)
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => Some(handle),
                Err(err) => {
                    tracing::warn!(%err, "no /metrics: the Prometheus recorder could not be installed");
                    None
                }
            }
        })
        .as_ref()
}
