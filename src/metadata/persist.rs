//! Reading metadata files (Kafka's `meta.properties`). They are written with
//! [`crate::log::io::write_atomic`], the one atomic-replace writer.

use std::fs;
use std::path::Path;

/// Reads Kafka's `meta.properties` (`key=value` lines, `#` comments).
pub fn read_properties(path: &Path) -> std::io::Result<Vec<(String, String)>> {
    let text = fs::read_to_string(path)?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}
