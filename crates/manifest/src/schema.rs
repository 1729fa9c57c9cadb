//! The JSON Schema of the manifest, generated from the section types.
//!
//! The generated schema is committed as `releng-manifest.schema.json` beside
//! this crate's `Cargo.toml`, so that non-Rust consumers can validate what
//! the tools write; a test fails when the committed copy is stale
//! (`cargo xtask schema` rewrites it).

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value};

use crate::envelope::MANIFEST_TYPE;
use crate::mirror_sections::{MetalinkEntry, MirrorsSection, ScanSection};
use crate::sections::{ComposeEntry, ImageEntry, RepoSection, StepEntry, SummarySection};

/// The committed schema, as shipped.
pub const COMMITTED: &str = include_str!("../releng-manifest.schema.json");

/// File name of the committed schema, relative to this crate's directory.
pub const FILE_NAME: &str = "releng-manifest.schema.json";

#[allow(dead_code)] // Only its schema is used.
#[derive(JsonSchema)]
#[schemars(
    title = "releng manifest",
    description = "The document releng tools pass along a pipeline on stdin/stdout."
)]
struct Document {
    header: Header,
    payload: Payload,
}

struct Header;

impl JsonSchema for Header {
    fn schema_name() -> Cow<'static, str> {
        "Header".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "description": "Envelope header: readers accept any 1.x version.",
            "required": ["type", "version"],
            "properties": {
                "type": {"const": MANIFEST_TYPE},
                "version": {"type": "string", "pattern": "^1\\.[0-9]+$"}
            }
        })
    }
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[schemars(description = "One section per pipeline step; unknown sections are allowed and kept.")]
struct Payload {
    #[schemars(description = "Written by repo-init.")]
    repo: Option<RepoSection>,
    #[schemars(description = "Appended to by rpm-compose, one entry per compose.")]
    composes: Option<Vec<ComposeEntry>>,
    #[schemars(description = "Written by summary-gen.")]
    summary: Option<SummarySection>,
    #[schemars(description = "Appended to by qcow2-build, one entry per image.")]
    images: Option<Vec<ImageEntry>>,
    #[schemars(description = "Written by `mm-crawl scan`.")]
    scan: Option<ScanSection>,
    #[schemars(description = "Written by `mm-crawl mirrors`.")]
    mirrors: Option<MirrorsSection>,
    #[schemars(description = "Appended to by metalink-emit, one entry per file.")]
    metalinks: Option<Vec<MetalinkEntry>>,
    #[schemars(description = "Appended to by the releng scripts, one entry per step.")]
    steps: Option<Vec<StepEntry>>,
    /// Sections of other tools pass through untouched.
    #[serde(flatten)]
    other: Map<String, Value>,
}

/// The schema generated from the current types, as pretty JSON with a
/// final newline (the committed file's exact bytes).
pub fn generate() -> String {
    let schema = schemars::schema_for!(Document);
    let mut text = serde_json::to_string_pretty(&schema).expect("schema serializes");
    text.push('\n');
    text
}

/// Validates `doc` against the committed schema; the errors name the JSON
/// pointer of each offending value.
#[cfg(feature = "validate")]
pub fn validate(doc: &Value) -> Result<(), Vec<String>> {
    let schema: Value = serde_json::from_str(COMMITTED).expect("committed schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("committed schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{}: {}", e.instance_path, e))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Manifest, RepoMode};

    #[test]
    fn committed_schema_is_current() {
        assert!(
            generate() == COMMITTED,
            "{FILE_NAME} is stale: run `cargo xtask schema` and commit the result"
        );
    }

    fn check(doc: &Value) -> Result<(), Vec<String>> {
        let schema: Value = serde_json::from_str(COMMITTED).unwrap();
        let v = jsonschema::validator_for(&schema).unwrap();
        let errs: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    #[test]
    fn schema_accepts_typed_sections_and_unknown_ones() {
        let mut m = Manifest::new();
        m.set(&RepoSection {
            path: "/srv/repo".into(),
            mode: RepoMode::Archive,
            created: true,
            collection_id: None,
            config: Default::default(),
        })
        .unwrap();
        m.push("x-custom", &serde_json::json!({"anything": [1, 2]}))
            .unwrap();
        check(&m.to_value()).unwrap();
    }

    #[test]
    fn schema_rejects_wrong_shapes() {
        let mut doc = Manifest::new().to_value();
        doc["payload"]["repo"] = serde_json::json!({"path": "/r", "mode": "zip", "created": true, "collection_id": null});
        assert!(check(&doc).is_err(), "unknown mode must be refused");
        let mut doc = Manifest::new().to_value();
        doc["header"]["type"] = "productmd.images".into();
        assert!(check(&doc).is_err(), "wrong header type must be refused");
        let mut doc = Manifest::new().to_value();
        doc["payload"]["composes"] = serde_json::json!([{"ref": "a"}]);
        assert!(check(&doc).is_err(), "a compose entry needs its fields");
        let mut doc = Manifest::new().to_value();
        doc["payload"]["composes"] = serde_json::json!({"not": "a list"});
        assert!(check(&doc).is_err(), "composes must be a list");
    }
}
