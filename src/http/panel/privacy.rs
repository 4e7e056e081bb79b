//! Records in the panel: any record's history from the audit log, the patients list, and a
//! patient's data on request (export and erasure, admins only).

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{Coordinator, CsrfForm, not_found, views::layout, views::when};
use crate::{
    audit::{self, LogFilter, LogRow},
    domains::{
        directory::patients::{self, PatientFilter},
        privacy::{self, DataRequest, RequestKind, erasure, export},
        tenancy::Role,
    },
    http::AppState,
    http::error::AppError,
    http::extract::Query,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/history", get(history))
        .route("/patients", get(patient_list))
        .route("/patients/{id}", get(patient_page))
        .route("/patients/{id}/export", get(export_summary))
        .route("/patients/{id}/export.json", get(export_json))
        .route("/patients/{id}/erase", post(erase))
}

#[derive(Debug, Default, Deserialize)]
struct HistoryFilter {
    record: Option<Uuid>,
    #[serde(default)]
    actor_kind: String,
    before_seq: Option<i64>,
}

const PAGE: i64 = 100;

/// The audit log: one record's history with `?record=`, or everything, newest first.
async fn history(
    State(state): State<AppState>,
    coordinator: Coordinator,
    Query(filter): Query<HistoryFilter>,
) -> Result<Html<String>, AppError> {
    let rows = audit::list(
        &state.pool,
        coordinator.tenant_id,
        &LogFilter {
            record: filter.record,
            actor_kind: Some(filter.actor_kind.clone()).filter(|k| !k.is_empty()),
            before_seq: filter.before_seq,
            limit: PAGE,
            ..LogFilter::default()
        },
    )
    .await?;
    let title = if filter.record.is_some() {
        "History of a record"
    } else {
        "Audit log"
    };
    let older = (rows.len() as i64 == PAGE)
        .then(|| rows.last().and_then(|r| r.seq))
        .flatten();
    let body = html! {
        h1 { (title) }
        p.muted { "Every change, who made it and from where. Each entry is chained to the one before it, so an edited or removed entry shows when the log is verified (" code { "fieldline audit verify" } ")." }
        form.filters method="get" action="/panel/history" {
            @if let Some(record) = filter.record { input type="hidden" name="record" value=(record); }
            label { "Changed by "
                select name="actor_kind" {
                    @for (value, label) in [("", "anyone"), ("user", "panel users"), ("api_token", "API tokens"), ("worker", "workers"), ("contact", "people who wrote in"), ("system", "the service"), ("cli", "the command line")] {
                        option value=(value) selected[filter.actor_kind == value] { (label) }
                    }
                }
            }
            " " button type="submit" { "Show" }
        }
        @if rows.is_empty() {
            p { "Nothing recorded." }
        } @else {
            (log_table(&coordinator, &rows))
        }
        @if let Some(seq) = older {
            p { a href=(format!("/panel/history?{}before_seq={seq}{}",
                    filter.record.map(|r| format!("record={r}&")).unwrap_or_default(),
                    if filter.actor_kind.is_empty() { String::new() } else { format!("&actor_kind={}", filter.actor_kind) })) { "Older entries" } }
        }
    };
    Ok(Html(layout(title, Some(&coordinator), body).into_string()))
}

fn actor_words(row: &LogRow) -> String {
    let kind = match row.actor_kind.as_str() {
        "user" => "panel user",
        "api_token" => "API token",
        "worker" => "worker",
        "contact" => "by message",
        "system" => "the service",
        "cli" => "command line",
        _ => "unknown",
    };
    match &row.actor_name {
        Some(name) => format!("{name} ({kind})"),
        None => kind.to_owned(),
    }
}

