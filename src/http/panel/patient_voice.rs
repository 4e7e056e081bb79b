//! Patients' voice in the panel: the complaint queue by deadline with its clocks, a complaint's
//! page (timeline, answer by message, actions, severity, assignee, status), the feedback inbox,
//! and the survey trends with a chart per worker. Every query is the coordinator's tenant's.

use axum::{
    Router,
    extract::{Path, State},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::{Coordinator, CsrfForm, not_found, views::layout, views::when};
use crate::{
    audit::Actor,
    domains::patients::{
        VoiceError,
        complaints::{
            self, ActionKind, Complaint, ComplaintChange, ComplaintStatus, Severity, StatusChange,
            TimelineEntry,
        },
        feedback::{self, Feedback, FeedbackStatus, Response as Answer},
        trends::{self, GroupBy, TrendCell},
    },
    http::AppState,
    http::error::AppError,
    http::extract::Query,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/complaints", get(queue))
        .route("/complaints/{id}", get(detail))
        .route("/complaints/{id}/respond", post(respond))
        .route("/complaints/{id}/action", post(action))
        .route("/complaints/{id}/change", post(change))
        .route("/complaints/{id}/status", post(status))
        .route("/feedback", get(inbox))
        .route("/feedback/trends", get(trends_page))
        .route("/feedback/{id}/status", post(feedback_status))
        .route("/feedback/{id}/respond", post(feedback_respond))
}

#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    status: String,
    /// What the last action did, or why it was refused.
    #[serde(default)]
    done: String,
    #[serde(default)]
    error: String,
}

fn notices(filter: &Filter) -> Markup {
    html! {
        @if !filter.done.is_empty() { p.notice role="status" { (filter.done) } }
        @if !filter.error.is_empty() { p.alert role="alert" { (filter.error) } }
    }
}

fn clock(case: &Complaint) -> Markup {
    let label = match case.clock.as_str() {
        "overdue" => "overdue",
        "due_soon" => "due soon",
        "on_track" => "on track",
        _ => "done",
    };
    html! { span class=(format!("badge clock-{}", case.clock)) { (label) } }
}

