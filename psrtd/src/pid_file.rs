//! The pid file (`server.pid_file`): locked for the daemon's whole life,
//! so a second daemon with the same pid file refuses to start and names
//! the pid of the first.
//!
//! [`check`] tells before start (and `--test-config`) whether the file
//! could be written, touching nothing; [`PidFile::acquire`] creates,
//! locks (`flock`, released by the kernel when the process ends, however
//! it ends) and fills it in; [`PidFile::remove`] deletes it on a clean
//! exit.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{AccessFlags, access};

/// Mode of a new pid file (less the umask): anyone may read the pid.
const MODE: u32 = 0o644;

/// Why the pid file cannot be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PidFileError {
    /// Another process holds the lock: a daemon with this pid file runs.
    #[error(
        "{} (server.pid_file): locked by pid {pid}, another psrtd using this pid file; \
         stop it first, or give this one another pid_file",
        path.display()
    )]
    Held {
        /// The pid file.
        path: PathBuf,
        /// The pid written in it (`unknown` when it holds none).
        pid: String,
    },
    /// The file or its folder cannot be written.
    #[error("{} (server.pid_file): cannot write the pid file: {reason}", path.display())]
    Unwritable {
        /// The pid file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
}

impl PidFileError {
    fn unwritable(path: &Path, reason: impl ToString) -> PidFileError {
        PidFileError::Unwritable {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// Whether `path` could be written as the pid file, without creating,
/// changing or locking anything: an existing file must be writable, a new
/// one needs a writable folder.
pub fn check(path: &Path) -> Result<(), PidFileError> {
    if path.exists() {
        return access(path, AccessFlags::W_OK)
            .map_err(|errno| PidFileError::unwritable(path, io::Error::from(errno)));
    }
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        let reason = format!("the folder {} does not exist", folder.display());
        return Err(PidFileError::unwritable(path, reason));
    }
    access(folder, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|errno| {
        let reason = format!(
            "cannot create files in {}: {}",
            folder.display(),
            io::Error::from(errno)
        );
        PidFileError::unwritable(path, reason)
    })
}

/// The locked pid file of the running daemon.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    /// Holds the lock until dropped.
    _lock: Flock<File>,
}

impl PidFile {
    /// Opens (or creates) `path`, locks it, and writes this process's pid
    /// into it. Fails when another process holds the lock, naming the pid
    /// that process wrote, or when the file cannot be written.
    pub fn acquire(path: &Path) -> Result<PidFile, PidFileError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(MODE)
            .open(path)
            .map_err(|err| PidFileError::unwritable(path, err))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                return Err(PidFileError::Held {
                    path: path.to_path_buf(),
                    pid: written_pid(&mut file),
                });
            }
            Err((_, errno)) => return Err(PidFileError::unwritable(path, io::Error::from(errno))),
        };
        lock.set_len(0)
            .and_then(|()| writeln!(lock, "{}", std::process::id()))
            .map_err(|err| PidFileError::unwritable(path, err))?;
        Ok(PidFile {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// Deletes the file, then releases the lock.
    pub fn remove(self) {
        if let Err(err) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %err, "cannot remove the pid file");
        }
    }
}

/// The pid in a pid file another process holds.
fn written_pid(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    match text.trim() {
        "" => String::from("unknown"),
        pid => pid.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("psrtd-pidfile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn acquire_writes_the_pid_and_remove_deletes_it() {
        let dir = temp_dir("round-trip");
        let path = dir.join("psrtd.pid");
        check(&path).expect("a new file in a writable folder");
        let pid_file = PidFile::acquire(&path).expect("acquired");
        let text = std::fs::read_to_string(&path).expect("pid file");
        assert_eq!(text.trim(), std::process::id().to_string());
        check(&path).expect("an existing writable file");
        pid_file.remove();
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_held_pid_file_names_the_holder() {
        let dir = temp_dir("held");
        let path = dir.join("psrtd.pid");
        let first = PidFile::acquire(&path).expect("first");
        let err = PidFile::acquire(&path).expect_err("second refused");
        let message = err.to_string();
        assert!(
            message.contains(&format!("locked by pid {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains("server.pid_file"), "{message}");
        drop(first);
        PidFile::acquire(&path).expect("free again").remove();
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_missing_folder_is_named() {
        let dir = temp_dir("missing");
        let path = dir.join("nowhere").join("psrtd.pid");
        let message = check(&path).expect_err("missing folder").to_string();
        assert!(
            message.contains("server.pid_file") && message.contains("does not exist"),
            "{message}"
        );
        assert!(PidFile::acquire(&path).is_err());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
