//! Fuzz target `control_input`: see `psrt_proto::fuzz_checks::check_control_input`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| psrt_proto::fuzz_checks::check_control_input(data));
