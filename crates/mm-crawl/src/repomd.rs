//! The timestamp of a `repomd.xml`, read with a real XML parser.

use quick_xml::events::Event;
use quick_xml::Reader;

/// The `<revision>` when it is numeric (createrepo writes the generation
/// time there), else the newest `<timestamp>` of the data entries; `None`
/// when there is neither.
pub fn timestamp(xml: &[u8]) -> anyhow::Result<Option<i64>> {
    let mut reader = Reader::from_reader(xml);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut current: Option<&'static str> = None;
    let mut revision: Option<i64> = None;
    let mut newest: Option<i64> = None;
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Start(e) => {
                current = match e.local_name().as_ref() {
                    b"revision" => Some("revision"),
                    b"timestamp" => Some("timestamp"),
                    _ => None,
                };
            }
            Event::Text(t) => {
                let text = t.unescape()?;
                let value = text.trim().parse::<f64>().ok().map(|v| v as i64);
                match (current, value) {
                    (Some("revision"), Some(v)) => revision = Some(v),
                    (Some("timestamp"), Some(v)) => newest = newest.max(Some(v)),
                    _ => {}
                }
            }
            Event::End(_) => current = None,
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(revision.or(newest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>REV</revision>
  <data type="primary"><timestamp>1700000100</timestamp></data>
  <data type="filelists"><timestamp>1700000300</timestamp></data>
  <data type="other"><timestamp>1700000200</timestamp></data>
</repomd>"#;

    #[test]
    fn numeric_revision_wins() {
        let x = XML.replace("REV", "1700000999");
        assert_eq!(timestamp(x.as_bytes()).unwrap(), Some(1700000999));
    }

    #[test]
    fn otherwise_newest_data_timestamp() {
        let x = XML.replace("REV", "fedora-41-updates");
        assert_eq!(timestamp(x.as_bytes()).unwrap(), Some(1700000300));
    }

    #[test]
    fn malformed_xml_is_an_error() {
        assert!(timestamp(b"<repomd><revision>1</x></repomd>").is_err());
    }
}
