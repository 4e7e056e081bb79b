//! `/feedback`, `/complaints` and `/settings/feedback`: the feedback inbox, the complaint queue and
//! its handling, survey trends, and when surveys go.

use axum::{Json, extract::State};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::auth::ApiCaller;
use crate::{
    audit,
    domains::patients::{
        VoiceError,
        complaints::{
            self, ActionKind, Complaint, ComplaintChange, ComplaintStatus, StatusChange,
            TimelineEntry,
        },
        feedback::{self, Feedback, FeedbackStatus, Response},
        settings::{self, FeedbackSettings},
        trends::{self, GroupBy, TrendCell},
    },
    http::AppState,
    http::error::{AppError, AppResult},
    http::extract::{self, Path, Query},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_feedback))
        .routes(routes!(get_feedback))
        .routes(routes!(set_feedback_status))
        .routes(routes!(respond_to_feedback))
        .routes(routes!(feedback_trends))
        .routes(routes!(list_complaints))
        .routes(routes!(get_complaint, change_complaint))
        .routes(routes!(record_complaint_action))
        .routes(routes!(respond_to_complaint))
        .routes(routes!(set_complaint_status))
        .routes(routes!(get_settings, put_settings))
}

impl From<VoiceError> for AppError {
    fn from(error: VoiceError) -> Self {
        match error {
            VoiceError::Invalid(invalid) => invalid.into(),
            VoiceError::NotFound(what) => Self::NotFound(what),
            VoiceError::Conflict(message) => Self::Conflict(message),
            VoiceError::Database(error) => Self::Database(error),
            VoiceError::Internal(error) => Self::Internal(error),
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FeedbackFilter {
    /// new, reviewed, responded or closed
    pub status: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackStatusChange {
    /// reviewed or closed
    pub status: FeedbackStatus,
}

fn parse_status<T: std::str::FromStr<Err = String>>(raw: Option<&str>) -> AppResult<Option<T>> {
    raw.map(|s| s.parse::<T>().map_err(|m| AppError::field("status", m)))
        .transpose()
}

/// The feedback inbox, newest first. Anonymous items carry a relay token and nothing of the sender.
#[utoipa::path(get, path = "/feedback", tag = "feedback", params(FeedbackFilter),
    responses((status = 200, body = [Feedback]), (status = 422, body = crate::http::error::ErrorBody)))]
async fn list_feedback(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(filter): Query<FeedbackFilter>,
) -> AppResult<Json<Vec<Feedback>>> {
    let status = parse_status(filter.status.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        feedback::list(&mut conn, caller.tenant_id, status).await?,
    ))
}

#[utoipa::path(get, path = "/feedback/{id}", tag = "feedback",
    responses((status = 200, body = Feedback), (status = 404, body = crate::http::error::ErrorBody)))]
async fn get_feedback(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
) -> AppResult<Json<Feedback>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(feedback::get(&mut conn, caller.tenant_id, id).await?))
}

/// Mark feedback reviewed or closed.
#[utoipa::path(post, path = "/feedback/{id}/status", tag = "feedback", request_body = FeedbackStatusChange,
    responses((status = 200, body = Feedback), (status = 404, body = crate::http::error::ErrorBody),
              (status = 422, body = crate::http::error::ErrorBody)))]
async fn set_feedback_status(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<FeedbackStatusChange>,
) -> AppResult<Json<Feedback>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let item = feedback::set_status(&mut tx, caller.tenant_id, id, input.status).await?;
    tx.commit().await?;
    Ok(Json(item))
}

/// Answer the person by message; anonymous feedback is answered through its relay, so the number
/// is never seen.
#[utoipa::path(post, path = "/feedback/{id}/responses", tag = "feedback", request_body = Response,
    responses((status = 200, body = Feedback), (status = 404, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody)))]
async fn respond_to_feedback(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<Response>,
) -> AppResult<Json<Feedback>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let item = feedback::respond(
        &mut tx,
        &state.messaging.templates,
        caller.tenant_id,
        id,
        &input,
        caller.actor(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(item))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TrendQuery {
    /// worker (default) or service
    pub by: Option<String>,
    /// How many months back, 1–36 (default 6).
    pub months: Option<i32>,
}

/// Survey results per worker or service and month; cells under five responses are withheld.
#[utoipa::path(get, path = "/feedback/trends", tag = "feedback", params(TrendQuery),
    responses((status = 200, body = [TrendCell]), (status = 422, body = crate::http::error::ErrorBody)))]
async fn feedback_trends(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(query): Query<TrendQuery>,
) -> AppResult<Json<Vec<TrendCell>>> {
    let by = match query.by.as_deref() {
        None => GroupBy::Worker,
        Some(raw) => raw.parse().map_err(|m| AppError::field("by", m))?,
    };
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        trends::trends(&mut conn, caller.tenant_id, by, query.months.unwrap_or(6)).await?,
    ))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ComplaintFilter {
    /// open, investigating, resolved, closed or reopened
    pub status: Option<String>,
}

