//! The `x-kubernetes-validations` (CEL) rules of a CustomResourceDefinition's `openAPIV3Schema`,
//! evaluated against an object the way kube-apiserver evaluates them on create and update.
//!
//! ```text
//!   object ──null / default──► as stored ──walk schema + object──► each node with rules
//!                                              (properties, additionalProperties, items)
//!                                                   └─ self = the node's value ─► Vec<Violation>
//! ```
//!
//! wsgate's file mode and `wsgate check` run it on every WebSocketRoute they load, and the in-repo test
//! API server runs it on every write of a custom resource, so one rule text is enforced the same way
//! in a folder, in the tests and in a real cluster.
//!
//! What follows kube-apiserver:
//! - A rule is evaluated only where its value is present: an absent optional field is skipped. Absent
//!   properties with a `default` are defaulted first, and `null` is dropped where the schema is not
//!   `nullable` (kept as CEL `null` where it is: present to `has()`, but its own rules do not run), as
//!   the API server stores the object before it validates it. A node's own violations come before
//!   those of its children.
//! - JSON values become CEL values by their schema: `integer` → `int`, `number` → `double`, objects with
//!   `properties` → objects whose fields `has()` tests, `additionalProperties` → `map(string, …)`,
//!   `x-kubernetes-int-or-string` → `int` or `string`. Property names that are CEL keywords or hold `-`,
//!   `.`, `/`, `__` are escaped (`__namespace__`, `a__dash__b`); others that are no identifier are
//!   hidden. At the root, `metadata` shows only `name` and `generateName`.
//! - A rule that is `false` is a violation with its `message` (or `failed rule: RULE`), `reason` and
//!   `fieldPath`; `messageExpression` replaces the message when it gives a non-empty single line. A rule
//!   that fails to evaluate (`no such key`, a type mismatch) is a violation naming the error.
//! - On update ([`validate_update`]): transition rules (those naming `oldSelf`) run where the old object
//!   has a value at the same place; a violation at a node whose value did not change is dropped
//!   (validation ratcheting). Old and new values are matched through properties, map keys and the keys
//!   of `x-kubernetes-list-type: map` lists.
//!
//! Not modelled: cost estimation and the per-call cost budget, type checking when a CRD is written
//! (a rule naming a field the schema lacks fails when it runs, as `no such key`), `optionalOldSelf`
//! (such rules run only on update, as other transition rules do), the `format`-typed values (`date-time`
//! and `duration` strings stay strings, `byte` stays a string) and the Kubernetes function libraries
//! beyond CEL's standard one and its strings extension (no `url()`, `quantity()`, `ip()`, `isSorted()`,
//! `sets`…).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use cel::objects::Key;
use cel::{Context, Env, ExecutionError, Program};
use serde_json::{Map, Value};

/// A rule an object breaks, or one that could not be evaluated on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where the rule sits, in the API server's notation: `spec.limits`, `spec.backends[0]`,
    /// `spec.labels[key]`; `<nil>` for a rule on the root schema (as kube-apiserver prints it).
    pub path: String,
    /// The schema `type` at that place (`object`, `array`, `string`…; empty for int-or-string), which
    /// kube-apiserver prints as the "value" of an invalid field.
    pub value_type: String,
    /// `FieldValueInvalid` unless the rule sets another `reason`.
    pub reason: Reason,
    /// The rule's expression.
    pub rule: String,
    /// What the user is told: the rule's message, or the evaluation error.
    pub message: String,
}

/// The `reason` of a rule: which kind of field error a violation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    FieldValueInvalid,
    FieldValueForbidden,
    FieldValueRequired,
    FieldValueDuplicate,
}

impl Reason {
    /// The `reason` of the 422's cause.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::FieldValueInvalid => "FieldValueInvalid",
            Reason::FieldValueForbidden => "FieldValueForbidden",
            Reason::FieldValueRequired => "FieldValueRequired",
            Reason::FieldValueDuplicate => "FieldValueDuplicate",
        }
    }

    fn parse(text: &str) -> Option<Reason> {
        Some(match text {
            "FieldValueInvalid" => Reason::FieldValueInvalid,
            "FieldValueForbidden" => Reason::FieldValueForbidden,
            "FieldValueRequired" => Reason::FieldValueRequired,
            "FieldValueDuplicate" => Reason::FieldValueDuplicate,
            _ => return None,
        })
    }
}

