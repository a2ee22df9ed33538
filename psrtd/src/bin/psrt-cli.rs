//! psrt-cli: publish, subscribe, watch and benchmark a PSRT server (in progress).
fn main() {}