/// The complaint queue: open cases by their next deadline, then the rest newest first.
#[utoipa::path(get, path = "/complaints", tag = "complaints", params(ComplaintFilter),
    responses((status = 200, body = [Complaint]), (status = 422, body = crate::http::error::ErrorBody)))]
async fn list_complaints(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(filter): Query<ComplaintFilter>,
) -> AppResult<Json<Vec<Complaint>>> {
    let status: Option<ComplaintStatus> = parse_status(filter.status.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        complaints::list(&mut conn, caller.tenant_id, status).await?,
    ))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ComplaintWithTimeline {
    #[serde(flatten)]
    pub complaint: Complaint,
    pub timeline: Vec<TimelineEntry>,
}

/// A case with its timeline: actions and messages both ways.
#[utoipa::path(get, path = "/complaints/{id}", tag = "complaints",
    responses((status = 200, body = ComplaintWithTimeline), (status = 404, body = crate::http::error::ErrorBody)))]
async fn get_complaint(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
) -> AppResult<Json<ComplaintWithTimeline>> {
    let mut conn = state.pool.acquire().await?;
    let complaint = complaints::get(&mut conn, caller.tenant_id, id).await?;
    let timeline = complaints::timeline(&mut conn, caller.tenant_id, id).await?;
    Ok(Json(ComplaintWithTimeline {
        complaint,
        timeline,
    }))
}

/// Set the severity (the first-contact deadline follows until someone has made contact) or the
/// assignee.
#[utoipa::path(patch, path = "/complaints/{id}", tag = "complaints", request_body = ComplaintChange,
    responses((status = 200, body = Complaint), (status = 404, body = crate::http::error::ErrorBody),
              (status = 422, body = crate::http::error::ErrorBody)))]
async fn change_complaint(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<ComplaintChange>,
) -> AppResult<Json<Complaint>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let case = complaints::change(&mut tx, caller.tenant_id, id, input, caller.actor()).await?;
    tx.commit().await?;
    Ok(Json(case))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAction {
    /// note, investigated, contacted (meets the first-contact deadline) or escalated
    pub action_type: ActionKind,
    pub description: String,
}

/// Record what was done on a case.
#[utoipa::path(post, path = "/complaints/{id}/actions", tag = "complaints", request_body = NewAction,
    responses((status = 200, body = Complaint), (status = 404, body = crate::http::error::ErrorBody),
              (status = 422, body = crate::http::error::ErrorBody)))]
async fn record_complaint_action(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<NewAction>,
) -> AppResult<Json<Complaint>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let case = complaints::record_action(
        &mut tx,
        caller.tenant_id,
        id,
        input.action_type,
        &input.description,
        caller.actor(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(case))
}

/// Answer the complainant by message (counts as the first contact).
#[utoipa::path(post, path = "/complaints/{id}/responses", tag = "complaints", request_body = Response,
    responses((status = 200, body = Complaint), (status = 404, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody)))]
async fn respond_to_complaint(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<Response>,
) -> AppResult<Json<Complaint>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let case = complaints::respond(
        &mut tx,
        &state.messaging.templates,
        caller.tenant_id,
        id,
        &input.text,
        caller.actor(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(case))
}

/// Move a case on: investigating, resolved (with the resolution, sent to the complainant with a
/// satisfaction survey), closed, or reopened.
#[utoipa::path(post, path = "/complaints/{id}/status", tag = "complaints", request_body = StatusChange,
    responses((status = 200, body = Complaint), (status = 404, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody)))]
async fn set_complaint_status(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<StatusChange>,
) -> AppResult<Json<Complaint>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let case = complaints::set_status(
        &mut tx,
        &state.messaging.templates,
        caller.tenant_id,
        id,
        input,
        caller.actor(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(case))
}

/// When surveys go and the days complaint deadlines skip.
#[utoipa::path(get, path = "/settings/feedback", tag = "feedback",
    responses((status = 200, body = FeedbackSettings)))]
async fn get_settings(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> AppResult<Json<FeedbackSettings>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(settings::load(&mut conn, caller.tenant_id).await?))
}

/// Replace the survey timing and the holidays (an admin token).
#[utoipa::path(put, path = "/settings/feedback", tag = "feedback", request_body = FeedbackSettings,
    responses((status = 200, body = FeedbackSettings), (status = 403, body = crate::http::error::ErrorBody),
              (status = 422, body = crate::http::error::ErrorBody)))]
async fn put_settings(
    State(state): State<AppState>,
    caller: ApiCaller,
    extract::Json(input): extract::Json<FeedbackSettings>,
) -> AppResult<Json<FeedbackSettings>> {
    caller.require_admin("change the survey settings")?;
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let saved = settings::save(&mut tx, caller.tenant_id, &input).await?;
    tx.commit().await?;
    Ok(Json(saved))
}