impl Violation {
    /// The field error without its path, as a cause's `message`:
    /// `Invalid value: "object": handshakeBurstPerClient must be at least handshakesPerSecondPerClient`.
    pub fn detail(&self) -> String {
        match self.reason {
            Reason::FieldValueInvalid => format!("Invalid value: {:?}: {}", self.value_type, self.message),
            Reason::FieldValueForbidden => format!("Forbidden: {}", self.message),
            Reason::FieldValueRequired => format!("Required value: {}", self.message),
            Reason::FieldValueDuplicate => format!("Duplicate value: {:?}", self.message),
        }
    }
}

impl fmt::Display for Violation {
    /// `spec.limits: Invalid value: "object": handshakeBurstPerClient must be at least …`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.detail())
    }
}

/// The rules `object` (a whole custom resource, as JSON) breaks under `schema` (its version's
/// `openAPIV3Schema`), as on create. Empty when it passes.
pub fn validate(schema: &Value, object: &Value) -> Vec<Violation> {
    validate_update(schema, object, None)
}

/// As [`validate`], for an update of `old` to `object` when `old` is given: transition rules run and
/// unchanged values are ratcheted (see the crate documentation).
pub fn validate_update(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<Violation> {
    let object = stored(schema, object);
    let old = old.map(|old| stored(schema, old));
    let mut walker = Walker { programs: HashMap::new(), violations: Vec::new() };
    walker.node(schema, &object, old.as_ref(), &mut FieldPath::root(), true);
    walker.violations
}

/// A rule whose expression does not parse, found by [`check_rules`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// Where the rule is in the CRD, as kube-apiserver names it:
    /// `spec.validation.openAPIV3Schema.properties[spec].properties[limits].x-kubernetes-validations[1].rule`
    /// when `prefix` is `spec.validation.openAPIV3Schema`.
    pub path: String,
    pub rule: String,
    /// `compilation failed: ERROR: <input>:1:9: Syntax error: …`
    pub message: String,
}

/// Every rule (and `messageExpression`) in `schema` that does not compile, with its place under
/// `prefix`; what the API server refuses a CRD for.
pub fn check_rules(schema: &Value, prefix: &str) -> Vec<RuleError> {
    fn walk(schema: &Value, path: &str, out: &mut Vec<RuleError>, depth: usize) {
        // why: a CRD is a finite document, but the walk is bounded anyway.
        if depth > 64 {
            return;
        }
        for (i, rule) in rules_of(schema).iter().enumerate() {
            for (field, text) in [("rule", rule.get("rule")), ("messageExpression", rule.get("messageExpression"))] {
                let Some(text) = text.and_then(Value::as_str) else { continue };
                if let Err(error) = env().compile(text) {
                    out.push(RuleError {
                        path: format!("{path}.x-kubernetes-validations[{i}].{field}"),
                        rule: text.to_string(),
                        message: format!("compilation failed: {error}"),
                    });
                }
            }
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, sub) in properties {
                walk(sub, &format!("{path}.properties[{name}]"), out, depth + 1);
            }
        }
        if let Some(sub) = schema.get("additionalProperties").filter(|s| s.is_object()) {
            walk(sub, &format!("{path}.additionalProperties"), out, depth + 1);
        }
        if let Some(sub) = schema.get("items").filter(|s| s.is_object()) {
            walk(sub, &format!("{path}.items"), out, depth + 1);
        }
    }
    let mut out = Vec::new();
    walk(schema, prefix, &mut out, 0);
    out
}

