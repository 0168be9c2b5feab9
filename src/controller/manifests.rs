//! File mode's source: a folder of Kubernetes YAML manifests read into a [`Snapshot`].
//!
//! ```text
//!   DIR/*.yaml, DIR/*.yml (sorted by name, not recursive)
//!     └─ documents (`---`) ─► apiVersion + kind ─┬─ Ingress, IngressClass, WebSocketRoute,
//!                                                │  Service, EndpointSlice, Secret,
//!                                                │  v1 List ─► Snapshot
//!                                                │     ├─ fields no type reads ─► LoadWarning
//!                                                │     └─ WebSocketRoute breaking a CRD rule ─► LoadError,
//!                                                │        not loaded
//!                                                ├─ anything else ─► skipped (listed, not an error)
//!                                                └─ unparsable ─► LoadError (file, document, reason)
//! ```
//!
//! A WebSocketRoute is checked against the CEL rules (`x-kubernetes-validations`) of the CRD `wsgate crd`
//! prints, evaluated on the document as written by [`wsgate_crd_cel`], the evaluator the test API server
//! uses too. One that breaks a rule is not loaded, as kube-apiserver would refuse it and `kubectl apply`
//! would not create it; each broken rule is a [`LoadError`] worded as the API server's 422
//! (`WebSocketRoute.wsgate.dev "chat" is invalid: spec.limits: Invalid value: "object": …`).
//!
//! One bad document never hides the others: every error is collected, and the caller decides what to do
//! with a snapshot that came with errors (file mode keeps serving its last good table). Namespaced
//! objects without `metadata.namespace` are put in `default`, as `kubectl apply` would. Files whose name
//! starts with `.` (editor swap files and the like) are ignored.
//!
//! A field that no Rust type reads (`hostname:` for `hostnames:`) is a [`LoadWarning`] naming its path
//! as kubectl's strict field validation does (`unknown field "spec.hostname"`); the object is still
//! kept. The parsers themselves report which keys they skip ([`serde_ignored`] wraps the YAML
//! deserializer), so a field added to a Rust type is known the moment it is added, and a field that is
//! read but serializes differently (a default, a `null`) is never mistaken for an unknown one.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use crate::controller::Snapshot;
use crate::crd::WebSocketRoute;

/// Upper bound on documents read from one file, so a malformed stream can never loop for long.
const MAX_DOCUMENTS_PER_FILE: usize = 10_000;

/// The folder itself could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest folder {}: {source}", path.display())]
    ReadDir { path: PathBuf, source: std::io::Error },
}

/// A file or document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    /// 1-based index of the document in the file; `None` when the whole file could not be read.
    pub document: Option<usize>,
    pub message: String,
}

impl fmt::Display for LoadError {
    /// `examples/quickstart/route.yaml: document 2: spec: missing field `backends` at line 9 column 3`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.document {
            Some(document) => write!(f, "{}: document {document}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for LoadError {}

/// An object of a kind wsgate does not read (a Deployment, a Namespace, a CRD…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedObject {
    pub file: PathBuf,
    /// 1-based index of the document in the file.
    pub document: usize,
    pub api_version: String,
    pub kind: String,
    pub name: Option<String>,
}

impl fmt::Display for SkippedObject {
    /// `deploy.yaml: document 1: skipped apps/v1 Deployment "echo" (not read by wsgate)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}: skipped {} {}", self.file.display(), self.document, self.api_version, self.kind)?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        f.write_str(" (not read by wsgate)")
    }
}

/// A field of a kept object that wsgate does not know, so ignores: most often a misspelling, which
/// leaves the setting the user meant unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadWarning {
    pub file: PathBuf,
    /// 1-based index of the document in the file.
    pub document: usize,
    /// Index in `items` when the object is an item of a `v1 List`.
    pub item: Option<usize>,
    /// `WebSocketRoute default/chat`, `IngressClass wsgate` (cluster-scoped), or `List` for the list itself.
    pub object: String,
    /// The field's path in the object, as kubectl prints it: `spec.rules[0].http.paths[0].pathtype`.
    pub field: String,
}

impl fmt::Display for LoadWarning {
    /// `route.yaml: document 1: WebSocketRoute default/chat: unknown field "spec.hostname" (ignored)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}: ", self.file.display(), self.document)?;
        if let Some(item) = self.item {
            write!(f, "items[{item}]: ")?;
        }
        write!(f, "{}: unknown field {:?} (ignored)", self.object, self.field)
    }
}

/// What a folder held.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub snapshot: Snapshot,
    /// Documents that could not be read; empty means the snapshot is complete.
    pub errors: Vec<LoadError>,
    pub skipped: Vec<SkippedObject>,
    /// Unknown fields of the objects in `snapshot`, in file and document order. They do not make the
    /// snapshot incomplete: each object is kept without them.
    pub warnings: Vec<LoadWarning>,
}

