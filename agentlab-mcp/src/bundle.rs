//! Reading inside a `.tar.gz` artifact (the runner uploads a job's files as one such bundle,
//! `artifacts.tar.gz`): its file list, or one file's bytes. Pure functions over the
//! downloaded bytes; callers run them off the async threads.

use std::io::Read;

/// One regular file in a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Path inside the archive, without a leading `./`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// Whether an artifact name is a gzip-compressed tar archive.
pub fn is_bundle(name: &str) -> bool {
    name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

/// The regular files in the archive, in archive order.
pub fn members(gz: &[u8]) -> std::io::Result<Vec<Member>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        if entry.header().entry_type().is_file() {
            out.push(Member {
                path: clean(&entry.path()?.to_string_lossy()),
                size: entry.size(),
            });
        }
    }
    Ok(out)
}

/// The content of the regular file at `path` (a leading `./` is ignored), `None` when the
/// archive has no such file; `Err` when the file is larger than `max` bytes or the archive is
/// unreadable.
pub fn read_member(gz: &[u8], path: &str, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let wanted = clean(path);
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    for entry in archive.entries()? {
        let entry = entry?;
        if !entry.header().entry_type().is_file()
            || clean(&entry.path()?.to_string_lossy()) != wanted
        {
            continue;
        }
        if entry.size() > max {
            return Err(std::io::Error::other(format!(
                "{wanted} is {} bytes, over the {max}-byte limit",
                entry.size()
            )));
        }
        let mut data = Vec::new();
        entry.take(max).read_to_end(&mut data)?;
        return Ok(Some(data));
    }
    Ok(None)
}

fn clean(path: &str) -> String {
    path.trim_start_matches("./").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(files: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, path, *data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn lists_and_reads_members() {
        let gz = bundle(&[
            ("./runner.log", b"log\n"),
            ("artifacts/notes.txt", b"notes\n"),
        ]);
        let list = members(&gz).unwrap();
        assert_eq!(
            list,
            [
                Member {
                    path: "runner.log".into(),
                    size: 4
                },
                Member {
                    path: "artifacts/notes.txt".into(),
                    size: 6
                },
            ]
        );
        assert_eq!(
            read_member(&gz, "runner.log", 100).unwrap().unwrap(),
            b"log\n"
        );
        assert_eq!(
            read_member(&gz, "./artifacts/notes.txt", 100)
                .unwrap()
                .unwrap(),
            b"notes\n"
        );
        assert_eq!(read_member(&gz, "nope", 100).unwrap(), None);
        let err = read_member(&gz, "artifacts/notes.txt", 3).unwrap_err();
        assert!(err.to_string().contains("over the 3-byte limit"), "{err}");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(members(b"not gzip").is_err());
        assert!(is_bundle("artifacts.tar.gz") && is_bundle("x.tgz") && !is_bundle("a.txt"));
    }
}