/// Whether `schema` holds any `x-kubernetes-validations` rule (kube-apiserver runs no CEL validator,
/// and says nothing about skipped rules, for a schema without one).
pub fn has_rules(schema: &Value) -> bool {
    fn walk(schema: &Value, depth: usize) -> bool {
        if depth > 64 {
            return false;
        }
        !rules_of(schema).is_empty()
            || schema
                .get("properties")
                .and_then(Value::as_object)
                .is_some_and(|properties| properties.values().any(|sub| walk(sub, depth + 1)))
            || ["additionalProperties", "items"]
                .into_iter()
                .filter_map(|key| schema.get(key).filter(|s| s.is_object()))
                .any(|sub| walk(sub, depth + 1))
    }
    walk(schema, 0)
}

/// CEL's standard library with the strings extension (`lowerAscii`, `split`, `join`…), which
/// Kubernetes enables too.
fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        env.add_extension(cel::extensions::strings).expect("the strings extension registers once");
        Arc::new(env)
    })
}

fn rules_of(schema: &Value) -> &[Value] {
    schema.get("x-kubernetes-validations").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn schema_type(schema: &Value) -> &str {
    schema.get("type").and_then(Value::as_str).unwrap_or_default()
}

fn is_int_or_string(schema: &Value) -> bool {
    schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool).unwrap_or(false)
}

fn nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool).unwrap_or(false)
}

/// The object as the API server would store it: `null`s of non-nullable properties dropped, absent
/// properties with a `default` defaulted (the default itself defaulted below), at any depth. Does
/// nothing to an object the API server already stored.
fn stored(schema: &Value, value: &Value) -> Value {
    fn walk(schema: &Value, value: &mut Value, depth: usize) {
        if depth > 64 {
            return;
        }
        match value {
            Value::Object(map) => {
                if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                    for (name, sub) in properties {
                        if map.get(name).is_some_and(Value::is_null) && !nullable(sub) {
                            map.remove(name);
                        }
                        if !map.contains_key(name)
                            && let Some(default) = sub.get("default")
                        {
                            map.insert(name.clone(), default.clone());
                        }
                        if let Some(v) = map.get_mut(name) {
                            walk(sub, v, depth + 1);
                        }
                    }
                } else if let Some(sub) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                    for v in map.values_mut() {
                        walk(sub, v, depth + 1);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(sub) = schema.get("items") {
                    for item in items {
                        walk(sub, item, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }
    let mut value = value.clone();
    walk(schema, &mut value, 0);
    value
}

/// A field path as kube-apiserver's `field.Path` prints it.
struct FieldPath {
    segments: Vec<String>,
}

impl FieldPath {
    fn root() -> FieldPath {
        FieldPath { segments: Vec::new() }
    }

    fn push_child(&mut self, name: &str) {
        let separator = if self.segments.is_empty() || name.starts_with('[') { "" } else { "." };
        self.segments.push(format!("{separator}{name}"));
    }

    fn push_index(&mut self, index: usize) {
        self.segments.push(format!("[{index}]"));
    }

    fn push_key(&mut self, key: &str) {
        self.segments.push(format!("[{key}]"));
    }

    fn pop(&mut self) {
        self.segments.pop();
    }

    /// This path with a rule's `fieldPath` (`.a.b`, `['x-y']`) appended.
    fn render_with(&self, field_path: Option<&str>) -> String {
        let mut out: String = self.segments.concat();
        if let Some(extra) = field_path.map(|p| p.strip_prefix('.').unwrap_or(p)).filter(|p| !p.is_empty()) {
            if !out.is_empty() && !extra.starts_with('[') {
                out.push('.');
            }
            out.push_str(extra);
        }
        if out.is_empty() { "<nil>".to_string() } else { out }
    }
}

/// The compiled form of one rule, kept for the walk so a rule on list items is parsed once.
type Compiled = Result<Arc<Program>, String>;

struct Walker {
    programs: HashMap<String, Compiled>,
    violations: Vec<Violation>,
}

/// Most rule texts kept compiled across calls: a CRD has a handful, and parsing is most of the cost of
/// validating an object.
const SHARED_PROGRAMS: usize = 4096;

/// `text` compiled, from (and into) a process-wide cache, so each rule is parsed once, not once per
/// object; the cache is emptied when full, which bounds it whatever rules come and go.
fn compile_shared(text: &str) -> Compiled {
    static SHARED: OnceLock<Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let shared = SHARED.get_or_init(Default::default);
    if let Some(compiled) = shared.lock().unwrap_or_else(PoisonError::into_inner).get(text) {
        return compiled.clone();
    }
    let compiled = env().compile(text).map(Arc::new).map_err(|e| format!("compilation failed: {e}"));
    let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
    if shared.len() >= SHARED_PROGRAMS {
        shared.clear();
    }
    shared.insert(text.to_string(), compiled.clone());
    compiled
}

/// CEL's reserved words: a property so named is `__word__` in a rule.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The name a rule uses for a property, as Kubernetes escapes it; `None` when no rule can name it.
fn escape_property(name: &str) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let first = name.chars().next()?;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("__") {
            out.push_str("__underscores__");
            rest = after;
            continue;
        }
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

/// A JSON number as CEL sees it under a schema of type `ty`.
fn number(ty: &str, n: &serde_json::Number) -> cel::Value {
    match ty {
        "number" => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        _ => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            // why: an integer written as `2.0` is an integer to the schema; a true fraction stays one.
            _ => match n.as_f64() {
                Some(f) if ty == "integer" && f.fract() == 0.0 && f.abs() < 9.0e15 => cel::Value::Int(f as i64),
                Some(f) => cel::Value::Float(f),
                None => cel::Value::Null,
            },
        },
    }
}

/// A value without a schema below it (`x-kubernetes-preserve-unknown-fields`): by its JSON type.
fn untyped(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => number("", n),
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(untyped).collect())),
        Value::Object(map) => map_value(map.iter().map(|(k, v)| (k.clone(), untyped(v)))),
    }
}

fn map_value(entries: impl Iterator<Item = (String, cel::Value)>) -> cel::Value {
    let map: HashMap<Key, cel::Value> = entries.map(|(k, v)| (Key::String(Arc::new(k)), v)).collect();
    cel::Value::Map(cel::objects::Map { map: Arc::new(map) })
}

/// The values of an old list matched to the items of a new one: for `x-kubernetes-list-type: map` by
/// the list's keys, for `set` by value; atomic lists are not matched, as in Kubernetes.
fn correlate_items<'o>(schema: &Value, items: &[Value], old: Option<&'o Value>) -> Vec<Option<&'o Value>> {
    let old_items = old.and_then(Value::as_array);
    let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|keys| keys.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    items
        .iter()
        .map(|item| {
            let old_items = old_items?;
            match list_type {
                Some("map") if !keys.is_empty() => {
                    old_items.iter().find(|o| keys.iter().all(|k| o.get(k) == item.get(k)))
                }
                Some("set") => old_items.iter().find(|o| *o == item),
                _ => None,
            }
        })
        .collect()
}

