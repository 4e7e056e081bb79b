//! The JSON API under `/api/v1`: bearer-token auth scoped to one tenant, and its OpenAPI document.

pub mod ambulances;
pub mod app;
pub mod assets;
pub mod auth;
pub mod channels;
mod crud;
pub mod messages;
pub mod patient_voice;
pub mod patients;
pub mod records;
pub mod sites;
pub mod trips;
pub mod visits;
pub mod work_orders;
pub mod worker_sites;
pub mod workers;

use axum::{Json, Router, routing::get};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;

use crate::http::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Fieldline API", description = "Coordinate field teams that work by WhatsApp and SMS. Every call needs `Authorization: Bearer <api token>`; the token decides the organisation."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(crate::http::error::ErrorBody, crate::http::error::ErrorDetail, crate::http::error::FieldError))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("fl_api_...")
                    .build(),
            ),
        );
    }
}

/// The documented routes and the document itself come from the same list, so they cannot drift.
fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(sites::routes())
        .merge(workers::routes())
        .merge(worker_sites::routes())
        .merge(patients::routes())
        .merge(assets::routes())
        .merge(ambulances::routes())
        .merge(channels::routes())
        .merge(messages::routes())
        .merge(work_orders::routes())
        .merge(visits::routes())
        .merge(patient_voice::routes())
        .merge(trips::routes())
        .merge(app::routes())
        .merge(records::routes())
}

/// The OpenAPI document, with paths as clients call them (under `/api/v1`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = documented().split_for_parts();
    doc.servers = Some(vec![utoipa::openapi::Server::new("/api/v1")]);
    doc
}

pub fn router() -> Router<AppState> {
    let (router, _) = documented().split_for_parts();
    let doc = openapi();
    router.route("/openapi.json", get(move || async move { Json(doc) }))
}
