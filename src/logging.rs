//! The process's log output and its levels at run time. The `gregor` binary installs a tracing
//! subscriber whose filter can be replaced while it runs; the BROKER_LOGGER config resource
//! (`kafka-configs --entity-type broker-loggers`) reads and sets the level of each logger — a
//! module path such as `gregor::protocol`, or `root` — as Kafka does for its log4j loggers.
//! An embedded broker does not own its process's logging: it describes levels but refuses
//! changes.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Kafka's name for the root logger.
pub const ROOT: &str = "root";

/// The loggers described besides the root: Gregor's modules that log.
pub const LOGGERS: &[&str] = &[
    "gregor",
    "gregor::broker",
    "gregor::config",
    "gregor::group",
    "gregor::handlers",
    "gregor::log",
    "gregor::metadata",
    "gregor::protocol",
    "gregor::server",
    "gregor::txn",
];

/// Levels as Kafka names them (FATAL is logged as ERROR).
const LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"];

struct Levels {
    /// The filter the process started with (`RUST_LOG`, or `info`).
    base: String,
    /// Levels set at run time, by logger.
    overrides: BTreeMap<String, String>,
    handle: reload::Handle<EnvFilter, Registry>,
}

static INSTALLED: OnceLock<Mutex<Levels>> = OnceLock::new();

/// Installs the process's subscriber: formatted lines on stderr, filtered by `RUST_LOG`
/// (default `info`, openraft at `warn`), with a filter that [`set_level`] can change later. For the binary.
pub fn init() {
    let base = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| EnvFilter::try_new(v).is_ok())
        // openraft narrates every election and snapshot at info; its warnings are what an
        // operator needs (Gregor logs the quorum's changes itself).
        .unwrap_or_else(|| "info,openraft=warn".to_string());
    let (filter, handle) = reload::Layer::new(EnvFilter::new(&base));
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, not in files and CI logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .init();
    let _ = INSTALLED.set(Mutex::new(Levels {
        base,
        overrides: BTreeMap::new(),
        handle,
    }));
}

/// Each logger with its level in force, the root first.
pub fn levels() -> Vec<(String, String)> {
    let (base, overrides) = match INSTALLED.get() {
        Some(state) => {
            let s = state.lock().unwrap_or_else(|e| e.into_inner());
            (s.base.clone(), s.overrides.clone())
        }
        None => (
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string()),
            BTreeMap::new(),
        ),
    };
    std::iter::once(ROOT)
        .chain(LOGGERS.iter().copied())
        .map(|logger| (logger.to_string(), level_of(&base, &overrides, logger)))
        .collect()
}

/// Sets `logger`'s level (`None`: back to what it inherits). With `validate_only`, only checks.
pub fn set_level(logger: &str, level: Option<&str>, validate_only: bool) -> Result<(), String> {
    if logger != ROOT && !LOGGERS.contains(&logger) {
        return Err(format!("logger `{logger}` does not exist"));
    }
    let level = level.map(str::to_uppercase);
    if let Some(l) = &level {
        if !LEVELS.contains(&l.as_str()) {
            return Err(format!(
                "`{l}` is not a log level: expected one of {}",
                LEVELS.join(", ")
            ));
        }
    }
    let state = INSTALLED.get().ok_or_else(|| {
        "this broker is embedded and does not own its process's logging".to_string()
    })?;
    if validate_only {
        return Ok(());
    }
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    match level {
        Some(l) => s.overrides.insert(logger.to_string(), l),
        None => s.overrides.remove(logger),
    };
    let directives = directives(&s.base, &s.overrides);
    let filter = EnvFilter::try_new(&directives).map_err(|e| e.to_string())?;
    s.handle.reload(filter).map_err(|e| e.to_string())
}

/// The filter directives for `base` with `overrides` on top (the root override replaces the
/// default level).
fn directives(base: &str, overrides: &BTreeMap<String, String>) -> String {
    let mut parts: Vec<String> = base
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        // A root override replaces the default level (a directive without a target).
        .filter(|d| !overrides.contains_key(ROOT) || d.contains('='))
        .map(str::to_string)
        .collect();
    for (logger, level) in overrides {
        let level = tracing_level(level);
        if logger == ROOT {
            parts.insert(0, level.to_string());
        } else {
            parts.push(format!("{logger}={level}"));
        }
    }
    parts.join(",")
}

fn tracing_level(kafka: &str) -> &'static str {
    match kafka {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" => "warn",
        "OFF" => "off",
        _ => "error",
    }
}

/// The level `logger` gets: the most specific directive naming it or a parent module, else the
/// default level, in Kafka's upper-case names.
fn level_of(base: &str, overrides: &BTreeMap<String, String>, logger: &str) -> String {
    let all = directives(base, overrides);
    let mut default = "ERROR".to_string();
    let mut best: Option<(usize, String)> = None;
    for d in all.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match d.split_once('=') {
            None => default = d.to_uppercase(),
            Some((target, level)) => {
                let covers = logger != ROOT
                    && (logger == target || logger.starts_with(&format!("{target}::")));
                if covers && best.as_ref().is_none_or(|(len, _)| target.len() >= *len) {
                    best = Some((target.len(), level.to_uppercase()));
                }
            }
        }
    }
    best.map_or(default, |(_, level)| level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_and_levels_compose_like_the_filter() {
        let mut o = BTreeMap::new();
        assert_eq!(level_of("warn", &o, ROOT), "WARN");
        assert_eq!(
            level_of("warn,gregor::log=debug", &o, "gregor::log"),
            "DEBUG"
        );
        assert_eq!(
            level_of("warn,gregor::log=debug", &o, "gregor::txn"),
            "WARN"
        );
        o.insert("gregor::protocol".to_string(), "TRACE".to_string());
        o.insert(ROOT.to_string(), "ERROR".to_string());
        assert_eq!(
            directives("warn,gregor::log=debug", &o),
            "error,gregor::log=debug,gregor::protocol=trace"
        );
        assert_eq!(level_of("warn", &o, "gregor::protocol"), "TRACE");
        assert_eq!(level_of("warn", &o, ROOT), "ERROR");
        assert_eq!(level_of("warn", &o, "gregor::group"), "ERROR");
    }
}
