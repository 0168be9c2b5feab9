//! File mode's source: a folder of Kubernetes YAML manifests read into a [`Snapshot`].
//!
//! ```text
//!   DIR/*.yaml, DIR/*.yml (sorted by name, not recursive)
//!     └─ documents (`---`) ─► apiVersion + kind ─┬─ Ingress, IngressClass, WebSocketRoute,
//!                                                │  Service, EndpointSlice, v1 List ─► Snapshot
//!                                                ├─ anything else ─► skipped (listed, not an error)
//!                                                └─ unparsable ─► LoadError (file, document, reason)
//! ```
//!
//! One bad document never hides the others: every error is collected, and the caller decides what to do
//! with a snapshot that came with errors (file mode keeps serving its last good table). Namespaced
//! objects without `metadata.namespace` are put in `default`, as `kubectl apply` would. Files whose name
//! starts with `.` (editor swap files and the like) are ignored.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Service;
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

/// What a folder held.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub snapshot: Snapshot,
    /// Documents that could not be read; empty means the snapshot is complete.
    pub errors: Vec<LoadError>,
    pub skipped: Vec<SkippedObject>,
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
}

impl Object {
    /// Parses `source` as `kind`; the error text carries serde_yaml's field path and position.
    fn parse<'de, D>(kind: Kind, source: D) -> Result<Object, String>
    where
        D: serde::Deserializer<'de>,
        D::Error: fmt::Display,
    {
        fn parse<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(source: D) -> Result<Box<T>, String>
        where
            D::Error: fmt::Display,
        {
            T::deserialize(source).map(Box::new).map_err(|error| error.to_string())
        }
        Ok(match kind {
            Kind::Ingress => Object::Ingress(parse(source)?),
            Kind::IngressClass => Object::IngressClass(parse(source)?),
            Kind::WebSocketRoute => Object::WebSocketRoute(parse(source)?),
            Kind::Service => Object::Service(parse(source)?),
            Kind::EndpointSlice => Object::EndpointSlice(parse(source)?),
        })
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Ingress(o) => &mut o.metadata,
            Object::IngressClass(o) => &mut o.metadata,
            Object::WebSocketRoute(o) => &mut o.metadata,
            Object::Service(o) => &mut o.metadata,
            Object::EndpointSlice(o) => &mut o.metadata,
        }
    }

    fn add_to(self, snapshot: &mut Snapshot) {
        match self {
            Object::Ingress(o) => snapshot.ingresses.push(*o),
            Object::IngressClass(o) => snapshot.ingress_classes.push(*o),
            Object::WebSocketRoute(o) => snapshot.websocket_routes.push(*o),
            Object::Service(o) => snapshot.services.push(*o),
            Object::EndpointSlice(o) => snapshot.endpoint_slices.push(*o),
        }
    }
}

/// `apiVersion` and `kind` of a document, read before the document is parsed as its type.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<NameOnly>,
}

#[derive(Deserialize)]
struct NameOnly {
    #[serde(default)]
    name: Option<String>,
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
            let meta = match TypeMeta::deserialize(value) {
                Ok(meta) => meta,
                Err(_) => {
                    self.error(file, number, "a document must be a mapping (a Kubernetes object)".to_string());
                    continue;
                }
            };
            let (Some(api_version), Some(kind)) = (meta.api_version, meta.kind) else {
                self.error(file, number, "apiVersion and kind are required".to_string());
                continue;
            };
            let Some(known) = DocumentKind::of(&api_version, &kind) else {
                let name = meta.metadata.and_then(|m| m.name);
                let skipped = SkippedObject { file: file.to_path_buf(), document: number, api_version, kind, name };
                self.loaded.skipped.push(skipped);
                continue;
            };
            match known {
                DocumentKind::List => self.read_list(file, number, document),
                DocumentKind::Object(kind) => self.read_object(file, number, kind, document, ""),
            }
        }
    }

    fn read_list(&mut self, file: &Path, number: usize, document: serde_yaml::Deserializer<'_>) {
        let items = match ListItems::deserialize(document) {
            Ok(list) => list.items,
            Err(error) => return self.error(file, number, error.to_string()),
        };
        for (i, item) in items.into_iter().enumerate() {
            let at = format!("items[{i}]: ");
            let meta = TypeMeta::deserialize(&item).ok();
            let kind = meta.as_ref().and_then(|m| Some((m.api_version.as_deref()?, m.kind.as_deref()?)));
            match kind {
                None => self.error(file, number, format!("{at}apiVersion and kind are required")),
                Some((api_version, kind)) => match DocumentKind::of(api_version, kind) {
                    Some(DocumentKind::List) => {
                        self.error(file, number, format!("{at}a List inside a List is not supported"))
                    }
                    Some(DocumentKind::Object(known)) => self.read_object(file, number, known, item, &at),
                    None => {
                        let skipped = SkippedObject {
                            file: file.to_path_buf(),
                            document: number,
                            api_version: api_version.to_string(),
                            kind: kind.to_string(),
                            name: meta.and_then(|m| m.metadata).and_then(|m| m.name),
                        };
                        self.loaded.skipped.push(skipped);
                    }
                },
            }
        }
    }

    /// Parses one object of a known kind from `source` (a document, or a List item prefixed by `at`).
    fn read_object<'de, D>(&mut self, file: &Path, number: usize, kind: Kind, source: D, at: &str)
    where
        D: serde::Deserializer<'de>,
        D::Error: fmt::Display,
    {
        let mut object = match Object::parse(kind, source) {
            Ok(object) => object,
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
        let key = (kind, namespace, name);
        if let Some((first_file, first_document)) = self.seen.get(&key) {
            let (kind, namespace, name) = &key;
            let object = if namespace.is_empty() { name.clone() } else { format!("{namespace}/{name}") };
            let message = format!(
                "{at}{kind:?} {object} is already defined in {} document {first_document}; this copy is ignored",
                first_file.display()
            );
            return self.error(file, number, message);
        }
        self.seen.insert(key, (file.to_path_buf(), number));
        object.add_to(&mut self.loaded.snapshot);
    }

    fn error(&mut self, file: &Path, document: usize, message: String) {
        self.loaded.errors.push(LoadError { file: file.to_path_buf(), document: Some(document), message });
    }
}
