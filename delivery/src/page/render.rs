//! HTML rendering of a topic's state without JavaScript: the first array of objects found in the state becomes a
//! table (columns: the union of their keys); anything else is shown as formatted JSON. Everything is escaped.

use std::fmt::Write;

use serde_json::Value;

pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

fn cell(value: &Value) -> String {
    match value {
        Value::String(text) => escape(text),
        Value::Null => String::new(),
        other => escape(&other.to_string()),
    }
}

fn first_table(state: &Value) -> Option<&Vec<Value>> {
    match state {
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => Some(items),
        Value::Object(fields) => fields.values().find_map(first_table),
        _ => None,
    }
}

pub(super) fn page(title: &str, segment: &str, topic: &str, state: Option<&Value>) -> String {
    let mut body = String::new();
    match state {
        None => body.push_str("<p>No data yet for this topic.</p>"),
        Some(state) => match first_table(state) {
            Some(rows) => {
                let mut columns: Vec<&str> = Vec::new();
                for row in rows {
                    for key in row.as_object().into_iter().flat_map(|o| o.keys()) {
                        if !columns.contains(&key.as_str()) {
                            columns.push(key);
                        }
                    }
                }
                body.push_str("<table><thead><tr>");
                for column in &columns {
                    let _ = write!(body, "<th>{}</th>", escape(column));
                }
                body.push_str("</tr></thead><tbody>");
                for row in rows {
                    body.push_str("<tr>");
                    for column in &columns {
                        let _ = write!(
                            body,
                            "<td>{}</td>",
                            cell(row.get(*column).unwrap_or(&Value::Null))
                        );
                    }
                    body.push_str("</tr>");
                }
                body.push_str("</tbody></table>");
            }
            None => {
                let pretty = serde_json::to_string_pretty(state).unwrap_or_default();
                let _ = write!(body, "<pre>{}</pre>", escape(&pretty));
            }
        },
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} {segment}</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:16px}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head><body>\
         <h1>{title}: {segment}</h1><p>Topic <code>{topic}</code>. This page refreshes every 30 s; \
         <a href=\"/demo\">the live page</a> updates as it happens.</p>{body}</body></html>",
        title = escape(title),
        segment = escape(segment),
        topic = escape(topic),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_the_first_table_and_escapes() {
        let state = json!({"boardId": "weekly", "top": [{"userId": "<u1>", "position": 1}, {"userId": "u2", "score": 3}]});
        let html = page("Leaderboard", "weekly", "leaderboard.weekly", Some(&state));
        assert!(
            html.contains("<th>position</th><th>userId</th><th>score</th>"),
            "{html}"
        );
        assert!(html.contains("&lt;u1&gt;") && !html.contains("<u1>"));
        let empty = page("Trending", "1h", "trending.1h", None);
        assert!(empty.contains("No data yet"));
    }
}
