//! `/api/v1/ambulances`: the ambulance records, through the shared record handlers.

use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domains::ambulance::ambulances::{
        self, Ambulance, AmbulanceFilter, AmbulanceInput, AmbulancePage,
    },
    http::error::AppResult,
    http::{AppState, api::auth::ApiCaller, extract::Query},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_ambulances, create))
        .routes(routes!(get, update, delete))
}

/// List the organisation's ambulances.
#[utoipa::path(get, path = "/ambulances", tag = "ambulances", params(AmbulanceFilter),
    responses((status = 200, body = AmbulancePage), (status = 401, body = crate::http::error::ErrorBody)))]
async fn list_ambulances(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(filter): Query<AmbulanceFilter>,
) -> AppResult<axum::Json<AmbulancePage>> {
    Ok(axum::Json(
        ambulances::list(&state.pool, caller.tenant_id, &filter).await?,
    ))
}

super::crud::crud_handlers!(
    resource = Ambulance,
    input = AmbulanceInput,
    name = "ambulance",
    collection = "/ambulances",
    item = "/ambulances/{id}",
    tag = "ambulances"
);
