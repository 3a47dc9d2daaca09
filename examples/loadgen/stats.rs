//! Small numeric helpers shared by the load modes.

use serde_json::{json, Value};

/// Megabytes (10^6 bytes) per second; 0 for an empty interval.
pub fn mbps(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 / 1e6 / secs
    } else {
        0.0
    }
}

/// p50/p90/p99/p99.9/max of nanosecond samples, reported in microseconds (sorts in place).
pub fn percentiles_us(ns: &mut [u64]) -> Value {
    if ns.is_empty() {
        return json!(null);
    }
    ns.sort_unstable();
    let at = |q: f64| {
        let i = ((ns.len() as f64 * q).ceil() as usize).clamp(1, ns.len()) - 1;
        ns[i] as f64 / 1000.0
    };
    json!({"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "p999": at(0.999),
           "max": at(1.0), "n": ns.len()})
}
