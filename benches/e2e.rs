//! `e2e_cowsay_seconds`: median wall time of `dcn run cowsay -i Message=moo` against a
//! running `dcn dev` (local anvil, solver, provider, mediator in one process), and
//! `e2e_overhead_ratio`: that over the median of a bare `docker run --rm` of the same image
//! and command, measured interleaved in one run. Goal: ratio at most 1.3. Needs the cowsay
//! image (`make images`) and anvil (`scripts/setup`).
//!
//! `e2e_step_<step>_seconds`: where the time of one job goes, the median of each step over
//! the rounds, from the log lines of `dcn dev` (timestamped by it) and the step lines of
//! `dcn run` (timestamped here as they arrive): offer (from the start of `dcn run` until
//! its job offer is posted and matched), sign, create (until the provider sees the deal on
//! chain), run, submit, upload, verify (until `dcn run` has the bundle checked) and accept
//! (until `dcn run` exits).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

/// Unix seconds of an RFC 3339 UTC timestamp as tracing prints it
/// (`2026-12-06T15:32:49.849216Z`).
fn parse_utc(ts: &str) -> Option<f64> {
    let (date, time) = ts.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':');
    let (hh, mm) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let ss: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60) as f64 + ss)
}

/// The marks of one job, in the order of its path: (name, where it is logged, what the line
/// holds). `run`: a step line of `dcn run`; `dev`: a log line of `dcn dev`.
const MARKS: [(&str, &str, &str); 7] = [
    // The solver matches as the offer is posted, before `dcn run` hears back.
    ("matched", "dev", " matched "),
    ("signed", "dev", "deal signed: waiting for it on chain"),
    ("created", "dev", "deal created on chain: running the job"),
    ("ran", "dev", "job ran: uploading the result"),
    ("submitted", "dev", "result submitted on chain"),
    ("uploaded", "dev", "result uploaded"),
    ("verified", "run", "[dcn] downloaded:"),
];

/// The steps printed: each from the mark before it (or the start) to its own (or the end).
const STEPS: [&str; 8] = ["offer", "sign", "create", "run", "submit", "upload", "verify", "accept"];

struct Round {
    start: f64,
    end: f64,
    /// `dcn run`'s stderr lines with the time they arrived.
    lines: Vec<(f64, String)>,
}

/// The first time in `[start, end]` a line holding `needle` was seen.
fn first(lines: &[(f64, String)], needle: &str, start: f64, end: f64) -> Option<f64> {
    lines.iter().find(|(t, l)| *t >= start && *t <= end && l.contains(needle)).map(|(t, _)| *t)
}

/// Each step's time in `round`, `None` where a mark is missing.
fn steps(round: &Round, dev: &[(f64, String)]) -> Vec<Option<f64>> {
    let mut marks = vec![Some(round.start)];
    for (_, source, needle) in MARKS {
        let lines = if source == "run" { &round.lines } else { dev };
        marks.push(first(lines, needle, round.start, round.end));
    }
    marks.push(Some(round.end));
    marks.windows(2).map(|w| Some(w[1]? - w[0]?)).collect()
}

fn main() -> eyre::Result<()> {
    let home = tempfile::tempdir()?;
    let dev_log = home.path().join("dev.log");
    let child = dcn(home.path())
        .env("RUST_LOG", "warn,dcn=info")
        .args(["dev", "--chain-port", "0", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&dev_log)?)
        .spawn()?;
    let _dev = Dev(child);
    let ready = home.path().join(".dcn/dev/ready.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready.exists() {
        eyre::ensure!(Instant::now() < deadline, "dcn dev not ready: {}", std::fs::read_to_string(&dev_log)?);
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready)?)?;
    let rpc = r["rpc_url"].as_str().unwrap_or_default().to_string();

    let (mut ours, mut bare, mut rounds) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=ROUNDS {
        let start = SystemTime::now();
        let t = Instant::now();
        let mut child = dcn(home.path())
            .current_dir(home.path())
            .args(["--rpc-url", &rpc, "run", "cowsay", "-i", "Message=moo"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or_else(|| eyre::eyre!("no stderr"))?;
        let lines: Vec<(f64, String)> =
            BufReader::new(stderr).lines().map_while(Result::ok).map(|l| (unix(SystemTime::now()), l)).collect();
        let status = child.wait()?;
        let ours_secs = t.elapsed().as_secs_f64();
        let end = unix(SystemTime::now());
        eyre::ensure!(
            status.success(),
            "dcn run failed: {}",
            lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n")
        );

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
            rounds.push(Round { start: unix(start), end, lines });
        }
    }
    let dev: Vec<(f64, String)> = std::fs::read_to_string(&dev_log)?
        .lines()
        .filter_map(|l| Some((parse_utc(l.split_whitespace().next()?)?, l.to_string())))
        .collect();
    let per_round: Vec<Vec<Option<f64>>> = rounds.iter().map(|r| steps(r, &dev)).collect();
    let (ours, bare) = (median(ours), median(bare));
    println!("e2e_cowsay_seconds {ours:.3} s");
    println!("e2e_bare_docker_run_seconds {bare:.3} s");
    println!("e2e_overhead_ratio {:.2} ratio", ours / bare);
    for (i, step) in STEPS.iter().enumerate() {
        let v: Vec<f64> = per_round.iter().filter_map(|r| r[i]).collect();
        if v.len() == per_round.len() {
            println!("e2e_step_{step}_seconds {:.3} s", median(v));
        } else {
            eprintln!("e2e: step {step} missing in {} of {} rounds", per_round.len() - v.len(), per_round.len());
        }
    }
    Ok(())
}
