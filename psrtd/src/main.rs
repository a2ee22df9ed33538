//! psrtd: the PSRT broker daemon (in progress).
fn main() {}
