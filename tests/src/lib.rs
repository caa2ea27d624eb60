//! Shared support for the cross-backend integration tests.
