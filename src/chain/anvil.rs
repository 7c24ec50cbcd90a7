//! The project-local anvil (installed by `scripts/setup` from npm): found on disk and
//! started as a child process that never outlives this one. Its handle
//! ([`AnvilProcess`]) kills it when dropped, and the kernel kills it when this process
//! dies any other way (SIGKILL, a crash): a `dcn dev` killed with -9 leaves no chain behind
//! that later commands could still talk to. Used by `dcn dev`, the integration tests and
//! the gas bench.
//!
//! The kill on death is Linux's parent-death signal (`PR_SET_PDEATHSIG`), which the kernel
//! sends when the *thread* that forked the child ends, not the process. So anvil is forked
//! by one thread that lives as long as the process ([`spawn_lasting`]), never by a caller's
//! thread, which may be a test's or a runtime's blocking thread that ends when idle.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

/// How long anvil gets to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Where anvil is: `$DCN_ANVIL`, else `tools/node_modules/.bin/anvil` of this source
/// tree, else `anvil` on `PATH`.
pub fn find_anvil() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DCN_ANVIL").map(PathBuf::from).filter(|p| p.exists()) {
        return Some(p);
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/node_modules/.bin/anvil");
    if local.exists() {
        return Some(local);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("anvil")).find(|p| p.exists()))
}

/// Failure to start anvil.
#[derive(Debug, thiserror::Error)]
pub enum AnvilError {
    /// No binary found.
    #[error("anvil not found: run scripts/setup (installs it into tools/node_modules) or set DCN_ANVIL")]
    NotFound,
    /// It did not start.
    #[error("anvil did not start: {0}")]
    Start(String),
}

/// A running anvil, killed when dropped (and by the kernel if this process dies first).
#[derive(Debug)]
pub struct AnvilProcess {
    child: Child,
    addr: SocketAddr,
    chain_id: u64,
}

impl AnvilProcess {
    /// Its HTTP RPC URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The chain id it was started with.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }
}

impl Drop for AnvilProcess {
    fn drop(&mut self) {
        // It keeps no state worth a graceful stop: the chain lives and dies with it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts anvil with `chain_id` on `port` (0: a free one), with the development
/// mnemonic's accounts funded, and reads the port it listens on from its startup banner.
/// `hardfork` limits the chain to that EVM generation (`paris`, `shanghai`, …; `None`:
/// anvil's latest). Blocks until anvil listens (at most 20 s).
pub fn spawn(chain_id: u64, port: u16, hardfork: Option<&str>) -> Result<AnvilProcess, AnvilError> {
    let path = find_anvil().ok_or(AnvilError::NotFound)?;
    let mut cmd = Command::new(path);
    cmd.args(["-p", &port.to_string(), "--chain-id", &chain_id.to_string()])
        .env("FOUNDRY_DISABLE_NIGHTLY_WARNING", "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(fork) = hardfork {
        cmd.args(["--hardfork", fork]);
    }
    die_with_this_process(&mut cmd);
    let mut child = spawn_lasting(cmd).map_err(|e| AnvilError::Start(e.to_string()))?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        return Err(AnvilError::Start("no stdout to read its banner from".into()));
    };
    let (tx, rx) = mpsc::channel();
    // Reads the banner, then keeps reading anvil's log and drops it, so that its pipe never
    // fills; it ends when anvil does.
    let reader = std::thread::Builder::new().name("anvil-stdout".into()).spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("Listening on").and_then(|a| a.trim().parse::<SocketAddr>().ok()) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(addr);
                }
            }
        }
    });
    let fail = |mut child: Child, why: String| {
        let _ = child.kill();
        let _ = child.wait();
        Err(AnvilError::Start(why))
    };
    if let Err(e) = reader {
        return fail(child, format!("cannot start the thread that reads its banner: {e}"));
    }
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(addr) => Ok(AnvilProcess { child, addr, chain_id }),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            fail(child, format!("it did not say where it listens within {} s", START_TIMEOUT.as_secs()))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let status = child.try_wait().ok().flatten().map(|s| s.to_string()).unwrap_or_else(|| "running".into());
            fail(child, format!("it ended its output before listening ({status}); its own message is above"))
        }
    }
}

/// Has the kernel SIGKILL the child when the thread that forks it ends, and refuses to
/// start it if this process is already gone by then.
#[cfg(target_os = "linux")]
fn die_with_this_process(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: runs in the child between fork and exec, where only async-signal-safe calls
    // are allowed: prctl and getppid are system calls, and the errors built here do not
    // allocate.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between the fork and the prctl: no signal comes then.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Elsewhere only the handle's drop stops the child.
#[cfg(not(target_os = "linux"))]
fn die_with_this_process(_cmd: &mut Command) {}

type SpawnJob = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` from a thread that lives as long as the process, so that a parent-death
/// signal comes when the process ends and not when some caller's thread does.
fn spawn_lasting(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Option<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        let thread = std::thread::Builder::new().name("dcn-spawner".into()).spawn(move || {
            for (mut cmd, reply) in rx {
                let _ = reply.send(cmd.spawn());
            }
        });
        thread.ok().map(|_| tx)
    });
    let gone = || std::io::Error::other("the thread that starts child processes is not running");
    let spawner = spawner.as_ref().ok_or_else(gone)?;
    let (reply, answer) = mpsc::channel();
    spawner.send((cmd, reply)).map_err(|_| gone())?;
    answer.recv().map_err(|_| gone())?
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn sleeper() -> Command {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        die_with_this_process(&mut cmd);
        cmd
    }

    #[test]
    fn a_child_dies_with_the_thread_that_forked_it_so_the_lasting_thread_forks() {
        // One short-lived thread forks a child itself and has the lasting thread fork another.
        let (mut forked_here, mut forked_lasting) =
            std::thread::spawn(|| (sleeper().spawn().unwrap(), spawn_lasting(sleeper()).unwrap())).join().unwrap();
        let status = forked_here.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "the thread that forked it ended: killed ({status})");
        assert!(forked_lasting.try_wait().unwrap().is_none(), "forked by the lasting thread: still running");
        forked_lasting.kill().unwrap();
        forked_lasting.wait().unwrap();
    }
}