/// Reads every `*.yaml` and `*.yml` file directly in `dir`, in file-name order.
pub fn load_dir(dir: &Path) -> Result<Loaded, ManifestError> {
    let read_error = |source| ManifestError::ReadDir { path: dir.to_path_buf(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_manifest = name.ends_with(".yaml") || name.ends_with(".yml");
        // Follows symlinks, so a linked file counts (ConfigMap volumes are made of symlinks).
        if is_manifest && !name.starts_with('.') && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(load_files(&files))
}

/// Reads manifests from `text` (named `name` in errors, e.g. `-` for standard input).
pub fn load_text(name: &Path, text: &str) -> Loaded {
    let mut loader = Loader::default();
    loader.read_file(name, text);
    loader.loaded
}

/// Reads the given files, in the given order, into one snapshot.
pub fn load_files(files: &[PathBuf]) -> Loaded {
    let mut loader = Loader::default();
    for file in files {
        match std::fs::read_to_string(file) {
            Ok(text) => loader.read_file(file, &text),
            Err(error) => loader.loaded.errors.push(LoadError {
                file: file.clone(),
                document: None,
                message: format!("cannot read file: {error}"),
            }),
        }
    }
    loader.loaded
}

/// The kinds the loader keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Ingress,
    IngressClass,
    WebSocketRoute,
    Service,
    EndpointSlice,
    Secret,
}

/// What a document holds, by `apiVersion` and `kind`.
enum DocumentKind {
    Object(Kind),
    List,
}

impl DocumentKind {
    fn of(api_version: &str, kind: &str) -> Option<DocumentKind> {
        let kind = match (api_version, kind) {
            ("networking.k8s.io/v1", "Ingress") => Kind::Ingress,
            ("networking.k8s.io/v1", "IngressClass") => Kind::IngressClass,
            ("wsgate.dev/v1alpha1", "WebSocketRoute") => Kind::WebSocketRoute,
            ("v1", "Service") => Kind::Service,
            ("discovery.k8s.io/v1", "EndpointSlice") => Kind::EndpointSlice,
            ("v1", "Secret") => Kind::Secret,
            ("v1", "List") => return Some(DocumentKind::List),
            _ => return None,
        };
        Some(DocumentKind::Object(kind))
    }
}

/// One parsed object of a kind the loader keeps.
enum Object {
    Ingress(Box<Ingress>),
    IngressClass(Box<IngressClass>),
    WebSocketRoute(Box<WebSocketRoute>),
    Service(Box<Service>),
    EndpointSlice(Box<EndpointSlice>),
    /// Both `data` (base64) and `stringData` are read; compile lets `stringData` win, as the API server does.
    Secret(Box<Secret>),
}

/// A parsed object and the paths of the fields its type did not read.
struct Parsed {
    object: Object,
    unknown: Vec<String>,
}

impl Object {
    /// Parses one YAML document as `kind`; serde_yaml's error names the field path and position.
    fn parse(kind: Kind, source: serde_yaml::Deserializer<'_>) -> Result<Parsed, serde_yaml::Error> {
        let mut unknown = Vec::new();
        let object = match kind {
            Kind::Ingress => Object::Ingress(parse_reporting_unknown(source, &mut unknown)?),
            Kind::IngressClass => Object::IngressClass(parse_reporting_unknown(source, &mut unknown)?),
            Kind::WebSocketRoute => Object::WebSocketRoute(parse_reporting_unknown(source, &mut unknown)?),
            Kind::Service => Object::Service(parse_reporting_unknown(source, &mut unknown)?),
            Kind::EndpointSlice => Object::EndpointSlice(parse_reporting_unknown(source, &mut unknown)?),
            Kind::Secret => Object::Secret(parse_reporting_unknown(source, &mut unknown)?),
        };
        // why: the WebSocketRoute type kube derives has no `apiVersion` and `kind` fields (it writes them
        // back from constants), so its parser skips them; the loader has read and checked both already.
        unknown.retain(|field| field != "apiVersion" && field != "kind");
        Ok(Parsed { object, unknown })
    }

    /// Parses a List item. The item is written out and read again so errors name the field path; the
    /// position is dropped, as it would count lines of the rewritten item, not of the file.
    fn parse_item(kind: Kind, item: &serde_yaml::Value) -> Result<Parsed, String> {
        let text = serde_yaml::to_string(item).map_err(|error| error.to_string())?;
        Object::parse(kind, serde_yaml::Deserializer::from_str(&text)).map_err(|error| {
            let message = error.to_string();
            let position = error.location().map(|at| format!(" at line {} column {}", at.line(), at.column()));
            match position.as_deref().and_then(|position| message.strip_suffix(position)) {
                Some(stripped) => stripped.to_string(),
                None => message,
            }
        })
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Ingress(o) => &mut o.metadata,
            Object::IngressClass(o) => &mut o.metadata,
            Object::WebSocketRoute(o) => &mut o.metadata,
            Object::Service(o) => &mut o.metadata,
            Object::EndpointSlice(o) => &mut o.metadata,
            Object::Secret(o) => &mut o.metadata,
        }
    }

    fn add_to(self, snapshot: &mut Snapshot) {
        match self {
            Object::Ingress(o) => snapshot.ingresses.push(*o),
            Object::IngressClass(o) => snapshot.ingress_classes.push(*o),
            Object::WebSocketRoute(o) => snapshot.websocket_routes.push(*o),
            Object::Service(o) => snapshot.services.push(*o),
            Object::EndpointSlice(o) => snapshot.endpoint_slices.push(*o),
            Object::Secret(o) => snapshot.secrets.push(*o),
        }
    }
}

/// Deserializes `T`, pushing onto `unknown` the path of every key its `Deserialize` impl skipped.
///
/// why: serde_ignored sees each skipped key at the moment the parser skips it, at any depth, through
/// derived impls (WebSocketRoute) and k8s-openapi's hand-written visitors alike. Keys inside a value
/// that serde buffers first (`#[serde(flatten)]`, untagged enums) would not be seen; none of the kept
/// types has one, and a test walks the WebSocketRoute schema to keep it so.
fn parse_reporting_unknown<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    source: D,
    unknown: &mut Vec<String>,
) -> Result<Box<T>, D::Error> {
    serde_ignored::deserialize(source, |path| unknown.push(field_path(&path))).map(Box::new)
}

/// A serde_ignored path in kubectl's notation: `spec.rules[0].http.paths[0].pathtype`.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    fn write(path: &serde_ignored::Path<'_>, out: &mut String) {
        use serde_ignored::Path;
        match path {
            Path::Root => {}
            Path::Seq { parent, index } => {
                write(parent, out);
                out.push_str(&format!("[{index}]"));
            }
            Path::Map { parent, key } => {
                write(parent, out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            // why: an `Option` or a newtype wrapper is no level of the document.
            Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
                write(parent, out)
            }
        }
    }
    let mut out = String::new();
    write(path, &mut out);
    out
}