impl Walker {
    /// Walks `value` (present) under `schema`, evaluating every rule on the way; returns its CEL value.
    fn node(
        &mut self,
        schema: &Value,
        value: &Value,
        old: Option<&Value>,
        path: &mut FieldPath,
        root: bool,
    ) -> cel::Value {
        // why: JSON nesting is what bounds the walk; 64 levels is far beyond any custom resource.
        if path.segments.len() > 64 {
            return untyped(value);
        }
        let children = self.violations.len();
        let here = self.convert(schema, value, old, path, root);
        let rules = rules_of(schema);
        // why: a `null` (of a nullable field) is present for its parent's `has()`, but its own rules
        // do not run, as in Kubernetes.
        if !rules.is_empty() && !value.is_null() {
            let own = self.violations.len();
            let old_here = old.map(|old| stored_old(schema, old, root));
            self.evaluate(schema, rules, value, &here, old, old_here.as_ref(), path);
            // why: kube-apiserver reports a node's own rules before those of its children.
            let own = self.violations.len() - own;
            self.violations[children..].rotate_right(own);
        }
        here
    }

    /// The CEL value of `value`, walking (and validating) its children.
    fn convert(
        &mut self,
        schema: &Value,
        value: &Value,
        old: Option<&Value>,
        path: &mut FieldPath,
        root: bool,
    ) -> cel::Value {
        let ty = schema_type(schema);
        match value {
            Value::Null => cel::Value::Null,
            Value::Bool(b) => cel::Value::Bool(*b),
            Value::Number(n) => number(if is_int_or_string(schema) { "integer" } else { ty }, n),
            Value::String(s) => cel::Value::String(Arc::new(s.clone())),
            Value::Array(items) => {
                let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) else {
                    return untyped(value);
                };
                let old_items = correlate_items(schema, items, old);
                let mut out = Vec::with_capacity(items.len());
                for (i, (item, old_item)) in items.iter().zip(old_items).enumerate() {
                    path.push_index(i);
                    out.push(self.node(item_schema, item, old_item, path, false));
                    path.pop();
                }
                cel::Value::List(Arc::new(out))
            }
            Value::Object(map) => self.object(schema, map, old, path, root),
        }
    }

    fn object(
        &mut self,
        schema: &Value,
        map: &Map<String, Value>,
        old: Option<&Value>,
        path: &mut FieldPath,
        root: bool,
    ) -> cel::Value {
        let old_field = |name: &str| old.and_then(|o| o.get(name));
        let mut entries = Vec::with_capacity(map.len());
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            let preserve = schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true);
            for (name, value) in map {
                let Some(escaped) = escape_property(name) else { continue };
                if root && name == "metadata" {
                    // why: rules see only these two of an object's metadata, as in Kubernetes.
                    let shown = ["name", "generateName"].into_iter().filter_map(|k| {
                        value.get(k).and_then(Value::as_str).map(|v| (k.to_string(), cel::Value::from(v)))
                    });
                    entries.push((escaped, map_value(shown)));
                    continue;
                }
                match properties.get(name) {
                    Some(sub) => {
                        path.push_child(name);
                        entries.push((escaped, self.node(sub, value, old_field(name), path, false)));
                        path.pop();
                    }
                    None if root && matches!(name.as_str(), "apiVersion" | "kind") => {
                        entries.push((escaped, untyped(value)));
                    }
                    None if preserve => entries.push((escaped, untyped(value))),
                    // why: the API server prunes a field its schema does not declare.
                    None => {}
                }
            }
            return map_value(entries.into_iter());
        }
        match schema.get("additionalProperties") {
            Some(sub) if sub.is_object() => {
                for (key, value) in map {
                    path.push_key(key);
                    entries.push((key.clone(), self.node(sub, value, old_field(key), path, false)));
                    path.pop();
                }
                map_value(entries.into_iter())
            }
            _ => untyped(&Value::Object(map.clone())),
        }
    }

    fn compiled(&mut self, text: &str) -> Compiled {
        if let Some(compiled) = self.programs.get(text) {
            return compiled.clone();
        }
        let compiled = compile_shared(text);
        self.programs.insert(text.to_string(), compiled.clone());
        compiled
    }

    #[allow(clippy::too_many_arguments)]
    fn evaluate(
        &mut self,
        schema: &Value,
        rules: &[Value],
        value: &Value,
        here: &cel::Value,
        old: Option<&Value>,
        old_here: Option<&cel::Value>,
        path: &FieldPath,
    ) {
        let unchanged = old == Some(value);
        for rule in rules {
            let Some(text) = rule.get("rule").and_then(Value::as_str) else { continue };
            let message = rule.get("message").and_then(Value::as_str).map(str::trim).filter(|m| !m.is_empty());
            // kube-apiserver's wording: the message when there is one, else the rule.
            let named = message.unwrap_or(text.trim()).to_string();
            let field_path = rule.get("fieldPath").and_then(Value::as_str);
            let reason = rule.get("reason").and_then(Value::as_str).and_then(Reason::parse);
            let violation = |path: String, reason: Reason, message: String| Violation {
                path,
                value_type: schema_type(schema).to_string(),
                reason,
                rule: text.to_string(),
                message,
            };
            let program = match self.compiled(text) {
                Ok(program) => program,
                Err(error) => {
                    let message = format!("{error} for rule: {named}");
                    self.violations.push(violation(path.render_with(None), Reason::FieldValueInvalid, message));
                    continue;
                }
            };
            let transition = program.references().has_variable("oldSelf");
            if transition && old_here.is_none() {
                continue;
            }
            let mut context = Context::with_env(Arc::clone(env()));
            context.add_variable_from_value("self", here.clone());
            if let Some(old_here) = old_here.filter(|_| transition) {
                context.add_variable_from_value("oldSelf", old_here.clone());
            }
            let failed = match program.execute(&context) {
                Ok(cel::Value::Bool(true)) => None,
                // why: ratcheting: an update may keep a value that a rule added later refuses (an
                // evaluation error is never ratcheted, as in Kubernetes).
                Ok(_) if unchanged && !transition => None,
                Ok(_) => {
                    let message = self.message(rule, &context).unwrap_or_else(|| match message {
                        Some(message) => message.to_string(),
                        None => format!("failed rule: {named}"),
                    });
                    Some((path.render_with(field_path), reason.unwrap_or(Reason::FieldValueInvalid), message))
                }
                Err(error) => {
                    Some((path.render_with(None), Reason::FieldValueInvalid, evaluation_error(&error, &named)))
                }
            };
            if let Some((at, reason, message)) = failed {
                self.violations.push(violation(at, reason, message));
            }
        }
    }

    /// The result of the rule's `messageExpression`, when it yields a non-empty single line.
    fn message(&mut self, rule: &Value, context: &Context) -> Option<String> {
        let text = rule.get("messageExpression").and_then(Value::as_str)?;
        let program = self.compiled(text).ok()?;
        match program.execute(context) {
            Ok(cel::Value::String(s)) if !s.trim().is_empty() && !s.contains('\n') => Some(s.trim().to_string()),
            _ => None,
        }
    }
}

