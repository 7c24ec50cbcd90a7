//! Test helpers: a real anvil per test (free port, chain id 1337, killed on drop) and the
//! built `dcn` binary run as a process with a private HOME and no inherited dcn/web3
//! environment.

#![allow(dead_code)]

use alloy::node_bindings::AnvilInstance;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running anvil, killed when dropped. Fails loudly if anvil is not installed: tests
/// never skip silently (run `make test`, which runs scripts/setup first).
pub fn anvil() -> AnvilInstance {
    dcn::chain::anvil::spawn(1337, 0).unwrap_or_else(|e| panic!("{e}"))
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

/// `dcn` with HOME at `home` and no DCN_/WEB3_ variables from the outside.
pub fn bare_dcn(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dcn"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DCN_") || k.starts_with("WEB3_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.env("HOME", home);
    c
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
