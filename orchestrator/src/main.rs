//! `orchestrator`: the supervisor binary. Parses the command line, sets up logging, binds the
//! supervisor port and hands over to [`orchestrator::run`] until Ctrl-C or SIGTERM.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use orchestrator::config::{Cli, Config};
use orchestrator::instances::Instances;
use tokio::net::TcpListener;
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
    let instances = Instances::new(config.instances).context("instance settings")?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr().context("listening address")?;
    info!(%address, "supervisor listening");

    orchestrator::run(
        listener,
        instances,
        orchestrator::shutdown::termination_signal(),
    )
    .await;
    info!("supervisor stopped");
    Ok(())
}
