//! Extracting a result bundle someone else made (THREATS X1, X7).
//!
//! A bundle is read twice. The first pass writes nothing: it checks every entry against
//! the rules and hashes the deterministic part as [`super::pack`] would have packed it;
//! when a hash is expected (the chain's) and this is another, nothing is written at all.
//! The second pass checks the same rules again and writes the tree under `dest` through
//! capability handles (`cap-std`): each directory is opened without following a link
//! (`O_NOFOLLOW` per component) and each file is created new, so no link on disk, whether
//! made by this bundle or found there, is ever followed.
//!
//! Refused: absolute paths, `.` or `..` components, unknown top-level names, a name that
//! repeats, an entry under a symlink or under a file, hard links, devices and FIFOs,
//! symlinks that point outside `outputs/` (they are stored, never followed), more than
//! [`MAX_ENTRIES`] entries, and more than the size limit unpacked.

use super::{entry_name, file_mode, header, io_err, malformed, BundleError, HashWriter, Results, MAX_ENTRIES};
use alloy::primitives::B256;
use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, OpenOptions};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use tar::EntryType;

/// What [`extract`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The bundle's parts; `outputs_dir` is `dest/outputs`.
    pub results: Results,
    /// The result hash of the bundle's deterministic part, as it was read.
    pub hash: B256,
}

/// Extracts the bundle at `bundle` into `dest` (which must be empty or absent) and returns
/// its parts and result hash. With `expected`, a bundle of another hash is
/// [`BundleError::HashMismatch`] and nothing is written. Refuses anything unsafe or over
/// `max_bytes` unpacked ([`BundleError::Refused`]); a failure of this machine (disk full,
/// permissions) is [`BundleError::Io`].
pub fn extract(bundle: &Path, dest: &Path, max_bytes: u64, expected: Option<B256>) -> Result<Extracted, BundleError> {
    // First pass: check and hash, writing nothing.
    let mut hasher = tar::Builder::new(HashWriter(Sha256::new()));
    let streams = scan(bundle, max_bytes, |item, data| emit(&mut hasher, item, data))?;
    let finished = hasher.into_inner().map_err(io_err("hashing the bundle"))?;
    let hash = B256::from_slice(&finished.0.finalize());
    if let Some(expected) = expected.filter(|e| *e != hash) {
        return Err(BundleError::HashMismatch { actual: hash, expected });
    }
    // Second pass: the same checks, and the tree written under `dest`.
    let outputs = dest.join("outputs");
    std::fs::create_dir_all(dest).map_err(io_err(format!("creating {}", dest.display())))?;
    let root = Dir::open_ambient_dir(dest, cap_std::ambient_authority())
        .map_err(io_err(format!("opening {}", dest.display())))?;
    if root.entries().map_err(io_err(format!("reading {}", dest.display())))?.next().is_some() {
        return Err(BundleError::Io {
            what: format!("extracting into {}", dest.display()),
            source: io::Error::new(io::ErrorKind::AlreadyExists, "the folder is not empty: extract into a new one"),
        });
    }
    root.create_dir("outputs").map_err(write_err(format!("creating {}", outputs.display())))?;
    let out = root.open_dir_nofollow("outputs").map_err(write_err(format!("opening {}", outputs.display())))?;
    scan(bundle, max_bytes, |item, data| write(&out, item, data))?;
    let (exit_code, stdout, stderr) = streams;
    Ok(Extracted { results: Results { exit_code, stdout, stderr, outputs_dir: outputs }, hash })
}

/// One entry of a bundle, checked.
enum Item<'a> {
    ExitCode(i64),
    Stdout(&'a [u8]),
    /// Not hashed.
    Stderr,
    OutputsRoot,
    /// Paths relative to `outputs/`.
    Dir(&'a Path),
    File {
        rel: &'a Path,
        mode: u32,
        size: u64,
    },
    Symlink {
        rel: &'a Path,
        target: &'a Path,
    },
}

/// What a name was, to refuse repeats and entries under links or files.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    Dir,
    File,
    Link,
}

