//! `/visits`: coordinators schedule home-care visits and sign caregivers' phones out.

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{app::DateQuery, auth::ApiCaller};
use crate::{
    app::AppState,
    domains::care::{
        app_auth,
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
