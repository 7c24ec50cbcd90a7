//! `e2e_cowsay_seconds`: median wall time of `dcn run cowsay -i Message=moo` against a
//! running `dcn dev` (local anvil, solver, provider, mediator in one process), and
//! `e2e_overhead_ratio`: that over the median of a bare `docker run --rm` of the same image
//! and command, measured interleaved in one run. Goal: ratio at most 3. Needs the cowsay
//! image (`make images`) and anvil (`scripts/setup`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Dev(std::process::Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
    }
}

fn dcn(home: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dcn"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DCN_") || k.starts_with("WEB3_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", home).env("RUST_LOG", "warn");
    c
}

fn main() -> eyre::Result<()> {
    let home = tempfile::tempdir()?;
    let child = dcn(home.path())
        .args(["dev", "--chain-port", "0", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(home.path().join("dev.log"))?)
        .spawn()?;
    let _dev = Dev(child);
    let ready = home.path().join(".dcn/dev/ready.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready.exists() {
        eyre::ensure!(
            Instant::now() < deadline,
            "dcn dev not ready: {}",
            std::fs::read_to_string(home.path().join("dev.log"))?
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready)?)?;
    let rpc = r["rpc_url"].as_str().unwrap_or_default().to_string();

    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for round in 0..=ROUNDS {
        let t = Instant::now();
        let out = dcn(home.path())
            .current_dir(home.path())
            .args(["--rpc-url", &rpc, "run", "cowsay", "-i", "Message=moo"])
            .output()?;
        let ours_secs = t.elapsed().as_secs_f64();
        eyre::ensure!(out.status.success(), "dcn run failed: {}", String::from_utf8_lossy(&out.stderr));

        let t = Instant::now();
        let status = Command::new("docker")
            .args(["run", "--rm", "dcn.local/cowsay:1.0", "/usr/games/cowsay", "moo"])
            .stdout(Stdio::null())
            .status()?;
        let bare_secs = t.elapsed().as_secs_f64();
        eyre::ensure!(status.success(), "docker run failed in the bench");
        if round > 0 {
            ours.push(ours_secs);
            bare.push(bare_secs);
        }
    }
    let (ours, bare) = (median(ours), median(bare));
    println!("e2e_cowsay_seconds {ours:.3} s");
    println!("e2e_bare_docker_run_seconds {bare:.3} s");
    println!("e2e_overhead_ratio {:.2} ratio", ours / bare);
    Ok(())
}