/// Reads the bundle, checks each entry and hands it to `visit` with its data; returns the
/// exit code, stdout and stderr.
fn scan(
    bundle: &Path,
    max_bytes: u64,
    mut visit: impl FnMut(Item<'_>, &mut dyn Read) -> Result<(), BundleError>,
) -> Result<(i64, Vec<u8>, Vec<u8>), BundleError> {
    let refuse = |why: String| BundleError::Refused(why);
    let file = File::open(bundle).map_err(io_err(format!("opening result bundle {}", bundle.display())))?;
    let size = file.metadata().map_err(io_err("reading the bundle size"))?.len();
    if size > max_bytes.saturating_add(1 << 20) {
        return Err(refuse(format!("it is {size} bytes, over the {max_bytes}-byte limit")));
    }
    let mut archive = tar::Archive::new(io::BufReader::new(file));
    let (mut exit_code, mut stdout, mut stderr) = (None, None, None);
    let mut root_seen = false;
    let mut seen: HashMap<OsString, Seen> = HashMap::new();
    let (mut total, mut count) = (0u64, 0usize);
    for entry in archive.entries().map_err(malformed("reading the bundle"))? {
        let mut entry = entry.map_err(malformed("reading the bundle"))?;
        count += 1;
        if count > MAX_ENTRIES {
            return Err(refuse(format!("more than {MAX_ENTRIES} entries")));
        }
        let path = entry.path().map_err(malformed("reading an entry name"))?.into_owned();
        let shown = path.display().to_string().escape_debug().to_string();
        if path.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(refuse(format!("entry `{shown}` is absolute or has a `.` or `..` component")));
        }
        total = total.saturating_add(entry.size());
        if total > max_bytes {
            return Err(refuse(format!("it unpacks to more than the {max_bytes}-byte limit")));
        }
        let kind = entry.header().entry_type();
        let mut top = path.components();
        let first = top.next().map(|c| c.as_os_str().as_bytes().to_vec()).unwrap_or_default();
        let rel: PathBuf = top.collect();
        let once = |slot: bool, name: &str| if slot { Err(refuse(format!("`{name}` appears twice"))) } else { Ok(()) };
        match (first.as_slice(), rel.as_os_str().is_empty(), kind) {
            (b"exit_code", true, EntryType::Regular) => {
                once(exit_code.is_some(), "exit_code")?;
                let text = String::from_utf8(read_small(&mut entry, "exit_code")?).unwrap_or_default();
                let code = text.trim().parse::<i64>().map_err(|_| refuse("exit_code is not a number".into()))?;
                exit_code = Some(code);
                visit(Item::ExitCode(code), &mut io::empty())?;
            }
            (b"stdout", true, EntryType::Regular) => {
                once(stdout.is_some(), "stdout")?;
                let bytes = read_small(&mut entry, "stdout")?;
                visit(Item::Stdout(&bytes), &mut io::empty())?;
                stdout = Some(bytes);
            }
            (b"stderr", true, EntryType::Regular) => {
                once(stderr.is_some(), "stderr")?;
                stderr = Some(read_small(&mut entry, "stderr")?);
                visit(Item::Stderr, &mut io::empty())?;
            }
            (b"outputs", true, EntryType::Directory) => {
                once(root_seen, "outputs/")?;
                root_seen = true;
                visit(Item::OutputsRoot, &mut io::empty())?;
            }
            (b"outputs", false, kind) => {
                // Every directory above the entry must be one this bundle made (or will
                // make) a directory: never a link, never a file.
                let mut above = PathBuf::new();
                let parents: Vec<_> = rel.components().collect();
                for c in &parents[..parents.len() - 1] {
                    above.push(c);
                    match seen.entry(above.clone().into_os_string()).or_insert(Seen::Dir) {
                        Seen::Dir => {}
                        Seen::Link => return Err(refuse(format!("entry `{shown}` is under a symlink"))),
                        Seen::File => return Err(refuse(format!("entry `{shown}` is under a file"))),
                    }
                }
                let mark = match kind {
                    EntryType::Directory => Seen::Dir,
                    EntryType::Regular => Seen::File,
                    EntryType::Symlink => Seen::Link,
                    EntryType::Link => return Err(refuse(format!("hard link `{shown}`"))),
                    other => {
                        return Err(refuse(format!("entry `{shown}` is a {other:?}, not a file, directory or symlink")))
                    }
                };
                if seen.insert(rel.clone().into_os_string(), mark).is_some() {
                    return Err(refuse(format!("the name `{shown}` appears twice")));
                }
                match mark {
                    Seen::Dir => visit(Item::Dir(&rel), &mut io::empty())?,
                    Seen::File => {
                        let mode = file_mode(entry.header().mode().unwrap_or(0o644));
                        let size = entry.size();
                        visit(Item::File { rel: &rel, mode, size }, &mut entry)?
                    }
                    Seen::Link => {
                        let target = entry
                            .link_name()
                            .map_err(malformed(format!("reading link {shown}")))?
                            .ok_or_else(|| refuse(format!("symlink `{shown}` has no target")))?
                            .into_owned();
                        if !stays_inside(&rel, &target) {
                            return Err(refuse(format!(
                                "symlink `{shown}` points to `{}`, outside outputs/",
                                target.display().to_string().escape_debug()
                            )));
                        }
                        visit(Item::Symlink { rel: &rel, target: &target }, &mut io::empty())?
                    }
                }
            }
            _ => return Err(refuse(format!("unexpected entry `{shown}`"))),
        }
    }
    let exit_code = exit_code.ok_or_else(|| refuse("no exit_code entry".into()))?;
    let stdout = stdout.ok_or_else(|| refuse("no stdout entry".into()))?;
    Ok((exit_code, stdout, stderr.unwrap_or_default()))
}

fn read_small(entry: &mut impl Read, what: &str) -> Result<Vec<u8>, BundleError> {
    let mut buf = Vec::new();
    entry.read_to_end(&mut buf).map_err(malformed(format!("reading {what}")))?;
    Ok(buf)
}

