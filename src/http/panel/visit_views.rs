//! The visit pages' HTML.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use maud::{Markup, html};
use uuid::Uuid;

use super::map;
use super::{
    session::Coordinator,
    views::{fallback_words, lang_of, layout, when},
};
use crate::channels::ChannelKind;
use crate::domains::care::{
    exceptions::{RESOLUTIONS, VisitException},
    schedule::AssignmentStatus,
    visits::{EventKind, Visit, VisitStatus},
};
use crate::messaging::MessageStatus;

#[derive(Debug, sqlx::FromRow)]
pub struct EventRow {
    pub kind: EventKind,
    pub method: String,
    pub at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub accuracy_m: Option<f64>,
    pub distance_m: Option<f64>,
    pub verified: bool,
    pub worker: String,
}

#[derive(Debug, sqlx::FromRow)]
pub struct MessageRow {
    pub created_at: DateTime<Utc>,
    pub inbound: bool,
    /// The person at the other end (the caregiver, or a coordinator alerted about the visit).
    pub party: String,
    pub channel_kind: ChannelKind,
    pub body: Option<String>,
    pub status: MessageStatus,
    pub fallback_reason: Option<String>,
}

fn tz(coordinator: &Coordinator) -> chrono_tz::Tz {
    crate::types::TimeZone::stored(&coordinator.time_zone)
}

fn hm(coordinator: &Coordinator, at: DateTime<Utc>) -> String {
    at.with_timezone(&tz(coordinator))
        .format("%H:%M")
        .to_string()
}

fn words(s: &str) -> String {
    s.replace('_', " ")
}

/// What the board calls the visit: late is a flag on a scheduled visit, not a status.
fn board_state(v: &Visit) -> &'static str {
    match v.status {
        VisitStatus::Scheduled if v.late => "late",
        VisitStatus::Scheduled => "scheduled",
        VisitStatus::InProgress => "in progress",
        VisitStatus::Completed => "completed",
        VisitStatus::Missed => "missed",
        VisitStatus::Cancelled => "cancelled",
    }
}

fn metres(m: Option<f64>) -> String {
    m.map(|m| format!("{m:.0} m")).unwrap_or_else(|| "-".into())
}

