//! `dcn run --local` as a process, against the real Docker engine.

mod common;

use common::{bare_dcn, stderr};

#[test]
fn run_local_prints_the_cow_and_writes_the_bundle() {
    let home = tempfile::tempdir().unwrap();
    let results = home.path().join("results");
    let r = results.to_str().unwrap();
    let out = bare_dcn(home.path())
        .args(["run", "--local", "cowsay", "-i", "Message=moo", "--results-dir", r])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("< moo >") && stdout.contains("(oo)"), "{stdout}");
    let dirs: Vec<_> = std::fs::read_dir(&results).unwrap().collect();
    assert_eq!(dirs.len(), 1);
    assert!(dirs[0].as_ref().unwrap().path().join("bundle.tar").exists());

    let out = bare_dcn(home.path())
        .args(["run", "--local", "write-files", "-i", "Count=2", "--json", "--results-dir", r])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["termination"], "exited");
    let outputs = std::path::PathBuf::from(summary["outputs"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(outputs.join("numbers/list.txt")).unwrap(), "1\n2\n");
    assert!(summary["result_hash"].as_str().unwrap().starts_with("0x"));
}

#[test]
fn run_local_reports_bad_inputs_and_failed_jobs() {
    let home = tempfile::tempdir().unwrap();
    let r = home.path().join("results");
    let run = |args: &[&str]| {
        bare_dcn(home.path())
            .args(["run", "--local", "--results-dir", r.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["cowsay", "-i", "Colour=red"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("module `cowsay` has no input `Colour`; its inputs: Message"), "{}", stderr(&out));

    let out = run(&["write-files", "-i", "Count=lots"]);
    assert!(stderr(&out).contains("input `Count` of module `write-files` does not match"), "{}", stderr(&out));

    let exit = format!("{}/tests/modules/exit.toml", env!("CARGO_MANIFEST_DIR"));
    let out = run(&[&exit, "-i", "Code=4"]);
    assert!(!out.status.success());
    assert_eq!(out.stdout, b"out\n");
    assert!(stderr(&out).contains("the job exited with code 4"), "{}", stderr(&out));

    let out = run(&["no-such-module"]);
    assert!(stderr(&out).contains("unknown module `no-such-module`"), "{}", stderr(&out));
}

/// THREATS X1: `dcn bundle extract` checks the hash before it writes anything, refuses a
/// hostile bundle without writing outside its folder, and extracts an honest one.
#[test]
fn bundle_extract_checks_the_hash_first_and_never_leaves_its_folder() {
    let home = tempfile::tempdir().unwrap();
    let results = home.path().join("results");
    let out = bare_dcn(home.path())
        .args(["run", "--local", "write-files", "-i", "Count=2", "--json", "--results-dir"])
        .arg(&results)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (bundle, hash) = (summary["bundle"].as_str().unwrap(), summary["result_hash"].as_str().unwrap());
    let extract = |into: &std::path::Path, file: &str, hash: Option<&str>| {
        let mut cmd = bare_dcn(home.path());
        cmd.args(["bundle", "extract", file, "--into"]).arg(into);
        if let Some(h) = hash {
            cmd.args(["--hash", h]);
        }
        cmd.output().unwrap()
    };
    let wrong = format!("0x{}", "ab".repeat(32));
    let out = extract(&home.path().join("x"), bundle, Some(&wrong));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("differs from the expected") && stderr(&out).contains("nothing was extracted"));
    assert!(!home.path().join("x").exists());
    let out = extract(&home.path().join("x"), bundle, Some(hash));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("result hash {hash}")));
    assert_eq!(std::fs::read_to_string(home.path().join("x/outputs/numbers/list.txt")).unwrap(), "1\n2\n");
    assert_eq!(std::fs::read_to_string(home.path().join("x/exit_code")).unwrap(), "0\n");

    // A link to the folder above, then a file through it: refused, nothing written there.
    let evil = home.path().join("evil.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&evil).unwrap());
    let mut add = |name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("exit_code", tar::EntryType::Regular, None, b"0\n");
    add("stdout", tar::EntryType::Regular, None, b"");
    add("outputs/up", tar::EntryType::Symlink, Some("."), b"");
    add("outputs/up2", tar::EntryType::Symlink, Some("up/.."), b"");
    add("outputs/up2/planted", tar::EntryType::Regular, None, b"pwned");
    b.finish().unwrap();
    drop(b);
    let out = extract(&home.path().join("y"), evil.to_str().unwrap(), None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("under a symlink"), "{}", stderr(&out));
    assert!(!home.path().join("planted").exists() && !home.path().join("y/planted").exists());
}
