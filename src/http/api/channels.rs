//! `/channels`: an organisation's numbers, for admins wiring up providers.

use axum::{Json, extract::State, http::StatusCode};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::ApiCaller;
use crate::{
    audit,
    http::AppState,
    http::error::AppResult,
    http::extract,
    messaging::channels::{self, Channel, NewChannel},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_channels, add_channel))
}

/// List the organisation's channels.
#[utoipa::path(get, path = "/channels", tag = "channels",
    responses((status = 200, body = Vec<Channel>), (status = 401, body = crate::http::error::ErrorBody)))]
async fn list_channels(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> AppResult<Json<Vec<Channel>>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(channels::list(&mut conn, caller.tenant_id).await?))
}

/// Add a number. Provider credentials come from the server's environment, never from here.
#[utoipa::path(post, path = "/channels", tag = "channels", request_body = NewChannel,
    responses((status = 201, body = Channel), (status = 403, body = crate::http::error::ErrorBody), (status = 409, body = crate::http::error::ErrorBody),
              (status = 422, body = crate::http::error::ErrorBody)))]
async fn add_channel(
    State(state): State<AppState>,
    caller: ApiCaller,
    extract::Json(input): extract::Json<NewChannel>,
) -> AppResult<(StatusCode, Json<Channel>)> {
    caller.require_admin("add a number")?;
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let channel = channels::add(&mut tx, caller.tenant_id, &input).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(channel)))
}
