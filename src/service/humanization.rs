//! The humanization job's contract, shared by the service (which submits and cancels) and the
//! runner (which runs): its kind, cost, the snapshot it runs on, the designs it may ask for and
//! its stages.

use serde::Serialize;

use crate::engine::humanize::{OptionValue, Strategy, StrategySpec};

use super::ServiceError;

/// The job kind, as stored and as `object` reads in the API.
pub const KIND: &str = "humanization";
/// Credits one humanization costs.
pub const COST: i64 = 1;
/// The first stage of every job, set when it is claimed.
pub const FIRST_STAGE: &str = "numbering";
/// The last stage: results are being written, and the job refuses cancellation.
pub const FINALIZING: &str = "finalizing";

#[derive(Debug, Clone, Serialize)]
pub struct NewHumanization {
    pub variant_id: String,
    /// The designs asked for, in canonical form (`design_json`); `None`: every configured
    /// strategy with its defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategies: Option<Vec<serde_json::Value>>,
}

/// What a humanization job runs on, copied from the variant at submit.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HumanizationSnapshot {
    pub variant_id: String,
    pub name: String,
    pub vh: String,
    /// `None` for a single-domain antibody.
    #[serde(default)]
    pub vl: Option<String>,
    /// The designs asked for (`design_json` objects); absent: the server's configured ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategies: Option<Vec<serde_json::Value>>,
}

/// The most designs one submit may ask for.
pub const MAX_DESIGNS: usize = 10;

/// Reads a submit's `strategies`: each an object with `name` and that strategy's options
/// (`{"name": "sapiens", "iterations": 2}`). Refusals name the entry and the option.
pub fn parse_designs(entries: &[serde_json::Value]) -> Result<Vec<StrategySpec>, ServiceError> {
    if entries.is_empty() {
        return Err(ServiceError::InvalidRequest(
            "strategies: give at least one, or leave the field out for every strategy".into(),
        ));
    }
    if entries.len() > MAX_DESIGNS {
        return Err(ServiceError::InvalidRequest(format!(
            "strategies: at most {MAX_DESIGNS} designs per submit, not {}",
            entries.len()
        )));
    }
    let mut designs: Vec<StrategySpec> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let bad = |why: String| ServiceError::InvalidRequest(format!("strategies[{i}]: {why}"));
        let object = entry
            .as_object()
            .ok_or_else(|| bad("must be an object with a `name`".into()))?;
        let name = object
            .get("name")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| bad("`name` (a string) is required".into()))?;
        let strategy: Strategy = name.parse().map_err(bad)?;
        let options = object.iter().filter(|(k, _)| *k != "name").map(|(k, v)| {
            let value = match v {
                serde_json::Value::Bool(b) => OptionValue::Boolean(*b),
                serde_json::Value::Number(n) => {
                    n.as_i64().map_or(OptionValue::Other, OptionValue::Integer)
                }
                _ => OptionValue::Other,
            };
            (k.as_str(), value)
        });
        let spec = StrategySpec::with_options(strategy, options).map_err(bad)?;
        if designs.contains(&spec) {
            return Err(bad("the same design is listed twice".into()));
        }
        designs.push(spec);
    }
    Ok(designs)
}

/// A design as a JSON object with every option spelled out, as inputs and snapshots keep it.
pub fn design_json(spec: &StrategySpec) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    object.insert("name".into(), spec.strategy.name().into());
    // Exactly the options this strategy takes, so the runner reads back what was accepted.
    if let Ok(serde_json::Value::Object(options)) = serde_json::to_value(spec.options()) {
        object.extend(options);
    }
    serde_json::Value::Object(object)
}
