//! HTML rendering of a leaderboard or a trending window without JavaScript, in the style of the live page. The
//! known snapshot shapes become ranked tables (leaderboard: `{"top": {"boardId", "periodStart", "top": [{userId,
//! position, completed}]}}`; trending: `{"items": {"window", "items": [{contentId, contentType, rank, previousRank,
//! count}]}}`); any other state falls back to the first array of objects as a table, or formatted JSON. Everything
//! taken from the state or the request is escaped.

use std::fmt::Write;

use serde_json::Value;

const BOARDS: [(&str, &str); 4] = [
    ("daily", "Today"),
    ("weekly", "This week"),
    ("monthly", "This month"),
    ("all-time", "All time"),
];
const WINDOWS: [(&str, &str); 2] = [("1h", "Last hour"), ("24h", "Last 24 hours")];

const STYLE: &str = "\
:root{--ink:#1b2233;--muted:#5f6b80;--line:#e3e6ee;--brand:#3b5bdb;--up:#1f8a4c;--down:#c0392b;--new:#6f42c1}\
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,\"DejaVu Sans\",sans-serif;\
margin:0;background:#f4f5f9;color:var(--ink)}a{color:var(--brand)}\
header{background:#141a2a;color:#fff;padding:12px 20px;display:flex;gap:12px 20px;align-items:center;flex-wrap:wrap}\
header h1{font-size:18px;margin:0 auto 0 0}header a{color:#9fb4ff}\
.logo{width:30px;height:30px;border-radius:8px;background:linear-gradient(135deg,#5c7cfa,#15aabf);display:grid;\
place-items:center;font-weight:700}\
main{max-width:760px;margin:16px auto;padding:0 16px}\
.panel{background:#fff;border-radius:12px;padding:16px 18px;box-shadow:0 1px 2px #1b22330f,0 4px 16px #1b22330a}\
h2{font-size:16px;margin:0 0 4px}.muted{color:var(--muted)}.small{font-size:12px}\
nav.tabs{display:flex;gap:4px;flex-wrap:wrap;margin:10px 0 14px}\
nav.tabs a{padding:4px 12px;border-radius:999px;border:1px solid var(--line);text-decoration:none;color:var(--muted);\
background:#fff}nav.tabs a[aria-current=page]{background:#e8edff;border-color:var(--brand);color:var(--brand);font-weight:600}\
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}\
th{text-align:left;font-size:12px;color:var(--muted);font-weight:600;border-bottom:1px solid var(--line);padding:6px 8px}\
td{padding:7px 8px;border-bottom:1px solid var(--line);overflow-wrap:anywhere}.num{text-align:right}\
td.pos{font-weight:700;width:2.5em;white-space:nowrap;overflow-wrap:normal}tr.p1 td.pos{color:#c99700}tr.p2 td.pos{color:#7d8597}tr.p3 td.pos{color:#b5651d}\
.move{display:inline-block;min-width:3.4em;text-align:center;font-size:12px;font-weight:700;border-radius:999px;padding:1px 6px}\
.up{color:var(--up);background:#e3f5ea}.down{color:var(--down);background:#fbe9e7}.new{color:var(--new);background:#f0e9fb}\
.same{color:#9aa5bd}.kind{font-size:11px;color:var(--muted)}.empty{color:var(--muted);text-align:center;padding:18px}\
pre{white-space:pre-wrap;background:#f0f2f5;padding:8px;border-radius:8px;font-size:12px}";

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

/// Which page: the topic kind decides the tabs and the table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    Leaderboard,
    Trending,
}