/// The `openAPIV3Schema` of the WebSocketRoute CRD that `wsgate crd` prints, version `v1alpha1`.
/// A label or annotation value that is not a string (`10`, `true` unquoted). YAML reads it as text, but
/// kube-apiserver takes these maps as JSON strings and refuses the object (`cannot unmarshal number into
/// ... of type string`), so `kubectl apply` would fail: this says so, with the fix.
fn non_string_metadata(raw: &serde_yaml::Value) -> Option<String> {
    let metadata = raw.get("metadata")?;
    for map in ["labels", "annotations"] {
        let Some(entries) = metadata.get(map).and_then(serde_yaml::Value::as_mapping) else { continue };
        for (key, value) in entries {
            if value.is_string() || value.is_null() {
                continue;
            }
            let key = key.as_str().map_or_else(|| format!("{key:?}"), |k| format!("{k:?}"));
            let written = serde_yaml::to_string(value).unwrap_or_default();
            let written = written.trim();
            return Some(format!(
                "metadata.{map}[{key}]: the value must be a string, not {written}: quote it (\"{written}\"), \
                 as the API server refuses it unquoted"
            ));
        }
    }
    None
}

fn websocketroute_schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(WebSocketRoute::crd()).expect("a CRD always serializes to JSON");
        let versions = crd["spec"]["versions"].as_array().cloned().unwrap_or_default();
        let version = versions.into_iter().find(|v| v["name"] == "v1alpha1").expect("the CRD serves v1alpha1");
        version["schema"]["openAPIV3Schema"].clone()
    })
}

/// The CEL rules (`x-kubernetes-validations`) of the WebSocketRoute CRD that `raw` breaks, evaluated
/// as kube-apiserver evaluates them on create.
fn rule_violations(raw: &serde_yaml::Value) -> Vec<wsgate_crd_cel::Violation> {
    match serde_json::to_value(raw) {
        Ok(object) => wsgate_crd_cel::validate(websocketroute_schema(), &object),
        // why: a document that is no JSON value (a non-string key) has failed to parse already.
        Err(_) => Vec::new(),
    }
}

/// `apiVersion`, `kind` and `metadata.name` of a document, read before it is parsed as its type.
struct TypeInfo<'v> {
    api_version: Option<&'v str>,
    kind: Option<&'v str>,
    name: Option<&'v str>,
}

impl<'v> TypeInfo<'v> {
    /// `None` when the value is not a mapping, so cannot be an object.
    fn of(value: &'v serde_yaml::Value) -> Option<TypeInfo<'v>> {
        value.as_mapping()?;
        Some(TypeInfo {
            api_version: value.get("apiVersion").and_then(serde_yaml::Value::as_str),
            kind: value.get("kind").and_then(serde_yaml::Value::as_str),
            name: value.get("metadata").and_then(|m| m.get("name")).and_then(serde_yaml::Value::as_str),
        })
    }

    fn skipped(&self, file: &Path, document: usize, api_version: &str, kind: &str) -> SkippedObject {
        SkippedObject {
            file: file.to_path_buf(),
            document,
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            name: self.name.map(str::to_string),
        }
    }
}

/// `items` of a `v1 List`.
#[derive(Deserialize)]
struct ListItems {
    #[serde(default)]
    items: Vec<serde_yaml::Value>,
}

/// Where an object was first seen, to report duplicates.
type Origin = (PathBuf, usize);

#[derive(Default)]
struct Loader {
    loaded: Loaded,
    seen: HashMap<(Kind, String, String), Origin>,
}

impl Loader {
    fn read_file(&mut self, file: &Path, text: &str) {
        // First pass: each document as a generic value, to learn its kind and find syntax errors.
        let mut values = Vec::new();
        for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate().take(MAX_DOCUMENTS_PER_FILE) {
            match serde_yaml::Value::deserialize(document) {
                Ok(value) => values.push(value),
                Err(error) => {
                    // The YAML stream cannot be read past a syntax error.
                    self.error(file, i + 1, format!("{error}; the rest of the file was not read"));
                    break;
                }
            }
        }
        // Second pass: parse each kept document as its type, straight from the text, so that errors
        // carry the line and column in the file.
        let documents = serde_yaml::Deserializer::from_str(text);
        for (i, (document, value)) in documents.zip(&values).enumerate() {
            let number = i + 1;
            if value.is_null() {
                continue;
            }
            let Some(info) = TypeInfo::of(value) else {
                self.error(file, number, "a document must be a mapping (a Kubernetes object)".to_string());
                continue;
            };
            let (Some(api_version), Some(kind)) = (info.api_version, info.kind) else {
                self.error(file, number, "apiVersion and kind are required".to_string());
                continue;
            };
            let Some(known) = DocumentKind::of(api_version, kind) else {
                self.loaded.skipped.push(info.skipped(file, number, api_version, kind));
                continue;
            };
            match known {
                DocumentKind::List => self.read_list(file, number, document),
                DocumentKind::Object(kind) => {
                    let parsed = Object::parse(kind, document).map_err(|error| error.to_string());
                    self.add_object(file, number, None, kind, value, parsed)
                }
            }
        }
    }

    fn read_list(&mut self, file: &Path, number: usize, document: serde_yaml::Deserializer<'_>) {
        let mut unknown = Vec::new();
        let items = match parse_reporting_unknown::<ListItems, _>(document, &mut unknown) {
            Ok(list) => list.items,
            Err(error) => return self.error(file, number, error.to_string()),
        };
        // why: a misspelled `items` would otherwise load an empty List without a word.
        for field in unknown.into_iter().filter(|field| !matches!(field.as_str(), "apiVersion" | "kind" | "metadata")) {
            self.warning(file, number, None, "List".to_string(), field);
        }
        for (i, item) in items.into_iter().enumerate() {
            let at = format!("items[{i}]: ");
            let info = TypeInfo::of(&item);
            let kind = info.as_ref().and_then(|info| Some((info.api_version?, info.kind?)));
            let (Some(info), Some((api_version, kind))) = (&info, kind) else {
                self.error(file, number, format!("{at}apiVersion and kind are required"));
                continue;
            };
            match DocumentKind::of(api_version, kind) {
                Some(DocumentKind::List) => {
                    self.error(file, number, format!("{at}a List inside a List is not supported"))
                }
                Some(DocumentKind::Object(known)) => {
                    self.add_object(file, number, Some(i), known, &item, Object::parse_item(known, &item))
                }
                None => self.loaded.skipped.push(info.skipped(file, number, api_version, kind)),
            }
        }
    }

