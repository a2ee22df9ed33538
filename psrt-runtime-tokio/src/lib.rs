//! Drives the psrt-proto core over tokio (in progress).
