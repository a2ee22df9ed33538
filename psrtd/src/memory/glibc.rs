//! The glibc malloc calls psrtd makes: fixed thresholds (`mallopt`), how
//! much memory is allocated (`mallinfo2`), and giving the free pages back
//! to the OS (`malloc_trim`).
//!
//! This is the one module of the workspace allowed `unsafe_code` (the
//! workspace lints deny it elsewhere): no maintained crate wraps these
//! calls in a safe API, and all three are plain FFI calls without
//! preconditions, wrapped here in safe functions. (`mallinfo2` needs glibc
//! 2.33 or later.)

#![allow(unsafe_code)]

/// Fixes glibc's thresholds (both in bytes): blocks of `mmap` bytes or
/// more get a mapping of their own, unmapped when freed; the free top of a
/// heap beyond `trim` bytes is returned to the OS when a block next to it
/// is freed. Setting them turns off glibc's dynamic thresholds, which
/// otherwise grow (up to 32 and 64 MiB) each time a large block is freed:
/// the top of a thread's heap, which `malloc_trim` never shrinks, would
/// then keep up to that much. False when glibc refused a value.
pub fn set_thresholds(mmap: i32, trim: i32) -> bool {
    // SAFETY: mallopt has no preconditions: it takes two integers, checks
    // them and sets the allocator's parameters under the main arena lock.
    let mmap_set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, mmap) };
    // SAFETY: as above.
    let trim_set = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, trim) };
    mmap_set == 1 && trim_set == 1
}

/// Bytes the program holds from glibc right now, over all arenas: chunks
/// in use in the heaps (`mallinfo2().uordblks`) plus chunks glibc mapped
/// on their own (`hblkhd`, large blocks).
///
/// glibc walks the free lists of every arena to compute it, taking each
/// arena's lock in turn: call it from a background thread.
pub fn allocated() -> usize {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct by
    // value; it only reads the allocator's state under the arena locks and
    // may be called from any thread at any time.
    let info = unsafe { libc::mallinfo2() };
    info.uordblks.saturating_add(info.hblkhd)
}

/// `malloc_trim(0)`: returns the free memory of every arena to the OS
/// (the top of each heap is unmapped, whole free pages inside it are
/// discarded with `madvise`). Live allocations are untouched. True when
/// glibc released anything.
///
/// It walks every arena under its lock: call it from a background thread.
pub fn trim() -> bool {
    // SAFETY: malloc_trim has no preconditions: it takes a padding size
    // (0: keep nothing spare), touches only free memory, and glibc
    // serialises it with every other allocator call through the arena
    // locks.
    unsafe { libc::malloc_trim(0) != 0 }
}
