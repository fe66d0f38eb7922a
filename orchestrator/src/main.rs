//! `orchestrator`: parses the command line, sets up logging, binds the ports of the roles it
//! runs and hands over to [`orchestrator::run`] (the supervisor) and [`orchestrator::web::run`]
//! (the web origin) until Ctrl-C or SIGTERM.
//!
//! With both roles (the default), the web role reaches the supervisor through the supervisor
//! protocol on its port, as it would a remote one (when that port speaks TLS, on a plain
//! loopback listener the supervisor keeps for it). At shutdown the web role stops first (it
//! closes browsers' sockets and records why the instances end), then the supervisor stops
//! the instances.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use orchestrator::config::{Cli, Config, Role};
use orchestrator::instances::Instances;
use orchestrator::web::tls::ServerTls;
use orchestrator::web::{self, LocalSupervisor};
use orchestrator::{ConnectionLimits, ServerSettings};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::info;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&cli.log).context("--log filter")?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let config = Config::load(&cli).context("configuration")?;
    if cli.print_config {
        println!("{config:#?}");
        return Ok(());
    }
    match orchestrator::server::raise_descriptor_limit() {
        Ok(limit) => info!(limit, "open file descriptor limit"),
        Err(err) => tracing::warn!(%err, "cannot raise the open file descriptor limit"),
    }
    // Listening from here on: SIGTERM during start-up is a clean shutdown too.
    let signals = orchestrator::shutdown::termination_signal();
    match config.role {
        Role::Supervisor => supervisor_only(config, signals).await,
        Role::Web => web_only(config, signals).await,
        Role::Both => both(config, signals).await,
    }
}

/// The supervisor port's settings; its certificate and key are read here, before anything
/// listens, so a bad file stops the start.
fn server_settings(config: &Config) -> anyhow::Result<ServerSettings> {
    let tls = config
        .supervisor_tls
        .as_ref()
        .map(ServerTls::load)
        .transpose()
        .context("supervisor TLS (--supervisor-tls-cert, --supervisor-tls-key)")?;
    Ok(ServerSettings {
        limits: ConnectionLimits {
            idle_timeout: config.connection_idle_timeout,
            ..ConnectionLimits::default()
        },
        secret: config.supervisor_secret.clone(),
        tls,
    })
}

fn scheme(server: &ServerSettings) -> &'static str {
    if server.tls.is_some() { "wss" } else { "ws" }
}

async fn bind(address: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} ({what})"))
}

async fn supervisor_only(
    config: Config,
    signals: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let server = server_settings(&config)?;
    let instances = Instances::new(config.instances).context("instance settings")?;
    let listener = bind(config.listen, "supervisor").await?;
    let address = listener.local_addr().context("listening address")?;
    info!(%address, scheme = scheme(&server), "supervisor listening");
    orchestrator::run_with(listener, instances, server, signals).await;
    info!("supervisor stopped");
    Ok(())
}

async fn web_only(
    config: Config,
    signals: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = bind(config.web.listen, "web origin").await?;
    web::run(listener, config.web, None, signals)
        .await
        .context("web role")
}

async fn both(
    config: Config,
    signals: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let slots = config.instances.slots;
    let server = server_settings(&config)?;
    let instances = Instances::new(config.instances).context("instance settings")?;
    let supervisor_listener = bind(config.listen, "supervisor").await?;
    let web_listener = bind(config.web.listen, "web origin").await?;
    let supervisor_address = supervisor_listener
        .local_addr()
        .context("listening address")?;
    info!(address = %supervisor_address, scheme = scheme(&server), "supervisor listening");
    // With TLS on the port, this process's web role gets a plain listener on loopback (an
    // ephemeral port; nothing but this process is told it): TLS to itself would protect
    // nothing, and the certificate need not name loopback.
    let loopback = match server.tls {
        Some(_) => Some(
            bind(
                std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
                "supervisor, for this process's web role",
            )
            .await?,
        ),
        None => None,
    };
    let loopback_address = loopback
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .context("listening address")?;

    let (stop_supervisor, supervisor_stopped) = oneshot::channel::<()>();
    let stopped = async move {
        let _ = supervisor_stopped.await;
    };
    let supervisor = match loopback {
        Some(loopback) => tokio::spawn(orchestrator::server::run_with_loopback(
            supervisor_listener,
            loopback,
            instances,
            server,
            stopped,
        )),
        None => tokio::spawn(orchestrator::run_with(
            supervisor_listener,
            instances,
            server,
            stopped,
        )),
    };
    let local = LocalSupervisor {
        listen: supervisor_address,
        slots,
        loopback: loopback_address,
    };
    let served = web::run(web_listener, config.web, Some(local), signals).await;
    let _ = stop_supervisor.send(());
    supervisor.await.context("supervisor task")?;
    info!("supervisor stopped");
    served.context("web role")
}
