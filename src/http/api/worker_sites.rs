//! `/api/v1/workers/{id}/sites`: which sites a worker covers.

use axum::{Json, extract::State};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    domains::directory::worker_sites::{self, SiteCoverage},
    http::error::AppResult,
    http::{
        AppState,
        api::auth::ApiCaller,
        extract::{self, Path},
    },
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_worker_sites, set_worker_sites))
}

/// The sites a worker covers.
#[utoipa::path(get, path = "/workers/{id}/sites", tag = "workers",
    responses((status = 200, body = Vec<SiteCoverage>), (status = 404, body = crate::http::error::ErrorBody)))]
async fn get_worker_sites(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
) -> AppResult<Json<Vec<SiteCoverage>>> {
    Ok(Json(
        worker_sites::get(&state.pool, caller.tenant_id, id).await?,
    ))
}

/// Replace the sites a worker covers (an empty list removes them all).
#[utoipa::path(put, path = "/workers/{id}/sites", tag = "workers", request_body = Vec<SiteCoverage>,
    responses((status = 200, body = Vec<SiteCoverage>), (status = 404, body = crate::http::error::ErrorBody),
              (status = 422, body = crate::http::error::ErrorBody)))]
async fn set_worker_sites(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(sites): extract::Json<Vec<SiteCoverage>>,
) -> AppResult<Json<Vec<SiteCoverage>>> {
    let actor = caller.actor();
    Ok(Json(
        worker_sites::replace(&state.pool, caller.tenant_id, actor, id, &sites).await?,
    ))
}