/// The full page for `topic` (`leaderboard.{segment}` or `trending.{segment}`) and its state, if any.
pub(super) fn page(kind: Kind, segment: &str, topic: &str, state: Option<&Value>) -> String {
    let (title, tabs, base) = match kind {
        Kind::Leaderboard => ("Leaderboard", &BOARDS[..], "/demo/leaderboard/"),
        Kind::Trending => ("Trending", &WINDOWS[..], "/demo/trending/"),
    };
    let label = tabs
        .iter()
        .find(|(id, _)| *id == segment)
        .map_or(segment, |(_, label)| label);
    let mut nav = String::new();
    for (id, tab_label) in tabs {
        let current = if *id == segment {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{base}{id}\"{current}>{tab_label}</a>");
    }
    let body = match (kind, state) {
        (_, None) => "<p class=\"empty\">No data yet. This page refreshes every 30 seconds.</p>".to_owned(),
        (Kind::Leaderboard, Some(state)) => leaderboard_table(state).unwrap_or_else(|| generic(state)),
        (Kind::Trending, Some(state)) => trending_table(state).unwrap_or_else(|| generic(state)),
    };
    let subtitle = match kind {
        Kind::Leaderboard => "Completed referrals, most first.",
        Kind::Trending => "Most shared and engaged content, with rank changes.",
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><link rel=\"icon\" href=\"data:,\">\
         <title>{title}: {label} · Referrals Live</title><style>{STYLE}</style></head><body>\
         <header><span class=\"logo\" aria-hidden=\"true\">R</span><h1>Referrals Live</h1>\
         <a href=\"/demo\">Open the live page</a></header>\
         <main><section class=\"panel\" aria-labelledby=\"h\"><h2 id=\"h\">{title}: {label}</h2>\
         <p class=\"muted small\">{subtitle} Topic <code>{topic}</code>; this page refreshes every 30 seconds, \
         <a href=\"/demo\">the live page</a> updates as it happens.</p>\
         <nav class=\"tabs\" aria-label=\"{title} periods\">{nav}</nav>{body}</section></main></body></html>",
        label = escape(label),
        topic = escape(topic),
    )
}

fn movement(delta: Option<i64>) -> String {
    match delta {
        None => "<span class=\"move new\">NEW</span>".to_owned(),
        Some(d) if d > 0 => format!("<span class=\"move up\" aria-label=\"up {d}\">&#9650; {d}</span>"),
        Some(d) if d < 0 => format!(
            "<span class=\"move down\" aria-label=\"down {n}\">&#9660; {n}</span>",
            n = -d
        ),
        Some(_) => "<span class=\"move same\" aria-label=\"no change\">&ndash;</span>".to_owned(),
    }
}

fn int(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_i64)
        .map_or_else(String::new, |n| n.to_string())
}

fn leaderboard_table(state: &Value) -> Option<String> {
    let board = state.get("top")?;
    let rows = board.get("top")?.as_array()?;
    let mut out = String::new();
    if let Some(start) = board.get("periodStart").and_then(Value::as_str) {
        let _ = write!(
            out,
            "<p class=\"muted small\">Period since {}.</p>",
            escape(start)
        );
    }
    if rows.is_empty() {
        out.push_str("<p class=\"empty\">No completed referrals in this period yet.</p>");
        return Some(out);
    }
    out.push_str(
        "<table><thead><tr><th scope=\"col\">#</th><th scope=\"col\">Referrer</th>\
         <th scope=\"col\" class=\"num\">Completed referrals</th></tr></thead><tbody>",
    );
    for row in rows {
        let position = int(row.get("position"));
        let _ = write!(
            out,
            "<tr class=\"p{position}\"><td class=\"pos\">{position}</td><td>{user}</td><td class=\"num\">{completed}</td></tr>",
            user = cell(row.get("userId").unwrap_or(&Value::Null)),
            completed = int(row.get("completed")),
        );
    }
    out.push_str("</tbody></table>");
    Some(out)
}

fn content_type(kind: &str) -> String {
    match kind {
        "profile" => "Profile".to_owned(),
        "portfolio" => "Portfolio".to_owned(),
        "project" => "Project".to_owned(),
        "referral_link" => "Referral link".to_owned(),
        "testimonial" => "Testimonial".to_owned(),
        other => escape(&other.replace('_', " ")),
    }
}

