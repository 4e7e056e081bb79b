//! `/visits` and `/assignments`: coordinators schedule home-care visits (one-off, or recurring
//! from an assignment), cancel and reassign them, and sign caregivers' phones out.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{app::DateQuery, auth::ApiCaller};
use crate::{
    audit,
    domains::care::{
        app_auth,
        exceptions::{self, Correction, Resolution, VisitException},
        export::{self, ExportRow},
        schedule::{self, Assignment, AssignmentChange, NewAssignment, Scope},
        visits::{self, NewVisit, Visit},
    },
    http::AppState,
    http::error::{AppError, AppResult},
    http::extract::{self, Path, Query},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_visits, create_visit))
        .routes(routes!(get_visit))
        .routes(routes!(revoke_app_tokens))
        .routes(routes!(export_visits))
        .routes(routes!(correct_visit))
        .routes(routes!(list_exceptions))
        .routes(routes!(resolve_exception))
        .routes(routes!(cancel_visit))
        .routes(routes!(reassign_visit))
        .routes(routes!(list_assignments, create_assignment))
        .routes(routes!(cancel_assignment))
        .routes(routes!(change_assignment))
        .routes(routes!(reassign_assignment))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cancellation {
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reassignment {
    pub caregiver_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Changed {
    /// How many visits to come were changed (and their caregivers told).
    pub visits: u64,
}

async fn cancel_in(
    state: &AppState,
    caller: &ApiCaller,
    scope: Scope,
    input: Cancellation,
) -> AppResult<Json<Changed>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let visits = schedule::cancel(
        &mut tx,
        &state.messaging.templates,
        caller.tenant_id,
        scope,
        input.reason.as_deref(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Changed { visits }))
}

async fn reassign_in(
    state: &AppState,
    caller: &ApiCaller,
    scope: Scope,
    input: Reassignment,
) -> AppResult<Json<Changed>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let visits = schedule::reassign(
        &mut tx,
        &state.messaging.templates,
        caller.tenant_id,
        scope,
        input.caregiver_id,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Changed { visits }))
}

/// Cancel a visit still to come; the caregiver is told not to go.
#[utoipa::path(post, path = "/visits/{id}/cancel", tag = "visits", request_body = Cancellation,
    responses((status = 200, body = Changed), (status = 404, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody)))]
async fn cancel_visit(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<Cancellation>,
) -> AppResult<Json<Changed>> {
    cancel_in(&state, &caller, Scope::Visit(id), input).await
}

/// Give a visit still to come to another caregiver; both are told.
#[utoipa::path(post, path = "/visits/{id}/reassign", tag = "visits", request_body = Reassignment,
    responses((status = 200, body = Changed), (status = 404, body = crate::http::error::ErrorBody),
              (status = 422, body = crate::http::error::ErrorBody)))]
async fn reassign_visit(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<Reassignment>,
) -> AppResult<Json<Changed>> {
    reassign_in(&state, &caller, Scope::Visit(id), input).await
}

/// A recurring assignment: the caregiver visits the patient on these days at these local times.
/// Its visits for the next 14 days are created at once, and kept 14 days ahead.
#[utoipa::path(post, path = "/assignments", tag = "visits", request_body = NewAssignment,
    responses((status = 201, body = Assignment), (status = 422, body = crate::http::error::ErrorBody)))]
async fn create_assignment(
    State(state): State<AppState>,
    caller: ApiCaller,
    extract::Json(input): extract::Json<NewAssignment>,
) -> AppResult<(StatusCode, Json<Assignment>)> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let assignment = schedule::create(&mut tx, caller.tenant_id, input).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(assignment)))
}

#[utoipa::path(get, path = "/assignments", tag = "visits",
    responses((status = 200, body = [Assignment]), (status = 401, body = crate::http::error::ErrorBody)))]
async fn list_assignments(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> AppResult<Json<Vec<Assignment>>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(schedule::list(&mut conn, caller.tenant_id).await?))
}

/// End an assignment: its visits to come are cancelled and the caregiver told.
#[utoipa::path(post, path = "/assignments/{id}/cancel", tag = "visits", request_body = Cancellation,
    responses((status = 200, body = Changed), (status = 404, body = crate::http::error::ErrorBody)))]
async fn cancel_assignment(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<Cancellation>,
) -> AppResult<Json<Changed>> {
    cancel_in(&state, &caller, Scope::Assignment(id), input).await
}

/// Give an assignment, and its visits to come, to another caregiver; both are told.
#[utoipa::path(post, path = "/assignments/{id}/reassign", tag = "visits", request_body = Reassignment,
    responses((status = 200, body = Changed), (status = 404, body = crate::http::error::ErrorBody),
              (status = 422, body = crate::http::error::ErrorBody)))]
async fn reassign_assignment(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<Reassignment>,
) -> AppResult<Json<Changed>> {
    reassign_in(&state, &caller, Scope::Assignment(id), input).await
}

/// Schedule a one-off visit.
#[utoipa::path(post, path = "/visits", tag = "visits", request_body = NewVisit,
    responses((status = 201, body = Visit), (status = 422, body = crate::http::error::ErrorBody)))]
async fn create_visit(
    State(state): State<AppState>,
    caller: ApiCaller,
    extract::Json(input): extract::Json<NewVisit>,
) -> AppResult<(StatusCode, Json<Visit>)> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let visit = visits::create(&mut tx, caller.tenant_id, input).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(visit)))
}

