//! Fuzz target `node_ops`: see `psrt_proto::fuzz_checks::check_node_ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| psrt_proto::fuzz_checks::check_node_ops(data));