/// The old value's CEL form at a node, for `oldSelf` (its children are not validated).
fn stored_old(schema: &Value, old: &Value, root: bool) -> cel::Value {
    let mut walker = Walker { programs: HashMap::new(), violations: Vec::new() };
    let stripped = strip_rules(schema);
    walker.convert(&stripped, old, None, &mut FieldPath::root(), root)
}

/// `schema` without any `x-kubernetes-validations`, so converting an old value evaluates nothing.
fn strip_rules(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "x-kubernetes-validations")
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        "properties" => match v {
                            Value::Object(props) => {
                                Value::Object(props.iter().map(|(n, s)| (n.clone(), strip_rules(s))).collect())
                            }
                            other => other.clone(),
                        },
                        "items" | "additionalProperties" => strip_rules(v),
                        _ => v.clone(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// An evaluation error in kube-apiserver's words (its texts come from cel-go, so the error itself is
/// named as cel-go names it where the two differ only in spelling).
fn evaluation_error(error: &ExecutionError, named: &str) -> String {
    let text = match error {
        ExecutionError::NoSuchKey(key) => format!("no such key: {key}"),
        ExecutionError::NoSuchOverload(_)
        | ExecutionError::UnsupportedBinaryOperator(..)
        | ExecutionError::ValuesNotComparable(..)
        | ExecutionError::UnexpectedType { .. }
        | ExecutionError::UnsupportedTargetType { .. }
        | ExecutionError::NotSupportedAsMethod { .. } => {
            return format!(
                "'no such overload': call arguments did not match a supported operator, function or macro \
                 signature for rule: {named}"
            );
        }
        ExecutionError::IndexOutOfBounds(index) => format!("index out of bounds: {}", cel_text(index)),
        ExecutionError::DivisionByZero(_) => "division by zero".to_string(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".to_string(),
        ExecutionError::Overflow(..) => "integer overflow".to_string(),
        other => other.to_string(),
    };
    format!("{text} evaluating rule: {named}")
}

fn cel_text(value: &cel::Value) -> String {
    match value {
        cel::Value::Int(i) => i.to_string(),
        cel::Value::UInt(u) => u.to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests;
