//! Events are one kind with two API versions: `v1` Event (core) and `events.k8s.io/v1` Event. As
//! on the real server they share storage (kept in the core form here), so an event published
//! through one group is listed and watched through the other.
//!
//! ```text
//!   events.k8s.io/v1            core v1
//!   regarding              ⇄   involvedObject
//!   note                   ⇄   message
//!   reportingController    ⇄   reportingComponent
//!   deprecatedSource       ⇄   source
//!   deprecatedFirstTimestamp ⇄ firstTimestamp
//!   deprecatedLastTimestamp  ⇄ lastTimestamp
//!   deprecatedCount        ⇄   count
//!   (metadata, eventTime, series, action, reason, related, type, reportingInstance: same names)
//! ```

use serde_json::{Map, Value};

use crate::catalog::ResourceType;

/// `(events.k8s.io name, core name)` for the fields whose names differ.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Whether `rt` is the events.k8s.io view of events.
pub fn is_events_v1(rt: &ResourceType) -> bool {
    rt.group == "events.k8s.io" && rt.resource == "events"
}

fn rename(obj: &Value, from_new: bool) -> Value {
    let Value::Object(map) = obj else { return obj.clone() };
    let mut out = Map::new();
    for (k, v) in map {
        let renamed = RENAMED.iter().find_map(|(new, core)| {
            let (from, to) = if from_new { (new, core) } else { (core, new) };
            (k == from).then(|| to.to_string())
        });
        out.insert(renamed.unwrap_or_else(|| k.clone()), v.clone());
    }
    Value::Object(out)
}

/// An events.k8s.io/v1 Event in the stored (core) form.
pub fn to_core(obj: &Value) -> Value {
    let mut out = rename(obj, true);
    if let Value::Object(m) = &mut out {
        m.insert("apiVersion".into(), Value::String("v1".into()));
    }
    out
}

/// A stored (core) Event as events.k8s.io/v1 shows it.
pub fn from_core(obj: &Value) -> Value {
    let mut out = rename(obj, false);
    if let Value::Object(m) = &mut out {
        m.insert("apiVersion".into(), Value::String("events.k8s.io/v1".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conversions_round_trip() {
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
                         "regarding": {"name": "x"}, "note": "hi", "reportingController": "wsgate",
                         "reportingInstance": "wsgate-0", "deprecatedCount": 2, "reason": "R", "type": "Normal"});
        let core = to_core(&new);
        assert_eq!(core["involvedObject"]["name"], "x");
        assert_eq!(core["message"], "hi");
        assert_eq!(core["reportingComponent"], "wsgate");
        assert_eq!(core["count"], 2);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(from_core(&core), new);
    }
}
