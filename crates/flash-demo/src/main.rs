//! The flash demo app.

fn main() {}
