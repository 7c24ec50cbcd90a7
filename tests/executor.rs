//! The Docker executor against the real engine: outputs, exit codes, limits, the sandbox,
//! bundles and hashes. Every test checks that no container is left behind (TestExecutor
//! panics on drop otherwise).

#![allow(clippy::unwrap_used)]

mod common;

use common::TestExecutor;
use dcn::bundle::{extract, result_hash, write_bundle, DEFAULT_MAX_BUNDLE_BYTES};
use dcn::executor::{ExecutorError, Termination};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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

/// The sandbox-probe module's report, run on `t`, with its work directory.
fn probe(t: &TestExecutor) -> (String, dcn::executor::RunOutcome, tempfile::TempDir) {
    let (out, dir) = t.run(&TestExecutor::spec("sandbox-probe", &[]));
    let out = out.unwrap();
    (String::from_utf8(out.stdout.clone()).unwrap(), out, dir)
}

/// What every runtime must show the probe (THREATS X2, X3, X5): an unprivileged user, no
/// network, a read-only root, no capabilities, `/outputs` that holds about the job's 8 MiB
/// and whose setuid bit does not reach the host, and no GPU.
fn assert_probe_sees_the_sandbox(t: &TestExecutor, report: &str, out: &dcn::executor::RunOutcome, dir: &Path) {
    for line in [
        "user: 65534:65534\n",
        "interfaces: lo \n",
        "write /: no\n",
        "write /etc: no\n",
        "write /tmp: yes\n",
        "write /outputs: yes\n",
        "CapEff:\t0000000000000000\n",
        "CapPrm:\t0000000000000000\n",
        "chown: no\n",
        "setuid in the job: -rwsr-xr-x\n",
        "gpus: void, 0 devices\n",
    ] {
        assert!(report.contains(line), "missing {line:?} in\n{report}");
    }
    let holds: u64 = report
        .lines()
        .find_map(|l| l.strip_prefix("outputs holds: ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no size in\n{report}"));
    assert!((4..16).contains(&holds), "/outputs of an 8 MiB job held {holds} MiB:\n{report}");
    let mode = std::fs::metadata(out.outputs_dir.join("setuid")).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o755, "no setuid bit on the host");
    assert_host_clean(t, dir);
}

#[test]
fn the_probe_sees_an_unprivileged_user_a_limited_nosuid_outputs_and_no_gpu() {
    let t = TestExecutor::new();
    let (report, out, dir) = probe(&t);
    assert!(report.contains("NoNewPrivs:\t1\n"), "{report}");
    assert!(report.contains("outputs mount: nodev nosuid \n"), "{report}");
    assert_probe_sees_the_sandbox(&t, &report, &out, dir.path());
}

/// THREATS X2–X5 under gVisor: scripts/setup registers Debian's runsc as `runsc`, with
/// `--network=none`.
#[test]
fn the_probe_sees_the_same_sandbox_under_gvisor() {
    let t = TestExecutor::with(|c| c.runtime = Some("runsc".into()));
    let (report, out, dir) = probe(&t);
    assert_probe_sees_the_sandbox(&t, &report, &out, dir.path());
    let (kernel, _dir) = t.run(&dcn::types::JobSpec {
        argv: ["/bin/sh", "-c", "dmesg | head -n 1"].map(String::from).to_vec(),
        ..TestExecutor::spec("echo", &["Text=x"])
    });
    let kernel = String::from_utf8(kernel.unwrap().stdout).unwrap();
    assert!(kernel.contains("gVisor"), "runs under gVisor's kernel: {kernel}");
}

#[test]
fn a_runtime_docker_does_not_have_is_refused_with_advice() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = dcn::executor::docker::DockerConfig { runtime: Some("no-such-runtime".into()), ..Default::default() };
    let err = match runtime.block_on(dcn::executor::docker::DockerExecutor::connect(config, None)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("connected with a runtime the engine lacks"),
    };
    assert!(err.contains("no runtime `no-such-runtime`") && err.contains("daemon.json"), "{err}");
}

/// Nothing of a job is left on the host but its work directory's `outputs` and bundle: no
/// scratch file system (mounted or not), no setuid or setgid file, no container (checked
/// when `t` drops).
fn assert_host_clean(_t: &TestExecutor, dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(["outputs", "bundle.tar"].contains(&name.as_str()), "{name} left in the work directory");
    }
    let canonical = dir.canonicalize().unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(canonical.to_str().unwrap()), "a mount left under {}", dir.display());
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            assert_eq!(meta.mode() & 0o6000, 0, "{} is setuid or setgid", p.display());
            if meta.is_dir() {
                todo.push(p);
            }
        }
    }
}

