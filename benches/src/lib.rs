//! Benchmark support for flash (see `benches/`).
