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
