//! `/api/v1/assets`: the asset records, through the shared record handlers.

use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domains::maintenance::assets::{self, Asset, AssetFilter, AssetInput, AssetPage},
    http::error::AppResult,
    http::{AppState, api::auth::ApiCaller, extract::Query},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_assets, create))
        .routes(routes!(get, update, delete))
}

/// List the organisation's assets.
#[utoipa::path(get, path = "/assets", tag = "assets", params(AssetFilter),
    responses((status = 200, body = AssetPage), (status = 401, body = crate::http::error::ErrorBody)))]
async fn list_assets(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(filter): Query<AssetFilter>,
) -> AppResult<axum::Json<AssetPage>> {
    Ok(axum::Json(
        assets::list(&state.pool, caller.tenant_id, &filter).await?,
    ))
}

super::crud::crud_handlers!(
    resource = Asset,
    input = AssetInput,
    name = "asset",
    collection = "/assets",
    item = "/assets/{id}",
    tag = "assets"
);
