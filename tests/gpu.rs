//! GPUs through Docker device requests. The real run needs an NVIDIA GPU and the
//! container toolkit; on machines without them this checks that detection says why.

mod common;

use dcn::executor::docker::{DockerConfig, DockerExecutor};
use dcn::executor::gpu::{detect, GpuPool};
use dcn::executor::Executor;

#[test]
fn nvidia_smi_module_sees_exactly_its_gpu() {
    let gpus = match detect() {
        Ok(g) => g,
        Err(why) => {
            let why = why.to_string();
            assert!(why.contains("NVIDIA"), "detection must explain itself: {why}");
            eprintln!("no GPU on this machine, real GPU run not possible here: {why}");
            return;
        }
    };
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
