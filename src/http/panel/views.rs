//! The panel's HTML: plain, accessible markup and one small stylesheet served by the binary.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::session::Coordinator;
use crate::domains::dashboard::{Attention, Counts, Punctuality, ResponseTimes};

/// A moment in the coordinator's organisation's time zone: "30 Nov 14:05".
pub(super) fn when(coordinator: &Coordinator, at: DateTime<Utc>) -> String {
    let tz = crate::types::TimeZone::stored(&coordinator.time_zone);
    at.with_timezone(&tz).format("%d %b %H:%M").to_string()
}

/// The language of a text where it is not the page's: Amharic (Ethiopic script) is marked so
/// screen readers and fonts treat it right.
pub(super) fn lang_of(text: &str) -> Option<&'static str> {
    text.chars()
        .any(|c| ('\u{1200}'..='\u{139F}').contains(&c))
        .then_some("am")
}

pub(super) fn layout(title: &str, coordinator: Option<&Coordinator>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Fieldline" }
                link rel="stylesheet" href="/panel/static/panel.css";
                @if coordinator.is_some() { script src="/panel/static/live.js" defer {} }
            }
            body {
                header.top {
                    a.brand href="/panel" { "Fieldline" }
                    @if let Some(c) = coordinator {
                        nav aria-label="Sections" {
                            a href="/panel" { "Dashboard" } " · "
                            a href="/panel/work-orders" { "Work orders" } " · "
                            a href="/panel/visits" { "Visits" } " · "
                            a href="/panel/visit-exceptions" { "Exceptions" } " · "
                            a href="/panel/assignments" { "Assignments" } " · "
                            a href="/panel/trips" { "Trips" } " · "
                            a href="/panel/complaints" { "Complaints" } " · "
                            a href="/panel/feedback" { "Feedback" } " · "
                            a href="/panel/patients" { "Patients" } " · "
                            a href="/panel/history" { "Audit log" }
                        }
                        nav aria-label="Account" {
                            span.muted { (c.full_name.as_deref().unwrap_or(&c.email)) " · " (c.tenant_name) " · " }
                            form.inline method="post" action="/panel/logout" {
                                input type="hidden" name="csrf_token" value=(c.csrf_token);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub struct LoginForm {
    pub organisation: String,
    pub email: String,
    pub csrf: String,
    pub error: Option<String>,
}

pub fn login(form: &LoginForm) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(error) = &form.error {
                p.alert role="alert" { (error) }
            }
            form.stack method="post" action="/panel/login" {
                input type="hidden" name="csrf_token" value=(form.csrf);
                label { "Organisation"
                    input type="text" name="organisation" value=(form.organisation) required autocomplete="organization" autocapitalize="none" spellcheck="false";
                }
                label { "Email"
                    input type="email" name="email" value=(form.email) required autocomplete="username";
                }
                label { "Password"
                    input type="password" name="password" required autocomplete="current-password";
                }
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// Minutes as people say them: "45 min", "2.5 h", "3 d".
fn duration(minutes: f64) -> String {
    match minutes {
        m if m < 90.0 => format!("{m:.0} min"),
        m if m < 48.0 * 60.0 => format!("{:.1} h", m / 60.0),
        m => format!("{:.1} d", m / 1440.0),
    }
}

/// Median minutes to accept, start and finish per priority, as horizontal bars drawn on the
/// server (SVG): no script, no library, readable by a screen reader through each bar's title.
fn response_chart(rows: &[ResponseTimes]) -> Markup {
    const MEASURES: [(&str, &str); 3] = [
        ("accept", "#0b6e4f"),
        ("start", "#3a7fb8"),
        ("finish", "#a36b00"),
    ];
    let values = |r: &ResponseTimes| [r.to_accept, r.to_start, r.to_finish];
    let longest = rows
        .iter()
        .flat_map(values)
        .flatten()
        .fold(1.0_f64, f64::max);
    let (label_w, bar_w, bar_h, gap) = (80.0, 420.0, 12.0, 14.0);
    let row_h = 3.0 * bar_h + gap;
    let height = row_h * rows.len() as f64 + 24.0;
    html! {
        svg.chart role="img" viewBox=(format!("0 0 640 {height}")) width="100%"
            aria-label="Median time from report to accept, start and finish, by priority" {
            @for (i, (name, colour)) in MEASURES.iter().enumerate() {
                rect x=(label_w + i as f64 * 110.0) y="2" width="10" height="10" fill=(colour) {}
                text x=(label_w + 14.0 + i as f64 * 110.0) y="11" font-size="11" { "to " (name) }
            }
            @for (row, r) in rows.iter().enumerate() {
                @let top = 24.0 + row as f64 * row_h;
                text x="0" y=(top + 1.5 * bar_h + 4.0) font-size="12" { (r.priority) " (" (r.orders) ")" }
                @for (i, value) in values(r).iter().enumerate() {
                    @let y = top + i as f64 * bar_h;
                    @if let Some(minutes) = value {
                        @let w = (minutes / longest * bar_w).max(1.0);
                        rect x=(label_w) y=(y) width=(format!("{w:.1}")) height=(bar_h - 2.0) fill=(MEASURES[i].1) {
                            title { (r.priority) ": median " (duration(*minutes)) " to " (MEASURES[i].0) }
                        }
                        text x=(format!("{:.1}", label_w + w + 4.0)) y=(y + bar_h - 3.0) font-size="10" { (duration(*minutes)) }
                    } @else {
                        text x=(label_w) y=(y + bar_h - 3.0) font-size="10" { "none yet to " (MEASURES[i].0) }
                    }
                }
            }
        }
    }
}

pub fn dashboard(
    coordinator: &Coordinator,
    counts: &Counts,
    attention: &[Attention],
    responses: &[ResponseTimes],
    punctuality: &Punctuality,
) -> Markup {
    // Every count leads to its list where there is one (trips and feedback have none yet).
    let card = |title: &str, figure: i64, note: String, link: Option<&str>| {
        html! {
            li.card {
                h2 { @if let Some(link) = link { a href=(link) { (title) } } @else { (title) } }
                div.figure { (figure) }
                div.note { (note) }
            }
        }
    };
    layout(
        "Dashboard",
        Some(coordinator),
        html! {
            h1 { (coordinator.tenant_name) }
            section.attention aria-labelledby="attention-title" {
                h2 #attention-title { "Needs attention (" (attention.len()) ")" }
                @if attention.is_empty() {
                    p.muted { "Nothing is waiting on a coordinator." }
                } @else {
                    ul {
                        @for item in attention {
                            li {
                                span class=(format!("badge {}", item.kind)) { (item.kind) } " "
                                a href=(item.link) { (item.label) } " — " (item.detail)
                                span.muted { " · since " (when(coordinator, item.since)) }
                            }
                        }
                    }
                }
            }
            p.muted { "Today, in " (coordinator.time_zone) "." }
            ul.cards aria-label="Counts per domain" {
                (card("Open work orders", counts.open_work_orders, format!("{} urgent", counts.urgent_work_orders), Some("/panel/work-orders")))
                (card("Today's visits", counts.visits_today, format!("{} in progress now", counts.visits_in_progress), Some("/panel/visits")))
                (card("Active trips", counts.active_trips, format!("{} ambulances available", counts.available_ambulances), None))
                (card("New feedback", counts.new_feedback, format!("{} open complaints", counts.open_complaints), None))
                (card("Active workers", counts.active_workers, String::from("maintenance, care and crew"), None))
                (card("Patients", counts.patients, String::from("on record"), None))
            }
            section aria-labelledby="response-title" {
                h2 #response-title { "Work orders: time from report, last 30 days" }
                @if responses.is_empty() {
                    p.muted { "No work orders reported in the last 30 days." }
                } @else {
                    (response_chart(responses))
                }
            }
            section aria-labelledby="punctuality-title" {
                h2 #punctuality-title { "Visits: punctuality, last 30 days" }
                @if punctuality.checked_in == 0 {
                    p.muted { "No visit checked in in the last 30 days." }
                } @else {
                    p {
                        strong { (punctuality.on_time) " of " (punctuality.checked_in) }
                        " visits checked in within 10 minutes of their start"
                        @if let Some(m) = punctuality.median_late {
                            " · median " (if m < 0.0 { format!("{:.0} min early", -m) } else { format!("{m:.0} min late") })
                        }
                    }
                }
            }
        },
    )
}

pub fn message_page(title: &str, message: &str) -> Markup {
    layout(
        title,
        None,
        html! {
            h1 { (title) }
            p { (message) }
            p { a href="/panel/login" { "Back to sign-in" } }
        },
    )
}

/// A short page for a signed-in coordinator: not found and the like.
pub fn signed_in_message(coordinator: &Coordinator, title: &str, message: &str) -> Markup {
    layout(
        title,
        Some(coordinator),
        html! {
            h1 { (title) }
            p { (message) }
            p { a href="/panel/work-orders" { "Back to work orders" } }
        },
    )
}

/// What a timeline says of an SMS sent in place of a WhatsApp message.
pub fn fallback_words(reason: &str) -> &'static str {
    match reason {
        "whatsapp_failed" => "by SMS: WhatsApp failed",
        "not_delivered_in_time" => "by SMS: WhatsApp not delivered in time",
        _ => "by SMS in place of WhatsApp",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn amharic_text_is_marked_as_such() {
        assert_eq!(super::lang_of("ሥራውን ጨርሻለሁ"), Some("am"));
        assert_eq!(super::lang_of("done, thanks"), None);
    }
}
