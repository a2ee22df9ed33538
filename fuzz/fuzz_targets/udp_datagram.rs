//! Fuzz target `udp_datagram`: see `psrt_proto::fuzz_checks::check_udp_datagram`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| psrt_proto::fuzz_checks::check_udp_datagram(data));
