//! The Docker executor against the real engine: outputs, exit codes, limits, the sandbox,
//! bundles and hashes. Every test checks that no container is left behind (TestExecutor
//! panics on drop otherwise).

mod common;

use common::TestExecutor;
use dcn::bundle::{extract, result_hash, write_bundle, DEFAULT_MAX_BUNDLE_BYTES};
use dcn::executor::{ExecutorError, Termination};

#[test]
fn cowsay_prints_the_cow() {
    let t = TestExecutor::new();
    let (out, _dir) = t.run(&TestExecutor::spec("cowsay", &["Message=moo"]));
    let out = out.unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(out.termination, Termination::Exited);
    assert!(stdout.contains("< moo >"), "{stdout}");
    assert!(stdout.contains("(oo)\\_______"), "{stdout}");
}

#[test]
fn inputs_come_out_verbatim() {
    let t = TestExecutor::new();
    let text = "moo\"; rm -rf / #\nsecond line $(id) `id` 'single' \\back";
    let (out, _dir) = t.run(&TestExecutor::spec("echo", &[&format!("Text={text}")]));
    assert_eq!(String::from_utf8(out.unwrap().stdout).unwrap(), format!("{text}\n"));

    let (out, _dir) = t.run(&TestExecutor::spec("cowsay", &["Message=moo\"; rm -rf / #"]));
    let stdout = String::from_utf8(out.unwrap().stdout).unwrap();
    assert!(stdout.contains("moo\"; rm -rf / #"), "{stdout}");
}

#[test]
fn exit_codes_and_streams_are_outcomes() {
    let t = TestExecutor::new();
    let (out, _dir) = t.run(&TestExecutor::spec("exit", &["Code=3"]));
    let out = out.unwrap();
    assert_eq!((out.exit_code, out.termination), (3, Termination::Exited));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
}

#[test]
fn a_job_over_its_memory_limit_is_reported_out_of_memory() {
    let t = TestExecutor::new();
    let (out, _dir) = t.run(&TestExecutor::spec("memory-hog", &[]));
    let out = out.unwrap();
    assert_eq!(out.termination, Termination::OutOfMemory, "stdout: {:?}", String::from_utf8_lossy(&out.stdout));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("survived"));
}

#[test]
fn a_job_over_its_timeout_is_killed() {
    let t = TestExecutor::new();
    let (out, _dir) = t.run(&TestExecutor::spec("sleeper", &[]));
    let out = out.unwrap();
    assert_eq!(out.termination, Termination::TimedOut);
    assert_ne!(out.exit_code, 0);
    assert!(out.duration.as_secs() < 30, "killed near its 2 s timeout, not after the 60 s sleep");
}

#[test]
fn the_sandbox_has_no_network_a_read_only_root_and_no_capabilities() {
    let t = TestExecutor::new();
    let (out, _dir) = t.run(&TestExecutor::spec("sandbox-probe", &[]));
    let report = String::from_utf8(out.unwrap().stdout).unwrap();
    for line in [
        "interfaces: lo \n",
        "write /: no\n",
        "write /etc: no\n",
        "write /tmp: yes\n",
        "write /outputs: yes\n",
        "CapEff:\t0000000000000000\n",
        "CapPrm:\t0000000000000000\n",
        "NoNewPrivs:\t1\n",
        "chown: no\n",
    ] {
        assert!(report.contains(line), "missing {line:?} in\n{report}");
    }
}

#[test]
fn outputs_land_in_the_bundle_and_hashes_repeat() {
    let t = TestExecutor::new();
    let spec = TestExecutor::spec("write-files", &["Name=dcn", "Count=3"]);
    let (first, dir1) = t.run(&spec);
    let first = first.unwrap();
    assert_eq!(first.stdout, b"wrote 2 files\n");
    let bundle = dir1.path().join("bundle.tar");
    let hash = write_bundle(&first.results(), &bundle).unwrap();

    let back = extract(&bundle, &dir1.path().join("extracted"), DEFAULT_MAX_BUNDLE_BYTES).unwrap();
    assert_eq!(std::fs::read_to_string(back.outputs_dir.join("greeting.txt")).unwrap(), "hello, dcn\n");
    assert_eq!(std::fs::read_to_string(back.outputs_dir.join("numbers/list.txt")).unwrap(), "1\n2\n3\n");
    assert_eq!(result_hash(&back).unwrap(), hash);

    let (second, _dir2) = t.run(&spec);
    assert_eq!(result_hash(&second.unwrap().results()).unwrap(), hash, "same job, same result hash");
    let (other, _dir3) = t.run(&TestExecutor::spec("write-files", &["Name=dcn", "Count=4"]));
    assert_ne!(result_hash(&other.unwrap().results()).unwrap(), hash);
}

#[test]
fn refusals_are_executor_errors_with_advice() {
    let t = TestExecutor::new();
    let (err, _dir) = t.run(&TestExecutor::spec("wants-network", &[]));
    assert!(matches!(err, Err(ExecutorError::NetworkNotAllowed(_))), "{err:?}");

    let (err, _dir) = t.run(&TestExecutor::spec("missing-image", &[]));
    let msg = err.unwrap_err().to_string();
    assert!(msg.contains("dcn.local/does-not-exist:0") && msg.contains("make images"), "{msg}");

    let (err, _dir) = t.run(&TestExecutor::spec("nvidia-smi", &[]));
    assert!(err.unwrap_err().to_string().contains("offers none"));
}

