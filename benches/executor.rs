//! `executor_overhead_ratio`: median wall time of cowsay through `DockerExecutor` over
//! the median of `docker run --rm` of the same image and command, measured interleaved in
//! one run. Goal: at most 1.2. Needs the cowsay image (`make images`).

use dcn::executor::docker::{DockerConfig, DockerExecutor};
use dcn::executor::Executor;
use dcn::module::resolve::Resolver;
use std::time::Instant;

const ROUNDS: usize = 9;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let resolver = Resolver { override_dir: None, cache_dir: std::env::temp_dir() };
    let spec = resolver.resolve("cowsay")?.job_spec(&dcn::module::parse_inputs(&["Message=moo"])?)?;
    let executor = DockerExecutor::connect(DockerConfig::default(), None).await?;
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for round in 0..=ROUNDS {
        let dir = tempfile::tempdir()?;
        let t = Instant::now();
        let out = executor.run(&spec, dir.path()).await?;
        let ours_secs = t.elapsed().as_secs_f64();
        eyre::ensure!(out.exit_code == 0, "cowsay failed in the bench");

        let t = Instant::now();
        let status = tokio::process::Command::new("docker")
            .args(["run", "--rm", &spec.image])
            .args(&spec.argv)
            .stdout(std::process::Stdio::null())
            .status()
            .await?;
        let bare_secs = t.elapsed().as_secs_f64();
        eyre::ensure!(status.success(), "docker run failed in the bench");
        if round > 0 {
            // Round 0 warms caches for both.
            ours.push(ours_secs);
            bare.push(bare_secs);
        }
    }
    let (o, b) = (median(ours), median(bare));
    println!("executor_cowsay_seconds {o:.3} s");
    println!("docker_run_cowsay_seconds {b:.3} s");
    println!("executor_overhead_ratio {:.2} ratio", o / b);
    Ok(())
}
