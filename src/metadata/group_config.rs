//! Group configs (ConfigResource type GROUP, KIP-848): per consumer group overrides of the
//! session timeout and heartbeat interval, validated as Kafka's GroupConfig validates them and
//! resolved against the broker's `group.consumer.*` settings. Pure functions.

use std::collections::BTreeMap;
use std::time::Duration;

use super::config_catalog::{group_config, resolve_group, BrokerLayers, GROUP_CONFIGS};
use crate::config::Config;

const SESSION_TIMEOUT: &str = "consumer.session.timeout.ms";
const HEARTBEAT_INTERVAL: &str = "consumer.heartbeat.interval.ms";

/// The effective KIP-848 timing of one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupTiming {
    pub session_timeout: Duration,
    pub heartbeat_interval_ms: i32,
}

/// Checks one name and value: a known group config, an integer within the broker's bounds.
pub fn validate(config: &Config, name: &str, value: &str) -> Result<(), String> {
    if group_config(name).is_none() {
        return Err(format!(
            "unknown group config `{name}`: Gregor honours {}",
            GROUP_CONFIGS.map(|d| d.name).join(", ")
        ));
    }
    let (lo, hi) = if name == SESSION_TIMEOUT {
        config.group_consumer_session_timeout_bounds_ms
    } else {
        config.group_consumer_heartbeat_interval_bounds_ms
    };
    let v: i32 = value
        .trim()
        .parse()
        .map_err(|_| format!("invalid value `{value}` for `{name}`: expected an integer"))?;
    if !(lo..=hi).contains(&v) {
        return Err(format!(
            "invalid value {v} for `{name}`: must be between {lo} and {hi} (the broker's bounds)"
        ));
    }
    Ok(())
}

/// Checks a group's whole override set: each entry, then the heartbeat interval below the
/// session timeout, as Kafka requires of the effective values.
pub fn validate_set(config: &Config, overrides: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in overrides {
        validate(config, name, value)?;
    }
    let t = timing(config, overrides);
    if i64::from(t.heartbeat_interval_ms) >= t.session_timeout.as_millis() as i64 {
        return Err(format!(
            "`{HEARTBEAT_INTERVAL}` ({}) must be less than `{SESSION_TIMEOUT}` ({})",
            t.heartbeat_interval_ms,
            t.session_timeout.as_millis()
        ));
    }
    Ok(())
}

/// The group's effective timing: its overrides over the broker's settings.
pub fn timing(config: &Config, overrides: &BTreeMap<String, String>) -> GroupTiming {
    let value = |name: &str, fallback: i32| -> i32 {
        GROUP_CONFIGS
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| {
                resolve_group(&BrokerLayers::from(config), overrides, d)
                    .value
                    .value
                    .parse()
                    .ok()
            })
            .unwrap_or(fallback)
    };
    let session_ms = value(SESSION_TIMEOUT, config.group_consumer_session_timeout_ms);
    GroupTiming {
        session_timeout: Duration::from_millis(u64::try_from(session_ms).unwrap_or(45_000)),
        heartbeat_interval_ms: value(
            HEARTBEAT_INTERVAL,
            config.group_consumer_heartbeat_interval_ms,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bounds_names_and_the_interval_rule() {
        let c = Config::defaults();
        assert!(validate_set(&c, &set(&[(SESSION_TIMEOUT, "50000")])).is_ok());
        // Kafka's default bounds: session 45000..=60000, heartbeat 5000..=15000.
        assert!(validate_set(&c, &set(&[(SESSION_TIMEOUT, "44999")])).is_err());
        assert!(validate_set(&c, &set(&[(SESSION_TIMEOUT, "60001")])).is_err());
        assert!(validate_set(&c, &set(&[(HEARTBEAT_INTERVAL, "15000")])).is_ok());
        assert!(validate_set(&c, &set(&[(HEARTBEAT_INTERVAL, "4999")])).is_err());
        assert!(validate_set(&c, &set(&[(HEARTBEAT_INTERVAL, "ten")])).is_err());
        let e = validate_set(&c, &set(&[("share.session.timeout.ms", "45000")])).unwrap_err();
        assert!(e.contains("share.session.timeout.ms"), "{e}");
        let t = timing(
            &c,
            &set(&[(SESSION_TIMEOUT, "50000"), (HEARTBEAT_INTERVAL, "6000")]),
        );
        assert_eq!(t.session_timeout, Duration::from_millis(50_000));
        assert_eq!(t.heartbeat_interval_ms, 6000);
        let t = timing(&c, &BTreeMap::new());
        assert_eq!(t.session_timeout, Duration::from_millis(45_000));
        assert_eq!(t.heartbeat_interval_ms, 5000);
    }

    #[test]
    fn heartbeat_must_stay_below_the_session_timeout() {
        let mut c = Config::defaults();
        c.group_consumer_heartbeat_interval_bounds_ms = (5000, 60_000);
        let e = validate_set(
            &c,
            &set(&[(SESSION_TIMEOUT, "45000"), (HEARTBEAT_INTERVAL, "45000")]),
        )
        .unwrap_err();
        assert!(e.contains("must be less than"), "{e}");
    }
}