/// Field changes as "field: before → after", one per line.
fn changes(row: &LogRow) -> Markup {
    let empty = serde_json::Map::new();
    let before = row
        .before
        .as_ref()
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let after = row
        .after
        .as_ref()
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let shown = |v: Option<&Value>| match v {
        None | Some(Value::Null) => "—".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    html! {
        @if row.redacted_by.is_some() {
            span.muted { "values erased" }
        } @else {
            ul.changes {
                @for key in keys.iter().filter(|k| !matches!(k.as_str(), "id" | "tenant_id" | "created_at")).take(12) {
                    li {
                        strong { (key) } ": "
                        @if row.action.ends_with(".update") {
                            (shown(before.get(*key))) " → "
                        }
                        (shown(after.get(*key).or(before.get(*key))))
                    }
                }
            }
        }
        @if let Some(reason) = &row.reason { p.muted { "Why: " (reason) } }
    }
}

fn log_table(coordinator: &Coordinator, rows: &[LogRow]) -> Markup {
    html! {
        table.stacked {
            thead { tr { th { "When" } th { "Who" } th { "What" } th { "Changes" } th { "Request" } } }
            tbody {
                @for row in rows {
                    tr {
                        td data-label="When" { (when(coordinator, row.created_at)) }
                        td data-label="Who" { (actor_words(row)) }
                        td data-label="What" {
                            (row.action.replace('_', " ").replace('.', ": "))
                            @if let Some(id) = row.entity_id {
                                br; a.muted href=(format!("/panel/history?record={id}")) { "record history" }
                            }
                        }
                        td data-label="Changes" { (changes(row)) }
                        td data-label="Request" {
                            span.muted { (row.request_id.as_deref().unwrap_or("—")) }
                            @if let Some(ip) = &row.ip { br; span.muted { (ip) } }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct PatientSearch {
    #[serde(default)]
    q: String,
}

async fn patient_list(
    State(state): State<AppState>,
    coordinator: Coordinator,
    Query(search): Query<PatientSearch>,
) -> Result<Html<String>, AppError> {
    let page = patients::list(
        &state.pool,
        coordinator.tenant_id,
        &PatientFilter {
            q: Some(search.q.clone()).filter(|q| !q.trim().is_empty()),
            limit: Some(100),
            ..PatientFilter::default()
        },
    )
    .await?;
    let body = html! {
        h1 { "Patients" }
        form.filters method="get" action="/panel/patients" role="search" {
            label { "Name or number " input type="search" name="q" value=(search.q); }
            " " button type="submit" { "Search" }
        }
        table.stacked {
            thead { tr { th { "Name" } th { "Phone" } th { "Address" } } }
            tbody {
                @for p in &page.items {
                    tr {
                        td data-label="Name" { a href=(format!("/panel/patients/{}", p.id)) { (p.first_name) " " (p.last_name) } }
                        td data-label="Phone" { (p.phone.as_deref().unwrap_or("—")) }
                        td data-label="Address" { (p.address_line.as_deref().unwrap_or("—")) }
                    }
                }
            }
        }
        @if page.items.is_empty() { p { "No patient matches." } }
    };
    Ok(Html(
        layout("Patients", Some(&coordinator), body).into_string(),
    ))
}

#[derive(sqlx::FromRow)]
struct PatientHead {
    first_name: String,
    last_name: String,
    phone: Option<String>,
    address_line: Option<String>,
    erased_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Deserialize)]
struct Notice {
    #[serde(default)]
    done: String,
    #[serde(default)]
    error: String,
}

async fn patient_page(
    State(state): State<AppState>,
    coordinator: Coordinator,
    Path(id): Path<Uuid>,
    Query(notice): Query<Notice>,
) -> Result<Response, AppError> {
    let head: Option<PatientHead> = sqlx::query_as(
        "SELECT first_name, last_name, phone, address_line, erased_at FROM patients
          WHERE tenant_id = $1 AND id = $2",
    )
    .bind(coordinator.tenant_id)
    .bind(id)
    .fetch_optional(&state.pool)
    .await?;
    let Some(head) = head else {
        return Ok(not_found(&coordinator, "patient"));
    };
    let admin = coordinator.role == Role::Admin;
    let requests = if admin {
        privacy::requests(&state.pool, coordinator.tenant_id, Some(id)).await?
    } else {
        vec![]
    };
    let body = html! {
        @if !notice.done.is_empty() { p.notice role="status" { (notice.done) } }
        @if !notice.error.is_empty() { p.alert role="alert" { (notice.error) } }
        h1 { (head.first_name) " " (head.last_name) }
        @if let Some(at) = head.erased_at {
            p { "This patient's personal data was erased on " (when(&coordinator, at)) ". Visit and trip times and counts remain." }
        } @else {
            dl {
                dt { "Phone" } dd { (head.phone.as_deref().unwrap_or("—")) }
                dt { "Address" } dd { (head.address_line.as_deref().unwrap_or("—")) }
            }
        }
        p { a href=(format!("/panel/history?record={id}")) { "History of this record" } }
        h2 { "Their data on request" }
        @if !admin {
            p { "Only an admin can export or erase a patient's data. Ask your organisation's admin." }
        } @else if head.erased_at.is_none() {
            p {
                a href=(format!("/panel/patients/{id}/export")) { "Readable summary of everything held" }
                " · "
                a href=(format!("/panel/patients/{id}/export.json")) download { "Download as JSON" }
            }
            form method="post" action=(format!("/panel/patients/{id}/erase")) {
                input type="hidden" name="csrf_token" value=(coordinator.csrf_token);
                fieldset {
                    legend { "Erase their personal data" }
                    p.muted { "Removes names, numbers, addresses, positions, message texts and photos. Visit and trip times, ratings and counts stay. This cannot be undone." }
                    label { "Why (their request and its date)" input type="text" name="reason" required maxlength="500"; }
                    label { input type="checkbox" name="confirm" value="yes" required; " I understand this cannot be undone" }
                    button.danger type="submit" { "Erase" }
                }
            }
        }
        @if !requests.is_empty() {
            h2 { "Requests" }
            (requests_table(&coordinator, &requests))
        }
    };
    let title = format!("{} {}", head.first_name, head.last_name);
    Ok(Html(layout(&title, Some(&coordinator), body).into_string()).into_response())
}

fn requests_table(coordinator: &Coordinator, requests: &[DataRequest]) -> Markup {
    html! {
        table.stacked {
            thead { tr { th { "Asked" } th { "Kind" } th { "Status" } th { "Fulfilled" } th { "Notes" } } }
            tbody {
                @for r in requests {
                    tr {
                        td data-label="Asked" { (when(coordinator, r.requested_at)) }
                        td data-label="Kind" { (match r.kind { RequestKind::Access => "copy (summary)", RequestKind::Portability => "copy (JSON)", RequestKind::Erasure => "erasure" }) }
                        td data-label="Status" { (r.status) }
                        td data-label="Fulfilled" { (r.fulfilled_at.map(|at| when(coordinator, at)).unwrap_or_else(|| "—".into())) }
                        td data-label="Notes" { (r.notes.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

fn admins_only(coordinator: &Coordinator) -> Option<Response> {
    (coordinator.role != Role::Admin).then(|| {
        (
            StatusCode::FORBIDDEN,
            Html(
                super::views::signed_in_message(
                    coordinator,
                    "Admins only",
                    "Only an admin can export or erase a patient's data. Ask your organisation's admin.",
                )
                .into_string(),
            ),
        )
            .into_response()
    })
}

async fn export_summary(
    State(state): State<AppState>,
    coordinator: Coordinator,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    exported(&state, &coordinator, id, RequestKind::Access, |document| {
        Html(summary_page(&document).into_string()).into_response()
    })
    .await
}

async fn export_json(
    State(state): State<AppState>,
    coordinator: Coordinator,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    exported(
        &state,
        &coordinator,
        id,
        RequestKind::Portability,
        |document| {
            let disposition = format!("attachment; filename=\"patient-{id}.json\"");
            (
                [(axum::http::header::CONTENT_DISPOSITION, disposition)],
                Json(document),
            )
                .into_response()
        },
    )
    .await
}

/// An admin's export of the patient's data, recorded as a request of `kind` and shown by `show`.
async fn exported(
    state: &AppState,
    coordinator: &Coordinator,
    id: Uuid,
    kind: RequestKind,
    show: impl FnOnce(Value) -> Response,
) -> Result<Response, AppError> {
    if let Some(refused) = admins_only(coordinator) {
        return Ok(refused);
    }
    match export::export(
        &state.pool,
        coordinator.tenant_id,
        id,
        kind,
        coordinator.actor(),
    )
    .await
    {
        Ok(document) => Ok(show(document)),
        Err(privacy::PrivacyError::NotFound) => Ok(not_found(coordinator, "patient")),
        Err(error) => Err(error.into()),
    }
}

#[derive(Debug, Deserialize)]
struct EraseInput {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: String,
}

async fn erase(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<EraseInput>,
) -> Result<Response, AppError> {
    if let Some(refused) = admins_only(&coordinator) {
        return Ok(refused);
    }
    let page = format!("/panel/patients/{id}");
    let encode = |t: &str| url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>();
    if input.confirm != "yes" {
        return Ok(Redirect::to(&format!(
            "{page}?error={}",
            encode("Tick the box to confirm: erasure cannot be undone.")
        ))
        .into_response());
    }
    match erasure::erase(
        &state.pool,
        &state.config.data_dir,
        coordinator.tenant_id,
        id,
        &input.reason,
        coordinator.actor(),
    )
    .await
    {
        Ok(erased) => Ok(Redirect::to(&format!(
            "{page}?done={}",
            encode(&format!(
                "Erased. {} files removed; the request is recorded.",
                erased.files_removed
            ))
        ))
        .into_response()),
        Err(privacy::PrivacyError::NotFound) => Ok(not_found(&coordinator, "patient")),
        Err(error) => {
            let error = AppError::from(error);
            if error.status_code().is_client_error() {
                Ok(
                    Redirect::to(&format!("{page}?error={}", encode(&error.explain())))
                        .into_response(),
                )
            } else {
                Err(error)
            }
        }
    }
}

/// A readable page of everything in an export document: each section a heading, each record a
/// list of its fields. Standalone (no panel chrome), so it can be handed to the person.
pub fn summary_page(document: &Value) -> Markup {
    let name = document["patient"]
        .as_object()
        .map(|p| {
            format!(
                "{} {}",
                p.get("first_name").and_then(Value::as_str).unwrap_or(""),
                p.get("last_name").and_then(Value::as_str).unwrap_or("")
            )
        })
        .unwrap_or_default();
    let sections = [
        ("patient", "Your record"),
        ("contacts", "Numbers we hold"),
        ("consent", "Consent"),
        ("care_assignments", "Care arrangements"),
        ("visits", "Visits"),
        ("messages", "Messages"),
        ("feedback", "Feedback"),
        ("complaints", "Complaints"),
        ("surveys", "Surveys"),
        ("trips", "Ambulance trips"),
        ("reported_work", "Problems you reported"),
        ("data_requests", "Your requests about your data"),
    ];
    html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Data held about " (name) }
                link rel="stylesheet" href="/panel/static/panel.css";
            }
            body {
                main {
                    h1 { "Data held about " (name) }
                    p.muted {
                        "By " (document["organisation"].as_str().unwrap_or("")) ", as of "
                        (document["generated_at"].as_str().unwrap_or("")) "."
                    }
                    @for (key, heading) in sections {
                        section {
                            h2 { (heading) }
                            (value_html(&document[key]))
                        }
                    }
                }
            }
        }
    }
}

fn label(key: &str) -> String {
    let words = key.replace('_', " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn value_html(value: &Value) -> Markup {
    match value {
        Value::Null => html! { span.muted { "none" } },
        Value::Array(items) if items.is_empty() => html! { p.muted { "None." } },
        Value::Array(items) => html! {
            ol { @for item in items { li { (value_html(item)) } } }
        },
        Value::Object(fields) => html! {
            dl {
                @for (key, field) in fields.iter().filter(|(k, v)| !v.is_null() && !k.ends_with("_id") && k.as_str() != "id") {
                    dt { (label(key)) }
                    dd { (value_html(field)) }
                }
            }
        },
        Value::String(s) => html! { (s) },
        other => html! { (other.to_string()) },
    }
}
