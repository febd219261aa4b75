//! The console's HTML.

use maud::{Markup, html};

use super::report::{AgencyRow, CHART_HOURS, MessageDetail, MessagePage, MessageRow, Overview};
use crate::keyring::inventory::warning_threshold;
use crate::quarantine::QuarantineRecord;
use crate::web::Web;
use crate::web::guard::SignedIn;
use crate::web::pages::{error_summary, layout};

/// The console's own navigation, under the masthead.
fn nav(current: &str, admin: bool) -> Markup {
    let item = |href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(label == current).then_some("page")] { (label) } }
        }
    };
    html! {
        nav.console-nav aria-label="Console" {
            ul {
                (item("/console", "Overview"))
                (item("/console/messages", "Messages"))
                (item("/console/quarantine", "Quarantine"))
                (item("/console/requests", "Requests"))
                @if admin { (item("/console/admin", "Admin")) }
            }
        }
    }
}

pub(super) fn page(
    who: &SignedIn,
    web: &Web,
    title: &str,
    script: Option<&str>,
    body: Markup,
) -> Markup {
    let csrf = who.csrf(web);
    let admin = who.user.role == crate::accounts::Role::Admin;
    let body = html! { (nav(title, admin)) (body) };
    let head = html! {
        @if let Some(src) = script { script type="module" src=(src) {} }
    };
    layout(title, Some((who, &csrf)), head, body)
}

/// `table` in a region of its own that scrolls sideways when the screen is narrower than the
/// table (a phone), so that the page itself never does; focusable, so that a keyboard can
/// scroll it, and named (`label`) for screen readers.
pub(super) fn scrolling(label: &str, table: Markup) -> Markup {
    html! { div.scroll role="region" aria-label=(label) tabindex="0" { (table) } }
}

/// Messages per hour as bars: a picture of the last seven days, described for screen readers.
fn chart(row: &AgencyRow) -> Markup {
    let peak = row.per_hour.iter().copied().max().unwrap_or(0);
    let (w, h) = (2 * CHART_HOURS, 40);
    let label = format!(
        "{} messages from {} over the last 7 days, at most {peak} in one hour",
        row.week, row.display_name
    );
    html! {
        svg.chart role="img" aria-label=(label) width=(w) height=(h) viewBox=(format!("0 0 {w} {h}")) {
            title { (label) }
            rect x="0" y=(h - 1) width=(w) height="1" fill="#b1b4b6" {}
            @for (i, n) in row.per_hour.iter().enumerate() {
                @if *n > 0 {
                    @let bar = ((*n as f64 / peak.max(1) as f64) * f64::from(h - 2)).ceil().max(1.0) as u32;
                    rect x=(i * 2) y=(h - 1 - bar) width="2" height=(bar) fill="#1d70b8" {}
                }
            }
        }
    }
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".into(), |r| format!("{:.1}%", r * 100.0))
}

/// `/console`
pub fn overview(who: &SignedIn, web: &Web, o: &Overview) -> Markup {
    let body = html! {
        h1 { "Overview" }
        h2 { "Agencies" }
        (scrolling("Messages per agency", html! { table.data {
            caption.visually-hidden { "Messages per agency" }
            thead { tr {
                th scope="col" { "Agency" } th scope="col" { "Last message" }
                th scope="col" .num { "Today" } th scope="col" .num { "7 days" }
                th scope="col" .num { "Rejected" } th scope="col" { "Per hour, 7 days" }
            } }
            tbody {
                @for a in &o.agencies {
                    tr {
                        th scope="row" { a href=(format!("/console/messages?agency={}", a.name)) { (a.display_name) } }
                        td { (a.last_message.as_deref().unwrap_or("none in 7 days")) }
                        td.num { (a.today) } td.num { (a.week) }
                        td.num .warn[a.rejection_rate().is_some_and(|r| r >= 0.1)] { (percent(a.rejection_rate())) }
                        td { (chart(a)) }
                    }
                }
            }
        } }))
        h2 { "Queue" }
        p { "Messages waiting for the hub: " strong #queue-depth { (o.queue_depth.map_or_else(|| "unknown".to_owned(), |d| d.to_string())) } }
        h2 { "Keys and certificates" }
        (scrolling("Keys and certificates", html! { table.data {
            thead { tr {
                th scope="col" { "Kind" } th scope="col" { "Owner" } th scope="col" { "Subject" }
                th scope="col" { "State" } th scope="col" .num { "Days left" }
            } }
            tbody {
                @for k in &o.keys {
                    @let warn = k.days_left.and_then(warning_threshold).is_some();
                    tr.warn[warn] {
                        td { (k.kind) } td { (k.owner) } td.break { (k.subject) } td { (k.state) }
                        td.num { (k.days_left.map_or_else(|| "–".into(), |d| d.to_string())) @if warn { " " strong { "renew" } } }
                    }
                }
            }
        } }))
        h2 { "Audit log" }
        p.status-line .ok[o.audit.0] .refused[!o.audit.0] { (o.audit.1) }
    };
    page(who, web, "Overview", None, body)
}

/// The filters as typed, to show them again.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct Filters {
    /// Agency.
    pub agency: Option<String>,
    /// Channel.
    pub channel: Option<String>,
    /// Schema id.
    pub schema: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// From (date or time).
    pub from: Option<String>,
    /// To (date or time).
    pub to: Option<String>,
    /// Cursor.
    pub after: Option<String>,
}

