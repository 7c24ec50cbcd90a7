//! GPUs through Docker device requests, on a real NVIDIA GPU with the container toolkit.
//! Machines without one cannot run this: it is ignored by default and run with
//! `make test-gpu` (`DCN_TEST_GPU=1 cargo test --test gpu -- --ignored`), where finding no
//! GPU is a failure, not a pass. Parsing recorded `nvidia-smi` output and leasing GPUs are
//! unit-tested in `executor::gpu` on every machine.

mod common;

use dcn::executor::docker::{DockerConfig, DockerExecutor};
use dcn::executor::gpu::{detect, GpuPool};
use dcn::executor::Executor;

#[test]
#[ignore = "needs an NVIDIA GPU and the container toolkit: run `make test-gpu` on such a machine"]
fn nvidia_smi_module_sees_exactly_its_gpu() {
    let gpus = detect().unwrap_or_else(|why| panic!("no usable GPU on this machine, so nothing was tested: {why}"));
    let pool = GpuPool::new(gpus);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let executor = rt.block_on(DockerExecutor::connect(DockerConfig::default(), Some(pool.clone()))).unwrap();
    let spec = common::TestExecutor::spec("nvidia-smi", &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = rt.block_on(executor.run(&spec, dir.path())).unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.exit_code, 0, "{stdout}");
    assert_eq!(out.gpus.len(), 1);
    assert!(stdout.contains(&out.gpus[0]), "the job sees the GPU it was given: {stdout}");
    assert_eq!(stdout.lines().count(), 1, "and only that one: {stdout}");
    assert_eq!(pool.free_count(), pool.gpus().len(), "released after the job");
}

#[test]
fn the_gpu_test_is_not_skipped_when_asked_for() {
    // With DCN_TEST_GPU=1 the ignored test above must run (make test-gpu passes
    // --ignored); this guards against a CI that sets the variable but forgets the flag.
    if std::env::var("DCN_TEST_GPU").as_deref() == Ok("1") {
        let args: Vec<String> = std::env::args().collect();
        assert!(
            args.iter().any(|a| a == "--ignored" || a == "--include-ignored"),
            "DCN_TEST_GPU=1 but the GPU test is ignored: run `make test-gpu` ({args:?})"
        );
    }
}