/// Whether the link `rel` (relative to `outputs/`) pointing at `target` resolves, by its
/// names alone, to a place within `outputs/`.
fn stays_inside(rel: &Path, target: &Path) -> bool {
    if !target.is_relative() {
        return false;
    }
    let mut depth = rel.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Re-packs one entry as [`super::pack`] would, into the hashing builder.
fn emit<W: Write>(b: &mut tar::Builder<W>, item: Item<'_>, data: &mut dyn Read) -> Result<(), BundleError> {
    let r = match item {
        Item::ExitCode(code) => super::append_bytes(b, "exit_code", format!("{code}\n").as_bytes()),
        Item::Stdout(bytes) => super::append_bytes(b, "stdout", bytes),
        Item::Stderr => Ok(()),
        Item::OutputsRoot => b.append_data(&mut header(EntryType::Directory, 0o755, 0), "outputs/", io::empty()),
        Item::Dir(rel) => {
            b.append_data(&mut header(EntryType::Directory, 0o755, 0), entry_name(rel, true), io::empty())
        }
        Item::File { rel, mode, size } => {
            b.append_data(&mut header(EntryType::Regular, mode, size), entry_name(rel, false), data)
        }
        Item::Symlink { rel, target } => {
            b.append_link(&mut header(EntryType::Symlink, 0o777, 0), entry_name(rel, false), target)
        }
    };
    // The builder only fails on reading the entry (the bundle) or on a name it cannot
    // encode; hashing writes nowhere.
    r.map_err(malformed("reading the bundle"))
}

/// Writes one entry under `out` (the `outputs` directory), following no link.
fn write(out: &Dir, item: Item<'_>, data: &mut dyn Read) -> Result<(), BundleError> {
    let (rel, shown) = match &item {
        Item::Dir(rel) | Item::File { rel, .. } | Item::Symlink { rel, .. } => {
            (*rel, format!("outputs/{}", rel.display()).escape_debug().to_string())
        }
        _ => return Ok(()),
    };
    let (parent, name) = match (rel.parent(), rel.file_name()) {
        (Some(p), Some(n)) => (p, n),
        _ => return Err(BundleError::Refused(format!("entry `{shown}` has no name"))),
    };
    let dir = open_parent(out, parent, &shown)?;
    match item {
        Item::Dir(_) => match dir.create_dir(name) {
            Ok(()) => Ok(()),
            // Made already as the parent of an earlier entry (names never repeat).
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                dir.open_dir_nofollow(name).map(drop).map_err(write_err(format!("creating {shown}")))
            }
            Err(e) => Err(write_err(format!("creating {shown}"))(e)),
        },
        Item::File { mode, .. } => {
            let mut opts = OpenOptions::new();
            opts.write(true).create_new(true).follow(FollowSymlinks::No);
            let file = dir.open_with(name, &opts).map_err(write_err(format!("writing {shown}")))?;
            let mut file = file.into_std();
            copy_entry(data, &mut file, &shown)?;
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(write_err(format!("writing {shown}")))
        }
        Item::Symlink { target, .. } => dir.symlink(target, name).map_err(write_err(format!("linking {shown}"))),
        _ => Ok(()),
    }
}

/// Opens (creating as needed) each directory of `parent` under `out`, one component at a
/// time, never through a link.
fn open_parent(out: &Dir, parent: &Path, shown: &str) -> Result<Dir, BundleError> {
    let mut dir = out.try_clone().map_err(write_err(format!("opening the folder of {shown}")))?;
    for c in parent.components() {
        let name = c.as_os_str();
        match dir.create_dir(name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(write_err(format!("creating the folder of {shown}"))(e)),
        }
        dir = dir.open_dir_nofollow(name).map_err(write_err(format!("opening the folder of {shown}")))?;
    }
    Ok(dir)
}

/// Whether a failed write is this machine's problem (disk full, quota, permissions, a
/// read-only or failing disk, no file handles) rather than the bundle's (an entry clashing
/// with another: a file where a directory should be, a name taken by a link).
fn is_local(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ENOSPC
                | libc::EDQUOT
                | libc::EACCES
                | libc::EPERM
                | libc::EROFS
                | libc::EIO
                | libc::EMFILE
                | libc::ENFILE
                | libc::ENOMEM
        )
    )
}

/// A failed write of the extracted tree: [`BundleError::Io`] when it is this machine's
/// problem, [`BundleError::Refused`] when the bundle's entries caused it.
fn write_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> BundleError {
    let what = what.into();
    move |source| {
        if is_local(&source) {
            BundleError::Io { what, source }
        } else {
            BundleError::Refused(format!("{what}: {source}"))
        }
    }
}

/// Copies an entry's bytes into `out`, telling a bad bundle (read) from a bad disk (write).
fn copy_entry(entry: &mut dyn Read, out: &mut File, shown: &str) -> Result<(), BundleError> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = entry.read(&mut buf).map_err(malformed(format!("reading {shown}")))?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n]).map_err(write_err(format!("writing {shown}")))?;
    }
}

#[cfg(test)]
mod tests;