    /// Adds a parsed object (from a document, or from item `item` of a List) once it has a namespace
    /// and a name that is not taken, and passes its CRD's rules; its unknown fields become warnings then,
    /// and only then. `raw` is the document as written, which the rules are evaluated on.
    fn add_object(
        &mut self,
        file: &Path,
        number: usize,
        item: Option<usize>,
        kind: Kind,
        raw: &serde_yaml::Value,
        parsed: Result<Parsed, String>,
    ) {
        let at = item.map(|i| format!("items[{i}]: ")).unwrap_or_default();
        let Parsed { mut object, unknown } = match parsed {
            Ok(parsed) => parsed,
            Err(message) => return self.error(file, number, format!("{at}{message}")),
        };
        let metadata = object.metadata_mut();
        if kind != Kind::IngressClass && metadata.namespace.as_deref().is_none_or(str::is_empty) {
            metadata.namespace = Some("default".to_string());
        }
        let name = metadata.name.clone().unwrap_or_default();
        let namespace = metadata.namespace.clone().unwrap_or_default();
        if name.is_empty() {
            return self.error(file, number, format!("{at}metadata.name is required"));
        }
        if let Some(message) = non_string_metadata(raw) {
            return self.error(file, number, format!("{at}{message}"));
        }
        if kind == Kind::WebSocketRoute {
            let violations = rule_violations(raw);
            if !violations.is_empty() {
                // why: kube-apiserver refuses such an object (422), so `kubectl apply` would not have
                // created it: it is not loaded, and the folder's load has errors like any bad document.
                for violation in violations {
                    let message = format!("{at}WebSocketRoute.wsgate.dev {name:?} is invalid: {violation}");
                    self.error(file, number, message);
                }
                return;
            }
        }
        let key = (kind, namespace, name);
        let (kind, namespace, name) = &key;
        let described =
            if namespace.is_empty() { format!("{kind:?} {name}") } else { format!("{kind:?} {namespace}/{name}") };
        if let Some((first_file, first_document)) = self.seen.get(&key) {
            let message = format!(
                "{at}{described} is already defined in {} document {first_document}; this copy is ignored",
                first_file.display()
            );
            return self.error(file, number, message);
        }
        for field in unknown {
            self.warning(file, number, item, described.clone(), field);
        }
        self.seen.insert(key, (file.to_path_buf(), number));
        object.add_to(&mut self.loaded.snapshot);
    }

    fn error(&mut self, file: &Path, document: usize, message: String) {
        self.loaded.errors.push(LoadError { file: file.to_path_buf(), document: Some(document), message });
    }

