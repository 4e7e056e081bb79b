//! The work-order pages' HTML.

use crate::{domains::directory::workers::WorkerStatus, messaging::MessageStatus};
use maud::{Markup, html};
use uuid::Uuid;

use super::{
    session::Coordinator,
    views::{fallback_words, lang_of, layout, when},
    work_orders::{ALL_STATUSES, ListQuery, Lookups, NewInput, Notice},
};
use crate::domains::{
    alerts::OpenAlert,
    maintenance::{
        timeline::{Entry, Event},
        work_orders::WorkOrder,
    },
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkerOption {
    pub id: Uuid,
    pub name: String,
    pub kinds: Vec<String>,
    pub specialties: Vec<String>,
    pub status: WorkerStatus,
    /// Work orders assigned to them and not finished.
    pub open_work: i64,
}

pub struct AlertRow {
    pub alert: OpenAlert,
    pub reference: Option<String>,
}

const STATUSES: &[&str] = &[
    "pending",
    "assigned",
    "accepted",
    "in_progress",
    "on_hold",
    "completed",
    "cancelled",
];
const PRIORITIES: &[&str] = &["urgent", "high", "medium", "low"];

fn words(value: impl std::fmt::Display) -> String {
    value.to_string().replace('_', " ")
}

fn select(name: &str, label: &str, chosen: &str, options: &[(String, String)]) -> Markup {
    select_or(name, label, chosen, options, "Any")
}

/// A select whose empty choice reads `empty` ("Any", or "Open" for the default statuses).
fn select_or(
    name: &str,
    label: &str,
    chosen: &str,
    options: &[(String, String)],
    empty: &str,
) -> Markup {
    html! {
        label { (label)
            select name=(name) {
                option value="" { (empty) }
                @for (value, text) in options {
                    option value=(value) selected[value == chosen] { (text) }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn list(
    coordinator: &Coordinator,
    query: &ListQuery,
    lookups: &Lookups,
    (rows, sites_map): (&[WorkOrder], Markup),
    next: Option<Uuid>,
    overdue: &[Uuid],
    alerts: &[AlertRow],
    error: Option<&str>,
) -> Markup {
    let statuses: Vec<(String, String)> =
        std::iter::once((ALL_STATUSES.to_owned(), "All".to_owned()))
            .chain(STATUSES.iter().map(|s| (s.to_string(), words(s))))
            .collect();
    let priorities: Vec<(String, String)> = PRIORITIES
        .iter()
        .map(|s| (s.to_string(), s.to_string()))
        .collect();
    let sites: Vec<(String, String)> = lookups
        .sites
        .iter()
        .map(|(id, name)| (id.to_string(), name.clone()))
        .collect();
    let workers: Vec<(String, String)> = lookups
        .workers
        .iter()
        .map(|w| (w.id.to_string(), w.name.clone()))
        .collect();
    let next_link = next.map(|after| {
        let mut params = url_params(query);
        params.push(("after", after.to_string()));
        format!(
            "/panel/work-orders?{}",
            serde_urlencoded::to_string(params).unwrap_or_default()
        )
    });
    layout(
        "Work orders",
        Some(coordinator),
        html! {
            h1 { "Work orders" }
            p { a href="/panel/work-orders/new" { "New work order" } }
            @if let Some(error) = error {
                p.alert role="alert" { (error) }
            }
            @if !alerts.is_empty() {
                section.alerts aria-labelledby="alerts-title" {
                    h2 #alerts-title { "Needs attention (" (alerts.len()) ")" }
                    ul {
                        @for row in alerts {
                            li {
                                span.muted { (when(coordinator, row.alert.created_at)) " · " (words(row.alert.kind.as_str())) " · " }
                                @if let (Some(id), Some(reference)) = (row.alert.work_order_id, &row.reference) {
                                    a href=(format!("/panel/work-orders/{id}")) { (reference) } " "
                                }
                                (row.alert.message) " "
                                form.inline method="post" action=(format!("/panel/alerts/{}/resolve", row.alert.id)) {
                                    input type="hidden" name="csrf_token" value=(coordinator.csrf_token);
                                    button.link type="submit" { "Mark handled" }
                                }
                            }
                        }
                    }
                }
            }
            form.filters method="get" action="/panel/work-orders" aria-label="Filter work orders" {
                label { "Search" input type="search" name="q" value=(query.q) placeholder="reference, title, place"; }
                (select_or("status", "Status", &query.status, &statuses, "Open"))
                (select("priority", "Priority", &query.priority, &priorities))
                (select("site", "Site", &query.site, &sites))
                (select("worker", "Worker", &query.worker, &workers))
                label.check { input type="checkbox" name="overdue" value="1" checked[query.overdue.is_some()]; "Overdue only" }
                button type="submit" { "Filter" }
            }
            @if rows.is_empty() {
                p.muted { "No work orders match." }
            } @else {
                (sites_map)
                table.list.stacked {
                    thead { tr {
                        th scope="col" { "Reference" } th scope="col" { "Title" } th scope="col" { "Priority" }
                        th scope="col" { "Status" } th scope="col" { "Site" } th scope="col" { "Worker" }
                        th scope="col" { "WhatsApp" } th scope="col" { "Reported" }
                    } }
                    tbody {
                        @for wo in rows {
                            tr {
                                td data-label="Reference" { a href=(format!("/panel/work-orders/{}", wo.id)) { (wo.reference) } }
                                td data-label="Title" { (wo.title) }
                                td data-label="Priority" { span class=(format!("badge priority-{}", wo.priority)) { (wo.priority) } }
                                td data-label="Status" {
                                    (words(wo.status.as_str()))
                                    @if overdue.contains(&wo.id) { " " span.badge.overdue { "overdue" } }
                                }
                                td data-label="Site" { (lookups.site(wo.site_id).unwrap_or("-")) }
                                td data-label="Worker" { (lookups.worker(wo.assigned_worker_id).unwrap_or("-")) }
                                td data-label="WhatsApp" { (wo.whatsapp_status.map_or("-", MessageStatus::as_str)) }
                                td data-label="Reported" { (when(coordinator, wo.created_at)) }
                            }
                        }
                    }
                }
            }
            @if let Some(link) = next_link {
                p { a href=(link) rel="next" { "Next page" } }
            }
        },
    )
}

fn url_params(query: &ListQuery) -> Vec<(&'static str, String)> {
    let mut params = vec![
        ("status", query.status.clone()),
        ("priority", query.priority.clone()),
        ("site", query.site.clone()),
        ("worker", query.worker.clone()),
        ("q", query.q.clone()),
    ];
    if query.overdue.is_some() {
        params.push(("overdue", "1".into()));
    }
    params
}

fn event(coordinator: &Coordinator, entry: &Entry) -> Markup {
    let at = when(coordinator, entry.at);
    match &entry.event {
        Event::Status {
            from,
            to,
            actor,
            channel,
            note,
            location,
        } => html! {
            li.status {
                span.time { (at) }
                @if *from == Some(*to) {
                    strong { (words(to)) }
                } @else {
                    strong { (from.map(words).unwrap_or_default()) " → " (words(to)) }
                }
                " by " (actor) " via " (channel)
                @if let Some(note) = note { ": " (note) }
                @if let Some((lat, lon)) = location {
                    " " a href=(format!("https://maps.google.com/?q={lat:.5},{lon:.5}")) rel="noopener noreferrer" { "map" }
                }
            }
        },
        Event::Message {
            inbound,
            party,
            channel_kind,
            body,
            status,
            error,
            fallback_reason,
        } => html! {
            li class=(if *inbound { "message inbound" } else { "message outbound" }) {
                span.time { (at) }
                @if *inbound { "From " (party) } @else { "To " (party) }
                " (" (channel_kind) ")"
                @if !*inbound { " · " span.badge { (status) } }
                @if let Some(reason) = fallback_reason { " · " span.badge { (fallback_words(reason)) } }
                @if let Some(error) = error { " · " span.badge.overdue { (error) } }
                blockquote lang=[body.as_deref().and_then(lang_of)] { (body.as_deref().unwrap_or("(no text)")) }
            }
        },
        Event::Comment { author, body } => html! {
            li.comment {
                span.time { (at) }
                "Comment by " (author)
                blockquote lang=[lang_of(body)] { (body) }
            }
        },
        Event::Photo {
            media_id,
            uploaded_by,
            content_type,
            ready,
            error,
        } => html! {
            li.photo {
                span.time { (at) }
                "Photo from " (uploaded_by)
                @if let (Some(id), true) = (media_id, ready) {
                    @let src = format!("/panel/media/{id}");
                    @if content_type.as_deref().is_some_and(|c| ["image/jpeg", "image/png", "image/gif", "image/webp"].contains(&c)) {
                        div { a href=(src) { img src=(src) alt=(format!("Photo from {uploaded_by}")) loading="lazy"; } }
                    } @else {
                        " " a href=(src) { "open the file" }
                    }
                } @else if let Some(error) = error {
                    " · could not be fetched: " (error)
                } @else {
                    " · still being fetched"
                }
            }
        },
    }
}

pub fn detail(
    coordinator: &Coordinator,
    wo: &WorkOrder,
    requester: Option<&str>,
    lookups: &Lookups,
    timeline: &[Entry],
    notice: Option<&Notice>,
) -> Markup {
    let open = !matches!(wo.status.as_str(), "completed" | "cancelled");
    let can_hold = matches!(wo.status.as_str(), "accepted" | "in_progress");
    let csrf = html! { input type="hidden" name="csrf_token" value=(coordinator.csrf_token); };
    let action = |name: &str| format!("/panel/work-orders/{}/{name}", wo.id);
    layout(
        &wo.reference,
        Some(coordinator),
        html! {
            p { a href="/panel/work-orders" { "← Work orders" } }
            h1 { (wo.reference) " · " (wo.title) }
            @match notice {
                Some(Notice::Done(text)) => p.notice role="status" { (text) },
                Some(Notice::Failed(text)) => p.alert role="alert" { (text) },
                None => {},
            }
            dl.facts {
                dt { "Status" } dd { (words(wo.status.as_str())) }
                dt { "Priority" } dd { (wo.priority) }
                dt { "Kind" } dd { (wo.kind) " · " (words(&wo.request_type)) @if let Some(s) = &wo.required_specialty { " · " (s) } }
                dt { "Where" } dd { (lookups.site(wo.site_id).unwrap_or("-")) @if let Some(d) = &wo.location_detail { ", " (d) } }
                dt { "Worker" } dd { (lookups.worker(wo.assigned_worker_id).unwrap_or("nobody yet")) @if let Some(s) = &wo.whatsapp_status { " · dispatch " (s) } }
                dt { "Requester" } dd { (requester.unwrap_or("-")) }
                @if let Some(at) = wo.scheduled_at { dt { "Scheduled" } dd { (when(coordinator, at)) } }
                @if let Some(m) = wo.expected_duration_minutes { dt { "Expected duration" } dd { (m) " min" } }
                @if let Some(h) = wo.labour_hours { dt { "Labour" } dd { (h) " h" } }
                @if let Some(p) = &wo.parts_used { dt { "Parts" } dd { (p) } }
                @if let Some(d) = &wo.description { dt { "Description" } dd { (d) } }
            }
            @if open {
                section.actions aria-label="Actions" {
                    form.stack method="post" action=(action("assign")) {
                        (csrf)
                        label { (if wo.assigned_worker_id.is_some() { "Reassign to" } else { "Assign to" })
                            select name="worker_id" required {
                                option value="" { "Choose a worker" }
                                @for w in lookups.workers.iter().filter(|w| w.kinds.iter().any(|k| k == wo.kind.as_str())) {
                                    // Their trades and workload beside the name: a carpentry job does
                                    // not go to a plumber without anyone seeing it.
                                    option value=(w.id) disabled[w.status != WorkerStatus::Active] selected[Some(w.id) == wo.assigned_worker_id] {
                                        (w.name)
                                        " — " (if w.specialties.is_empty() { "no trade listed".to_owned() } else { w.specialties.join(", ") })
                                        " · " (w.open_work) " open"
                                        @if wo.required_specialty.as_ref().is_some_and(|s| !w.specialties.contains(s)) { " · not " (wo.required_specialty.as_deref().unwrap_or("")) }
                                        @if w.status != WorkerStatus::Active { " (" (words(w.status)) ")" }
                                    }
                                }
                            }
                        }
                        button type="submit" { (if wo.assigned_worker_id.is_some() { "Reassign" } else { "Assign" }) }
                    }
                    @if wo.status.as_str() == "on_hold" {
                        form.stack method="post" action=(action("resume")) {
                            (csrf)
                            button type="submit" { "Lift the hold" }
                        }
                    }
                    @if can_hold {
                        form.stack method="post" action=(action("hold")) {
                            (csrf)
                            label { "Reason for the hold" input type="text" name="reason" required maxlength="500"; }
                            button type="submit" { "Put on hold" }
                        }
                    }
                    form.stack method="post" action=(action("comment")) {
                        (csrf)
                        label { "Comment" textarea name="text" required maxlength="2000" rows="2" {} }
                        button type="submit" { "Add comment" }
                    }
                    @if wo.assigned_worker_id.is_some() {
                        form.stack method="post" action=(action("message")) {
                            (csrf)
                            label { "Message to the worker" textarea name="text" required maxlength="1000" rows="2" {} }
                            button type="submit" { "Send" }
                        }
                    }
                    form.stack method="post" action=(action("cancel")) {
                        (csrf)
                        label { "Reason for cancelling (optional)" input type="text" name="reason" maxlength="500"; }
                        label.check { input type="checkbox" name="confirm" value="yes" required; "Yes, cancel it (it cannot be reopened)" }
                        button.danger type="submit" { "Cancel work order" }
                    }
                }
            } @else {
                form.stack method="post" action=(action("comment")) {
                    (csrf)
                    label { "Comment" textarea name="text" required maxlength="2000" rows="2" {} }
                    button type="submit" { "Add comment" }
                }
            }
            h2 { "Timeline" }
            ol.timeline {
                @for entry in timeline { (event(coordinator, entry)) }
            }
        },
    )
}

pub fn new_form(
    coordinator: &Coordinator,
    lookups: &Lookups,
    input: &NewInput,
    error: Option<&str>,
) -> Markup {
    let choose = |name: &str, label: &str, chosen: &str, options: &[(Uuid, String)]| {
        html! {
            label { (label)
                select name=(name) {
                    option value="" { "None" }
                    @for (id, text) in options {
                        @let value = id.to_string();
                        option value=(value) selected[value == chosen] { (text) }
                    }
                }
            }
        }
    };
    layout(
        "New work order",
        Some(coordinator),
        html! {
            p { a href="/panel/work-orders" { "← Work orders" } }
            h1 { "New work order" }
            @if let Some(error) = error {
                p.alert role="alert" { (error) }
            }
            form.stack.wide method="post" action="/panel/work-orders" {
                input type="hidden" name="csrf_token" value=(coordinator.csrf_token);
                label { "Kind"
                    select name="kind" {
                        @for kind in ["maintenance", "housekeeping"] {
                            option value=(kind) selected[input.kind == kind] { (kind) }
                        }
                    }
                }
                label { "Title" input type="text" name="title" value=(input.title) required maxlength="200"; }
                label { "Description" textarea name="description" maxlength="4000" rows="3" { (input.description) } }
                label { "Priority"
                    select name="priority" {
                        @for p in PRIORITIES {
                            option value=(p) selected[input.priority == *p] { (p) }
                        }
                    }
                }
                (choose("site", "Site", &input.site, &lookups.sites))
                label { "Room, floor or spot" input type="text" name="location_detail" value=(input.location_detail) maxlength="500"; }
                (choose("asset", "Asset", &input.asset, &lookups.assets))
                label { "Trade needed (plumbing, electrical, hvac, cleaning, ...)" input type="text" name="required_specialty" value=(input.required_specialty); }
                label { "Requester's phone (kept informed by message)" input type="text" name="requester_phone" value=(input.requester_phone) placeholder="+251911234567" autocomplete="off"; }
                label { "Scheduled for (" (coordinator.time_zone) ")" input type="datetime-local" name="scheduled_at" value=(input.scheduled_at); }
                label { "Expected duration, minutes" input type="text" name="expected_duration_minutes" value=(input.expected_duration_minutes) inputmode="numeric"; }
                button type="submit" { "Create and dispatch" }
            }
        },
    )
}
