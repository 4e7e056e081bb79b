//! `/api/v1/workers`: the worker records, through the shared record handlers.

use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domains::directory::workers::{self, Worker, WorkerFilter, WorkerInput, WorkerPage},
    http::error::AppResult,
    http::{AppState, api::auth::ApiCaller, extract::Query},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_workers, create))
        .routes(routes!(get, update, delete))
}

/// List the organisation's workers.
#[utoipa::path(get, path = "/workers", tag = "workers", params(WorkerFilter),
    responses((status = 200, body = WorkerPage), (status = 401, body = crate::http::error::ErrorBody)))]
async fn list_workers(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(filter): Query<WorkerFilter>,
) -> AppResult<axum::Json<WorkerPage>> {
    Ok(axum::Json(
        workers::list(&state.pool, caller.tenant_id, &filter).await?,
    ))
}

super::crud::crud_handlers!(
    resource = Worker,
    input = WorkerInput,
    name = "worker",
    collection = "/workers",
    item = "/workers/{id}",
    tag = "workers"
);
