//! Writing results: an output directory checked before any lab starts, and files that appear
//! whole or not at all (a full disk or a kill mid-write never leaves a half-written record,
//! nor destroys the previous one).

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
#[error("cannot write {}", path.display())]
pub struct OutputError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |source| OutputError {
        path: path.to_owned(),
        source,
    }
}

/// An unnamed file in `dir` (O_TMPFILE): if the process dies before [`publish`], nothing is
/// left. Falls back to a named hidden file where the file system has no O_TMPFILE.
fn unnamed_in(dir: &Path) -> io::Result<(File, Option<PathBuf>)> {
    match OpenOptions::new()
        .write(true)
        .mode(0o644)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
    {
        Ok(f) => Ok((f, None)),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) =>
        {
            let path = temp_name(dir);
            let f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path)?;
            Ok((f, Some(path)))
        }
        Err(e) => Err(e),
    }
}

fn temp_name(dir: &Path) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    dir.join(format!(".flatline-{}-{nanos}.tmp", std::process::id()))
}

/// Creates `dir` if needed and proves a file can be created in it, before any lab starts.
pub fn check_writable(dir: &Path) -> Result<(), OutputError> {
    fs::create_dir_all(dir).map_err(err(dir))?;
    let (file, named) = unnamed_in(dir).map_err(err(dir))?;
    drop(file);
    if let Some(p) = named {
        fs::remove_file(&p).map_err(err(&p))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: into an unnamed file in the same directory, flushed to
/// disk, then renamed over `path`. On any error `path` is unchanged and no file is left.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let (mut file, named) = unnamed_in(dir).map_err(err(path))?;
    let cleanup = |named: &Option<PathBuf>| {
        if let Some(p) = named {
            let _ = fs::remove_file(p);
        }
    };
    if let Err(e) = file.write_all(bytes).and_then(|_| file.sync_all()) {
        cleanup(&named);
        return Err(err(path)(e));
    }
    let tmp = match named {
        Some(p) => p,
        None => {
            // Give the unnamed file a name next to its destination, then rename it there.
            let tmp = temp_name(dir);
            let fd_path = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
                .expect("no NUL in a number");
            let tmp_c =
                CString::new(tmp.as_os_str().as_bytes()).map_err(|e| err(path)(e.into()))?;
            // SAFETY: two valid NUL-terminated paths.
            let rc = unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    fd_path.as_ptr(),
                    libc::AT_FDCWD,
                    tmp_c.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            };
            if rc != 0 {
                return Err(err(path)(io::Error::last_os_error()));
            }
            tmp
        }
    };
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        err(path)(e)
    })
}

/// Writes `value` as pretty JSON (with a final newline) to `path`, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), OutputError> {
    let mut json = serde_json::to_vec_pretty(value).expect("results serialize");
    json.push(b'\n');
    write_atomically(path, &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_write_replaces_the_file_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(names(dir.path()), ["r.json"]);
    }

    #[test]
    fn a_failed_write_keeps_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        write_atomically(&path, b"one").unwrap();
        // A directory cannot be renamed over by a file: the last step fails.
        let blocked = dir.path().join("d");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"").unwrap();
        assert!(write_atomically(&blocked, b"two").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(names(dir.path()), ["d", "r.json"]);
    }

    #[test]
    fn an_unwritable_directory_is_found_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"").unwrap();
        let e = check_writable(&file.join("sub")).unwrap_err();
        assert!(e.to_string().contains("sub"), "{e}");
        check_writable(&dir.path().join("new")).unwrap();
        assert_eq!(names(&dir.path().join("new")), Vec::<String>::new());
    }
}