    fn warning(&mut self, file: &Path, document: usize, item: Option<usize>, object: String, field: String) {
        self.loaded.warnings.push(LoadWarning { file: file.to_path_buf(), document, item, object, field });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(test: &str) -> TempDir {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let unique =
                format!("wsgate-manifests-{test}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
            let path = std::env::temp_dir().join(unique);
            std::fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).expect("write manifest");
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const SERVICE: &str =
        "apiVersion: v1\nkind: Service\nmetadata: {name: echo}\nspec: {ports: [{name: ws, port: 80}]}\n";
    const ROUTE: &str = "apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {name: echo, namespace: apps}\n\
                         spec:\n  backends:\n  - service: {name: echo, port: ws}\n";

    fn messages(loaded: &Loaded) -> Vec<String> {
        loaded.errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn reads_every_supported_kind_from_yaml_and_yml_files_only() {
        let dir = TempDir::new("kinds");
        dir.write("a.yaml", &format!("{SERVICE}---\n{ROUTE}"));
        dir.write(
            "b.yml",
            "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: wsgate}\n\
             spec: {controller: wsgate.dev/ingress-controller}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\nspec: {ingressClassName: wsgate}\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: echo-1}\naddressType: IPv4\nendpoints: []\n",
        );
        dir.write("notes.txt", SERVICE);
        dir.write(".swap.yaml", "this: [is not: yaml");
        std::fs::create_dir(dir.0.join("nested.yaml")).expect("create subdir");
        std::fs::write(dir.0.join("nested.yaml/inner.yaml"), ROUTE).expect("write nested");

        let loaded = load_dir(&dir.0).expect("readable dir");
        assert_eq!(messages(&loaded), Vec::<String>::new());
        let snapshot = &loaded.snapshot;
        assert_eq!(snapshot.services.len(), 1);
        assert_eq!(snapshot.services[0].metadata.namespace.as_deref(), Some("default"));
        assert_eq!(snapshot.websocket_routes.len(), 1, "nested folders are not read");
        assert_eq!(snapshot.websocket_routes[0].metadata.namespace.as_deref(), Some("apps"));
        assert_eq!(snapshot.ingresses[0].metadata.namespace.as_deref(), Some("default"));
        assert_eq!(snapshot.endpoint_slices[0].metadata.namespace.as_deref(), Some("default"));
        assert_eq!(snapshot.ingress_classes[0].metadata.namespace, None, "IngressClass is cluster-scoped");
        assert!(loaded.skipped.is_empty());
    }

    #[test]
    fn other_kinds_are_skipped_and_listed() {
        let dir = TempDir::new("skipped");
        let file = dir.write(
            "mixed.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: echo}\n---\n\
             apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n---\n\
             apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: old}\n",
        );
        let loaded = load_dir(&dir.0).expect("readable dir");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let skipped: Vec<String> = loaded.skipped.iter().map(ToString::to_string).collect();
        let at = file.display();
        assert_eq!(
            skipped,
            [
                format!("{at}: document 1: skipped apps/v1 Deployment \"echo\" (not read by wsgate)"),
                format!("{at}: document 2: skipped v1 Namespace \"apps\" (not read by wsgate)"),
                format!("{at}: document 3: skipped extensions/v1beta1 Ingress \"old\" (not read by wsgate)"),
            ]
        );
        assert!(loaded.snapshot.ingresses.is_empty());
    }

    #[test]
    fn secrets_are_kept_with_data_and_string_data() {
        let dir = TempDir::new("secrets");
        dir.write(
            "tls.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: encoded}\ntype: kubernetes.io/tls\n\
             data: {tls.crt: c2VjcmV0, tls.key: a2V5}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {name: plain, namespace: apps}\ntype: kubernetes.io/tls\n\
             stringData: {tls.crt: secret, tls.key: key}\n",
        );
        let loaded = load_dir(&dir.0).expect("readable dir");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
        let secrets = &loaded.snapshot.secrets;
        assert_eq!(secrets.len(), 2);
        assert_eq!(secrets[0].metadata.namespace.as_deref(), Some("default"));
        assert_eq!(secrets[0].type_.as_deref(), Some("kubernetes.io/tls"));
        let data = secrets[0].data.as_ref().expect("data");
        assert_eq!(data["tls.crt"].0, b"secret", "data is base64-decoded");
        let string_data = secrets[1].string_data.as_ref().expect("stringData");
        assert_eq!(string_data["tls.key"], "key");
    }

    #[test]
    fn list_items_are_read_one_by_one() {
        let dir = TempDir::new("list");
        dir.write(
            "list.yaml",
            &format!(
                "apiVersion: v1\nkind: List\nitems:\n- {}\n- {{apiVersion: apps/v1, kind: Deployment, metadata: {{name: echo}}}}\n\
                 - {{apiVersion: v1, kind: Service, metadata: {{name: broken}}, spec: {{ports: oops}}}}\n",
                "{apiVersion: v1, kind: Service, metadata: {name: echo, namespace: apps}, spec: {ports: [{port: 80}]}}"
            ),
        );
        let loaded = load_dir(&dir.0).expect("readable dir");
        assert_eq!(loaded.snapshot.services.len(), 1);
        assert_eq!(loaded.snapshot.services[0].metadata.namespace.as_deref(), Some("apps"));
        assert_eq!(loaded.skipped.len(), 1);
        assert_eq!(loaded.skipped[0].kind, "Deployment");
        let errors = messages(&loaded);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].ends_with(
                "list.yaml: document 1: items[2]: spec.ports: invalid type: string \"oops\", expected a sequence"
            ),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn bad_documents_are_reported_with_file_document_and_position() {
        let dir = TempDir::new("errors");
        let file = dir.write(
            "route.yaml",
            &format!(
                "{SERVICE}---\n\
                 apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {{name: typo}}\nspec:\n  backends:\n  - service: {{name: echo, port: ws}}\n    weight: heavy\n---\n\
                 apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {{name: bad-hostnames}}\nspec:\n  hostnames: 5\n---\n\
                 apiVersion: v1\nkind: Service\nmetadata: {{namespace: apps}}\n---\n\
                 kind: Service\nmetadata: {{name: no-version}}\n---\n\
                 just a string\n---\n\
                 {ROUTE}"
            ),
        );
        let loaded = load_dir(&dir.0).expect("readable dir");
        let at = file.display();
        let errors = messages(&loaded);
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(
            errors[0].starts_with(&format!("{at}: document 2: spec.backends[0].weight: invalid type")),
            "{}",
            errors[0]
        );
        assert!(errors[0].ends_with("at line 12 column 13"), "{}", errors[0]);
        assert!(errors[1].starts_with(&format!("{at}: document 3: spec.hostnames: invalid type")), "{}", errors[1]);
        assert_eq!(errors[2], format!("{at}: document 4: metadata.name is required"));
        assert_eq!(errors[3], format!("{at}: document 5: apiVersion and kind are required"));
        assert_eq!(errors[4], format!("{at}: document 6: a document must be a mapping (a Kubernetes object)"));
        // The good documents around the bad ones are kept.
        assert_eq!(loaded.snapshot.services.len(), 1);
        assert_eq!(loaded.snapshot.websocket_routes.len(), 1);
        assert_eq!(loaded.snapshot.websocket_routes[0].metadata.name.as_deref(), Some("echo"));
    }

    #[test]
    fn a_syntax_error_ends_its_file_but_not_the_others() {
        let dir = TempDir::new("syntax");
        let broken = dir.write("a.yaml", &format!("{SERVICE}---\nmetadata: {{name: [unclosed\n---\n{ROUTE}"));
        dir.write("b.yaml", ROUTE.replace("name: echo, namespace: apps", "name: other").as_str());
        let loaded = load_dir(&dir.0).expect("readable dir");
        let errors = messages(&loaded);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with(&format!("{}: document 2: ", broken.display())), "{}", errors[0]);
        assert!(errors[0].contains("line "), "{}", errors[0]);
        assert!(errors[0].ends_with("the rest of the file was not read"), "{}", errors[0]);
        assert_eq!(loaded.snapshot.services.len(), 1, "document 1 of a.yaml is kept");
        let routes: Vec<_> =
            loaded.snapshot.websocket_routes.iter().filter_map(|r| r.metadata.name.as_deref()).collect();
        assert_eq!(routes, ["other"], "b.yaml is read; a.yaml's third document is not");
    }

    #[test]
    fn empty_documents_and_empty_files_are_fine() {
        let dir = TempDir::new("empty");
        dir.write("empty.yaml", "");
        dir.write("comments.yaml", "# nothing here yet\n");
        dir.write("separators.yaml", &format!("---\n---\n# just a comment\n---\n{SERVICE}---\n"));
        let loaded = load_dir(&dir.0).expect("readable dir");
        assert_eq!(messages(&loaded), Vec::<String>::new());
        assert_eq!(loaded.snapshot.services.len(), 1);
    }

    #[test]
    fn an_object_defined_twice_is_an_error_and_the_first_copy_wins() {
        let dir = TempDir::new("twice");
        let first = dir.write("a.yaml", SERVICE);
        let second = dir.write("b.yaml", &SERVICE.replace("port: 80", "port: 81"));
        let loaded = load_dir(&dir.0).expect("readable dir");
        assert_eq!(
            messages(&loaded),
            [format!(
                "{}: document 1: Service default/echo is already defined in {} document 1; this copy is ignored",
                second.display(),
                first.display()
            )]
        );
        let ports = loaded.snapshot.services[0].spec.as_ref().and_then(|s| s.ports.as_ref()).expect("ports");
        assert_eq!(ports[0].port, 80);
    }

    #[test]
    fn a_websocketroute_breaking_a_crd_rule_is_refused_as_the_api_server_would() {
        let dir = TempDir::new("cel");
        let bad = "apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {name: limited}\nspec:\n  \
                   backends: [{service: {name: echo, port: ws}}]\n  \
                   limits: {handshakesPerSecondPerClient: 10, handshakeBurstPerClient: 2}\n  \
                   loadBalancing: {policy: RoundRobin, hashOn: {type: SourceIP}}\n";
        let fixed = bad.replace("handshakeBurstPerClient: 2", "handshakeBurstPerClient: 20").replace(
            "loadBalancing: {policy: RoundRobin, hashOn: {type: SourceIP}}",
            "loadBalancing: {policy: ConsistentHash, hashOn: {type: SourceIP}}",
        );
        let file = dir.write(
            "routes.yaml",
            &format!(
                "{SERVICE}---\n{bad}---\n{ROUTE}---\napiVersion: v1\nkind: List\nitems:\n- {}\n---\n{fixed}",
                serde_json::to_string(&serde_yaml::from_str::<serde_json::Value>(bad).unwrap()).unwrap()
            ),
        );
        let loaded = load_dir(&dir.0).expect("readable dir");
        let at = file.display();
        let invalid = "WebSocketRoute.wsgate.dev \"limited\" is invalid";
        assert_eq!(
            messages(&loaded),
            [
                format!(
                    "{at}: document 2: {invalid}: spec.limits: Invalid value: \"object\": \
                     handshakeBurstPerClient must be at least handshakesPerSecondPerClient"
                ),
                format!(
                    "{at}: document 2: {invalid}: spec.loadBalancing: Invalid value: \"object\": \
                     hashOn is required with policy ConsistentHash, and allowed only with it"
                ),
                format!(
                    "{at}: document 4: items[0]: {invalid}: spec.limits: Invalid value: \"object\": \
                     handshakeBurstPerClient must be at least handshakesPerSecondPerClient"
                ),
                format!(
                    "{at}: document 4: items[0]: {invalid}: spec.loadBalancing: Invalid value: \"object\": \
                     hashOn is required with policy ConsistentHash, and allowed only with it"
                ),
            ]
        );
        // Refused copies are not objects: the valid one with the same name (document 5) is loaded, as
        // `kubectl apply` of the whole file would have created it, and no duplicate is reported.
        let routes: Vec<_> =
            loaded.snapshot.websocket_routes.iter().filter_map(|r| r.metadata.name.as_deref()).collect();
        assert_eq!(routes, ["echo", "limited"]);
        let limited = &loaded.snapshot.websocket_routes[1];
        assert_eq!(limited.spec.limits.as_ref().and_then(|l| l.handshake_burst_per_client), Some(20));
        assert_eq!(loaded.snapshot.services.len(), 1);
    }

    #[test]
    fn an_unquoted_number_as_an_annotation_value_is_refused_as_the_api_server_would() {
        let dir = TempDir::new("unquoted");
        let file = dir.write(
            "ingress.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: chat\n  annotations:\n    \
             wsgate.dev/hash-on: header:x-user\n    wsgate.dev/load-bound-percent: 10\nspec: {}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: quoted\n  annotations:\n    \
             wsgate.dev/load-bound-percent: \"10\"\n  labels: {app: chat}\nspec: {}\n",
        );
        let loaded = load_dir(&dir.0).expect("readable dir");
        assert_eq!(
            messages(&loaded),
            [format!(
                "{}: document 1: metadata.annotations[\"wsgate.dev/load-bound-percent\"]: the value must be a string, \
                 not 10: quote it (\"10\"), as the API server refuses it unquoted",
                file.display()
            )]
        );
        assert_eq!(loaded.snapshot.ingresses.len(), 1, "the quoted one is kept");
    }

    #[test]
    fn an_unreadable_file_is_reported_and_a_missing_folder_is_an_error() {
        let dir = TempDir::new("unreadable");
        let file = dir.0.join("latin1.yaml");
        std::fs::write(&file, b"apiVersion: v1\nkind: Service\nmetadata: {name: caf\xe9}\n").expect("write bytes");
        let loaded = load_dir(&dir.0).expect("readable dir");
        assert_eq!(loaded.errors.len(), 1);
        assert_eq!(loaded.errors[0].document, None);
        assert!(loaded.errors[0].to_string().starts_with(&format!("{}: cannot read file: ", file.display())));

        let missing = dir.0.join("does-not-exist");
        let error = load_dir(&missing).expect_err("missing folder");
        assert!(error.to_string().starts_with(&format!("cannot read manifest folder {}: ", missing.display())));
    }

    fn warnings(loaded: &Loaded) -> Vec<String> {
        loaded.warnings.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn unknown_fields_are_warnings_with_their_path_and_the_object_is_kept() {
        let dir = TempDir::new("unknown");
        let file = dir.write(
            "route.yaml",
            "apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\nmetadata: {name: chat, lables: {a: b}}\n\
             spec:\n  hostname: [chat.example.com]\n  backends:\n  - service: {name: chat, port: ws}\n    wieght: 2\n\
             \x20 timeouts: {idel: 5m}\n  tls: {secretName: chat-tls, redirct: true}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: apps}\n\
             spec:\n  ingressClass: wsgate\n  rules:\n  - host: a.example.com\n    http:\n      paths:\n\
             \x20     - path: /\n        pathType: Prefix\n        backend: {service: {name: web, port: {numbr: 80}}}\n",
        );
        let loaded = load_dir(&dir.0).expect("readable dir");
        assert_eq!(messages(&loaded), Vec::<String>::new());
        let at = file.display();
        assert_eq!(
            warnings(&loaded),
            [
                format!("{at}: document 1: WebSocketRoute default/chat: unknown field \"metadata.lables\" (ignored)"),
                format!("{at}: document 1: WebSocketRoute default/chat: unknown field \"spec.hostname\" (ignored)"),
                format!(
                    "{at}: document 1: WebSocketRoute default/chat: unknown field \"spec.backends[0].wieght\" (ignored)"
                ),
                format!(
                    "{at}: document 1: WebSocketRoute default/chat: unknown field \"spec.timeouts.idel\" (ignored)"
                ),
                format!("{at}: document 1: WebSocketRoute default/chat: unknown field \"spec.tls.redirct\" (ignored)"),
                format!("{at}: document 2: Ingress apps/web: unknown field \"spec.ingressClass\" (ignored)"),
                format!(
                    "{at}: document 2: Ingress apps/web: unknown field \
                     \"spec.rules[0].http.paths[0].backend.service.port.numbr\" (ignored)"
                ),
            ]
        );
        let warning = &loaded.warnings[1];
        assert_eq!((warning.document, warning.item), (1, None));
        assert_eq!((warning.object.as_str(), warning.field.as_str()), ("WebSocketRoute default/chat", "spec.hostname"));
        // Both objects are served, without the fields they do not know.
        let route = &loaded.snapshot.websocket_routes[0];
        assert!(route.spec.hostnames.is_empty());
        assert_eq!(route.spec.backends[0].weight, None);
        assert_eq!(loaded.snapshot.ingresses.len(), 1);
    }

    #[test]
    fn unknown_fields_of_every_other_kind_are_found_at_any_depth() {
        let dir = TempDir::new("kinds-unknown");
        dir.write(
            "all.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: wsgate}\n\
             spec: {controler: wsgate.dev/ingress-controller, parameters: {kind: X, name: y, scop: Cluster}}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: echo}\n\
             spec: {ports: [{port: 80, targetPrt: 8080}], selectr: {app: echo}}\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: echo-1}\naddressType: IPv4\n\
             endpoints: [{addresses: [127.0.0.1], conditions: {redy: true}}]\nports: [{port: 80, protcol: TCP}]\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {name: tls}\ntype: kubernetes.io/tls\nstrngData: {tls.crt: x}\n",
        );
        let loaded = load_dir(&dir.0).expect("readable dir");
        assert_eq!(messages(&loaded), Vec::<String>::new());
        let found: Vec<(&str, &str)> = loaded.warnings.iter().map(|w| (w.object.as_str(), w.field.as_str())).collect();
        assert_eq!(
            found,
            [
                ("IngressClass wsgate", "spec.controler"),
                ("IngressClass wsgate", "spec.parameters.scop"),
                ("Service default/echo", "spec.ports[0].targetPrt"),
                ("Service default/echo", "spec.selectr"),
                ("EndpointSlice default/echo-1", "endpoints[0].conditions.redy"),
                ("EndpointSlice default/echo-1", "ports[0].protcol"),
                ("Secret default/tls", "strngData"),
            ]
        );
        assert_eq!(loaded.snapshot.secrets.len(), 1);
    }

    #[test]
    fn unknown_fields_of_list_items_and_of_the_list_name_the_item() {
        let dir = TempDir::new("list-unknown");
        let file = dir.write(
            "list.yaml",
            "apiVersion: v1\nkind: List\nmetadata: {resourceVersion: \"\"}\nitemz: []\nitems:\n\
             - {apiVersion: v1, kind: Service, metadata: {name: ok}, spec: {ports: [{port: 80}]}}\n\
             - apiVersion: wsgate.dev/v1alpha1\n  kind: WebSocketRoute\n  metadata: {name: chat, namespace: apps}\n\
             \x20 spec: {backends: [{service: {name: chat, port: 80}}], path: {vaule: /chat, value: /}}\n",
        );
        let loaded = load_dir(&dir.0).expect("readable dir");
        assert_eq!(messages(&loaded), Vec::<String>::new());
        let at = file.display();
        assert_eq!(
            warnings(&loaded),
            [
                format!("{at}: document 1: List: unknown field \"itemz\" (ignored)"),
                format!(
                    "{at}: document 1: items[1]: WebSocketRoute apps/chat: unknown field \"spec.path.vaule\" (ignored)"
                ),
            ]
        );
        assert_eq!(loaded.warnings[1].item, Some(1));
        assert_eq!(loaded.snapshot.websocket_routes.len(), 1);
    }

    #[test]
    fn fields_that_are_read_are_never_reported() {
        // What `kubectl get -o yaml` prints: status, managedFields, null and defaulted values, empty lists.
        let dir = TempDir::new("known");
        dir.write(
            "known.yaml",
            "apiVersion: wsgate.dev/v1alpha1\nkind: WebSocketRoute\n\
             metadata:\n  name: chat\n  namespace: apps\n  creationTimestamp: null\n  generation: 3\n\
             \x20 labels: {app: chat}\n  annotations: {kubectl.kubernetes.io/last-applied-configuration: '{}'}\n\
             \x20 managedFields:\n  - {manager: kubectl, operation: Apply, apiVersion: wsgate.dev/v1alpha1, \
             fieldsType: FieldsV1, fieldsV1: {f:spec: {f:hostnames: {}}}}\n\
             spec:\n  hostnames: []\n  path: {type: Prefix, value: /}\n  backends:\n  - service: {name: chat, port: 80}\n\
             \x20   weight: null\n  timeouts: {handshake: null, idle: 1h}\n  loadBalancing: {policy: LeastConnections}\n\
             \x20 tls: {secretName: chat-tls, redirect: false}\n\
             status:\n  conditions:\n  - {type: Accepted, status: \"True\", reason: Accepted, message: ok, \
             observedGeneration: 3, lastTransitionTime: \"2024-01-01T00:00:00Z\"}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, uid: 1-2, resourceVersion: \"7\"}\n\
             spec: {ingressClassName: null, defaultBackend: {service: {name: web, port: {name: http}}}, tls: []}\n\
             status: {loadBalancer: {ingress: [{ip: 127.0.0.1, ports: [{port: 80, protocol: TCP}]}]}}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: web}\n\
             spec: {clusterIP: None, type: ClusterIP, ports: [{name: http, port: 80, targetPort: http, protocol: TCP}]}\n\
             status: {loadBalancer: {}}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {name: tls}\ntype: kubernetes.io/tls\nimmutable: false\n\
             data: {tls.crt: c2VjcmV0}\nstringData: {tls.key: key}\n",
        );
        let loaded = load_dir(&dir.0).expect("readable dir");
        assert_eq!(messages(&loaded), Vec::<String>::new());
        assert_eq!(warnings(&loaded), Vec::<String>::new());
        assert_eq!(loaded.snapshot.websocket_routes.len(), 1);
    }

    #[test]
    fn the_ignored_copy_of_a_duplicate_gives_no_warning() {
        let dir = TempDir::new("duplicate-unknown");
        dir.write("a.yaml", SERVICE);
        dir.write("b.yaml", &SERVICE.replace("port: 80", "prot: 80"));
        let loaded = load_dir(&dir.0).expect("readable dir");
        assert_eq!(loaded.errors.len(), 1, "{:?}", loaded.errors);
        assert_eq!(warnings(&loaded), Vec::<String>::new());
    }

    #[test]
    fn the_examples_and_the_golden_inputs_have_no_unknown_fields() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut found = Vec::new();
        for example in ["quickstart", "broken"] {
            let loaded = load_dir(&root.join("examples").join(example)).expect("readable example");
            assert_eq!(messages(&loaded), Vec::<String>::new(), "{example}");
            assert!(!loaded.snapshot.websocket_routes.is_empty(), "{example}");
            found.extend(warnings(&loaded));
        }
        let mut inputs = Vec::new();
        for entry in std::fs::read_dir(root.join("src/controller/compile/testdata")).expect("testdata exists") {
            let input = entry.expect("readable testdata entry").path().join("input.yaml");
            if input.is_file() {
                inputs.push(input);
            }
        }
        assert!(inputs.len() > 10, "{inputs:?}");
        // Golden inputs may hold broken documents on purpose; none misspells a field. One at a time: a
        // name taken by an earlier case would make a copy ignored, and its warnings with it.
        for input in &inputs {
            found.extend(warnings(&load_files(std::slice::from_ref(input))));
        }
        assert_eq!(found, Vec::<String>::new());
    }

    /// A value for `schema` (an OpenAPI v3 schema of the CRD) with every property set, and an unknown
    /// field `zzUnknown` added to every object; `injected` gets the path of each.
    fn sample(schema: &serde_json::Value, path: &str, injected: &mut Vec<String>) -> serde_json::Value {
        use serde_json::{Value, json};
        let join = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
        if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            return json!(80);
        }
        if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|values| values.first()) {
            return first.clone();
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            let mut object: serde_json::Map<String, Value> = properties
                .iter()
                .map(|(key, property)| (key.clone(), sample(property, &join(key), injected)))
                .collect();
            object.insert("zzUnknown".to_string(), json!(true));
            injected.push(join("zzUnknown"));
            return Value::Object(object);
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("array") => json!([sample(&schema["items"], &format!("{path}[0]"), injected)]),
            Some("string") if schema.get("format").and_then(Value::as_str) == Some("date-time") => {
                json!("2024-01-01T00:00:00Z")
            }
            Some("string") => json!("x"),
            Some("integer") => json!(1),
            Some("boolean") => json!(true),
            Some("object") => json!({}),
            other => panic!("{path}: schema type {other:?} has no sample"),
        }
    }

