//! What this build of `psrtd` is made of: the server runtime (with the I/O
//! driver monoio picks on this machine) and the allocator, as one line
//! that `psrtd --version`, the start-up log, `/status`, the stats page and
//! `/metrics` all show, so a running daemon can be told apart from another
//! build without access to its binary.

use std::sync::OnceLock;

/// The allocator compiled in: `jemalloc` (the default feature) or the
/// system allocator.
pub const ALLOCATOR: &str = if cfg!(feature = "jemalloc") {
    "jemalloc"
} else {
    "system"
};

/// `runtime NAME[, DRIVER]; allocator ALLOCATOR`, e.g. `runtime monoio,
/// io_uring; allocator jemalloc`. monoio's driver is found once, by
/// building a throwaway runtime (it honours
/// `MONOIO_FORCE_LEGACY_DRIVER=1`), and remembered.
pub fn describe() -> &'static str {
    static LINE: OnceLock<String> = OnceLock::new();
    LINE.get_or_init(|| {
        line(
            crate::runtime::NAME,
            crate::runtime::io_driver().as_deref(),
            ALLOCATOR,
        )
    })
}

/// `VERSION (BUILD)`: what `psrtd --version` prints after the name.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| format!("{} ({})", env!("CARGO_PKG_VERSION"), describe()))
}

fn line(runtime: &str, driver: Option<&str>, allocator: &str) -> String {
    match driver {
        Some(driver) => format!("runtime {runtime}, {driver}; allocator {allocator}"),
        None => format!("runtime {runtime}; allocator {allocator}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_names_the_driver_only_when_there_is_one() {
        assert_eq!(
            line("monoio", Some("io_uring"), "jemalloc"),
            "runtime monoio, io_uring; allocator jemalloc"
        );
        assert_eq!(
            line("tokio", None, "system"),
            "runtime tokio; allocator system"
        );
    }

    #[test]
    fn describe_matches_the_features_of_this_build() {
        let text = describe();
        assert!(
            text.starts_with(&format!("runtime {}", crate::runtime::NAME)),
            "{text}"
        );
        assert!(
            text.ends_with(&format!("; allocator {ALLOCATOR}")),
            "{text}"
        );
        assert_eq!(version(), format!("{} ({text})", env!("CARGO_PKG_VERSION")));
    }
}
