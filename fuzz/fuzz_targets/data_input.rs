//! Fuzz target `data_input`: see `psrt_proto::fuzz_checks::check_data_input`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| psrt_proto::fuzz_checks::check_data_input(data));
