//! `/api/v1/sites`: the site records, through the shared record handlers.

use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domains::directory::sites::{self, Site, SiteFilter, SiteInput, SitePage},
    http::error::AppResult,
    http::{AppState, api::auth::ApiCaller, extract::Query},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sites, create))
        .routes(routes!(get, update, delete))
}

/// List the organisation's sites.
#[utoipa::path(get, path = "/sites", tag = "sites", params(SiteFilter),
    responses((status = 200, body = SitePage), (status = 401, body = crate::http::error::ErrorBody)))]
async fn list_sites(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(filter): Query<SiteFilter>,
) -> AppResult<axum::Json<SitePage>> {
    Ok(axum::Json(
        sites::list(&state.pool, caller.tenant_id, &filter).await?,
    ))
}

super::crud::crud_handlers!(
    resource = Site,
    input = SiteInput,
    name = "site",
    collection = "/sites",
    item = "/sites/{id}",
    tag = "sites"
);
