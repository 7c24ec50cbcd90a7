//! End-to-end helpers: `dcn dev` as a process (its own anvil on a free port, its own data
//! dir), extra providers and `dcn run` as processes, and token accounting on chain.

use super::{bare_dcn, block_on};
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::{coins_bip39::English, MnemonicBuilder, PrivateKeySigner};
use dcn::chain::bindings::{DcnDeals, DcnRegistry, DcnToken};
use dcn::chain::{DealState, Deployment, DevRole, Role, DEV_MNEMONIC};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Ctrl-C, then SIGKILL if it has not stopped within 10 s (`dcn dev` stops its anvil).
    pub fn interrupt(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The open resource offers of `provider` at the solver at `solver_url`.
pub fn open_offers_at(solver_url: &str, provider: Address) -> usize {
    let url = format!("{solver_url}/api/v1/resource_offers?owner={provider}&status=open");
    block_on(async {
        match reqwest::get(&url).await {
            Ok(r) => r.json::<Vec<serde_json::Value>>().await.map(|v| v.len()).unwrap_or(0),
            Err(_) => 0,
        }
    })
}

/// A `dcn dev` network in a temp HOME.
pub struct DevNet {
    pub home: tempfile::TempDir,
    pub rpc_url: String,
    pub solver_url: String,
    pub dev: Option<Proc>,
}

/// Key `index` of the development mnemonic.
pub fn dev_key(index: u32) -> PrivateKeySigner {
    MnemonicBuilder::<English>::default().phrase(DEV_MNEMONIC).index(index).unwrap().build().unwrap()
}

impl DevNet {
    /// Starts `dcn dev` with `args` and waits until it is ready.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(args, &[])
    }

    /// Starts `dcn dev` with `args` and extra environment `env` (settings such as
    /// `DCN_SOLVER__CREATE_TIMEOUT_SECS`) and waits until it is ready.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        let home = tempfile::tempdir().unwrap();
        let log = home.path().join("dev.log");
        let child = bare_dcn(home.path())
            .args(["dev", "--chain-port", "0", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("DCN_SOLVER__CHAIN_POLL_MS", "200")
            .env("DCN_SOLVER__SIGN_TIMEOUT_SECS", "10")
            .env("DCN_PROVIDER__MIN_RESULT_MARGIN_SECS", "1")
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(home.path().join("dev.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut dev = Proc { child, log };
        let ready = home.path().join(".dcn/dev/ready.json");
        let deadline = Instant::now() + Duration::from_secs(90);
        while !ready.exists() {
            if let Some(status) = dev.child.try_wait().unwrap() {
                panic!("dcn dev exited ({status}) before it was ready:\n{}", dev.log_text());
            }
            assert!(Instant::now() < deadline, "dcn dev not ready within 90 s:\n{}", dev.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
        // Written atomically: once it exists, it is whole.
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready).unwrap()).unwrap();
        Self {
            rpc_url: r["rpc_url"].as_str().unwrap().to_string(),
            solver_url: r["solver_url"].as_str().unwrap().to_string(),
            home,
            dev: Some(dev),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.home.path().join(".dcn")
    }

    /// `dcn` pointed at this network.
    pub fn cmd(&self) -> Command {
        let mut c = bare_dcn(self.home.path());
        c.args(["--rpc-url", &self.rpc_url]);
        c
    }

    /// Runs `dcn ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs `dcn ARGS` with `key` as the account.
    pub fn run_as(&self, key: &PrivateKeySigner, args: &[&str]) -> Output {
        self.cmd().env("WEB3_PRIVATE_KEY", hex::encode(key.to_bytes())).args(args).output().unwrap()
    }

    /// Starts `dcn provider ARGS` (as `key`, default the development provider).
    pub fn provider(&self, key: Option<&PrivateKeySigner>, args: &[&str], name: &str) -> Proc {
        self.provider_at(&self.solver_url, key, args, name)
    }

    /// Starts `dcn provider ARGS` against the solver at `solver_url`.
    pub fn provider_at(&self, solver_url: &str, key: Option<&PrivateKeySigner>, args: &[&str], name: &str) -> Proc {
        let log = self.home.path().join(format!("{name}.log"));
        let mut c = self.cmd();
        if let Some(k) = key {
            c.env("WEB3_PRIVATE_KEY", hex::encode(k.to_bytes()));
        }
        let child = c
            .args(["provider", "--solver", solver_url])
            .args(args)
            .env("DCN_PROVIDER__MIN_RESULT_MARGIN_SECS", "1")
            .env("DCN_PROVIDER__OFFER_RAM_MB", "256")
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        let p = Proc { child, log };
        let provider = key.map(|k| k.address()).unwrap_or(DevRole::Provider.address());
        super::wait_until(&format!("an open offer of provider {provider} at the solver"), 60, || {
            open_offers_at(solver_url, provider) > 0
        });
        p
    }

    /// Starts a second `dcn solver` of this network's solver account as its own process,
    /// listening on `port`, with its state in `data_dir` (the deployment is copied there),
    /// and waits until it answers. Restarted with the same arguments, it resumes.
    pub fn solver_process(&self, port: u16, data_dir: &std::path::Path, name: &str) -> Proc {
        self.solver_process_with(port, data_dir, &[], name)
    }

    /// [`DevNet::solver_process`] with extra flags.
    pub fn solver_process_with(&self, port: u16, data_dir: &std::path::Path, args: &[&str], name: &str) -> Proc {
        let deployments = data_dir.join("deployments");
        std::fs::create_dir_all(&deployments).unwrap();
        let ours = Deployment::path(&self.data_dir(), "geth");
        std::fs::copy(&ours, deployments.join("geth.json")).unwrap();
        let log = self.home.path().join(format!("{name}.log"));
        let child = self
            .cmd()
            .arg("--data-dir")
            .arg(data_dir)
            .args(["solver", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("DCN_SOLVER__CHAIN_POLL_MS", "200")
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        let mut p = Proc { child, log };
        let url = format!("http://127.0.0.1:{port}/api/v1/info");
        super::wait_until(&format!("solver {name} to answer"), 60, || {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("solver {name} exited ({status}):\n{}", p.log_text());
            }
            block_on(async { reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) })
        });
        p
    }

    /// Starts `dcn mediator` as the development mediator (for `dcn dev --no-mediator`) and
    /// waits until it is registered (clients then find it; it reads challenges from before
    /// it started too).
    pub fn mediator(&self, name: &str) -> Proc {
        self.mediator_as(None, &[], name)
    }

    /// Starts `dcn mediator ARGS` as `key` (default the development mediator) and waits
    /// until it is registered.
    pub fn mediator_as(&self, key: Option<&PrivateKeySigner>, args: &[&str], name: &str) -> Proc {
        let log = self.home.path().join(format!("{name}.log"));
        let mut c = self.cmd();
        if let Some(k) = key {
            c.env("WEB3_PRIVATE_KEY", hex::encode(k.to_bytes()));
        }
        let child = c
            .args(["mediator", "--solver", &self.solver_url])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        let p = Proc { child, log };
        let c = self.deployment().contracts;
        let me = key.map(|k| k.address()).unwrap_or(DevRole::Mediator.address());
        super::wait_until("the mediator to register", 60, || {
            block_on(async {
                DcnRegistry::new(c.registry, &self.reader())
                    .isRegistered(Role::Mediator.to_chain(), me)
                    .call()
                    .await
                    .unwrap_or(false)
            })
        });
        p
    }

    /// Starts `dcn jobboard` as the development operator (for `dcn dev --no-jobboard`).
    pub fn jobboard(&self, name: &str) -> Proc {
        self.jobboard_with(name, &[])
    }

    /// A `dcn jobboard` process with `extra` flags, logging to `<name>.log`.
    pub fn jobboard_with(&self, name: &str, extra: &[&str]) -> Proc {
        let log = self.home.path().join(format!("{name}.log"));
        let child = self
            .cmd()
            .args(["jobboard", "--solver", &self.solver_url])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        Proc { child, log }
    }

    /// Waits until this network's development mediator runs a job container (a re-run).
    pub fn wait_mediator_running(&self) {
        let address = DevRole::Mediator.address().to_string().to_lowercase();
        let dir = self.data_dir().join("mediator").join(&address);
        let label = format!("label=dcn.mediator={address}");
        let instance = format!("label=dcn.instance={}", dcn::app::node::instance_label(&dir));
        super::wait_until("a running re-run container of the mediator", 90, || {
            Command::new("docker")
                .args(["ps", "-q", "--filter", &label, "--filter", &instance, "--filter", "status=running"])
                .output()
                .is_ok_and(|o| !o.stdout.is_empty())
        });
    }

    /// The open resource offers of `provider` at the solver.
    pub fn open_offers(&self, provider: Address) -> usize {
        open_offers_at(&self.solver_url, provider)
    }

    /// Waits until `provider` of this network runs a job container (the deal is on chain and
    /// its job started). Tests run in parallel with the same development keys, so the
    /// container is told apart by the instance label of this network's provider state dir.
    pub fn wait_job_running(&self, provider: Address) {
        let address = provider.to_string().to_lowercase();
        let dir = self.data_dir().join("provider").join(&address);
        let label = format!("label=dcn.provider={address}");
        let instance = format!("label=dcn.instance={}", dcn::app::node::instance_label(&dir));
        super::wait_until(&format!("a running job container of provider {provider}"), 60, || {
            Command::new("docker")
                .args(["ps", "-q", "--filter", &label, "--filter", &instance, "--filter", "status=running"])
                .output()
                .is_ok_and(|o| !o.stdout.is_empty())
        });
    }

    /// Funds `accounts` with ETH and tokens.
    pub fn fund(&self, accounts: &[Address]) {
        let mut args = vec!["fund".to_string()];
        for a in accounts {
            args.push("--account".into());
            args.push(a.to_string());
        }
        let out = self.cmd().args(&args).output().unwrap();
        assert!(out.status.success(), "fund failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn deployment(&self) -> Deployment {
        Deployment::require(&self.data_dir(), "geth").unwrap()
    }

    pub fn reader(&self) -> DynProvider {
        ProviderBuilder::new().connect_http(self.rpc_url.parse().unwrap()).erased()
    }

    /// Tokens `account` owns: its balance plus its escrow (free and locked) and its bond.
    pub fn wealth(&self, account: Address) -> U256 {
        let c = self.deployment().contracts;
        let p = self.reader();
        block_on(async {
            let bal = DcnToken::new(c.token, &p).balanceOf(account).call().await.unwrap();
            let deals = DcnDeals::new(c.deals, &p);
            let e = deals.escrowOf(account).call().await.unwrap();
            let bond = deals.bondOf(account).call().await.unwrap();
            bal + e.free + e.locked + bond.amount
        })
    }

    /// The job hash of `module` with `inputs`, from `dcn module hash`: what a job-board
    /// request commits to.
    pub fn job_hash(&self, module: &str, inputs: &[&str]) -> B256 {
        let mut args = vec!["module", "hash", module];
        for i in inputs {
            args.extend(["-i", i]);
        }
        let out = self.run(&args);
        assert!(out.status.success(), "dcn module hash: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    /// Deposits `amount` of `key`'s tokens into its escrow, as a hand-made client must
    /// before the solver takes its offers.
    pub fn deposit(&self, key: &PrivateKeySigner, amount: U256) {
        let c = self.deployment().contracts;
        let wallet = alloy::network::EthereumWallet::from(key.clone());
        let p = ProviderBuilder::new().wallet(wallet).connect_http(self.rpc_url.parse().unwrap());
        block_on(async {
            let approve = DcnToken::new(c.token, &p).approve(c.deals, amount).send().await.unwrap();
            assert!(approve.get_receipt().await.unwrap().status(), "approve reverted");
            let deposit = DcnDeals::new(c.deals, &p).deposit(amount).send().await.unwrap();
            assert!(deposit.get_receipt().await.unwrap().status(), "deposit reverted");
        });
    }

    /// Ether balance.
    pub fn eth(&self, account: Address) -> U256 {
        block_on(async { self.reader().get_balance(account).await.unwrap() })
    }

    /// The deal's state on chain.
    pub fn deal_state(&self, id: B256) -> DealState {
        let c = self.deployment().contracts;
        let n = block_on(async { DcnDeals::new(c.deals, &self.reader()).getDeal(id).call().await.unwrap().state });
        DealState::from_chain(n).unwrap()
    }

    /// Asserts the token balance of DcnDeals equals the sum of the escrow of `accounts`
    /// (which must be everyone who ever deposited).
    pub fn assert_books_balance(&self, accounts: &[Address]) {
        let c = self.deployment().contracts;
        let p = self.reader();
        block_on(async {
            let held = DcnToken::new(c.token, &p).balanceOf(c.deals).call().await.unwrap();
            let mut books = U256::ZERO;
            for a in accounts {
                let deals = DcnDeals::new(c.deals, &p);
                let e = deals.escrowOf(*a).call().await.unwrap();
                books += e.free + e.locked + deals.bondOf(*a).call().await.unwrap().amount;
            }
            assert_eq!(held, books, "DcnDeals holds {held} tokens but its books say {books}");
        });
    }

    /// Ether `account` spent on gas in every block so far.
    pub fn gas_spent(&self, account: Address) -> U256 {
        let p = self.reader();
        block_on(async {
            let head = p.get_block_number().await.unwrap();
            let mut total = U256::ZERO;
            for n in 0..=head {
                let block = p.get_block_by_number(n.into()).full().await.unwrap().unwrap();
                for tx in block.transactions.into_transactions() {
                    if tx.inner.signer() != account {
                        continue;
                    }
                    let r = p.get_transaction_receipt(*tx.inner.tx_hash()).await.unwrap().unwrap();
                    total += U256::from(r.gas_used) * U256::from(r.effective_gas_price);
                }
            }
            total
        })
    }
}

impl Drop for DevNet {
    fn drop(&mut self) {
        if let Some(mut dev) = self.dev.take() {
            if std::thread::panicking() {
                eprintln!("── dcn dev log:\n{}", dev.log_text());
            }
            dev.interrupt();
        }
        // Containers of providers this test killed with -9.
        for key in [DevRole::Provider.signer(), dev_key(5)] {
            let dir = self.data_dir().join("provider").join(key.address().to_string().to_lowercase());
            let label = format!("label=dcn.instance={}", dcn::app::node::instance_label(&dir));
            if let Ok(out) = Command::new("docker").args(["ps", "-aq", "--filter", &label]).output() {
                for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("docker").args(["rm", "-f", id]).output();
                }
            }
        }
    }
}

/// The accounts of `dcn dev`.
pub fn dev_accounts() -> Vec<Address> {
    DevRole::ALL.iter().map(|r| r.address()).collect()
}

/// Parses `dcn run --json` output.
pub fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "dcn run failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The deal id in a `--json` summary.
pub fn deal_id(v: &serde_json::Value) -> B256 {
    v["deal_id"].as_str().unwrap().parse().unwrap()
}

/// Path of a test module.
pub fn test_module(name: &str) -> String {
    format!("{}/tests/modules/{name}.toml", env!("CARGO_MANIFEST_DIR"))
}
