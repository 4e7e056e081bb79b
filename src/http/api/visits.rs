//! `/visits` and `/assignments`: coordinators schedule home-care visits (one-off, or recurring
//! from an assignment), cancel and reassign them, and sign caregivers' phones out.

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{app::DateQuery, auth::ApiCaller};
use crate::{
    app::AppState,
    domains::care::{
        app_auth,
        schedule::{self, Assignment, NewAssignment, Scope},
        visits::{self, NewVisit, Visit},
    },
    error::AppResult,
    http::extract::{self, Path, Query},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_visits, create_visit))
        .routes(routes!(get_visit))
        .routes(routes!(revoke_app_tokens))
        .routes(routes!(cancel_visit))
        .routes(routes!(reassign_visit))
        .routes(routes!(list_assignments, create_assignment))
        .routes(routes!(cancel_assignment))
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
    let mut tx = state.pool.begin().await?;
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
    let mut tx = state.pool.begin().await?;
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
    responses((status = 200, body = Changed), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
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
    responses((status = 200, body = Changed), (status = 404, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
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
    responses((status = 201, body = Assignment), (status = 422, body = crate::error::ErrorBody)))]
async fn create_assignment(
    State(state): State<AppState>,
    caller: ApiCaller,
    extract::Json(input): extract::Json<NewAssignment>,
) -> AppResult<(StatusCode, Json<Assignment>)> {
    let mut tx = state.pool.begin().await?;
    let assignment = schedule::create(&mut tx, caller.tenant_id, input).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(assignment)))
}

#[utoipa::path(get, path = "/assignments", tag = "visits",
    responses((status = 200, body = [Assignment]), (status = 401, body = crate::error::ErrorBody)))]
async fn list_assignments(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> AppResult<Json<Vec<Assignment>>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(schedule::list(&mut conn, caller.tenant_id).await?))
}

/// End an assignment: its visits to come are cancelled and the caregiver told.
#[utoipa::path(post, path = "/assignments/{id}/cancel", tag = "visits", request_body = Cancellation,
    responses((status = 200, body = Changed), (status = 404, body = crate::error::ErrorBody)))]
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
    responses((status = 200, body = Changed), (status = 404, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
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
    responses((status = 201, body = Visit), (status = 422, body = crate::error::ErrorBody)))]
async fn create_visit(
    State(state): State<AppState>,
    caller: ApiCaller,
    extract::Json(input): extract::Json<NewVisit>,
) -> AppResult<(StatusCode, Json<Visit>)> {
    let mut tx = state.pool.begin().await?;
    let visit = visits::create(&mut tx, caller.tenant_id, input).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(visit)))
}

/// The visits on a day (the organisation's time zone), every caregiver's.
#[utoipa::path(get, path = "/visits", tag = "visits", params(DateQuery),
    responses((status = 200, body = [Visit]), (status = 401, body = crate::error::ErrorBody)))]
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
    responses((status = 200, body = Visit), (status = 404, body = crate::error::ErrorBody)))]
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
    responses((status = 200, body = Revoked), (status = 404, body = crate::error::ErrorBody)))]
async fn revoke_app_tokens(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
) -> AppResult<Json<Revoked>> {
    let mut conn = state.pool.acquire().await?;
    let revoked = app_auth::revoke(&mut conn, caller.tenant_id, id).await?;
    Ok(Json(Revoked { revoked }))
}
