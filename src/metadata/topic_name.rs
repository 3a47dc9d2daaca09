//! Kafka's rules for legal topic names.

/// Topics the broker itself owns: reported with `is_internal`, never deleted by clients.
pub const INTERNAL: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// True for a broker-owned topic (clients leave these out of regex subscriptions).
pub fn is_internal(name: &str) -> bool {
    INTERNAL.contains(&name)
}

/// The metadata log's name (KRaft's), reserved: no topic may take it, since its partition
/// directory would be the metadata log's.
pub const CLUSTER_METADATA: &str = "__cluster_metadata";

/// Longest legal topic name (Kafka's limit, from the file-name length budget).
pub const MAX_LENGTH: usize = 249;

/// Why a topic name is illegal, worded for the error message sent to the client.
pub fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == CLUSTER_METADATA {
        return Err(format!(
            "`{name}` is the cluster's metadata log, not a topic"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be `{name}`"));
    }
    if name.len() > MAX_LENGTH {
        return Err(format!("topic name is longer than {MAX_LENGTH} characters"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name contains `{bad}`; legal characters are [a-zA-Z0-9._-]"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn kafka_rules() {
        assert!(super::validate("orders.v1_x-y").is_ok());
        assert!(super::validate("").is_err());
        assert!(super::validate("..").is_err());
        assert!(super::validate("a/b").is_err());
        assert!(super::validate(&"x".repeat(250)).is_err());
        assert!(super::validate(&"x".repeat(249)).is_ok());
        assert!(super::validate("__cluster_metadata").is_err());
    }
}