    #[test]
    fn an_unknown_field_is_found_in_every_object_of_the_websocketroute_schema() {
        // why: generated from the Rust types, so a field added to them later is covered without a new test,
        // and a type serde_ignored cannot see into (`flatten`, untagged enums) fails here.
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(WebSocketRoute::crd()).expect("the CRD serializes");
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut injected = Vec::new();
        let mut route = sample(schema, "", &mut injected);
        route["apiVersion"] = "wsgate.dev/v1alpha1".into();
        route["kind"] = "WebSocketRoute".into();
        route["metadata"] = serde_json::json!({"name": "sample", "zzUnknown": true});
        injected.push("metadata.zzUnknown".to_string());
        // why: the first enum value everywhere breaks the CRD's rules (a hashOn without ConsistentHash, a
        // cookie for a Header key); these two make the sample one the API server would store.
        route["spec"]["loadBalancing"]["policy"] = "ConsistentHash".into();
        route["spec"]["loadBalancing"]["hashOn"]["type"] = "Cookie".into();
        assert!(injected.len() > 8, "{injected:?}");
        // why: the rules also allow `backends` (with `path`) or `rules`, not both, so two routes, one with
        // each side, carry every field between them.
        let mut with_rules = route.clone();
        with_rules["metadata"]["name"] = "sample-rules".into();
        let spec = with_rules["spec"].as_object_mut().expect("spec is an object");
        spec.remove("backends");
        spec.remove("path");
        route["spec"].as_object_mut().expect("spec is an object").remove("rules");

        let dir = TempDir::new("schema");
        let yaml = |value: &serde_json::Value| serde_yaml::to_string(value).expect("YAML");
        dir.write("route.yaml", &format!("{}---\n{}", yaml(&route), yaml(&with_rules)));
        let loaded = load_dir(&dir.0).expect("readable dir");
        assert_eq!(messages(&loaded), Vec::<String>::new());
        assert_eq!(loaded.snapshot.websocket_routes.len(), 2);
        let found: std::collections::BTreeSet<String> = loaded.warnings.iter().map(|w| w.field.clone()).collect();
        let injected: std::collections::BTreeSet<String> = injected.into_iter().collect();
        assert_eq!(found, injected);
    }
}
