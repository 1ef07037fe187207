//! The files a run writes must not be the files it reads or keeps: a report written over the
//! sheet, or over the journal, loses what the user cannot get back. Checked before anything is
//! sent, as is that each output can be created at all.

use std::path::{Path, PathBuf};

use super::Failure;

/// A file the run reads or writes, and what the user calls it.
pub(crate) struct Named<'a> {
    pub(crate) what: &'a str,
    pub(crate) path: &'a Path,
}

/// Where `path` is: the file itself when it exists, else its folder's real path and its name,
/// else the path as seen from the current directory.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(found) = std::fs::canonicalize(path) {
        return found;
    }
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let (Ok(folder), Some(name)) = (std::fs::canonicalize(folder), path.file_name()) {
        return folder.join(name);
    }
    std::env::current_dir().map_or_else(|_| path.to_path_buf(), |here| here.join(path))
}

/// Whether two paths name the same file.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    resolved(a) == resolved(b)
}

/// Refuses any output that is the same file as another file of the run (an input, the journal,
/// or another output), naming both.
pub(crate) fn check_distinct(outputs: &[Named<'_>], kept: &[Named<'_>]) -> Result<(), Failure> {
    for (i, output) in outputs.iter().enumerate() {
        let others = kept.iter().chain(outputs.iter().skip(i + 1));
        for other in others {
            if same_file(output.path, other.path) {
                return Err(Failure::usage(format!(
                    "{} {} is the same file as {} {}: writing it would overwrite that file. \
                     Name another path for the {}",
                    output.what,
                    output.path.display(),
                    other.what,
                    other.path.display(),
                    output.what
                )));
            }
        }
    }
    Ok(())
}

/// Checks that `path` can be written, without changing a file already there; a file this creates
/// is removed again.
pub(crate) fn check_writable(what: &str, path: &Path) -> Result<(), Failure> {
    let existed = path.exists();
    let opened = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path);
    match opened {
        Ok(_) => {
            if !existed {
                let _ = std::fs::remove_file(path);
            }
            Ok(())
        }
        Err(error) => Err(Failure::usage(format!(
            "cannot write the {what} {}: {error}. Nothing was sent",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_the_same_file_however_it_is_spelled() {
        let dir = tempfile::tempdir().unwrap();
        let sheet = dir.path().join("a.csv");
        std::fs::write(&sheet, "email\n").unwrap();
        assert!(same_file(&sheet, &dir.path().join(".").join("a.csv")));
        let absent = dir.path().join("b.json");
        assert!(same_file(&absent, &dir.path().join(".").join("b.json")));
        assert!(!same_file(&sheet, &absent));
    }
}
