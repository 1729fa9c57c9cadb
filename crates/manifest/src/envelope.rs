//! The envelope (`header` + `payload`) and typed access to its sections.

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::BadInput;

/// `header.type` of every releng manifest.
pub const MANIFEST_TYPE: &str = "releng-manifest";
/// The format version this library writes. Readers accept any `1.x`.
pub const FORMAT_VERSION: &str = "1.0";
const MAJOR: u64 = 1;

/// A typed view of one payload section.
///
/// The type owns the section's field layout; the manifest stores it as JSON
/// so that a tool never drops fields written by a newer version of another.
pub trait Section: Serialize + DeserializeOwned {
    /// The section's key under `payload`, e.g. `"repo"`.
    const NAME: &'static str;
}

/// A releng manifest document.
#[derive(Debug, Clone)]
pub struct Manifest {
    header: Map<String, Value>,
    payload: IndexMap<String, Slot>,
}

/// One payload section as held in memory.
#[derive(Debug, Clone)]
enum Slot {
    /// As read from the input: passed through as it came.
    Json(Value),
    /// Set by this tool: pretty JSON already indented for its place in the
    /// document. Rendering straight from the typed section once skips a
    /// `Value` tree that a section of 10,000 refs would make costly.
    Rendered(String),
}

impl Slot {
    fn to_value(&self) -> Value {
        match self {
            Slot::Json(v) => v.clone(),
            Slot::Rendered(text) => serde_json::from_str(text).expect("we rendered valid JSON"),
        }
    }
}

impl PartialEq for Manifest {
    fn eq(&self, other: &Manifest) -> bool {
        self.to_value() == other.to_value()
    }
}

/// Indentation of a payload section in the pretty document (two levels of
/// two spaces: `{"payload": {"section": …}}`).
const SECTION_DEPTH: usize = 2;

impl Default for Manifest {
    fn default() -> Self {
        Self::new()
    }
}

impl Manifest {
    /// An empty manifest with the current header.
    pub fn new() -> Manifest {
        let mut header = Map::new();
        header.insert("type".into(), MANIFEST_TYPE.into());
        header.insert("version".into(), FORMAT_VERSION.into());
        Manifest {
            header,
            payload: IndexMap::new(),
        }
    }

    /// Parses and checks a manifest read from `source` (a file name, or
    /// `<stdin>`, used in error messages). Every failure is [`BadInput`].
    pub fn parse(bytes: &[u8], source: &str) -> anyhow::Result<Manifest> {
        let bad = |what: String| BadInput::err(format!("manifest {source}: {what}"));
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let Value::Object(mut doc) = doc else {
            return Err(bad("the document must be a JSON object".into()));
        };
        let header = match doc.remove("header") {
            Some(Value::Object(h)) => h,
            Some(_) => return Err(bad("`header` must be an object".into())),
            None => return Err(bad("no `header`: not a releng manifest".into())),
        };
        match header.get("type") {
            Some(Value::String(t)) if t == MANIFEST_TYPE => {}
            Some(Value::String(t)) => {
                return Err(bad(format!(
                    "wrong header type `{t}`, expected `{MANIFEST_TYPE}`"
                )))
            }
            _ => return Err(bad("`header.type` is missing or not a string".into())),
        }
        let version = match header.get("version") {
            Some(Value::String(v)) => v.clone(),
            _ => return Err(bad("`header.version` is missing or not a string".into())),
        };
        let (major, _minor) = parse_version(&version).ok_or_else(|| {
            bad(format!(
                "`header.version` `{version}` is not of the form MAJOR.MINOR"
            ))
        })?;
        if major > MAJOR {
            return Err(bad(format!(
                "version {version} is newer than this tool understands \
                 ({MAJOR}.x); upgrade the releng tools"
            )));
        }
        if major < MAJOR {
            return Err(bad(format!(
                "version {version} is older than this tool reads ({MAJOR}.x)"
            )));
        }
        let payload = match doc.remove("payload") {
            Some(Value::Object(p)) => p.into_iter().map(|(k, v)| (k, Slot::Json(v))).collect(),
            Some(_) => return Err(bad("`payload` must be an object".into())),
            None => return Err(bad("no `payload`".into())),
        };
        Ok(Manifest { header, payload })
    }

    /// The `header.version` this document carries.
    pub fn version(&self) -> &str {
        self.header
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or(FORMAT_VERSION)
    }

