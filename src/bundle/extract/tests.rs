//! Hostile bundles (THREATS X1, X7): each is refused or extracted within its folder, and
//! nothing is written outside it.

use super::super::{append_bytes, header, pack, result_hash, write_bundle, Results, DEFAULT_MAX_BUNDLE_BYTES};
use super::*;
use std::os::unix::ffi::OsStrExt;

/// Writes a tar with raw headers (bypassing the tar crate's own path checks): exit code
/// and stdout, then what `build` adds.
fn evil(dir: &Path, build: impl FnOnce(&mut tar::Builder<File>)) -> PathBuf {
    let p = dir.join("evil.tar");
    let mut b = tar::Builder::new(File::create(&p).unwrap());
    append_bytes(&mut b, "exit_code", b"0\n").unwrap();
    append_bytes(&mut b, "stdout", b"").unwrap();
    build(&mut b);
    b.finish().unwrap();
    p
}

fn raw_entry(b: &mut tar::Builder<File>, name: &[u8], kind: EntryType, link: Option<&[u8]>, data: &[u8]) {
    let mut h = header(kind, 0o644, data.len() as u64);
    let bytes = h.as_old_mut();
    bytes.name = [0; 100];
    bytes.name[..name.len()].copy_from_slice(name);
    if let Some(l) = link {
        bytes.linkname = [0; 100];
        bytes.linkname[..l.len()].copy_from_slice(l);
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn file(b: &mut tar::Builder<File>, name: &str, data: &[u8]) {
    raw_entry(b, name.as_bytes(), EntryType::Regular, None, data)
}

fn dir(b: &mut tar::Builder<File>, name: &str) {
    raw_entry(b, name.as_bytes(), EntryType::Directory, None, b"")
}

fn link(b: &mut tar::Builder<File>, name: &str, target: &str) {
    raw_entry(b, name.as_bytes(), EntryType::Symlink, Some(target.as_bytes()), b"")
}

/// Every path under `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Runs `build` as a bundle extracted into `<tmp>/home/results/x`, with `<tmp>/home/.bashrc`
/// as the file an attacker wants. Returns the error, having checked that nothing outside
/// `x` changed.
fn refused(build: impl FnOnce(&mut tar::Builder<File>)) -> BundleError {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join("results")).unwrap();
    std::fs::write(home.join(".bashrc"), "mine").unwrap();
    let p = evil(tmp.path(), build);
    let before = tree(tmp.path());
    let err = extract(&p, &home.join("results/x"), DEFAULT_MAX_BUNDLE_BYTES, None).unwrap_err();
    let after: Vec<_> = tree(tmp.path()).into_iter().filter(|p| !p.starts_with("home/results/x")).collect();
    let before: Vec<_> = before.into_iter().filter(|p| !p.starts_with("home/results/x")).collect();
    assert_eq!(after, before, "nothing is written outside the folder ({err})");
    assert_eq!(std::fs::read_to_string(home.join(".bashrc")).unwrap(), "mine", "{err}");
    err
}

#[test]
fn a_chain_of_links_then_a_file_under_them_is_refused_and_writes_nothing_outside() {
    // Each link stays inside by its names, but followed on disk the chain climbs out:
    // l2 -> l1/.. is outputs/.. when l1 is `.`.
    let err = refused(|b| {
        dir(b, "outputs/");
        link(b, "outputs/l1", ".");
        link(b, "outputs/l2", "l1/..");
        link(b, "outputs/l3", "l2/..");
        file(b, "outputs/l3/.bashrc", b"pwned");
    });
    assert!(err.to_string().contains("under a symlink"), "{err}");
    let err = refused(|b| {
        dir(b, "outputs/");
        link(b, "outputs/d", ".");
        dir(b, "outputs/d/sub/");
    });
    assert!(err.to_string().contains("under a symlink"), "{err}");
}

#[test]
fn a_link_then_a_file_of_the_same_name_is_refused() {
    let err = refused(|b| {
        dir(b, "outputs/");
        link(b, "outputs/a", "b");
        file(b, "outputs/a", b"through the link?");
    });
    assert!(err.to_string().contains("appears twice"), "{err}");
    let err = refused(|b| {
        dir(b, "outputs/");
        file(b, "outputs/a", b"one");
        file(b, "outputs/a", b"two");
    });
    assert!(err.to_string().contains("appears twice"), "{err}");
    let err = refused(|b| {
        dir(b, "outputs/");
        append_bytes(b, "stdout", b"again").unwrap();
    });
    assert!(err.to_string().contains("`stdout` appears twice"), "{err}");
}

#[test]
fn entries_of_every_forbidden_kind_are_refused() {
    type Build = Box<dyn FnOnce(&mut tar::Builder<File>)>;
    let cases: Vec<(&str, Build, &str)> = vec![
        ("absolute", Box::new(|b| file(b, "/etc/passwd", b"x")), "absolute"),
        ("dotdot", Box::new(|b| file(b, "outputs/../../.bashrc", b"x")), "`..`"),
        ("dot", Box::new(|b| file(b, "./outputs/x", b"x")), "`.`"),
        ("escape", Box::new(|b| link(b, "outputs/l", "../../etc")), "outside outputs/"),
        ("climb", Box::new(|b| link(b, "outputs/a/l", "../../x")), "outside outputs/"),
        ("abs-link", Box::new(|b| link(b, "outputs/l", "/etc")), "outside outputs/"),
        ("hardlink", Box::new(|b| raw_entry(b, b"outputs/h", EntryType::Link, Some(b"stdout"), b"")), "hard link"),
        ("char device", Box::new(|b| raw_entry(b, b"outputs/d", EntryType::Char, None, b"")), "Char"),
        ("block device", Box::new(|b| raw_entry(b, b"outputs/d", EntryType::Block, None, b"")), "Block"),
        ("fifo", Box::new(|b| raw_entry(b, b"outputs/f", EntryType::Fifo, None, b"")), "Fifo"),
        ("unknown", Box::new(|b| file(b, "payload", b"x")), "unexpected entry"),
        (
            "under a file",
            Box::new(|b| {
                file(b, "outputs/a", b"x");
                file(b, "outputs/a/b", b"y");
            }),
            "under a file",
        ),
    ];
    for (name, build, want) in cases {
        let err = refused(build);
        assert!(err.to_string().contains(want), "{name}: {err}");
        assert!(err.is_bundle_fault(), "{name}: {err}");
    }
}

#[test]
fn a_size_bomb_is_refused_before_it_is_written() {
    // An entry that claims 2 GiB in a bundle of a few bytes: refused on its header.
    let err = refused(|b| {
        let mut h = header(EntryType::Regular, 0o644, 2 << 30);
        h.set_path("outputs/bomb").unwrap();
        h.set_cksum();
        b.append(&h, &b""[..]).unwrap();
    });
    assert!(err.to_string().contains("limit"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let p = evil(tmp.path(), |b| file(b, "outputs/big", &vec![0u8; 4096]));
    let err = extract(&p, &tmp.path().join("x"), 1000, None).unwrap_err().to_string();
    assert!(err.contains("limit"), "{err}");
    assert!(!tmp.path().join("x/outputs/big").exists(), "the hash pass wrote nothing");
}

#[test]
fn a_bundle_of_another_hash_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("a.txt"), "a").unwrap();
    let r = Results { exit_code: 0, stdout: b"hi\n".to_vec(), stderr: vec![], outputs_dir: out };
    let bundle = tmp.path().join("b.tar");
    let hash = write_bundle(&r, &bundle).unwrap();
    let err =
        extract(&bundle, &tmp.path().join("x"), DEFAULT_MAX_BUNDLE_BYTES, Some(B256::repeat_byte(7))).unwrap_err();
    assert!(matches!(err, BundleError::HashMismatch { actual, .. } if actual == hash), "{err}");
    assert!(err.is_bundle_fault());
    assert!(!tmp.path().join("x").exists(), "nothing written");
    let got = extract(&bundle, &tmp.path().join("x"), DEFAULT_MAX_BUNDLE_BYTES, Some(hash)).unwrap();
    assert_eq!(got.hash, hash);
    assert_eq!(std::fs::read_to_string(got.results.outputs_dir.join("a.txt")).unwrap(), "a");
    // Never into a folder that holds something.
    let err = extract(&bundle, &tmp.path().join("x"), DEFAULT_MAX_BUNDLE_BYTES, Some(hash)).unwrap_err();
    assert!(matches!(err, BundleError::Io { .. }) && err.to_string().contains("not empty"), "{err}");
}

#[test]
fn non_utf8_names_hash_alike_on_both_sides() {
    // Byte-wise, 0x80 sorts before "é" (0xc3 0xa9); read lossily (U+FFFD, 0xef 0xbf 0xbd)
    // it sorts after: a receiver that re-hashed lossy names from its disk disagreed.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let names: [&[u8]; 4] = [b"A\x80", "Aé".as_bytes(), b"A\xff", b"A\xfe"];
    for (i, n) in names.iter().enumerate() {
        std::fs::write(out.join(std::ffi::OsStr::from_bytes(n)), i.to_string()).unwrap();
    }
    std::fs::create_dir_all(out.join(std::ffi::OsStr::from_bytes(b"d\xfe"))).unwrap();
    std::fs::write(out.join(std::ffi::OsStr::from_bytes(b"d\xfe/in\x80side")), "deep").unwrap();
    let r = Results { exit_code: 0, stdout: vec![], stderr: vec![], outputs_dir: out };
    let bundle = tmp.path().join("b.tar");
    let packed = pack(r.clone(), DEFAULT_MAX_BUNDLE_BYTES, &bundle).unwrap();
    assert_eq!(packed.replaced, None);
    let got = extract(&bundle, &tmp.path().join("x"), DEFAULT_MAX_BUNDLE_BYTES, Some(packed.hash)).unwrap();
    for (i, n) in names.iter().enumerate() {
        let p = got.results.outputs_dir.join(std::ffi::OsStr::from_bytes(n));
        assert_eq!(std::fs::read_to_string(p).unwrap(), i.to_string(), "name {n:?} kept as its bytes");
    }
    // The extracted tree packs to the same hash again: the two sides agree.
    assert_eq!(result_hash(&got.results).unwrap(), packed.hash);
}

#[test]
fn a_round_trip_keeps_links_modes_and_streams() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(out.join("b/c")).unwrap();
    std::fs::write(out.join("b/c/z.txt"), "z").unwrap();
    std::fs::write(out.join("run.sh"), "#!/bin/sh").unwrap();
    std::fs::set_permissions(out.join("run.sh"), std::fs::Permissions::from_mode(0o4750)).unwrap();
    std::os::unix::fs::symlink("b/c/z.txt", out.join("link")).unwrap();
    let r = Results { exit_code: 3, stdout: b"hello\n".to_vec(), stderr: b"took 5ms".to_vec(), outputs_dir: out };
    let bundle = tmp.path().join("b.tar");
    let hash = write_bundle(&r, &bundle).unwrap();
    let got = extract(&bundle, &tmp.path().join("x"), DEFAULT_MAX_BUNDLE_BYTES, Some(hash)).unwrap();
    let back = &got.results;
    assert_eq!((back.exit_code, &back.stdout, &back.stderr), (3, &r.stdout, &r.stderr));
    assert_eq!(std::fs::read_link(back.outputs_dir.join("link")).unwrap(), Path::new("b/c/z.txt"));
    let mode = std::fs::metadata(back.outputs_dir.join("run.sh")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755, "executable, and never setuid");
}
