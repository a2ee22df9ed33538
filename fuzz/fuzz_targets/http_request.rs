//! Fuzz target `http_request`: see `psrt_proto::fuzz_checks::check_http_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| psrt_proto::fuzz_checks::check_http_request(data));
