//! psrt-cli commands (in progress).