/// THREATS X2–X4, X6: each hostile module runs to an outcome, is packed by the rule every
/// party applies, and leaves the host as it found it.
#[test]
fn hostile_modules_leave_the_host_as_they_found_it() {
    use dcn::bundle::{pack, ERROR_BUNDLE_EXIT, MAX_STDOUT_BYTES};
    let t = TestExecutor::new();
    let run = |module: &str| {
        let spec = TestExecutor::spec(module, &[]);
        let started = std::time::Instant::now();
        let (out, dir) = t.run(&spec);
        let out = out.unwrap_or_else(|e| panic!("{module}: {e}"));
        let packed = pack(out.results(), spec.output_limit_bytes(), &dir.path().join("bundle.tar")).unwrap();
        assert_host_clean(&t, dir.path());
        (out, packed, started.elapsed(), dir)
    };

    let (out, packed, _, _dir) = run("hostile-setuid");
    assert_eq!((out.exit_code, packed.exit_code), (0, 0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(out.outputs_dir.join("locked/f")).unwrap(), "secret\n");
    assert_eq!(std::fs::read_link(out.outputs_dir.join("passwd")).unwrap(), Path::new("/etc/passwd"));

    let (out, packed, took, _dir) = run("sparse");
    assert_eq!(packed.exit_code, ERROR_BUNDLE_EXIT, "a 100 GiB sparse file is over the limit");
    assert!(out.over_limit.unwrap().contains("over its limit"));
    assert!(took.as_secs() < 20, "measured, never packed: {took:?}");

    let (out, packed, _, _dir) = run("hostile-write-everywhere");
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    for line in said.lines().filter(|l| l.starts_with("wrote ")) {
        let path = &line["wrote ".len()..];
        assert!(
            ["/tmp", "/outputs", "/dev/shm", "/dev/mqueue"]
                .iter()
                .any(|ok| path == *ok || path.starts_with(&format!("{ok}/"))),
            "the job wrote in {path}:\n{said}"
        );
    }
    assert!(said.contains("done"), "{said}");
    assert_eq!(packed.exit_code, ERROR_BUNDLE_EXIT, "64 MiB written past a 4 MiB limit: {said}");

    let (out, packed, _, _dir) = run("hostile-stdout-flood");
    assert_eq!(out.termination, Termination::OutputOverLimit);
    assert_eq!(out.stdout.len(), MAX_STDOUT_BYTES + 1, "kept to the cap");
    assert_eq!(packed.exit_code, ERROR_BUNDLE_EXIT);

    let (out, packed, _, _dir) = run("hostile-stderr-flood");
    assert_eq!(out.termination, Termination::TimedOut);
    let tail = String::from_utf8_lossy(&out.stderr);
    assert!(out.stderr.len() <= dcn::bundle::BUNDLE_STDERR_BYTES && tail.contains("flood\nflood\n"), "{tail:.200}");
    assert_ne!(packed.exit_code, ERROR_BUNDLE_EXIT, "stderr is not hashed and has no cap on its flow");

    let (out, _, took, _dir) = run("hostile-fork-bomb");
    assert_eq!(out.termination, Termination::TimedOut, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(took.as_secs() < 30, "{took:?}");

    let (out, _, _, _dir) = run("memory-hog");
    assert_eq!(out.termination, Termination::OutOfMemory);
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

    let back = extract(&bundle, &dir1.path().join("extracted"), DEFAULT_MAX_BUNDLE_BYTES, Some(hash)).unwrap().results;
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

/// THREATS X6: a pull whose layers add up to more than `executor.max_image_mb` is stopped,
/// and the image is not left on the machine.
#[test]
fn a_pull_over_the_size_limit_is_stopped() {
    use dcn::executor::Executor;
    let t = TestExecutor::with(|c| c.pull.max_bytes = 1024);
    let marker = format!("{}-{}", t.label, dcn::clock::now_secs());
    let registry = common::registry::TestRegistry::serve(&t.runtime, "dcn.local/busybox:1.35", &marker);
    t.remove_image_at_end(registry.image_id());
    let mut spec = TestExecutor::spec("echo", &["Text=x"]);
    spec.image = format!("127.0.0.1:{}/dcn-test/busybox@{}", registry.port, registry.manifest_digest());
    let err = t.runtime.block_on(t.executor.prepare(&spec)).unwrap_err();
    assert!(matches!(err, ExecutorError::ImageUnavailable { .. }), "{err}");
    assert!(err.to_string().contains("executor.max_image_mb"), "{err}");
    assert!(t.runtime.block_on(t.executor.docker().inspect_image(&spec.image)).is_err(), "not pulled");
}