fn trending_table(state: &Value) -> Option<String> {
    let items = state.get("items")?.get("items")?.as_array()?;
    if items.is_empty() {
        return Some("<p class=\"empty\">Nothing trending in this window yet.</p>".to_owned());
    }
    let mut out = String::from(
        "<table><thead><tr><th scope=\"col\">#</th><th scope=\"col\">Content</th>\
         <th scope=\"col\" class=\"num\">Shares &amp; engagement</th><th scope=\"col\" class=\"num\">Move</th></tr></thead><tbody>",
    );
    for item in items {
        let rank = item.get("rank").and_then(Value::as_i64);
        let previous = item.get("previousRank").and_then(Value::as_i64);
        let delta = previous.zip(rank).map(|(p, r)| p - r);
        let rank = rank.map_or_else(String::new, |r| r.to_string());
        let _ = write!(
            out,
            "<tr class=\"p{rank}\"><td class=\"pos\">{rank}</td><td>{id}<div class=\"kind\">{kind}</div></td>\
             <td class=\"num\">{count}</td><td class=\"num\">{movement}</td></tr>",
            id = cell(item.get("contentId").unwrap_or(&Value::Null)),
            kind = content_type(
                item.get("contentType")
                    .and_then(Value::as_str)
                    .unwrap_or("content")
            ),
            count = int(item.get("count")),
            movement = movement(delta),
        );
    }
    out.push_str("</tbody></table>");
    Some(out)
}

/// Any other state: the first array of objects as a table (columns: the union of their keys), else JSON.
fn generic(state: &Value) -> String {
    let mut body = String::new();
    match first_table(state) {
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
                let _ = write!(body, "<th scope=\"col\">{}</th>", escape(column));
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
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_a_leaderboard_as_a_ranked_table_and_escapes() {
        let state = json!({"top": {"boardId": "weekly", "periodStart": "2026-11-23", "top": [
            {"userId": "<script>u1</script>", "position": 1, "completed": 9},
            {"userId": "u2", "position": 2, "completed": 3}]}});
        let html = page(Kind::Leaderboard, "weekly", "leaderboard.weekly", Some(&state));
        assert!(
            html.contains("&lt;script&gt;u1&lt;/script&gt;") && !html.contains("<script>"),
            "{html}"
        );
        assert!(
            html.contains("<td class=\"pos\">1</td>") && html.contains("<td class=\"num\">9</td>"),
            "{html}"
        );
        assert!(
            html.contains("href=\"/demo/leaderboard/weekly\" aria-current=\"page\""),
            "{html}"
        );
        assert!(html.contains("Period since 2026-11-23"), "{html}");
        let empty = page(Kind::Leaderboard, "daily", "leaderboard.daily", None);
        assert!(empty.contains("No data yet"));
    }

    #[test]
    fn renders_trending_with_movement() {
        let state = json!({"items": {"window": "1h", "items": [
            {"contentId": "p\"1", "contentType": "project", "rank": 1, "previousRank": 3, "count": 12},
            {"contentId": "c2", "contentType": "referral_link", "rank": 2, "previousRank": null, "count": 5},
            {"contentId": "c3", "contentType": "profile", "rank": 3, "previousRank": 2, "count": 4}]}});
        let html = page(Kind::Trending, "1h", "trending.1h", Some(&state));
        assert!(
            html.contains("p&quot;1") && html.contains("Referral link"),
            "{html}"
        );
        assert!(
            html.contains("&#9650; 2") && html.contains("NEW") && html.contains("&#9660; 1"),
            "{html}"
        );
    }

    #[test]
    fn falls_back_to_a_generic_table() {
        let state = json!({"other": [{"a": "<b>", "n": 1}]});
        let html = page(Kind::Trending, "1h", "trending.1h", Some(&state));
        assert!(
            html.contains("<th scope=\"col\">a</th>") && html.contains("&lt;b&gt;"),
            "{html}"
        );
        let html = page(Kind::Trending, "x<y", "trending.x", Some(&json!({"n": 1})));
        assert!(html.contains("x&lt;y") && html.contains("<pre>"), "{html}");
    }
}