    /// The typed section `T`, `None` when absent. A section of the wrong
    /// shape is [`BadInput`] naming the section.
    pub fn get<T: Section>(&self) -> anyhow::Result<Option<T>> {
        let parsed = match self.payload.get(T::NAME) {
            None | Some(Slot::Json(Value::Null)) => return Ok(None),
            Some(Slot::Json(v)) => T::deserialize(v),
            Some(Slot::Rendered(text)) => serde_json::from_str(text),
        };
        parsed
            .map(Some)
            .map_err(|e| BadInput::err(format!("manifest section `{}`: {e}", T::NAME)))
    }

    /// The ostree repository a step works on: `flag` (`--repo`) when given,
    /// else the `repo` section's path that repo-init wrote upstream.
    pub fn repo_path(&self, flag: Option<&std::path::Path>) -> anyhow::Result<std::path::PathBuf> {
        if let Some(p) = flag {
            return Ok(p.to_path_buf());
        }
        match self.get::<crate::RepoSection>()? {
            Some(section) => Ok(section.path.into()),
            None => Err(BadInput::err(
                "no repository given: pass --repo PATH (the manifest has no `repo` section)",
            )),
        }
    }

    /// Replaces section `T` (or adds it at the end), leaving all others as
    /// they were.
    pub fn set<T: Section>(&mut self, section: &T) -> anyhow::Result<()> {
        let text = render(section, SECTION_DEPTH)?;
        self.payload
            .insert(T::NAME.to_string(), Slot::Rendered(text));
        Ok(())
    }

    /// Appends `entry` to the list section named `name`, creating it.
    pub fn push<T: Serialize>(&mut self, name: &str, entry: &T) -> anyhow::Result<()> {
        let value = serde_json::to_value(entry)?;
        let slot = self
            .payload
            .entry(name.to_string())
            .or_insert_with(|| Slot::Json(Value::Array(Vec::new())));
        if let Slot::Rendered(_) = slot {
            *slot = Slot::Json(slot.to_value());
        }
        match slot {
            Slot::Json(Value::Array(list)) => list.push(value),
            _ => {
                return Err(BadInput::err(format!(
                    "manifest section `{name}` must be a list"
                )))
            }
        }
        Ok(())
    }

    /// Keeps only the entries of list section `name` for which `keep` is
    /// true, e.g. to replace an entry a re-run writes again. A missing
    /// section is left missing.
    pub fn retain(
        &mut self,
        name: &str,
        mut keep: impl FnMut(&Value) -> bool,
    ) -> anyhow::Result<()> {
        let Some(slot) = self.payload.get_mut(name) else {
            return Ok(());
        };
        if let Slot::Rendered(_) = slot {
            *slot = Slot::Json(slot.to_value());
        }
        match slot {
            Slot::Json(Value::Array(list)) => list.retain(|v| keep(v)),
            _ => {
                return Err(BadInput::err(format!(
                    "manifest section `{name}` must be a list"
                )))
            }
        }
        Ok(())
    }

    /// The JSON of section `name`.
    pub fn raw(&self, name: &str) -> Option<Value> {
        self.payload.get(name).map(Slot::to_value)
    }

    /// The whole document as JSON.
    pub fn to_value(&self) -> Value {
        let payload: Map<String, Value> = self
            .payload
            .iter()
            .map(|(k, slot)| (k.clone(), slot.to_value()))
            .collect();
        let mut doc = Map::new();
        doc.insert("header".into(), Value::Object(self.header.clone()));
        doc.insert("payload".into(), Value::Object(payload));
        Value::Object(doc)
    }

    /// The document as pretty JSON with a final newline, as tools write it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out)
            .expect("writing to memory cannot fail");
        out
    }

    /// Streams the document as pretty JSON with a final newline: the same
    /// bytes `serde_json::to_writer_pretty` gives for [`Manifest::to_value`].
    pub fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        out.write_all(b"{\n  \"header\": ")?;
        out.write_all(render(&self.header, 1)?.as_bytes())?;
        out.write_all(b",\n  \"payload\": ")?;
        if self.payload.is_empty() {
            out.write_all(b"{}")?;
        } else {
            out.write_all(b"{\n")?;
            for (i, (key, slot)) in self.payload.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",\n")?;
                }
                out.write_all(b"    ")?;
                serde_json::to_writer(&mut *out, key)?;
                out.write_all(b": ")?;
                match slot {
                    Slot::Json(v) => out.write_all(render(v, SECTION_DEPTH)?.as_bytes())?,
                    Slot::Rendered(text) => out.write_all(text.as_bytes())?,
                }
            }
            out.write_all(b"\n  }")?;
        }
        out.write_all(b"\n}\n")
    }
}

