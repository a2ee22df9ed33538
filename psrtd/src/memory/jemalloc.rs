//! The jemalloc call psrtd makes: decay-based purging of every arena, on
//! the housekeeping thread's tick.
//!
//! jemalloc returns freed pages to the OS over its decay time (10 s), but
//! its background thread only wakes for it when it judges enough pages
//! pending (over 1,024 per arena): after thousands of clients left, it was
//! measured returning their memory in steps 10 s apart, the last one 24 s
//! after they had gone. Asking for the decay on every tick makes the
//! memory follow the decay curve instead; it purges what the curve says
//! is due and nothing more, so a steady load keeps its pages.
//!
//! Like `glibc.rs`, this module is allowed `unsafe_code` (the workspace
//! lints deny it elsewhere): `tikv-jemalloc-ctl` reads and writes values
//! but cannot make a call that takes none, which `arena.<i>.decay` is.

#![allow(unsafe_code)]

use std::ffi::CStr;

/// `arena.<i>.decay` for every arena (`MALLCTL_ARENAS_ALL` is 4096).
const DECAY_ALL_ARENAS: &CStr = c"arena.4096.decay";

/// Purges, in every arena, the freed pages whose decay time has passed.
/// Returns jemalloc's error number when it refused (never expected: the
/// name is fixed and the call takes no value).
pub fn decay() -> Result<(), i32> {
    // SAFETY: `mallctl` with a NUL-terminated name and null value pointers
    // and lengths is the documented form of a call that reads and writes
    // nothing; jemalloc takes each arena's locks itself, so any thread may
    // make it at any time.
    let status = unsafe {
        tikv_jemalloc_sys::mallctl(
            DECAY_ALL_ARENAS.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    match status {
        0 => Ok(()),
        error => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unit tests run on jemalloc too (psrtd's global allocator is set
    /// in `main.rs`, but the allocator library is linked either way), so the
    /// name and the call form are checked against the real jemalloc.
    #[test]
    fn decay_of_every_arena_is_accepted() {
        assert_eq!(decay(), Ok(()));
    }
}
