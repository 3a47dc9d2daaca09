//! The `gregor` binary: parse the command line, load configuration, start the broker, and run
//! until SIGTERM or Ctrl-C, then shut down cleanly (flush, checkpoints) and exit 0.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gregor::config::{Config, Sources, SETTINGS};
use gregor::Broker;

#[global_allocator]
static ALLOCATOR: gregor::alloc_guard::GuardedAllocator = gregor::alloc_guard::GuardedAllocator;

/// A Kafka-compatible message broker.
#[derive(Parser, Debug)]
#[command(version, about, after_help = settings_help())]
struct Cli {
    /// Configuration file: TOML (settings use Kafka's names, e.g. `"log.dirs" = "/var/lib/gregor"`),
    /// or a Kafka `server.properties` (a `.properties` file, read as Kafka reads it).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// listeners, e.g. PLAINTEXT://127.0.0.1:9092
    #[arg(long, value_name = "LISTENERS")]
    listeners: Option<String>,
    /// advertised.listeners
    #[arg(long, value_name = "LISTENERS")]
    advertised_listeners: Option<String>,
    /// log.dirs: where data is stored
    #[arg(long, value_name = "DIR")]
    log_dirs: Option<String>,
    /// node.id
    #[arg(long, value_name = "ID")]
    node_id: Option<String>,
    /// num.partitions for auto-created topics
    #[arg(long, value_name = "N")]
    num_partitions: Option<String>,
    /// auto.create.topics.enable
    #[arg(long, value_name = "BOOL")]
    auto_create_topics_enable: Option<String>,
    /// Any setting by its Kafka name, e.g. --set log.segment.bytes=104857600 (repeatable)
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

fn settings_help() -> String {
    let mut text = String::from(
        "Settings (defaults < --config file < GREGOR_* environment, e.g. GREGOR_LOG_DIRS < flags):\n",
    );
    for s in SETTINGS {
        let default = if s.default.is_empty() {
            "(empty)"
        } else {
            s.default
        };
        text.push_str(&format!(
            "  {:<42} default {default}\n      {}\n",
            s.name, s.doc
        ));
    }
    text.push_str("\nLog filtering: RUST_LOG (e.g. RUST_LOG=gregor=debug).");
    text
}

impl Cli {
    fn sources(&self) -> Result<Sources, String> {
        let mut overrides = Vec::new();
        let named = [
            ("listeners", &self.listeners),
            ("advertised.listeners", &self.advertised_listeners),
            ("log.dirs", &self.log_dirs),
            ("node.id", &self.node_id),
            ("num.partitions", &self.num_partitions),
            ("auto.create.topics.enable", &self.auto_create_topics_enable),
        ];
        for (name, value) in named {
            if let Some(v) = value {
                overrides.push((name.to_string(), v.clone()));
            }
        }
        for item in &self.set {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("--set expects NAME=VALUE, got `{item}`"))?;
            overrides.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(Sources {
            file: self.config.clone(),
            env: true,
            overrides,
        })
    }
}

#[allow(
    clippy::print_stderr,
    reason = "a configuration or runtime failure is reported to the operator's terminal"
)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    gregor::logging::init();
    let config = match cli
        .sources()
        .and_then(|s| Config::load(&s).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gregor: {e}");
            return ExitCode::from(2);
        }
    };
    match gregor::broker::raise_open_file_limit() {
        Ok(Some((old, new))) => tracing::info!(old, new, "raised the open-file limit"),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    if gregor::alloc_guard::overcommit_is_strict() {
        tracing::warn!("vm.overcommit_memory=2: hostile array lengths in requests may exhaust the commit limit");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gregor: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let broker = match Broker::start(config).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        tracing::info!("shutting down");
        match broker.shutdown().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("unclean shutdown: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