#[test]
fn a_cancelled_run_removes_its_container() {
    use dcn::executor::Executor;
    let t = TestExecutor::new();
    let spec = TestExecutor::spec("sleeper", &["Seconds=30"]);
    let dir = tempfile::tempdir().unwrap();
    t.runtime.block_on(async {
        let run = t.executor.run(&spec, dir.path());
        tokio::pin!(run);
        // Drive the run until its container is running, then drop the future.
        loop {
            tokio::select! {
                r = &mut run => panic!("the 30 s job ended before it was cancelled: {r:?}"),
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {
                    if t.containers(true).await > 0 {
                        break;
                    }
                }
            }
        }
    });
    // TestExecutor's drop waits for the removal and fails if the container stays.
}

/// THREATS S1: a provider signs for the image it inspected and runs exactly that one. The
/// tag is moved to another image after `prepare`: the job still runs the first.
#[test]
fn a_prepared_job_runs_the_image_it_was_prepared_with_whatever_its_tag_names_later() {
    use bollard::query_parameters::TagImageOptionsBuilder;
    use dcn::executor::Executor;
    let t = TestExecutor::new();
    let docker = t.executor.docker();
    let repo = "dcn.local/retag-test";
    let tag_as_test = |source: &str| {
        let options = TagImageOptionsBuilder::default().repo(repo).tag(&t.label).build();
        t.runtime.block_on(docker.tag_image(source, Some(options))).unwrap();
    };
    let which = |spec: &dcn::types::JobSpec| {
        let (out, _dir) = t.run(spec);
        String::from_utf8(out.unwrap().stdout).unwrap()
    };
    t.remove_image_at_end(format!("{repo}:{}", t.label));
    tag_as_test("dcn.local/busybox:1.35");
    let mut spec = TestExecutor::spec("echo", &["Text=x"]);
    spec.image = format!("{repo}:{}", t.label);
    spec.argv = ["/bin/sh", "-c", "if test -e /usr/games/cowsay; then echo cowsay; else echo busybox; fi"]
        .map(String::from)
        .to_vec();
    let prepared = t.runtime.block_on(t.executor.prepare(&spec)).unwrap();
    let busybox = t.runtime.block_on(docker.inspect_image("dcn.local/busybox:1.35")).unwrap().id.unwrap();
    assert_eq!(prepared.image_id, busybox);

    tag_as_test("dcn.local/cowsay:1.0");
    assert_eq!(which(&spec), "cowsay\n", "the tag names another image now");
    let pinned = dcn::types::JobSpec { image: prepared.image_id, ..spec.clone() };
    assert_eq!(which(&pinned), "busybox\n", "the prepared image runs");
    // A pinned image gone from the machine is an error, never pulled by its ID.
    let gone = dcn::types::JobSpec { image: format!("sha256:{}", "0".repeat(64)), ..spec.clone() };
    let (err, _dir) = t.run(&gone);
    assert!(matches!(err, Err(ExecutorError::ImageUnavailable { .. })), "{err:?}");
}

/// THREATS S1: an image that is not on this machine is pulled by `prepare`, before a
/// provider signs, from a registry that is reachable (a loopback one here); a registry's
/// image must be named by digest (a tag may name another image for the mediator), and the
/// job then runs the image pulled.
#[test]
fn prepare_pulls_an_absent_image_from_a_reachable_registry_named_by_digest() {
    use dcn::executor::Executor;
    let t = TestExecutor::new();
    let marker = format!("{}-{}", t.label, dcn::clock::now_secs());
    let registry = common::registry::TestRegistry::serve(&t.runtime, "dcn.local/busybox:1.35", &marker);
    // By ID, forced: every tag and digest reference of the pulled image goes.
    t.remove_image_at_end(registry.image_id());
    let repo = format!("127.0.0.1:{}/dcn-test/busybox", registry.port);
    let mut spec = TestExecutor::spec("echo", &["Text=x"]);
    spec.image = format!("{repo}:{}", t.label);
    spec.argv = ["/bin/cat", "/pulled"].map(String::from).to_vec();
    let docker = t.executor.docker();
    assert!(t.runtime.block_on(docker.inspect_image(&spec.image)).is_err(), "not here before");
    let by_tag = t.runtime.block_on(t.executor.prepare(&spec)).unwrap_err().to_string();
    assert!(by_tag.contains("name it by digest") && by_tag.contains(registry.manifest_digest()), "{by_tag}");
    assert!(registry.blob_gets() > 0, "pulled from the registry");

    spec.image = format!("{repo}@{}", registry.manifest_digest());
    let prepared = t.runtime.block_on(t.executor.prepare(&spec)).unwrap();
    assert_eq!(prepared.image_id, registry.image_id());
    let (out, _dir) = t.run(&spec);
    assert_eq!(String::from_utf8(out.unwrap().stdout).unwrap(), format!("from the registry {marker}\n"));
}