async fn queue(
    State(state): State<AppState>,
    coordinator: Coordinator,
    Query(filter): Query<Filter>,
) -> Result<Html<String>, AppError> {
    let status = match filter.status.as_str() {
        "" => None,
        raw => Some(
            raw.parse::<ComplaintStatus>()
                .map_err(|m| AppError::field("status", m))?,
        ),
    };
    let mut conn = state.pool.acquire().await?;
    let cases = complaints::list(&mut conn, coordinator.tenant_id, status).await?;
    let body = html! {
        h1 { "Complaints" }
        (notices(&filter))
        form.filters method="get" action="/panel/complaints" {
            label { "Status "
                select name="status" {
                    option value="" { "Any" }
                    @for s in ["open", "investigating", "reopened", "resolved", "closed"] {
                        option value=(s) selected[filter.status == s] { (s) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        @if cases.is_empty() {
            p.muted { "No complaints." }
        } @else {
            table.stacked {
                thead { tr { th { "Case" } th { "Deadline" } th { "Severity" } th { "Status" } th { "About" } th { "Assigned" } } }
                tbody {
                    @for c in &cases {
                        tr {
                            td data-label="Case" { a href=(format!("/panel/complaints/{}", c.id)) { (c.reference) } }
                            td data-label="Deadline" {
                                (clock(c))
                                @if let Some(due) = c.next_due_at { " " (when(&coordinator, due)) }
                            }
                            td data-label="Severity" { (c.severity) }
                            td data-label="Status" { (c.status) }
                            td data-label="About" { (c.description.chars().take(100).collect::<String>()) }
                            td data-label="Assigned" { (c.assignee_name.as_deref().unwrap_or("—")) }
                        }
                    }
                }
            }
        }
    };
    Ok(Html(
        layout("Complaints", Some(&coordinator), body).into_string(),
    ))
}

fn timeline_line(coordinator: &Coordinator, entry: &TimelineEntry) -> Markup {
    let what = match entry.kind.as_str() {
        "message_in" => "From the complainant",
        "message_out" => "To the complainant",
        "complainant_wrote" => "The complainant added",
        other => other,
    };
    html! {
        li {
            time { (when(coordinator, entry.at)) } " · " strong { (what) }
            @if let Some(by) = &entry.by { " · " (by) }
            @if let Some(text) = &entry.text { p { (text) } }
        }
    }
}

async fn detail(
    State(state): State<AppState>,
    coordinator: Coordinator,
    Path(id): Path<Uuid>,
    Query(filter): Query<Filter>,
) -> Result<Response, AppError> {
    let mut conn = state.pool.acquire().await?;
    let case = match complaints::get(&mut conn, coordinator.tenant_id, id).await {
        Ok(case) => case,
        Err(VoiceError::NotFound(_)) => return Ok(not_found(&coordinator, "complaint")),
        Err(other) => return Err(other.into()),
    };
    let timeline = complaints::timeline(&mut conn, coordinator.tenant_id, id).await?;
    let users: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, COALESCE(full_name, email) FROM users WHERE tenant_id = $1 AND active ORDER BY 2",
    )
    .bind(coordinator.tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    let csrf = &coordinator.csrf_token;
    let base = format!("/panel/complaints/{id}");
    let body = html! {
        h1 { "Complaint " (case.reference) }
        (notices(&filter))
        dl.facts {
            dt { "Deadline" } dd { (clock(&case)) @if let Some(due) = case.next_due_at { " " (when(&coordinator, due)) } }
            dt { "Severity" } dd { (case.severity) }
            dt { "Status" } dd { (case.status) }
            dt { "From" } dd {
                @match (&case.patient_name, &case.complainant_phone) {
                    (Some(name), _) => { (name) }
                    (None, Some(phone)) => { (phone) }
                    (None, None) => { "unknown" }
                }
            }
            @if let Some(worker) = &case.worker_name { dt { "Worker" } dd { (worker) } }
            @if let Some(visit) = case.visit_id { dt { "Visit" } dd { a href=(format!("/panel/visits/{visit}")) { "the visit" } } }
            @if let Some(order) = case.work_order_id { dt { "Work order" } dd { a href=(format!("/panel/work-orders/{order}")) { "the work order" } } }
            dt { "Assigned" } dd { (case.assignee_name.as_deref().unwrap_or("nobody")) }
            @if let Some(resolution) = &case.resolution { dt { "Resolution" } dd { (resolution) } }
        }
        p { (case.description) }
        h2 { "Timeline" }
        ol.timeline { @for entry in &timeline { (timeline_line(&coordinator, entry)) } }
        h2 { "Answer by message" }
        form.stack method="post" action=(format!("{base}/respond")) {
            input type="hidden" name="csrf_token" value=(csrf);
            label { "Message to the complainant" textarea name="text" required maxlength="900" {} }
            button type="submit" { "Send" }
        }
        h2 { "Record an action" }
        form.stack method="post" action=(format!("{base}/action")) {
            input type="hidden" name="csrf_token" value=(csrf);
            label { "Kind"
                select name="action_type" {
                    option value="note" { "Note" }
                    option value="investigated" { "Investigation" }
                    option value="contacted" { "Contacted (by phone or in person)" }
                    option value="escalated" { "Escalated" }
                }
            }
            label { "What was done" textarea name="description" required {} }
            button type="submit" { "Record" }
        }
        h2 { "Severity and assignee" }
        form.stack method="post" action=(format!("{base}/change")) {
            input type="hidden" name="csrf_token" value=(csrf);
            label { "Severity"
                select name="severity" {
                    @for s in ["low", "medium", "high", "critical"] {
                        option value=(s) selected[case.severity.as_str() == s] { (s) }
                    }
                }
            }
            label { "Assigned to"
                select name="assigned_user_id" {
                    option value="" { "—" }
                    @for (user, name) in &users {
                        option value=(user) selected[case.assigned_user_id == Some(*user)] { (name) }
                    }
                }
            }
            button type="submit" { "Save" }
        }
        h2 { "Status" }
        form.stack method="post" action=(format!("{base}/status")) {
            input type="hidden" name="csrf_token" value=(csrf);
            label { "Move to"
                select name="status" {
                    @for s in ["investigating", "resolved", "closed", "reopened"] { option value=(s) { (s) } }
                }
            }
            label { "Resolution (sent to the complainant when resolving)" textarea name="resolution" {} }
            button type="submit" { "Change status" }
        }
    };
    Ok(Html(layout(&case.reference, Some(&coordinator), body).into_string()).into_response())
}

fn actor(coordinator: &Coordinator) -> Actor {
    Actor::User(coordinator.user_id)
}

#[derive(Deserialize)]
struct TextInput {
    #[serde(default)]
    text: String,
}

async fn respond(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<TextInput>,
) -> Result<Response, AppError> {
    super::change_then_back(
        &state,
        &coordinator,
        &format!("/panel/complaints/{id}"),
        "Message sent.",
        async |tx| {
            complaints::respond(
                tx,
                &state.messaging.templates,
                coordinator.tenant_id,
                id,
                &input.text,
                actor(&coordinator),
            )
            .await?;
            Ok(())
        },
    )
    .await
}

#[derive(Deserialize)]
struct ActionInput {
    action_type: String,
    #[serde(default)]
    description: String,
}

async fn action(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<ActionInput>,
) -> Result<Response, AppError> {
    super::change_then_back(
        &state,
        &coordinator,
        &format!("/panel/complaints/{id}"),
        "Action recorded.",
        async |tx| {
            let kind: ActionKind = input
                .action_type
                .parse()
                .map_err(|m| AppError::field("action_type", m))?;
            complaints::record_action(
                tx,
                coordinator.tenant_id,
                id,
                kind,
                &input.description,
                actor(&coordinator),
            )
            .await?;
            Ok(())
        },
    )
    .await
}

#[derive(Deserialize)]
struct ChangeInput {
    severity: String,
    #[serde(default)]
    assigned_user_id: String,
}

async fn change(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<ChangeInput>,
) -> Result<Response, AppError> {
    super::change_then_back(
        &state,
        &coordinator,
        &format!("/panel/complaints/{id}"),
        "Saved.",
        async |tx| {
            let severity: Severity = input
                .severity
                .parse()
                .map_err(|m| AppError::field("severity", m))?;
            let assigned_user_id = match input.assigned_user_id.trim() {
                "" => None,
                raw => Some(
                    raw.parse::<Uuid>()
                        .map_err(|_| AppError::field("assigned_user_id", "choose a user"))?,
                ),
            };
            let change = ComplaintChange {
                severity: Some(severity),
                assigned_user_id,
            };
            complaints::change(tx, coordinator.tenant_id, id, change, actor(&coordinator)).await?;
            Ok(())
        },
    )
    .await
}

#[derive(Deserialize)]
struct StatusInput {
    status: String,
    #[serde(default)]
    resolution: String,
}

async fn status(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<StatusInput>,
) -> Result<Response, AppError> {
    super::change_then_back(
        &state,
        &coordinator,
        &format!("/panel/complaints/{id}"),
        "Status changed.",
        async |tx| {
            let status: ComplaintStatus = input
                .status
                .parse()
                .map_err(|m| AppError::field("status", m))?;
            let resolution = Some(input.resolution.trim().to_owned()).filter(|r| !r.is_empty());
            complaints::set_status(
                tx,
                &state.messaging.templates,
                coordinator.tenant_id,
                id,
                StatusChange { status, resolution },
                actor(&coordinator),
            )
            .await?;
            Ok(())
        },
    )
    .await
}

fn fft_words(code: Option<i16>) -> &'static str {
    match code {
        Some(1) => "very good",
        Some(2) => "good",
        Some(3) => "neither good nor poor",
        Some(4) => "poor",
        Some(5) => "very poor",
        Some(6) => "don't know",
        _ => "",
    }
}

fn feedback_row(coordinator: &Coordinator, f: &Feedback) -> Markup {
    let csrf = &coordinator.csrf_token;
    html! {
        tr {
            td data-label="When" { (when(coordinator, f.created_at)) }
            td data-label="From" {
                @if f.anonymous { "anonymous (" (f.relay_token.as_deref().unwrap_or("")) ")" }
                @else { (f.patient_name.as_deref().or(f.phone.as_deref()).unwrap_or("unknown")) }
            }
            td data-label="Answer" { (fft_words(f.fft_code)) }
            td data-label="Words" { (f.comments.as_deref().unwrap_or("")) }
            td data-label="About" {
                (f.service.as_deref().unwrap_or(""))
                @if let Some(worker) = &f.worker_name { " · " (worker) }
            }
            td data-label="Status" { (f.status) }
            td data-label="Act" {
                @for (to, label) in [("reviewed", "Reviewed"), ("closed", "Close")] {
                    form.inline method="post" action=(format!("/panel/feedback/{}/status", f.id)) {
                        input type="hidden" name="csrf_token" value=(csrf);
                        input type="hidden" name="status" value=(to);
                        button.link type="submit" { (label) }
                    }
                }
                form.inline method="post" action=(format!("/panel/feedback/{}/respond", f.id)) {
                    input type="hidden" name="csrf_token" value=(csrf);
                    label { span.visually-hidden { "Answer" } input type="text" name="text" required maxlength="900" placeholder="Answer by message"; }
                    button type="submit" { "Send" }
                }
            }
        }
    }
}

async fn inbox(
    State(state): State<AppState>,
    coordinator: Coordinator,
    Query(filter): Query<Filter>,
) -> Result<Html<String>, AppError> {
    let status = match filter.status.as_str() {
        "" => None,
        raw => Some(
            raw.parse::<FeedbackStatus>()
                .map_err(|m| AppError::field("status", m))?,
        ),
    };
    let mut conn = state.pool.acquire().await?;
    let items = feedback::list(&mut conn, coordinator.tenant_id, status).await?;
    let body = html! {
        h1 { "Feedback" }
        p { a href="/panel/feedback/trends" { "Trends per worker and service" } }
        (notices(&filter))
        form.filters method="get" action="/panel/feedback" {
            label { "Status "
                select name="status" {
                    option value="" { "Any" }
                    @for s in ["new", "reviewed", "responded", "closed"] {
                        option value=(s) selected[filter.status == s] { (s) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        @if items.is_empty() { p.muted { "No feedback." } }
        @else {
            table.stacked {
                thead { tr { th { "When" } th { "From" } th { "Answer" } th { "Words" } th { "About" } th { "Status" } th { "" } } }
                tbody { @for f in &items { (feedback_row(&coordinator, f)) } }
            }
        }
    };
    Ok(Html(
        layout("Feedback", Some(&coordinator), body).into_string(),
    ))
}

#[derive(Deserialize)]
struct FeedbackStatusInput {
    status: String,
}

async fn feedback_status(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<FeedbackStatusInput>,
) -> Result<Response, AppError> {
    super::change_then_back(
        &state,
        &coordinator,
        "/panel/feedback",
        "Saved.",
        async |tx| {
            let status: FeedbackStatus = input
                .status
                .parse()
                .map_err(|m| AppError::field("status", m))?;
            feedback::set_status(tx, coordinator.tenant_id, id, status).await?;
            Ok(())
        },
    )
    .await
}

async fn feedback_respond(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<TextInput>,
) -> Result<Response, AppError> {
    super::change_then_back(
        &state,
        &coordinator,
        "/panel/feedback",
        "Answer sent.",
        async |tx| {
            feedback::respond(
                tx,
                &state.messaging.templates,
                coordinator.tenant_id,
                id,
                &Answer { text: input.text },
                actor(&coordinator),
            )
            .await?;
            Ok(())
        },
    )
    .await
}

/// Positive share per month for one worker, as bars (SVG, drawn here); months with too few
/// responses are drawn as an empty outline, labelled so.
fn worker_chart(name: &str, cells: &[&TrendCell]) -> Markup {
    let (bar_w, gap, height) = (36.0, 12.0, 100.0);
    let width = (bar_w + gap) * cells.len() as f64 + 20.0;
    html! {
        figure {
            figcaption { (name) ": very good or good, per cent of responses" }
            svg.chart role="img" viewBox=(format!("0 0 {width} {}", height + 30.0)) width=(width)
                aria-label=(format!("{name}: positive answers by month")) {
                @for (i, cell) in cells.iter().enumerate() {
                    @let x = 10.0 + i as f64 * (bar_w + gap);
                    @match cell.positive_pct {
                        Some(pct) => {
                            @let h = height * pct / 100.0;
                            rect x=(x) y=(height - h) width=(bar_w) height=(h) fill="#0b6e4f" {
                                title { (cell.period) ": " (pct) "% positive of " (cell.responses.unwrap_or(0)) }
                            }
                        }
                        None => {
                            rect x=(x) y="0" width=(bar_w) height=(height) fill="none" stroke="#999" stroke-dasharray="3" {
                                title { (cell.period) ": too few responses to show" }
                            }
                        }
                    }
                    text x=(x) y=(height + 14.0) font-size="10" { (cell.period) }
                }
            }
        }
    }
}

async fn trends_page(
    State(state): State<AppState>,
    coordinator: Coordinator,
) -> Result<Html<String>, AppError> {
    let mut conn = state.pool.acquire().await?;
    let by_worker = trends::trends(&mut conn, coordinator.tenant_id, GroupBy::Worker, 12).await?;
    let by_service = trends::trends(&mut conn, coordinator.tenant_id, GroupBy::Service, 12).await?;
    let mut workers: Vec<&str> = by_worker.iter().map(|c| c.group.as_str()).collect();
    workers.sort_unstable();
    workers.dedup();
    let table = |cells: &[TrendCell], what: &str| {
        html! {
            table.stacked {
                thead { tr { th { (what) } th { "Month" } th { "Responses" } th { "Positive" } th { "Negative" } th { "Response rate" } } }
                tbody {
                    @for c in cells {
                        tr {
                            td data-label=(what) { (c.group) }
                            td data-label="Month" { (c.period) }
                            @if c.too_few {
                                td colspan="4" data-label="Figures" { "too few responses to show" }
                            } @else {
                                td data-label="Responses" { (c.responses.unwrap_or(0)) }
                                td data-label="Positive" { (c.positive_pct.unwrap_or(0.0)) "%" }
                                td data-label="Negative" { (c.negative_pct.unwrap_or(0.0)) "%" }
                                td data-label="Response rate" { (c.response_rate_pct.unwrap_or(0.0)) "%" }
                            }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        h1 { "Survey trends" }
        p.muted { "The Friends and Family Test over the last 12 months. A month with fewer than "
            (trends::MIN_RESPONSES) " responses shows no figures, so nobody can be picked out." }
        h2 { "Per worker" }
        @for name in &workers {
            // Newest first from the query: the chart reads left to right, oldest first.
            @let cells: Vec<&TrendCell> = by_worker.iter().rev().filter(|c| c.group == *name).collect();
            (worker_chart(name, &cells))
        }
        (table(&by_worker, "Worker"))
        h2 { "Per service" }
        (table(&by_service, "Service"))
    };
    Ok(Html(
        layout("Survey trends", Some(&coordinator), body).into_string(),
    ))
}
