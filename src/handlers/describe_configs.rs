//! DescribeConfigs (key 32, v1–4): topic resources list every Kafka topic config with its
//! effective value and source (TOPIC_CONFIG over the dynamic broker configs over
//! STATIC_BROKER_CONFIG over DEFAULT_CONFIG), synonyms when asked, and type/documentation from
//! v3; broker resources list the broker's settings with their sources, writable where Kafka
//! lets them change at run time; group resources list the KIP-848 group configs.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::config::SETTINGS;
use crate::metadata::config_catalog::{
    broker_setting_type, is_dynamic_broker_setting, resolve, resolve_group, Resolved, Sourced,
    TopicConfigDef, GROUP_CONFIGS, SOURCE_DYNAMIC_BROKER_CONFIG, TOPIC_CONFIGS,
};

/// ConfigResource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// ConfigResource type of a broker.
pub const RESOURCE_BROKER: i8 = 4;
/// ConfigResource type of a broker's loggers (their levels, changeable at run time).
pub const RESOURCE_BROKER_LOGGER: i8 = 8;
/// ConfigResource type of a consumer group (KIP-848 group configs).
pub const RESOURCE_GROUP: i8 = 32;
/// DescribeConfigs `config_source` of a logger's level.
const SOURCE_DYNAMIC_BROKER_LOGGER_CONFIG: i8 = 6;

/// What the client asked to see besides values.
struct Detail {
    synonyms: bool,
    documentation: bool,
}

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let detail = Detail {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation,
    };
    let results = request
        .resources
        .into_iter()
        .map(|r| {
            let keys: Option<Vec<String>> = r
                .configuration_keys
                .as_ref()
                .map(|k| k.iter().map(|s| s.as_str().to_string()).collect());
            let wanted = |name: &str| keys.as_ref().is_none_or(|k| k.iter().any(|x| x == name));
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let configs = match r.resource_type {
                RESOURCE_TOPIC => describe_topic(ctx, r.resource_name.as_str(), &wanted, &detail),
                RESOURCE_BROKER => describe_broker(ctx, r.resource_name.as_str(), &wanted, &detail),
                RESOURCE_GROUP => describe_group(ctx, r.resource_name.as_str(), &wanted, &detail),
                RESOURCE_BROKER_LOGGER => {
                    describe_loggers(ctx, r.resource_name.as_str(), &wanted, &detail)
                }
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("resource type {other} is not supported"),
                )),
            };
            match configs {
                Ok(configs) => result.with_error_message(None).with_configs(configs),
                Err((error, message)) => result
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

type Failure = (ResponseError, String);

fn synonym(s: &Sourced) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(str_bytes(s.name.clone()))
        .with_value(Some(str_bytes(s.value.clone())))
        .with_source(s.source)
}

fn entry(
    name: &str,
    value: &Sourced,
    synonyms: &[Sourced],
    read_only: bool,
    config_type: i8,
    doc: &str,
    detail: &Detail,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value.value.clone())))
        .with_read_only(read_only)
        .with_config_source(value.source)
        .with_is_sensitive(false)
        .with_synonyms(if detail.synonyms {
            synonyms.iter().map(synonym).collect()
        } else {
            Vec::new()
        })
        .with_config_type(config_type)
        .with_documentation(
            detail
                .documentation
                .then(|| StrBytes::from_string(doc.into())),
        )
}

/// The broker's loggers and their levels (`kafka-configs --entity-type broker-loggers`).
fn describe_loggers(
    ctx: &BrokerContext,
    name: &str,
    wanted: &dyn Fn(&str) -> bool,
    detail: &Detail,
) -> Result<Vec<DescribeConfigsResourceResult>, Failure> {
    if name.parse::<i32>().ok() != Some(ctx.node_id().get()) {
        return Err((
            ResponseError::InvalidRequest,
            format!("broker `{name}` is not this broker ({})", ctx.node_id()),
        ));
    }
    Ok(crate::logging::levels()
        .into_iter()
        .filter(|(logger, _)| wanted(logger))
        .map(|(logger, level)| {
            let value = Sourced {
                name: logger.clone(),
                value: level,
                source: SOURCE_DYNAMIC_BROKER_LOGGER_CONFIG,
            };
            entry(
                &logger,
                &value,
                &[],
                false,
                crate::metadata::config_catalog::config_type::STRING,
                "The level of this logger.",
                detail,
            )
        })
        .collect())
}

/// A group's configs: each group config Gregor honours, the group's own value over the
/// broker's. Like Kafka, a group need not exist to have (or be asked for) configs.
fn describe_group(
    ctx: &BrokerContext,
    name: &str,
    wanted: &dyn Fn(&str) -> bool,
    detail: &Detail,
) -> Result<Vec<DescribeConfigsResourceResult>, Failure> {
    if name.is_empty() {
        return Err((
            ResponseError::InvalidRequest,
            "the group name must not be empty".to_string(),
        ));
    }
    let overrides = ctx.metadata.group_configs(name);
    let layers = ctx.config_layers();
    Ok(resolved_entries(&GROUP_CONFIGS, wanted, detail, |d| {
        resolve_group(&layers, &overrides, d)
    }))
}

/// The writable entries of `defs` that are `wanted`, each as `resolve` finds it.
fn resolved_entries(
    defs: &'static [TopicConfigDef],
    wanted: &dyn Fn(&str) -> bool,
    detail: &Detail,
    resolve: impl Fn(&'static TopicConfigDef) -> Resolved,
) -> Vec<DescribeConfigsResourceResult> {
    defs.iter()
        .filter(|d| wanted(d.name))
        .map(|d| {
            let r = resolve(d);
            entry(
                d.name,
                &r.value,
                &r.synonyms,
                false,
                d.config_type,
                d.doc,
                detail,
            )
        })
        .collect()
}

fn describe_topic(
    ctx: &BrokerContext,
    name: &str,
    wanted: &dyn Fn(&str) -> bool,
    detail: &Detail,
) -> Result<Vec<DescribeConfigsResourceResult>, Failure> {
    let topic = ctx.metadata.topic(name).ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("topic `{name}` does not exist"),
        )
    })?;
    let layers = ctx.config_layers();
    Ok(resolved_entries(TOPIC_CONFIGS, wanted, detail, |d| {
        resolve(&layers, &topic.configs, d)
    }))
}

fn describe_broker(
    ctx: &BrokerContext,
    name: &str,
    wanted: &dyn Fn(&str) -> bool,
    detail: &Detail,
) -> Result<Vec<DescribeConfigsResourceResult>, Failure> {
    // "" names the cluster-wide default resource; otherwise it must be this broker's id.
    if !name.is_empty() && name.parse::<i32>().ok() != Some(ctx.node_id().get()) {
        return Err((
            ResponseError::InvalidRequest,
            format!("broker `{name}` is not this broker ({})", ctx.node_id()),
        ));
    }
    let layers = ctx.config_layers();
    Ok(SETTINGS
        .iter()
        // The default resource holds only what was set at that level, as in Kafka.
        .filter(|s| {
            wanted(s.name) && (!name.is_empty() || layers.cluster_default.contains_key(s.name))
        })
        .map(|s| {
            let mut synonyms = layers.synonyms(s.name, s.default);
            if name.is_empty() {
                synonyms.retain(|x| x.source != SOURCE_DYNAMIC_BROKER_CONFIG);
            }
            let value = synonyms[0].clone();
            entry(
                s.name,
                &value,
                &synonyms,
                !is_dynamic_broker_setting(s.name),
                broker_setting_type(s.name, s.default),
                s.doc,
                detail,
            )
        })
        .collect())
}
