//! AlterConfigs (key 33, v0–2: replace a resource's whole config set) and
//! IncrementalAlterConfigs (key 44, v0–1: SET / DELETE / APPEND / SUBTRACT per key) for topic
//! and consumer-group resources. Changes are validated as a whole, persisted through the
//! metadata store and applied at once (topic configs to the partition logs, group configs to
//! the group coordinator's timers, dynamic broker configs to the configuration in force and to
//! every partition log without an override); `validate_only` stops after validation. Broker
//! settings that Kafka keeps static are refused with INVALID_REQUEST, as Kafka does.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};

use super::describe_configs::{
    RESOURCE_BROKER, RESOURCE_BROKER_LOGGER, RESOURCE_GROUP, RESOURCE_TOPIC,
};
use super::str_bytes;
use crate::broker::BrokerContext;
use crate::config::SETTINGS;
use crate::metadata::config_catalog::{
    broker_setting_type, config_type, is_dynamic_broker_setting, resolve, topic_config,
};
use crate::metadata::{group_config, topic_config, ConfigScope};

/// IncrementalAlterConfigs operation codes.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

type Failure = (ResponseError, String);

/// The resource a request alters.
enum Target {
    Topic(String),
    Group(String),
    /// A broker's dynamic configs: "" for the cluster default, else this broker's id.
    Broker(String),
    /// This broker's logger levels.
    BrokerLogger,
}