/// Pretty JSON of `value` as it appears `depth` levels deep in a pretty
/// document. JSON strings hold no raw newlines, so indenting after every
/// newline is exact.
fn render(value: &impl Serialize, depth: usize) -> serde_json::Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    let pad = "  ".repeat(depth);
    let lines = text.bytes().filter(|&b| b == b'\n').count();
    let mut out = String::with_capacity(text.len() + lines * pad.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(&pad);
        }
        out.push_str(line);
    }
    Ok(out)
}

fn parse_version(v: &str) -> Option<(u64, u64)> {
    let (major, minor) = v.split_once('.')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(major) || !all_digits(minor) {
        return None;
    }
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_code;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Repo {
        path: String,
    }
    impl Section for Repo {
        const NAME: &'static str = "repo";
    }

    fn err_text(bytes: &str) -> String {
        let e = Manifest::parse(bytes.as_bytes(), "<stdin>").unwrap_err();
        assert_eq!(exit_code(&e), 2, "{e:#}");
        format!("{e:#}")
    }

    #[test]
    fn unknown_sections_and_fields_pass_through_in_order() {
        let input = r#"{"header":{"type":"releng-manifest","version":"1.3","x-by":"t"},
            "payload":{"zeta":{"n":1.5,"deep":[1,{"a":null}]},"repo":{"path":"/r","extra":true},"alpha":[]}}"#;
        let mut m = Manifest::parse(input.as_bytes(), "<stdin>").unwrap();
        let before = m.to_value();
        m.set(&Repo { path: "/s".into() }).unwrap();
        let after = m.to_value();
        assert_eq!(after["header"], before["header"]);
        assert_eq!(after["payload"]["zeta"], before["payload"]["zeta"]);
        assert_eq!(after["payload"]["alpha"], before["payload"]["alpha"]);
        assert_eq!(after["payload"]["repo"]["path"], "/s");
        let keys: Vec<_> = after["payload"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["zeta", "repo", "alpha"]);
        // A newer minor version is kept, not downgraded.
        assert_eq!(m.version(), "1.3");
    }

    #[test]
    fn typed_get_reports_the_section() {
        let m = Manifest::parse(
            br#"{"header":{"type":"releng-manifest","version":"1.0"},"payload":{"repo":{"path":3}}}"#,
            "m.json",
        )
        .unwrap();
        let e = m.get::<Repo>().unwrap_err();
        assert_eq!(exit_code(&e), 2);
        assert!(format!("{e}").contains("section `repo`"), "{e}");
    }

    #[test]
    fn rejects_what_is_not_a_manifest() {
        assert!(err_text("{not json").contains("not valid JSON"));
        assert!(err_text("[]").contains("must be a JSON object"));
        assert!(
            err_text(r#"{"header":{"type":"productmd.images","version":"1.2"},"payload":{}}"#)
                .contains("wrong header type `productmd.images`")
        );
        assert!(
            err_text(r#"{"header":{"type":"releng-manifest","version":"2.0"},"payload":{}}"#)
                .contains("newer than this tool")
        );
        assert!(
            err_text(r#"{"header":{"type":"releng-manifest","version":"1"},"payload":{}}"#)
                .contains("MAJOR.MINOR")
        );
        assert!(
            err_text(r#"{"header":{"type":"releng-manifest","version":"1.0"}}"#)
                .contains("no `payload`")
        );
    }

    #[test]
    fn push_appends_to_list_sections() {
        let mut m = Manifest::new();
        m.push("composes", &serde_json::json!({"ref": "a"}))
            .unwrap();
        m.push("composes", &serde_json::json!({"ref": "b"}))
            .unwrap();
        assert_eq!(m.raw("composes").unwrap().as_array().unwrap().len(), 2);
    }

    #[test]
    fn streamed_output_is_exactly_serde_json_pretty() {
        let mut m = Manifest::parse(
            br#"{"header":{"type":"releng-manifest","version":"1.0"},
                "payload":{"x":{"a":[1,{"b":"line\nbreak"}],"e":{},"l":[]},"n":null}}"#,
            "t",
        )
        .unwrap();
        m.set(&Repo {
            path: "/r\"q".into(),
        })
        .unwrap();
        let mut expect = serde_json::to_vec_pretty(&m.to_value()).unwrap();
        expect.push(b'\n');
        assert_eq!(
            String::from_utf8(m.to_bytes()).unwrap(),
            String::from_utf8(expect).unwrap()
        );
        assert_eq!(Manifest::new().to_bytes(), {
            let mut e = serde_json::to_vec_pretty(&Manifest::new().to_value()).unwrap();
            e.push(b'\n');
            e
        });
        // A section we set reads back typed.
        assert_eq!(m.get::<Repo>().unwrap().unwrap().path, "/r\"q");
    }
}
