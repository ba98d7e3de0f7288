//! The service file keywords, as the model knows them (which keywords, in which section) joined
//! with what the configuration reference (`docs/configuration.md`) says about each (type, default,
//! meaning). The model's tables decide what is listed; a keyword the reference does not describe,
//! or a row of the reference the model does not know, fails this crate's tests.

use berth_model::config::keywords::{COMMON_KEYWORDS, SERVICE_KEYWORDS, kind_keywords};
use berth_model::rid::Kind;

/// The configuration reference, compiled in.
pub const REFERENCE: &str = include_str!("../../../docs/configuration.md");

/// One section of a service file, with its keywords in the model's order.
#[derive(Debug, Clone)]
pub struct Section {
    /// `service`, `resource` (every resource takes these), or a kind (`fs`).
    pub id: &'static str,
    /// How the section is written: `[service] / [DEFAULT]`, `[fs.N] / [fs#N]`.
    pub title: String,
    /// The model's keywords.
    pub keywords: &'static [&'static str],
}

/// Every section, from the model's tables: service, common resource keywords, then each kind.
pub fn sections() -> Vec<Section> {
    let mut all = vec![
        Section {
            id: "service",
            title: "[service] (INI: [DEFAULT])".to_string(),
            keywords: SERVICE_KEYWORDS,
        },
        Section {
            id: "resource",
            title: "every resource section".to_string(),
            keywords: COMMON_KEYWORDS,
        },
    ];
    for kind in Kind::ALL {
        all.push(Section {
            id: kind.as_str(),
            title: format!("[{k}.N] (INI: [{k}#N])", k = kind.as_str()),
            keywords: kind_keywords(kind),
        });
    }
    all
}

/// A row of a keyword table of the reference: the column headers and the cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The keywords the first cell names (`env` and `service_type` for "`env` (INI: also
    /// `service_type`)").
    pub keywords: Vec<String>,
    /// `(header, cell)` for every column after the first, markdown as written.
    pub cells: Vec<(String, String)>,
}

/// Which section a reference heading is about, if it is a keyword section.
fn heading_section(heading: &str) -> Option<&'static str> {
    if heading.contains("`[service]`") {
        return Some("service");
    }
    if heading.to_ascii_lowercase().contains("every resource") {
        return Some("resource");
    }
    Kind::ALL
        .into_iter()
        .find(|k| heading.contains(&format!("`[{}.N]`", k.as_str())))
        .map(Kind::as_str)
}

/// The cells of a markdown table line (`\|` is a `|` inside a cell).
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                if let Some(last) = out.last_mut() {
                    last.push('|');
                }
            }
            '|' => out.push(String::new()),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

/// The words in backticks of a markdown cell.
pub fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// The keyword rows of the reference, by section id, in the order they are written.
pub fn reference_rows(reference: &str) -> Vec<(&'static str, Row)> {
    let mut rows = Vec::new();
    let mut section = None;
    let mut header: Option<Vec<String>> = None;
    for line in reference.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            section = heading_section(h);
            header = None;
            continue;
        }
        if !line.trim_start().starts_with('|') {
            header = None;
            continue;
        }
        let Some(id) = section else { continue };
        let row = cells(line);
        match &header {
            None => {
                if row.first().map(String::as_str) == Some("keyword") {
                    header = Some(row);
                }
            }
            Some(h) => {
                if row.iter().all(|c| c.chars().all(|c| c == '-' || c == ':')) {
                    continue;
                }
                let keywords = row.first().map(|c| code_spans(c)).unwrap_or_default();
                let cells = h.iter().cloned().zip(row).skip(1).collect();
                rows.push((id, Row { keywords, cells }));
            }
        }
    }
    rows
}

/// The reference's row for `keyword` in section `id`.
pub fn describe<'a>(rows: &'a [(&str, Row)], id: &str, keyword: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|(s, r)| *s == id && r.keywords.iter().any(|k| k == keyword))
        .map(|(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_keyword_is_described_in_the_reference() {
        let rows = reference_rows(REFERENCE);
        let mut missing = Vec::new();
        for s in sections() {
            for k in s.keywords {
                if describe(&rows, s.id, k).is_none() {
                    missing.push(format!("{}: {k}", s.id));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "keywords the model knows but docs/configuration.md does not describe: {missing:?}"
        );
    }

    #[test]
    fn every_keyword_the_reference_describes_is_known_to_the_model() {
        let sections = sections();
        let rows = reference_rows(REFERENCE);
        assert!(rows.len() > 40, "{} rows read", rows.len());
        let mut unknown = Vec::new();
        for (id, row) in &rows {
            let known = sections
                .iter()
                .find(|s| s.id == *id)
                .map(|s| s.keywords)
                .unwrap_or_default();
            for k in &row.keywords {
                if !known.contains(&k.as_str()) {
                    unknown.push(format!("{id}: {k}"));
                }
            }
        }
        assert!(
            unknown.is_empty(),
            "docs/configuration.md describes keywords the model does not have: {unknown:?}"
        );
    }

    #[test]
    fn table_cells_keep_escaped_pipes() {
        assert_eq!(
            cells("| `ports` | `-p` | list | `[IP:]PORT[/tcp\\|udp]` |"),
            vec!["`ports`", "`-p`", "list", "`[IP:]PORT[/tcp|udp]`"]
        );
        assert_eq!(
            code_spans("`env` (INI: also `service_type`)"),
            vec!["env", "service_type"]
        );
    }
}
