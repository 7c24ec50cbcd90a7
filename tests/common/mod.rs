//! Test helpers: a real anvil per test (free port, chain id 1337, killed on drop) and the
//! built `dcn` binary run as a process with a private HOME and no inherited dcn/web3
//! environment.

#![allow(dead_code, clippy::unwrap_used)]

pub mod net;
pub mod registry;
pub mod solver;

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use dcn::chain::anvil::AnvilProcess;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running anvil, killed when dropped. Fails loudly if anvil is not installed: tests
/// never skip silently (run `make test`, which runs scripts/setup first).
pub fn anvil() -> AnvilProcess {
    dcn::chain::anvil::spawn(1337, 0, None).unwrap_or_else(|e| panic!("{e}"))
}

/// A read-only provider to `url`.
pub fn reader(url: &str) -> DynProvider {
    ProviderBuilder::new().connect_http(url.parse().expect("anvil url")).erased()
}

/// A `dcn` invocation context: a temp HOME (so ~/.dcn is private) and an RPC URL.
pub struct Dcn {
    pub home: tempfile::TempDir,
    pub rpc_url: String,
}

impl Dcn {
    pub fn new(rpc_url: impl Into<String>) -> Self {
        Self { home: tempfile::tempdir().expect("temp home"), rpc_url: rpc_url.into() }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.home.path().join(".dcn")
    }

    /// `dcn` with `--rpc-url` set, a clean environment and the private HOME.
    pub fn cmd(&self) -> Command {
        let mut c = bare_dcn(self.home.path());
        c.args(["--rpc-url", &self.rpc_url]);
        c
    }

    /// Runs `dcn ARGS` and returns its output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run dcn")
    }

    /// Runs `dcn ARGS`, asserts success and returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "dcn {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }
}

/// `dcn` with HOME at `home`, no DCN_/WEB3_ variables from the outside, and no audits.
pub fn bare_dcn(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dcn"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DCN_") || k.starts_with("WEB3_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.env("HOME", home);
    // Deterministic by default: no result is drawn for audit unless a test asks for it
    // (a development network otherwise audits one in ten).
    c.env("DCN_DEPLOY__MIN_AUDIT_PPM", "0").env("DCN_JOB__AUDIT_PPM", "0");
    c
}

/// Waits until `ready()` holds, checking every 50 ms; fails after `secs` naming `what`.
pub fn wait_until(what: &str, secs: u64, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// stderr of `out` as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Block on `fut` in a fresh runtime (tests are plain #[test] so processes and runtimes
/// do not mix).
pub fn block_on<F: std::future::IntoFuture>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(fut.into_future())
}

/// Bytes of code at `address`.
pub fn code_len(url: &str, address: alloy::primitives::Address) -> usize {
    block_on(async { reader(url).get_code_at(address).await.expect("get code").len() })
}

/// A Docker executor whose containers carry a label unique to this test, and a check
/// that none of them is left behind.
pub struct TestExecutor {
    pub executor: dcn::executor::docker::DockerExecutor,
    pub label: String,
    pub runtime: tokio::runtime::Runtime,
    /// Image references the test made, removed when it ends, passed or failed: the engine
    /// is shared with later runs, which a stale tag or registry digest would change.
    images: std::sync::Mutex<Vec<String>>,
}

impl TestExecutor {
    /// Connects to the local Docker daemon; fails loudly if there is none (run `make test`).
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// Connects with the default sandbox changed by `change`.
    pub fn with(change: impl FnOnce(&mut dcn::executor::docker::DockerConfig)) -> Self {
        use dcn::executor::docker::{DockerConfig, DockerExecutor};
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let label = format!("{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut config =
            DockerConfig { labels: [("dcn.test".to_string(), label.clone())].into(), ..Default::default() };
        change(&mut config);
        let executor = runtime
            .block_on(DockerExecutor::connect(config, None))
            .unwrap_or_else(|e| panic!("{e}\n(run `make test`: it starts dockerd and builds the images)"));
        Self { executor, label, runtime, images: Default::default() }
    }

    /// Removes `reference` (a tag, `repo@digest` or an image ID, with every tag of it) when
    /// this test ends.
    pub fn remove_image_at_end(&self, reference: impl Into<String>) {
        self.images.lock().unwrap().push(reference.into());
    }

    /// Resolves `module` (built-in name or a file under tests/modules/) with `inputs`.
    pub fn spec(module: &str, inputs: &[&str]) -> dcn::types::JobSpec {
        let path = format!("{}/tests/modules/{module}.toml", env!("CARGO_MANIFEST_DIR"));
        let reference = if std::path::Path::new(&path).exists() { path } else { module.to_string() };
        let resolver = dcn::module::resolve::Resolver { override_dir: None, cache_dir: std::env::temp_dir() };
        let m = resolver.resolve(&reference).unwrap();
        m.job_spec(&dcn::module::parse_inputs(inputs).unwrap()).unwrap()
    }

    /// Runs `spec` in a fresh work directory.
    pub fn run(
        &self,
        spec: &dcn::types::JobSpec,
    ) -> (Result<dcn::executor::RunOutcome, dcn::executor::ExecutorError>, tempfile::TempDir) {
        use dcn::executor::Executor;
        let dir = tempfile::tempdir().unwrap();
        let out = self.runtime.block_on(self.executor.run(spec, dir.path()));
        (out, dir)
    }

    /// Containers of this test still present (running or not).
    pub fn leftovers(&self) -> usize {
        self.runtime.block_on(self.containers(false))
    }

    /// Containers of this test: running ones only, or all.
    pub async fn containers(&self, running_only: bool) -> usize {
        use bollard::query_parameters::ListContainersOptionsBuilder;
        let mut filters = std::collections::HashMap::from([("label", vec![format!("dcn.test={}", self.label)])]);
        if running_only {
            filters.insert("status", vec!["running".to_string()]);
        }
        let opts = ListContainersOptionsBuilder::default().all(!running_only).filters(&filters).build();
        self.executor.docker().list_containers(Some(opts)).await.unwrap().len()
    }
}

impl Drop for TestExecutor {
    fn drop(&mut self) {
        let mut left = 0;
        if !std::thread::panicking() {
            // Removal after a dropped run is asynchronous: give it a moment.
            for _ in 0..50 {
                left = self.leftovers();
                if left == 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        for reference in self.images.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default().iter().rev() {
            use bollard::query_parameters::RemoveImageOptionsBuilder;
            let options = RemoveImageOptionsBuilder::default().force(true).build();
            // Already gone (removed with another reference of the same image) is fine.
            let _ = self.runtime.block_on(self.executor.docker().remove_image(reference, Some(options), None));
        }
        if left > 0 {
            panic!("containers left behind by test label {}", self.label);
        }
    }
}
