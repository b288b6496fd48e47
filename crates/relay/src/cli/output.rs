//! Table and JSON output. Tables are for people; `--format json` is for scripts and is stable.

use serde::Serialize;

use super::{CliError, Format};

/// Prints `value` as pretty JSON, or the `table` closure's rendering.
pub(super) fn emit<T: Serialize>(
    format: Format,
    value: &T,
    table: impl FnOnce() -> String,
) -> Result<(), CliError> {
    match format {
        Format::Json => {
            let text = serde_json::to_string_pretty(value)
                .map_err(|e| CliError::Other(anyhow::anyhow!("cannot encode output: {e}")))?;
            println!("{text}");
        }
        Format::Table => print!("{}", table()),
    }
    Ok(())
}

/// Aligned columns with a header row.
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Two columns, property and value, for a single object's JSON fields in order.
pub(super) fn properties(value: &serde_json::Value) -> String {
    let rows: Vec<Vec<String>> = match value {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| vec![k.clone(), scalar(v)])
            .collect(),
        other => vec![vec!["value".into(), scalar(other)]],
    };
    table(&["Property", "Value"], &rows)
}

/// A JSON value as a plain string: strings unquoted, null empty.
pub(super) fn scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let out = table(
            &["ID", "Repository"],
            &[
                vec!["a".into(), "ws/r".into()],
                vec!["long-id".into(), "x".into()],
            ],
        );
        assert_eq!(out, "ID       Repository\na        ws/r\nlong-id  x\n");
    }
}
