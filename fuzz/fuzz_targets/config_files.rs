//! Fuzz target `config_files`: see `psrt_proto::fuzz_checks::check_config_files`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| psrt_proto::fuzz_checks::check_config_files(data));