pub fn handle_alter(
    ctx: &Arc<BrokerContext>,
    request: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let responses = request
        .resources
        .into_iter()
        .map(|r| {
            let result =
                check_resource(ctx, r.resource_type, r.resource_name.as_str()).and_then(|target| {
                    let mut seen = HashSet::new();
                    let mut configs = BTreeMap::new();
                    for c in &r.configs {
                        let name = c.name.as_str();
                        if !seen.insert(name.to_string()) {
                            return Err(duplicate(name));
                        }
                        if let Some(v) = &c.value {
                            configs.insert(name.to_string(), v.as_str().to_string());
                        }
                    }
                    match target {
                        Target::Topic(topic) => commit(ctx, &topic, configs, request.validate_only),
                        Target::Group(group) => {
                            commit_group(ctx, &group, configs, request.validate_only)
                        }
                        Target::Broker(broker) => {
                            check_dynamic(configs.keys())?;
                            commit_broker(ctx, &broker, configs, request.validate_only)
                        }
                        // As in Kafka: logger levels change only incrementally.
                        Target::BrokerLogger => Err((
                            ResponseError::InvalidRequest,
                            "broker logger levels are changed with IncrementalAlterConfigs"
                                .to_string(),
                        )),
                    }
                });
            let (code, message) = outcome(result);
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

pub fn handle_incremental(
    ctx: &Arc<BrokerContext>,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let responses = request
        .resources
        .into_iter()
        .map(|r| {
            let result =
                check_resource(ctx, r.resource_type, r.resource_name.as_str()).and_then(|target| {
                    let ops: Vec<(String, i8, Option<String>)> = r
                        .configs
                        .iter()
                        .map(|c| {
                            (
                                c.name.as_str().to_string(),
                                c.config_operation,
                                c.value.as_ref().map(|v| v.as_str().to_string()),
                            )
                        })
                        .collect();
                    match target {
                        Target::Topic(topic) => {
                            let configs = apply_ops(ctx, &topic, &ops)?;
                            commit(ctx, &topic, configs, request.validate_only)
                        }
                        Target::Group(group) => {
                            let configs = apply_group_ops(ctx, &group, &ops)?;
                            commit_group(ctx, &group, configs, request.validate_only)
                        }
                        Target::Broker(broker) => {
                            let configs = apply_broker_ops(ctx, &broker, &ops)?;
                            commit_broker(ctx, &broker, configs, request.validate_only)
                        }
                        Target::BrokerLogger => set_log_levels(&ops, request.validate_only),
                    }
                });
            let (code, message) = outcome(result);
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn outcome(result: Result<(), Failure>) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err((e, m)) => (e.code(), Some(str_bytes(m))),
    }
}

fn duplicate(name: &str) -> Failure {
    (
        ResponseError::InvalidRequest,
        format!("config `{name}` appears more than once in the request"),
    )
}

/// Checks the resource and returns what it designates.
fn check_resource(ctx: &BrokerContext, kind: i8, name: &str) -> Result<Target, Failure> {
    match kind {
        // Like Kafka, a group need not exist yet to be given configs.
        RESOURCE_GROUP if name.is_empty() => Err((
            ResponseError::InvalidRequest,
            "the group name must not be empty".to_string(),
        )),
        RESOURCE_GROUP => Ok(Target::Group(name.to_string())),
        RESOURCE_TOPIC => {
            if ctx.metadata.topic(name).is_none() {
                return Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic `{name}` does not exist"),
                ));
            }
            Ok(Target::Topic(name.to_string()))
        }
        RESOURCE_BROKER
            if name.is_empty() || name.parse::<i32>().ok() == Some(ctx.node_id().get()) =>
        {
            Ok(Target::Broker(name.to_string()))
        }
        RESOURCE_BROKER_LOGGER if name.parse::<i32>().ok() == Some(ctx.node_id().get()) => {
            Ok(Target::BrokerLogger)
        }
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => Err((
            ResponseError::InvalidRequest,
            format!("broker `{name}` is not this broker ({})", ctx.node_id()),
        )),
        other => Err((
            ResponseError::InvalidRequest,
            format!("resource type {other} is not supported"),
        )),
    }
}

/// Computes the topic's new explicit config set from incremental operations.
fn apply_ops(
    ctx: &BrokerContext,
    topic: &str,
    ops: &[(String, i8, Option<String>)],
) -> Result<BTreeMap<String, String>, Failure> {
    let current = ctx
        .metadata
        .topic(topic)
        .map(|t| t.configs.clone())
        .unwrap_or_default();
    let layers = ctx.config_layers();
    apply_incremental(
        current.clone(),
        ops,
        |name| {
            topic_config::validate(name, None).map_err(|why| (ResponseError::InvalidConfig, why))
        },
        |name| {
            // Like Kafka, start from the effective value (the default if unset).
            let def = topic_config(name).filter(|d| d.config_type == config_type::LIST)?;
            Some(match current.get(name) {
                Some(v) => v.clone(),
                None => resolve(&layers, &BTreeMap::new(), def).value.value,
            })
        },
    )
}

/// Applies IncrementalAlterConfigs operations to `configs`, each name at most once: SET and
/// DELETE for any name `check_name` accepts; APPEND and SUBTRACT for list configs only, starting
/// from the value `list_base` gives (`None`: not a list).
fn apply_incremental(
    mut configs: BTreeMap<String, String>,
    ops: &[(String, i8, Option<String>)],
    check_name: impl Fn(&str) -> Result<(), Failure>,
    list_base: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, Failure> {
    let mut seen = HashSet::new();
    for (name, op, value) in ops {
        if !seen.insert(name.clone()) {
            return Err(duplicate(name));
        }
        check_name(name)?;
        let invalid = |why: String| (ResponseError::InvalidConfig, why);
        match (*op, value) {
            (OP_SET, Some(v)) => {
                configs.insert(name.clone(), v.clone());
            }
            (OP_SET, None) => return Err(invalid(format!("SET of `{name}` needs a value"))),
            (OP_DELETE, _) => {
                configs.remove(name);
            }
            (OP_APPEND | OP_SUBTRACT, _) => {
                let base = list_base(name).ok_or_else(|| {
                    invalid(format!(
                        "`{name}` is not a list: APPEND and SUBTRACT apply to list configs only"
                    ))
                })?;
                let items = edit_list(&base, value.as_deref().unwrap_or(""), *op == OP_APPEND);
                configs.insert(name.clone(), items);
            }
            (other, _) => {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("unknown config operation {other} for `{name}`"),
                ))
            }
        }
    }
    Ok(configs)
}

/// INVALID_REQUEST naming the settings that cannot change at run time (Kafka's answer), or
/// INVALID_CONFIG for a name that is no setting at all.
fn check_dynamic<'a>(names: impl IntoIterator<Item = &'a String>) -> Result<(), Failure> {
    let mut fixed = Vec::new();
    for name in names {
        if !SETTINGS.iter().any(|s| s.name == name) {
            return Err((
                ResponseError::InvalidConfig,
                format!("unknown broker config `{name}`"),
            ));
        }
        if !is_dynamic_broker_setting(name) {
            fixed.push(name.as_str());
        }
    }
    if fixed.is_empty() {
        Ok(())
    } else {
        Err((
            ResponseError::InvalidRequest,
            format!(
                "cannot update these configs dynamically: {} (static: change the configuration and restart)",
                fixed.join(", ")
            ),
        ))
    }
}

/// Computes a broker resource's new dynamic config set from incremental operations; APPEND
/// and SUBTRACT start from the value in force, as Kafka's do.
fn apply_broker_ops(
    ctx: &BrokerContext,
    broker: &str,
    ops: &[(String, i8, Option<String>)],
) -> Result<BTreeMap<String, String>, Failure> {
    check_dynamic(ops.iter().map(|(name, _, _)| name))?;
    let in_force = ctx.config();
    apply_incremental(
        ctx.metadata.configs(ConfigScope::Broker, broker),
        ops,
        |_| Ok(()),
        |name| {
            let default = SETTINGS
                .iter()
                .find(|s| s.name == name)
                .map_or("", |s| s.default);
            (broker_setting_type(name, default) == config_type::LIST)
                .then(|| in_force.settings.get(name).unwrap_or(default).to_string())
        },
    )
}

