//! `/api/v1/patients`: the patient records, through the shared record handlers.

use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domains::directory::patients::{self, Patient, PatientFilter, PatientInput, PatientPage},
    http::error::AppResult,
    http::{AppState, api::auth::ApiCaller, extract::Query},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_patients, create))
        .routes(routes!(get, update, delete))
}

/// List the organisation's patients.
#[utoipa::path(get, path = "/patients", tag = "patients", params(PatientFilter),
    responses((status = 200, body = PatientPage), (status = 401, body = crate::http::error::ErrorBody)))]
async fn list_patients(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(filter): Query<PatientFilter>,
) -> AppResult<axum::Json<PatientPage>> {
    Ok(axum::Json(
        patients::list(&state.pool, caller.tenant_id, &filter).await?,
    ))
}

super::crud::crud_handlers!(
    resource = Patient,
    input = PatientInput,
    name = "patient",
    collection = "/patients",
    item = "/patients/{id}",
    tag = "patients"
);
