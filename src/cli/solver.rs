//! `dcn solver`.

use crate::chain::{self, accounts, Deployment, DevRole};
use crate::config::Settings;
use crate::solver::api::ApiLimits;
use crate::solver::{self, CoreConfig, Solver, SolverParams};
use crate::store::RocksStore;
use clap::Args;
use eyre::WrapErr;
use std::sync::Arc;
use std::time::Duration;

/// Run the solver: an HTTP + WebSocket server that takes signed offers, matches them into
/// deals, relays result bundles and streams events. It registers its URL in DcnRegistry,
/// keeps its state in RocksDB under <data-dir>/solver/ and follows deal states on chain.
/// Stop it with Ctrl-C (or SIGTERM).
#[derive(Debug, Args)]
pub struct SolverArgs {
    /// Address and port to listen on [default: config solver.listen, 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// URL clients reach this solver at, registered on chain [default: config solver.public_url (SERVER_URL), else http://<listen>]
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
}

impl SolverArgs {
    /// Runs `dcn solver` until Ctrl-C.
    pub async fn run(self, settings: &Settings) -> eyre::Result<()> {
        let dir = settings.data_dir().join("solver");
        let running = start(settings, self.listen, self.public_url, &dir, shutdown_signal()).await?;
        running.wait().await
    }
}

/// A solver started by [`start`].
pub struct RunningSolver {
    server: Solver,
    follower: tokio::task::JoinHandle<()>,
    /// Its public URL.
    pub url: String,
}

impl RunningSolver {
    /// Waits for it to stop (after the shutdown future resolved).
    pub async fn wait(self) -> eyre::Result<()> {
        let result = self.server.wait().await;
        self.follower.abort();
        tracing::info!("solver stopped");
        result.wrap_err("the solver's server failed")
    }
}

/// Starts the solver with its state in `dir`: listens (on `listen`, else the config's),
/// registers `public_url` (else `http://<listen>`) in DcnRegistry and follows the chain,
/// until `shutdown` resolves.
pub async fn start(
    settings: &Settings,
    listen: Option<String>,
    public_url: Option<String>,
    dir: &std::path::Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> eyre::Result<RunningSolver> {
    let cfg = &settings.solver;
    let net = settings.network()?;
    let deployment = Deployment::require(settings.data_dir(), &net.name)?;
    let signer = accounts::service_signer(settings, &net, DevRole::Solver)?;
    let client = chain::connect(&net, signer).await?;
    client.require_gas_money().await?;

    let listen = listen.unwrap_or_else(|| cfg.listen.clone());
    let listener = tokio::net::TcpListener::bind(&listen).await.wrap_err_with(|| {
        format!("cannot listen on {listen}: is another solver running? pick another with --listen")
    })?;
    let addr = listener.local_addr()?;
    let public_url = public_url.or_else(|| cfg.public_url.clone()).unwrap_or_else(|| format!("http://{addr}"));

    let store = RocksStore::open(&dir.join("db")).wrap_err("opening the solver's database")?;
    let params = SolverParams {
        core: CoreConfig {
            solver: client.from,
            chain_id: net.chain_id,
            deals_contract: deployment.contracts.deals,
            offer_max_ahead_secs: cfg.offer_max_ahead_secs,
            request_max_ahead_secs: cfg.request_max_ahead_secs,
            max_open_offers: cfg.max_open_offers,
            sign_timeout_secs: cfg.sign_timeout_secs,
            create_timeout_secs: cfg.create_timeout_secs,
        },
        limits: ApiLimits {
            max_body_bytes: cfg.max_body_bytes,
            max_result_bytes: cfg.max_result_mb.saturating_mul(1 << 20),
            rate_per_sec: cfg.rate_per_sec,
            rate_burst: cfg.rate_burst,
        },
        store: Arc::new(store),
        results_dir: dir.join("results"),
    };

    let registered =
        solver::chain::register(&client, deployment.contracts.registry, solver::chain::ROLE_SOLVER, &public_url, "")
            .await
            .wrap_err("registering the solver in DcnRegistry")?;
    if registered {
        tracing::info!(url = %public_url, "registered in DcnRegistry");
    }

    let server = Solver::start(params, listener, shutdown)?;
    let follower = tokio::spawn(solver::chain::follow(
        server.state.clone(),
        client.clone(),
        deployment.contracts.deals,
        Duration::from_millis(cfg.chain_poll_ms),
    ));
    tracing::info!(
        listen = %addr,
        url = %public_url,
        solver = %client.from,
        network = %net.name,
        "solver ready: dashboard at http://{addr}/"
    );
    Ok(RunningSolver { server, follower, url: public_url })
}

/// A token cancelled on Ctrl-C or SIGTERM: how long-running services are stopped.
pub fn stop_on_signal() -> tokio_util::sync::CancellationToken {
    let stop = tokio_util::sync::CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        signal.cancel();
    });
    stop
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