fn text_filter(id: &str, label: &str, value: &Option<String>, hint: &str) -> Markup {
    html! {
        div.field.filter {
            label for=(id) { (label) }
            input type="text" id=(id) name=(id) value=(value.as_deref().unwrap_or("")) placeholder=(hint);
        }
    }
}

fn select_filter(id: &str, label: &str, value: &Option<String>, options: &[&str]) -> Markup {
    html! {
        div.field.filter {
            label for=(id) { (label) }
            select id=(id) name=(id) {
                option value="" { "Any" }
                @for o in options {
                    option value=(o) selected[value.as_deref() == Some(*o)] { (o) }
                }
            }
        }
    }
}

fn row(m: &MessageRow) -> Markup {
    html! {
        tr data-id=(m.id) {
            td { (m.received_at) }
            td { (m.agency) }
            td { (m.channel.as_str()) }
            td { span.tag .(m.status.as_str()) { (m.status.as_str()) } }
            td.break { (m.schema_id.as_deref().or(m.rejection_code.as_deref()).unwrap_or("")) }
            td.break { (m.agency_message_id.as_deref().unwrap_or("")) }
            td { a href=(format!("/console/messages/{}", m.id)) { "Details" span.visually-hidden { " of " (m.id) } } }
        }
    }
}

/// `/console/messages`
pub fn messages(
    who: &SignedIn,
    web: &Web,
    f: &Filters,
    error: Option<&str>,
    p: &MessagePage,
) -> Markup {
    let next = p.next.as_ref().map(|cursor| {
        let mut q = url_pairs(f);
        q.push(("after", cursor.clone()));
        format!("/console/messages?{}", encode(&q))
    });
    let body = html! {
        @if let Some(e) = error { (error_summary(e)) }
        h1 { "Messages" }
        form.filters method="get" action="/console/messages" {
            (text_filter("agency", "Agency", &f.agency, "police"))
            (select_filter("channel", "Channel", &f.channel, &["https", "web", "folder", "import", "cli"]))
            (text_filter("schema", "Schema", &f.schema, "police-IncidentBatch-1"))
            (select_filter("status", "Outcome", &f.status, &["forwarded", "rejected", "in_progress"]))
            (text_filter("from", "From", &f.from, "2026-12-01"))
            (text_filter("to", "To", &f.to, "2026-12-31"))
            button.button.secondary type="submit" { "Filter" }
        }
        @if f.after.is_none() {
            p.hint #live-status aria-live="polite" { "New messages appear here as they arrive." }
        }
        (scrolling("Messages", html! { table.data #messages data-live=[f.after.is_none().then_some("on")] {
            thead { tr {
                th scope="col" { "Received" } th scope="col" { "Agency" } th scope="col" { "Channel" }
                th scope="col" { "Outcome" } th scope="col" { "Schema or code" }
                th scope="col" { "Agency's id" } th scope="col" { span.visually-hidden { "Link" } }
            } }
            tbody {
                @for m in &p.messages { (row(m)) }
            }
        } }))
        @if p.messages.is_empty() { p { "No messages match." } }
        @if let Some(n) = next { p { a href=(n) { "Older messages" } } }
    };
    page(who, web, "Messages", Some("/assets/console.js"), body)
}

/// The filters as query pairs (without the cursor).
fn url_pairs(f: &Filters) -> Vec<(&'static str, String)> {
    [
        ("agency", &f.agency),
        ("channel", &f.channel),
        ("schema", &f.schema),
        ("status", &f.status),
        ("from", &f.from),
        ("to", &f.to),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().filter(|v| !v.is_empty()).map(|v| (k, v)))
    .collect()
}