/// The visits on a day (the organisation's time zone), every caregiver's.
#[utoipa::path(get, path = "/visits", tag = "visits", params(DateQuery),
    responses((status = 200, body = [Visit]), (status = 401, body = crate::http::error::ErrorBody)))]
async fn list_visits(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(query): Query<DateQuery>,
) -> AppResult<Json<Vec<Visit>>> {
    let mut conn = state.pool.acquire().await?;
    let date = match query.date {
        Some(date) => date,
        None => visits::today(&mut conn, caller.tenant_id).await?,
    };
    Ok(Json(
        visits::on_date(&mut conn, caller.tenant_id, date, None).await?,
    ))
}

#[utoipa::path(get, path = "/visits/{id}", tag = "visits",
    responses((status = 200, body = Visit), (status = 404, body = crate::http::error::ErrorBody)))]
async fn get_visit(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
) -> AppResult<Json<Visit>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(visits::get(&mut conn, caller.tenant_id, id).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub revoked: u64,
}

/// Sign a worker's phones out: every app token of theirs stops working at once.
#[utoipa::path(post, path = "/workers/{id}/app-tokens/revoke", tag = "visits",
    responses((status = 200, body = Revoked), (status = 404, body = crate::http::error::ErrorBody)))]
async fn revoke_app_tokens(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
) -> AppResult<Json<Revoked>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let revoked = app_auth::revoke(&mut tx, caller.tenant_id, id).await?;
    tx.commit().await?;
    Ok(Json(Revoked { revoked }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// First day, YYYY-MM-DD (the organisation's time zone).
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
    /// csv (default) or json.
    pub format: Option<String>,
}

/// Electronic visit verification export: one row per visit with the six elements (service,
/// patient, caregiver, date, location, start and end), verification, exception codes and the
/// manual-edit flag. At most 366 days at a time.
#[utoipa::path(get, path = "/visits/export", tag = "visits", params(ExportQuery),
    responses((status = 200, body = [ExportRow], description = "JSON, or text/csv with the same columns"),
              (status = 422, body = crate::http::error::ErrorBody)))]
async fn export_visits(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(query): Query<ExportQuery>,
) -> AppResult<Response> {
    if query.to < query.from {
        return Err(AppError::field("to", "must not be before from"));
    }
    if (query.to - query.from).num_days() > 366 {
        return Err(AppError::field("to", "export at most 366 days at a time"));
    }
    let mut conn = state.pool.acquire().await?;
    let rows = export::rows(&mut conn, caller.tenant_id, query.from, query.to).await?;
    match query.format.as_deref().unwrap_or("csv") {
        "json" => Ok(Json(rows).into_response()),
        "csv" => {
            let body = export::to_csv(&rows)?;
            let file = format!(
                "attachment; filename=\"visits-{}-{}.csv\"",
                query.from, query.to
            );
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (header::CONTENT_DISPOSITION, file),
                ],
                body,
            )
                .into_response())
        }
        other => Err(AppError::field(
            "format",
            format!("{other:?}: use csv or json"),
        )),
    }
}

/// Correct a visit's check-in and/or check-out time by hand. The visit is marked manually
/// edited and the audit log keeps the original times, who changed them, when and why.
#[utoipa::path(post, path = "/visits/{id}/correct", tag = "visits", request_body = Correction,
    responses((status = 200, body = Visit), (status = 404, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody)))]
async fn correct_visit(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<Correction>,
) -> AppResult<Json<Visit>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    exceptions::correct(&mut tx, caller.tenant_id, id, &input).await?;
    let visit = visits::get(&mut tx, caller.tenant_id, id).await?;
    tx.commit().await?;
    Ok(Json(visit))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExceptionQuery {
    /// false: resolved ones too (default true).
    pub open: Option<bool>,
    pub visit_id: Option<Uuid>,
}

/// The exception queue.
#[utoipa::path(get, path = "/visit-exceptions", tag = "visits", params(ExceptionQuery),
    responses((status = 200, body = [VisitException])))]
async fn list_exceptions(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(query): Query<ExceptionQuery>,
) -> AppResult<Json<Vec<VisitException>>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        exceptions::list(
            &mut conn,
            caller.tenant_id,
            query.open.unwrap_or(true),
            query.visit_id,
        )
        .await?,
    ))
}

/// Resolve an exception with a reason code and a note.
#[utoipa::path(post, path = "/visit-exceptions/{id}/resolve", tag = "visits", request_body = Resolution,
    responses((status = 204), (status = 404, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody)))]
async fn resolve_exception(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<Resolution>,
) -> AppResult<StatusCode> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    exceptions::resolve(&mut tx, caller.tenant_id, id, &input, None).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change an assignment's days, hours or last day. Visits to come that no longer fit are
/// removed and new ones made; the caregiver hears of each.
#[utoipa::path(post, path = "/assignments/{id}/change", tag = "visits", request_body = AssignmentChange,
    responses((status = 200, body = Assignment), (status = 404, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody)))]
async fn change_assignment(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<AssignmentChange>,
) -> AppResult<Json<Assignment>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let assignment = schedule::change(
        &mut tx,
        &state.messaging.templates,
        caller.tenant_id,
        id,
        input,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(assignment))
}
