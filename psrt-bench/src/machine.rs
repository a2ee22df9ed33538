//! What the benchmark ran on, for the report.

use std::fs;

/// The machine and the time of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Logical CPUs available to the benchmark.
    pub cpus: usize,
    /// CPU model name from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Total memory from `/proc/meminfo`.
    pub memory: String,
    /// Kernel release.
    pub kernel: String,
    /// When the run ended, UTC, RFC 3339.
    pub date: String,
}

impl Machine {
    /// Reads the machine's description from `/proc` and the current time.
    pub fn describe() -> Self {
        let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model: field(&read("/proc/cpuinfo"), "model name").unwrap_or_else(unknown),
            memory: field(&read("/proc/meminfo"), "MemTotal")
                .and_then(|kb| {
                    kb.strip_suffix(" kB")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                })
                .map_or_else(unknown, |kib| format!("{:.1} GiB", kib as f64 / 1048576.0)),
            kernel: Some(read("/proc/sys/kernel/osrelease").trim().to_owned())
                .filter(|k| !k.is_empty())
                .unwrap_or_else(unknown),
            date: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| unknown()),
        }
    }
}

fn unknown() -> String {
    "unknown".to_owned()
}

/// The value of the first `key: value` line of a `/proc` file.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_finds_first_match() {
        let cpuinfo = "processor\t: 0\nmodel name\t: Example CPU @ 2GHz\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(
            field(cpuinfo, "model name").as_deref(),
            Some("Example CPU @ 2GHz")
        );
        assert_eq!(field(cpuinfo, "flags"), None);
    }

    #[test]
    fn describes_this_machine() {
        let machine = Machine::describe();
        assert!(machine.cpus >= 1);
        assert!(machine.date.contains('T'));
    }
}