#[allow(clippy::too_many_arguments)]
pub fn board(
    coordinator: &Coordinator,
    date: NaiveDate,
    (rows, tiles): (&[Visit], Option<&crate::config::MapTiles>),
    caregivers: &[(Uuid, String)],
    open: &[(Uuid, String)],
    choosable_caregivers: &[(Uuid, String)],
    patients: &[(Uuid, String)],
    error: Option<&str>,
) -> Markup {
    let name = |id: Uuid| {
        caregivers
            .iter()
            .find(|(c, _)| *c == id)
            .map(|(_, n)| n.as_str())
            .unwrap_or("-")
    };
    let states = ["scheduled", "in progress", "late", "missed", "completed"];
    let count = |state: &str| rows.iter().filter(|v| board_state(v) == state).count();
    layout(
        "Visits",
        Some(coordinator),
        html! {
            h1 { "Visits on " (date.format("%A %d %B %Y")) }
            @if let Some(error) = error { p.alert role="alert" { (error) } }
            p {
                a href=(format!("/panel/visits?date={}", date - TimeDelta::days(1))) { "← previous day" } " · "
                a href=(format!("/panel/visits?date={}", date + TimeDelta::days(1))) { "next day →" } " · "
                a href="/panel/visit-exceptions" { "Exception queue" } " · "
                a href="/panel/assignments" { "Recurring assignments" }
            }
            ul.cards.compact aria-label="Visits by state" {
                @for state in states {
                    li.card { h2 { (state) } div.figure { (count(state)) } }
                }
            }
            details {
                summary { "Schedule one visit" }
                form.stack.wide method="post" action="/panel/visits" {
                    input type="hidden" name="csrf_token" value=(coordinator.csrf_token);
                    label { "Caregiver"
                        select name="caregiver_id" required {
                            option value="" { "Choose" }
                            @for (id, name) in choosable_caregivers { option value=(id) { (name) } }
                        }
                    }
                    label { "Patient"
                        select name="patient_id" required {
                            option value="" { "Choose" }
                            @for (id, name) in patients { option value=(id) { (name) } }
                        }
                    }
                    label { "Service" input type="text" name="service_type" value="personal_care" required; }
                    label { "Day" input type="date" name="date" value=(date) required; }
                    label { "From (" (coordinator.time_zone) ")" input type="time" name="from" required; }
                    label { "To" input type="time" name="to" required; }
                    button type="submit" { "Schedule (the caregiver gets the reminder)" }
                }
            }
            @if rows.is_empty() {
                p.muted { "No visits on this day." }
            } @else {
                (map::map(tiles, "Where the day's visits are (red: late, missed or with an open exception)", &rows.iter().filter_map(|v| {
                    let attention = v.late || v.status == VisitStatus::Missed || open.iter().any(|(id, _)| *id == v.id);
                    Some(map::Point {
                        lat: v.latitude?,
                        lon: v.longitude?,
                        label: format!("{} · {} · {}", v.patient_name, hm(coordinator, v.scheduled_start), board_state(v)),
                        kind: if attention { map::Kind::Attention } else { map::Kind::Place },
                        accuracy_m: None,
                        href: Some(format!("/panel/visits/{}", v.id)),
                    })
                }).collect::<Vec<_>>(), &[]))
                table.list.stacked {
                    thead { tr {
                        th scope="col" { "Time" } th scope="col" { "Patient" } th scope="col" { "Caregiver" }
                        th scope="col" { "Service" } th scope="col" { "State" } th scope="col" { "Check-in" }
                        th scope="col" { "Check-out" } th scope="col" { "Exceptions" }
                    } }
                    tbody {
                        @for v in rows {
                            @let codes: Vec<&str> = open.iter().filter(|(id, _)| *id == v.id).map(|(_, c)| c.as_str()).collect();
                            tr {
                                td data-label="Time" { a href=(format!("/panel/visits/{}", v.id)) { (hm(coordinator, v.scheduled_start)) "–" (hm(coordinator, v.scheduled_end)) } }
                                td data-label="Patient" { (v.patient_name) }
                                td data-label="Caregiver" { (name(v.caregiver_id)) }
                                td data-label="Service" { (words(&v.service_type)) }
                                td data-label="State" { span class=(format!("badge state-{}", board_state(v).replace(' ', "-"))) { (board_state(v)) } }
                                td data-label="Check-in" {
                                    @if let Some(at) = v.check_in_at {
                                        (hm(coordinator, at)) " · " (metres(v.check_in_distance_m))
                                        @if v.check_in_verified == Some(true) { " ✓" } @else { " " span.badge.overdue { "unverified" } }
                                    } @else { "-" }
                                }
                                td data-label="Check-out" {
                                    @if let Some(at) = v.check_out_at {
                                        (hm(coordinator, at)) " · " (metres(v.check_out_distance_m))
                                        @if v.check_out_verified == Some(true) { " ✓" } @else { " " span.badge.overdue { "unverified" } }
                                    } @else { "-" }
                                }
                                td data-label="Exceptions" {
                                    @for code in &codes { span.badge.overdue { (words(code)) } " " }
                                    @if v.manually_edited { span.badge { "edited" } }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn resolve_form(coordinator: &Coordinator, e: &VisitException, back: &str) -> Markup {
    html! {
        form.inline-grid method="post" action=(format!("/panel/visit-exceptions/{}/resolve", e.id)) {
            input type="hidden" name="csrf_token" value=(coordinator.csrf_token);
            input type="hidden" name="back" value=(back);
            label { "Reason"
                select name="resolution_code" required {
                    option value="" { "Choose" }
                    @for r in RESOLUTIONS { option value=(r) { (words(r)) } }
                }
            }
            label { "Note" input type="text" name="note" required maxlength="2000"; }
            button type="submit" { "Resolve" }
        }
    }
}

/// What a visit's page shows.
pub struct Detail<'a> {
    pub visit: &'a Visit,
    pub caregiver: &'a str,
    pub events: &'a [EventRow],
    pub messages: &'a [MessageRow],
    pub found: &'a [VisitException],
}

pub fn detail(
    coordinator: &Coordinator,
    page: Detail<'_>,
    error: Option<&str>,
    place: (Option<&crate::config::MapTiles>, Option<f64>),
) -> Markup {
    let Detail {
        visit: v,
        caregiver,
        events,
        messages,
        found,
    } = page;
    let (tiles, geofence_m) = place;
    let home = v.latitude.zip(v.longitude);
    let mut points: Vec<map::Point> = home
        .map(|(lat, lon)| map::Point {
            lat,
            lon,
            label: format!("{} · home", v.patient_name),
            kind: map::Kind::Place,
            accuracy_m: None,
            href: None,
        })
        .into_iter()
        .collect();
    points.extend(events.iter().filter_map(|e| {
        Some(map::Point {
            lat: e.latitude?,
            lon: e.longitude?,
            label: format!(
                "{} · {} · {}",
                words(e.kind.as_str()),
                hm(coordinator, e.at),
                if e.verified {
                    "verified"
                } else {
                    "not verified"
                }
            ),
            kind: if e.verified {
                map::Kind::Reading
            } else {
                map::Kind::Attention
            },
            accuracy_m: e.accuracy_m,
            href: None,
        })
    }));
    let areas: Vec<map::Area> = home
        .zip(geofence_m)
        .map(|((lat, lon), radius_m)| map::Area {
            lat,
            lon,
            radius_m,
            label: format!("Counts as at home: within {radius_m:.0} m"),
        })
        .into_iter()
        .collect();
    let local_input = |at: Option<DateTime<Utc>>| {
        at.map(|at| {
            at.with_timezone(&tz(coordinator))
                .format("%Y-%m-%dT%H:%M")
                .to_string()
        })
        .unwrap_or_default()
    };
    layout(
        "Visit",
        Some(coordinator),
        html! {
            p { a href=(format!("/panel/visits?date={}", v.scheduled_start.with_timezone(&tz(coordinator)).date_naive())) { "← Visits" } }
            h1 { (v.patient_name) " · " (when(coordinator, v.scheduled_start)) }
            @if let Some(error) = error { p.alert role="alert" { (error) } }
            dl.facts {
                dt { "Service" } dd { (words(&v.service_type)) }
                dt { "Patient" } dd { (v.patient_name) @if let Some(a) = &v.address { ", " (a) } }
                dt { "Caregiver" } dd { (caregiver) }
                dt { "Window" } dd { (when(coordinator, v.scheduled_start)) "–" (hm(coordinator, v.scheduled_end)) }
                dt { "State" } dd { (board_state(v)) @if v.manually_edited { " · times edited by hand" } }
                dt { "Check-in" } dd {
                    @if let Some(at) = v.check_in_at { (when(coordinator, at)) " · " (metres(v.check_in_distance_m)) " from home · " (if v.check_in_verified == Some(true) { "verified" } else { "not verified" }) } @else { "-" }
                }
                dt { "Check-out" } dd {
                    @if let Some(at) = v.check_out_at { (when(coordinator, at)) " · " (metres(v.check_out_distance_m)) " from home · " (if v.check_out_verified == Some(true) { "verified" } else { "not verified" }) } @else { "-" }
                }
            }
            h2 { "Exceptions" }
            @if found.is_empty() { p.muted { "None." } }
            ul.exceptions {
                @for e in found {
                    li {
                        span.badge.overdue { (words(&e.code)) } " " (e.detail) " "
                        span.muted { "(" (when(coordinator, e.created_at)) ")" }
                        @if let Some(code) = &e.resolution_code {
                            " · resolved: " (words(code)) " — " (e.resolution_note.as_deref().unwrap_or(""))
                        } @else {
                            (resolve_form(coordinator, e, "visit"))
                        }
                    }
                }
            }
            h2 { "Readings" }
            @if events.is_empty() { p.muted { "No check-in or check-out yet." } }
            (map::map(tiles, "The patient's home, the geofence and the readings", &points, &areas))
            ol.timeline {
                @for e in events {
                    li {
                        span.time { (when(coordinator, e.at)) }
                        strong { (words(e.kind.as_str())) } " by " (e.worker) " via " (e.method) " · " (metres(e.distance_m)) " from home"
                        @if let Some(a) = e.accuracy_m.filter(|a| *a > 0.0) { " (±" (format!("{a:.0}")) " m)" }
                        " · " (if e.verified { "verified" } else { "not verified" })
                        @if (e.received_at - e.at).num_minutes().abs() >= 1 { " · arrived " (hm(coordinator, e.received_at)) }
                        @if let (Some(lat), Some(lon)) = (e.latitude, e.longitude) {
                            " · " a href=(format!("https://maps.google.com/?q={lat:.5},{lon:.5}")) rel="noopener noreferrer" { "map" }
                        }
                    }
                }
            }
            h2 { "Messages" }
            ol.timeline {
                @for m in messages {
                    li class=(if m.inbound { "message inbound" } else { "message outbound" }) {
                        span.time { (when(coordinator, m.created_at)) }
                        @if m.inbound { "From " (m.party) } @else { "To " (m.party) }
                        " (" (m.channel_kind) ")"
                        @if !m.inbound { " · " span.badge { (m.status) } }
                        @if let Some(reason) = &m.fallback_reason { " · " span.badge { (fallback_words(reason)) } }
                        blockquote lang=[m.body.as_deref().and_then(lang_of)] { (m.body.as_deref().unwrap_or("(shared location)")) }
                    }
                }
            }
            @if v.status == VisitStatus::Scheduled && v.scheduled_start > Utc::now() {
                h2 { "Cancel" }
                form.stack.wide method="post" action=(format!("/panel/visits/{}/cancel", v.id)) {
                    input type="hidden" name="csrf_token" value=(coordinator.csrf_token);
                    label { "Reason (optional)" input type="text" name="reason" maxlength="500"; }
                    button.danger type="submit" { "Cancel this visit (the caregiver is told)" }
                }
            }
            @if v.status != VisitStatus::Cancelled {
                h2 { "Correct the times" }
                form.stack.wide method="post" action=(format!("/panel/visits/{}/correct", v.id)) {
                    input type="hidden" name="csrf_token" value=(coordinator.csrf_token);
                    label { "Check-in (" (coordinator.time_zone) ")" input type="datetime-local" name="check_in_at" value=(local_input(v.check_in_at)); }
                    label { "Check-out" input type="datetime-local" name="check_out_at" value=(local_input(v.check_out_at)); }
                    label { "Why (kept in the audit log with the original times)" input type="text" name="reason" required maxlength="2000"; }
                    button type="submit" { "Save correction" }
                }
            }
        },
    )
}

pub fn queue(coordinator: &Coordinator, open: &[VisitException]) -> Markup {
    layout(
        "Exception queue",
        Some(coordinator),
        html! {
            p { a href="/panel/visits" { "← Visits" } }
            h1 { "Exception queue (" (open.len()) ")" }
            @if open.is_empty() { p.muted { "Nothing to look at." } }
            table.list.stacked {
                tbody {
                    @for e in open {
                        tr {
                            td data-label="Exception" { span.badge.overdue { (words(&e.code)) } }
                            td data-label="Visit" {
                                a href=(format!("/panel/visits/{}", e.visit_id)) { (e.patient_name) " · " (when(coordinator, e.scheduled_start)) }
                                " · " (e.caregiver_name) div.muted { (e.detail) }
                            }
                            td data-label="Resolve" { (resolve_form(coordinator, e, "queue")) }
                        }
                    }
                }
            }
        },
    )
}

#[derive(Debug, sqlx::FromRow)]
pub struct AssignmentRow {
    pub id: Uuid,
    pub caregiver: String,
    pub patient: String,
    pub service_type: String,
    pub days_of_week: Vec<i16>,
    pub shift_start: chrono::NaiveTime,
    pub shift_end: chrono::NaiveTime,
    pub starts_on: NaiveDate,
    pub ends_on: Option<NaiveDate>,
    pub status: AssignmentStatus,
}

/// The "new assignment" form as typed (days come as repeated checkboxes).
#[derive(Debug, Default)]
pub struct AssignmentForm {
    pub caregiver_id: String,
    pub patient_id: String,
    pub service_type: String,
    pub starts_on: String,
    pub ends_on: String,
    pub shift_start: String,
    pub shift_end: String,
    pub days: Vec<i16>,
}

impl AssignmentForm {
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let mut form = Self::default();
        for (key, value) in pairs {
            match key.as_str() {
                "caregiver_id" => form.caregiver_id = value.clone(),
                "patient_id" => form.patient_id = value.clone(),
                "service_type" => form.service_type = value.clone(),
                "starts_on" => form.starts_on = value.clone(),
                "ends_on" => form.ends_on = value.clone(),
                "shift_start" => form.shift_start = value.clone(),
                "shift_end" => form.shift_end = value.clone(),
                "day" => form.days.extend(value.parse::<i16>().ok()),
                _ => {}
            }
        }
        form
    }
}

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

pub fn assignments(
    coordinator: &Coordinator,
    rows: &[AssignmentRow],
    caregivers: &[(Uuid, String)],
    patients: &[(Uuid, String)],
    form: &AssignmentForm,
    error: Option<&str>,
) -> Markup {
    let days = |d: &[i16]| {
        d.iter()
            .filter_map(|n| DAY_NAMES.get((*n as usize).wrapping_sub(1)))
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    };
    layout(
        "Assignments",
        Some(coordinator),
        html! {
            p { a href="/panel/visits" { "← Visits" } }
            h1 { "Recurring assignments" }
            @if let Some(error) = error { p.alert role="alert" { (error) } }
            table.list.stacked {
                thead { tr {
                    th scope="col" { "Caregiver" } th scope="col" { "Patient" } th scope="col" { "Service" }
                    th scope="col" { "Days" } th scope="col" { "Hours" } th scope="col" { "From – to" }
                    th scope="col" { "Status" } th scope="col" { "" }
                } }
                tbody {
                    @for a in rows {
                        tr {
                            td data-label="Caregiver" { (a.caregiver) } td data-label="Patient" { (a.patient) } td data-label="Service" { (words(&a.service_type)) }
                            td data-label="Days" { (days(&a.days_of_week)) }
                            td data-label="Hours" { (a.shift_start.format("%H:%M")) "–" (a.shift_end.format("%H:%M")) }
                            td data-label="From – to" { (a.starts_on) " – " (a.ends_on.map(|d| d.to_string()).unwrap_or_else(|| "…".into())) }
                            td data-label="Status" { (a.status) }
                            td {
                                @if a.status == AssignmentStatus::Active {
                                    details {
                                        summary { "Change or end" }
                                        form.inline-grid method="post" action=(format!("/panel/assignments/{}/change", a.id)) {
                                            input type="hidden" name="csrf_token" value=(coordinator.csrf_token);
                                            @for (i, name) in DAY_NAMES.iter().enumerate() {
                                                label.check { input type="checkbox" name="day" value=(i + 1) checked[a.days_of_week.contains(&((i + 1) as i16))]; (name) }
                                            }
                                            label { "From" input type="time" name="shift_start" value=(a.shift_start.format("%H:%M")) required; }
                                            label { "To" input type="time" name="shift_end" value=(a.shift_end.format("%H:%M")) required; }
                                            label { "Last day" input type="date" name="ends_on" value=(a.ends_on.map(|d| d.to_string()).unwrap_or_default()); }
                                            button type="submit" { "Save" }
                                        }
                                        form.inline-grid method="post" action=(format!("/panel/assignments/{}/reassign", a.id)) {
                                            input type="hidden" name="csrf_token" value=(coordinator.csrf_token);
                                            label { "Give to"
                                                select name="caregiver_id" required {
                                                    option value="" { "Choose" }
                                                    @for (id, name) in caregivers { option value=(id) { (name) } }
                                                }
                                            }
                                            button type="submit" { "Reassign" }
                                        }
                                        form.inline-grid method="post" action=(format!("/panel/assignments/{}/cancel", a.id)) {
                                            input type="hidden" name="csrf_token" value=(coordinator.csrf_token);
                                            label { "Reason (optional)" input type="text" name="reason" maxlength="500"; }
                                            button.danger type="submit" { "End it: visits to come are cancelled" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "New assignment" }
            form.stack.wide method="post" action="/panel/assignments" {
                input type="hidden" name="csrf_token" value=(coordinator.csrf_token);
                label { "Caregiver"
                    select name="caregiver_id" required {
                        option value="" { "Choose" }
                        @for (id, name) in caregivers { option value=(id) selected[id.to_string() == form.caregiver_id] { (name) } }
                    }
                }
                label { "Patient"
                    select name="patient_id" required {
                        option value="" { "Choose" }
                        @for (id, name) in patients { option value=(id) selected[id.to_string() == form.patient_id] { (name) } }
                    }
                }
                label { "Service" input type="text" name="service_type" value=(form.service_type) required; }
                fieldset {
                    legend { "Days" }
                    @for (i, name) in DAY_NAMES.iter().enumerate() {
                        label.check { input type="checkbox" name="day" value=(i + 1) checked[form.days.contains(&((i + 1) as i16))]; (name) }
                    }
                }
                label { "From (" (coordinator.time_zone) ")" input type="time" name="shift_start" value=(form.shift_start) required; }
                label { "To" input type="time" name="shift_end" value=(form.shift_end) required; }
                label { "First day" input type="date" name="starts_on" value=(form.starts_on) required; }
                label { "Last day (optional)" input type="date" name="ends_on" value=(form.ends_on); }
                button type="submit" { "Create (visits are made 14 days ahead)" }
            }
        },
    )
}