fn encode(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn facts(pairs: &[(&str, String)]) -> Markup {
    html! {
        dl.facts {
            @for (k, v) in pairs { dt { (k) } dd { (v) } }
        }
    }
}

/// Where the document is wrong: the ledger's record of a refusal, else the quarantine's (one
/// kept before the ledger had them).
fn violations(d: &MessageDetail) -> Markup {
    let rows: Vec<(Option<u64>, Option<u64>, &str, &str)> = match (&d.violations, &d.quarantine) {
        (Some(l), _) => l
            .violations
            .iter()
            .map(|v| {
                (
                    Some(v.line),
                    Some(v.column),
                    v.path.as_str(),
                    v.message.as_str(),
                )
            })
            .collect(),
        (None, Some(q)) => q
            .violations
            .iter()
            .flatten()
            .map(|v| {
                (
                    v.line,
                    v.column,
                    v.path.as_deref().unwrap_or(""),
                    v.message.as_str(),
                )
            })
            .collect(),
        (None, None) => Vec::new(),
    };
    let more = d.violations.as_ref().is_some_and(|l| l.truncated);
    html! {
        @if !rows.is_empty() {
            table.violations {
                caption { (rows.len()) " problem(s) in the document" @if more { ", and more not listed" } }
                thead { tr { th scope="col" { "Line" } th scope="col" { "Column" } th scope="col" { "Where" } th scope="col" { "Problem" } } }
                tbody {
                    @for (line, column, path, message) in &rows {
                        tr {
                            td { (line.map(|l| l.to_string()).unwrap_or_default()) }
                            td { (column.map(|c| c.to_string()).unwrap_or_default()) }
                            td { code { (path) } }
                            td { (message) }
                        }
                    }
                }
            }
        }
    }
}

/// The re-run and discard forms of a quarantine entry.
fn quarantine_actions(who: &SignedIn, web: &Web, q: &QuarantineRecord) -> Markup {
    let csrf = who.csrf(web);
    let base = format!("/console/quarantine/{}/{}", q.agency, q.gateway_message_id);
    html! {
        div.actions {
            form method="post" action=(format!("{base}/rerun")) {
                input type="hidden" name="csrf" value=(csrf);
                button.button type="submit" { "Re-run through the pipeline" span.visually-hidden { " " (q.gateway_message_id) } }
            }
            form method="post" action=(format!("{base}/discard")) {
                input type="hidden" name="csrf" value=(csrf);
                div.field {
                    label for=(format!("reason-{}", q.gateway_message_id)) { "Reason for discarding" }
                    input type="text" id=(format!("reason-{}", q.gateway_message_id)) name="reason" required;
                }
                button.button.warning type="submit" { "Discard" span.visually-hidden { " " (q.gateway_message_id) } }
            }
        }
    }
}

/// `/console/messages/{id}`
pub fn message(who: &SignedIn, web: &Web, d: &MessageDetail, notice: Option<&str>) -> Markup {
    let r = &d.record;
    let receipt = r.receipt_json.as_deref();
    let body = html! {
        @if let Some(n) = notice { div.notice role="status" { p { (n) } } }
        h1 { "Message " span.break { (r.id) } }
        (facts(&[
            ("Agency", r.agency.clone()),
            ("Agency's id", r.agency_message_id.clone().unwrap_or_default()),
            ("Channel", r.channel.as_str().to_owned()),
            ("Outcome", r.status.as_str().to_owned()),
            ("Size", format!("{} bytes", r.size)),
            ("SHA-256", r.sha256.clone()),
        ]))
        @if let Some(code) = &r.rejection_code {
            h2 { "Why it was refused" }
            p { strong { (code) } ": " (r.rejection_detail.as_deref().unwrap_or("")) }
            @if let Some(a) = d.action { p { strong { "What the agency is told to do: " } (a) } }
            (violations(d))
        }
        h2 { "Steps" }
        ol.timeline {
            @for s in &d.steps {
                li { strong { (format!("{:?}", s.step).to_lowercase()) } " " (crate::message::timestamp::format(&s.at)) @if let Some(dt) = &s.detail { " — " (dt) } }
            }
        }
        @if let Some(json) = receipt {
            h2 { "Receipt" }
            pre.receipt tabindex="0" aria-label="Receipt JSON" { (json) }
        }
        @if let Some(q) = &d.quarantine {
            h2 { "In quarantine" }
            p { "Quarantined at " (crate::message::timestamp::format(&q.quarantined_at)) "." }
            (quarantine_actions(who, web, q))
        }
    };
    page(who, web, "Messages", None, body)
}

/// `/console/quarantine`
pub fn quarantine(
    who: &SignedIn,
    web: &Web,
    entries: &[QuarantineRecord],
    notice: Option<&str>,
) -> Markup {
    let body = html! {
        @if let Some(n) = notice { div.notice role="status" { p { (n) } } }
        h1 { "Quarantine" }
        p { "Refused payloads kept as they arrived. After a fix (a schema, a catalog entry, a certificate), re-run one through the pipeline, or discard it with a reason." }
        @if entries.is_empty() { p { "The quarantine is empty." } }
        ol.results {
            @for q in entries {
                li.result.refused {
                    h2 { a href=(format!("/console/messages/{}", q.gateway_message_id)) { (q.agency) ": " (q.original_name.as_deref().unwrap_or("upload")) } }
                    p { strong { (q.code) } ": " (q.detail) }
                    p.hint { "Quarantined " (crate::message::timestamp::format(&q.quarantined_at)) ", " (q.size) " bytes" }
                    (quarantine_actions(who, web, q))
                }
            }
        }
    };
    page(who, web, "Quarantine", None, body)
}
