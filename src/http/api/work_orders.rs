//! `/work-orders`: report, read and follow maintenance and housekeeping jobs.

use crate::domains::maintenance::state::{Priority, Status};
use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::http::extract::Query;

use super::auth::ApiCaller;
use crate::{
    audit,
    domains::{
        crud,
        maintenance::work_orders::{self, Actor, NewWorkOrder, WorkOrder},
    },
    http::AppState,
    http::error::AppResult,
    http::extract::{self, Path},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_work_orders, create_work_order))
        .routes(routes!(get_work_order))
        .routes(routes!(work_order_history))
        .routes(routes!(assign_work_order))
        .routes(routes!(cancel_work_order))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkOrderAssignment {
    pub worker_id: Uuid,
}

/// Assign or reassign by hand. The worker gets the dispatch message; a previous worker is told
/// the job went to someone else.
#[utoipa::path(post, path = "/work-orders/{id}/assign", tag = "work orders", request_body = WorkOrderAssignment,
    responses((status = 200, body = WorkOrder), (status = 400, body = crate::http::error::ErrorBody),
              (status = 404, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody)))]
async fn assign_work_order(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<WorkOrderAssignment>,
) -> AppResult<Json<WorkOrder>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let order = work_orders::assign_by_hand(
        &mut tx,
        &state.messaging.templates,
        caller.tenant_id,
        id,
        input.worker_id,
        Actor::Coordinator(None),
        "api",
    )
    .await?;
    tx.commit().await?;
    Ok(Json(order))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cancellation {
    pub reason: Option<String>,
}

/// Cancel. The assigned worker is told not to go.
#[utoipa::path(post, path = "/work-orders/{id}/cancel", tag = "work orders", request_body = Cancellation,
    responses((status = 200, body = WorkOrder), (status = 400, body = crate::http::error::ErrorBody),
              (status = 404, body = crate::http::error::ErrorBody)))]
async fn cancel_work_order(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<Cancellation>,
) -> AppResult<Json<WorkOrder>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let order = work_orders::cancel(
        &mut tx,
        &state.messaging.templates,
        caller.tenant_id,
        id,
        input.reason.as_deref(),
        Actor::Coordinator(None),
        "api",
    )
    .await?;
    tx.commit().await?;
    Ok(Json(order))
}

/// Report a work order. It is assigned to the best available worker at once and dispatched by
/// WhatsApp (SMS without it); the history says who was chosen and why.
#[utoipa::path(post, path = "/work-orders", tag = "work orders", request_body = NewWorkOrder,
    responses((status = 201, body = WorkOrder), (status = 422, body = crate::http::error::ErrorBody)))]
async fn create_work_order(
    State(state): State<AppState>,
    caller: ApiCaller,
    extract::Json(input): extract::Json<NewWorkOrder>,
) -> AppResult<(StatusCode, Json<WorkOrder>)> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let order = work_orders::create(
        &mut tx,
        &state.messaging.templates,
        caller.tenant_id,
        input,
        Actor::Coordinator(None),
        "api",
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(order)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WorkOrderFilter {
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub site_id: Option<Uuid>,
    pub worker_id: Option<Uuid>,
    /// `true`: only work past its scheduled time and not started, or past its expected duration.
    pub overdue: Option<bool>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub after: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkOrderPage {
    pub items: Vec<WorkOrder>,
    pub next_cursor: Option<Uuid>,
}

/// List work orders, oldest first.
#[utoipa::path(get, path = "/work-orders", tag = "work orders", params(WorkOrderFilter),
    responses((status = 200, body = WorkOrderPage), (status = 401, body = crate::http::error::ErrorBody)))]
async fn list_work_orders(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(filter): Query<WorkOrderFilter>,
) -> AppResult<Json<WorkOrderPage>> {
    let limit = crud::page_size(filter.limit)?;
    let wanted = work_orders::Filter {
        status: filter.status,
        priority: filter.priority,
        site_id: filter.site_id,
        worker_id: filter.worker_id,
        overdue: filter.overdue.unwrap_or(false),
        after: filter.after,
        ..Default::default()
    };
    let mut conn = state.pool.acquire().await?;
    let rows = work_orders::list(&mut conn, caller.tenant_id, &wanted, limit).await?;
    let (items, next_cursor) = crud::into_page(rows, limit, |w| w.id);
    Ok(Json(WorkOrderPage { items, next_cursor }))
}

#[utoipa::path(get, path = "/work-orders/{id}", tag = "work orders",
    responses((status = 200, body = WorkOrder), (status = 404, body = crate::http::error::ErrorBody)))]
async fn get_work_order(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
) -> AppResult<Json<WorkOrder>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        work_orders::get(&mut conn, caller.tenant_id, id).await?,
    ))
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct HistoryEntry {
    pub from_status: Option<Status>,
    pub to_status: Status,
    pub actor_kind: String,
    pub actor_worker_id: Option<Uuid>,
    pub channel: String,
    pub note: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub created_at: DateTime<Utc>,
}

/// Every step of a work order: who, how and why.
#[utoipa::path(get, path = "/work-orders/{id}/history", tag = "work orders",
    responses((status = 200, body = Vec<HistoryEntry>), (status = 404, body = crate::http::error::ErrorBody)))]
async fn work_order_history(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
) -> AppResult<Json<Vec<HistoryEntry>>> {
    let mut conn = state.pool.acquire().await?;
    work_orders::get(&mut conn, caller.tenant_id, id).await?;
    Ok(Json(
        sqlx::query_as(
            "SELECT from_status, to_status, actor_kind, actor_worker_id, channel, note, latitude,
                    longitude, created_at
             FROM work_order_status_history WHERE tenant_id = $1 AND work_order_id = $2
             ORDER BY created_at, id",
        )
        .bind(caller.tenant_id)
        .bind(id)
        .fetch_all(&mut *conn)
        .await?,
    ))
}
