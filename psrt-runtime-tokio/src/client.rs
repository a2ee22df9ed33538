//! Async client (in progress).
