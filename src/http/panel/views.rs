//! The panel's HTML: plain, accessible markup and one small stylesheet served by the binary.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::session::Coordinator;
use crate::domains::dashboard::{Attention, Counts};

/// A moment in the coordinator's organisation's time zone: "30 Nov 14:05".
pub(super) fn when(coordinator: &Coordinator, at: DateTime<Utc>) -> String {
    let tz = crate::types::TimeZone::stored(&coordinator.time_zone);
    at.with_timezone(&tz).format("%d %b %H:%M").to_string()
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
                            a href="/panel/assignments" { "Assignments" }
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

pub fn dashboard(coordinator: &Coordinator, counts: &Counts, attention: &[Attention]) -> Markup {
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
