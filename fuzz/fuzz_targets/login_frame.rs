//! Fuzz target `login_frame`: see `psrt_proto::fuzz_checks::check_login_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| psrt_proto::fuzz_checks::check_login_frame(data));