/// Validates a broker resource's new dynamic set together with the other layer (as a
/// configuration loaded with them would be), then stores it and puts it in force at once,
/// unless `validate_only`.
fn commit_broker(
    ctx: &BrokerContext,
    broker: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), Failure> {
    let node = ctx.node_id().to_string();
    let (cluster_default, per_broker) = if broker.is_empty() {
        (
            configs.clone(),
            ctx.metadata.configs(ConfigScope::Broker, &node),
        )
    } else {
        (
            ctx.metadata.configs(ConfigScope::Broker, ""),
            configs.clone(),
        )
    };
    ctx.static_config
        .with_dynamic(&cluster_default, &per_broker)
        .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
    if validate_only {
        return Ok(());
    }
    let storage = |e: String| {
        tracing::error!(broker, "cannot apply dynamic broker configs: {e}");
        (ResponseError::KafkaStorageError, e)
    };
    ctx.metadata
        .set_configs(ConfigScope::Broker, broker, configs)
        .map_err(|e| storage(e.to_string()))?;
    ctx.apply_dynamic_configs()
        .map_err(|e| storage(e.to_string()))?;
    tracing::info!(broker, "dynamic broker configs changed");
    Ok(())
}

/// Sets (SET) or resets (DELETE) logger levels: every operation is checked before any applies.
fn set_log_levels(
    ops: &[(String, i8, Option<String>)],
    validate_only: bool,
) -> Result<(), Failure> {
    let mut changes = Vec::new();
    let mut seen = HashSet::new();
    for (logger, op, value) in ops {
        if !seen.insert(logger.clone()) {
            return Err(duplicate(logger));
        }
        let level = match (*op, value) {
            (OP_SET, Some(v)) => Some(v.as_str()),
            (OP_DELETE, _) => None,
            _ => {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("logger `{logger}`: only SET with a level and DELETE apply"),
                ))
            }
        };
        crate::logging::set_level(logger, level, true)
            .map_err(|why| (ResponseError::InvalidConfig, why))?;
        changes.push((logger, level));
    }
    if validate_only {
        return Ok(());
    }
    for (logger, level) in changes {
        crate::logging::set_level(logger, level, false)
            .map_err(|why| (ResponseError::InvalidConfig, why))?;
        tracing::info!(logger = %logger, level = level.unwrap_or("(inherited)"), "log level changed");
    }
    Ok(())
}

/// Computes a group's new config set from incremental operations (no group config is a list).
fn apply_group_ops(
    ctx: &BrokerContext,
    group: &str,
    ops: &[(String, i8, Option<String>)],
) -> Result<BTreeMap<String, String>, Failure> {
    apply_incremental(ctx.metadata.group_configs(group), ops, |_| Ok(()), |_| None)
}

/// Validates a group's new config set, then stores it (unless `validate_only`); the group
/// coordinator reads it at each heartbeat and sweep, so it applies at once.
fn commit_group(
    ctx: &BrokerContext,
    group: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), Failure> {
    group_config::validate_set(&ctx.config(), &configs)
        .map_err(|why| (ResponseError::InvalidConfig, why))?;
    if validate_only {
        return Ok(());
    }
    ctx.metadata
        .set_configs(ConfigScope::Group, group, configs)
        .map_err(|e| {
            tracing::error!(group, "cannot store group configs: {e}");
            (super::errors::metadata_error(&e), e.to_string())
        })?;
    tracing::info!(group, "group configs changed");
    Ok(())
}

/// APPENDs `given`'s items to list `base` (skipping those already there) or SUBTRACTs them.
fn edit_list(base: &str, given: &str, append: bool) -> String {
    let mut items = split_list(base);
    let given = split_list(given);
    if append {
        for g in given {
            if !items.contains(&g) {
                items.push(g);
            }
        }
    } else {
        items.retain(|i| !given.contains(i));
    }
    items.join(",")
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// Validates every entry of the new config set, then stores and applies it (unless
/// `validate_only`).
fn commit(
    ctx: &BrokerContext,
    topic: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), Failure> {
    for (name, value) in &configs {
        topic_config::validate(name, Some(value))
            .map_err(|why| (ResponseError::InvalidConfig, why))?;
    }
    if validate_only {
        return Ok(());
    }
    match ctx.set_topic_configs(topic, configs) {
        Ok(Some(_)) => {
            tracing::info!(topic, "topic configs changed");
            Ok(())
        }
        Ok(None) => Err((
            ResponseError::UnknownTopicOrPartition,
            format!("topic `{topic}` does not exist"),
        )),
        Err(e) => {
            tracing::error!(topic, "cannot store topic configs: {e}");
            Err((super::errors::topic_error(&e), e.to_string()))
        }
    }
}
