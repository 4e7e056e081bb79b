//! `/audit-log`, `/patients/{id}/export`, `/patients/{id}/erasure` and `/data-requests`: who
//! changed what, and a patient's data on request (admins only).

use axum::{
    Json,
    extract::State,
    response::{Html, IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::auth::ApiCaller;
use crate::{
    audit::{self, LogFilter, LogRow},
    domains::privacy::{
        self, DataRequest, RequestKind,
        erasure::{self, Erased},
        export,
    },
    http::AppState,
    http::error::{AppError, AppResult},
    http::extract::{self, Path, Query},
    http::panel::privacy::summary_page,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit_log))
        .routes(routes!(export_patient))
        .routes(routes!(erase_patient))
        .routes(routes!(list_data_requests))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditLogFilter {
    /// One record's history: rows about it.
    pub record: Option<Uuid>,
    /// A table: work_orders, visits, patients, ...
    pub entity_type: Option<String>,
    /// user, api_token, worker, contact, system or cli.
    pub actor_kind: Option<String>,
    pub actor_id: Option<Uuid>,
    /// From this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Rows before this sequence number: pass the last row's `seq` for the next page.
    pub before_seq: Option<i64>,
    /// At most this many rows (1 to 500, default 100).
    pub limit: Option<i64>,
}

const ACTOR_KINDS: &[&str] = &[
    "user",
    "api_token",
    "worker",
    "contact",
    "system",
    "cli",
    "unknown",
];

/// The organisation's audit log, newest first: every change with who made it, when, from which
/// request and address, and the fields before and after.
#[utoipa::path(get, path = "/audit-log", tag = "records", params(AuditLogFilter),
    responses((status = 200, body = [LogRow]), (status = 400, body = crate::http::error::ErrorBody)))]
async fn list_audit_log(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(filter): Query<AuditLogFilter>,
) -> AppResult<Json<Vec<LogRow>>> {
    if let Some(kind) = &filter.actor_kind
        && !ACTOR_KINDS.contains(&kind.as_str())
    {
        return Err(AppError::field(
            "actor_kind",
            format!("use one of: {}", ACTOR_KINDS.join(", ")),
        ));
    }
    let limit = filter.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(AppError::field("limit", "must be between 1 and 500"));
    }
    let rows = audit::list(
        &state.pool,
        caller.tenant_id,
        &LogFilter {
            record: filter.record,
            entity_type: filter.entity_type,
            actor_kind: filter.actor_kind,
            actor_id: filter.actor_id,
            since: filter.since,
            until: filter.until,
            before_seq: filter.before_seq,
            limit,
        },
    )
    .await?;
    Ok(Json(rows))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportFormat {
    /// `json` (the default: machine-readable, article 20) or `html` (a readable summary,
    /// article 15).
    pub format: Option<String>,
}

/// Everything held about a patient: record, contacts, consent history, visits with their
/// readings, messages both ways, feedback, complaints, surveys and trips. Recorded as a
/// fulfilled data request. Admins only.
#[utoipa::path(get, path = "/patients/{id}/export", tag = "records", params(ExportFormat),
    responses((status = 200, description = "The patient's data as JSON, or a readable HTML summary with format=html"),
              (status = 403, body = crate::http::error::ErrorBody), (status = 404, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody)))]
async fn export_patient(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    Query(format): Query<ExportFormat>,
) -> AppResult<Response> {
    caller.require_admin("export a patient's data")?;
    let kind = match format.format.as_deref() {
        None | Some("json") => RequestKind::Portability,
        Some("html") => RequestKind::Access,
        Some(_) => return Err(AppError::field("format", "use json or html")),
    };
    let document = export::export(&state.pool, caller.tenant_id, id, kind, caller.actor()).await?;
    Ok(match kind {
        RequestKind::Access => Html(summary_page(&document).into_string()).into_response(),
        _ => Json(document).into_response(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    /// Why, in a few words (the person's request and its date); kept with the request.
    pub reason: String,
}

/// Erases a patient's personal data: names, numbers, addresses, positions, message texts and
/// media files. Visit and trip times, ratings and counts stay; the audit log records that the
/// erasure happened, not the erased values, and still verifies. Messages from the patient's
/// number afterwards are treated as from a stranger. Admins only; cannot be undone.
#[utoipa::path(post, path = "/patients/{id}/erasure", tag = "records", request_body = ErasureRequest,
    responses((status = 200, body = Erased), (status = 403, body = crate::http::error::ErrorBody),
              (status = 404, body = crate::http::error::ErrorBody), (status = 409, body = crate::http::error::ErrorBody),
              (status = 422, body = crate::http::error::ErrorBody)))]
async fn erase_patient(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<ErasureRequest>,
) -> AppResult<Json<Erased>> {
    caller.require_admin("erase a patient's data")?;
    let erased = erasure::erase(
        &state.pool,
        &state.config.data_dir,
        caller.tenant_id,
        id,
        &input.reason,
        caller.actor(),
    )
    .await?;
    Ok(Json(erased))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DataRequestFilter {
    pub patient_id: Option<Uuid>,
}

/// The data requests fulfilled: exports and erasures, with who asked and when. Admins only.
#[utoipa::path(get, path = "/data-requests", tag = "records", params(DataRequestFilter),
    responses((status = 200, body = [DataRequest]), (status = 403, body = crate::http::error::ErrorBody)))]
async fn list_data_requests(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(filter): Query<DataRequestFilter>,
) -> AppResult<Json<Vec<DataRequest>>> {
    caller.require_admin("see data requests")?;
    Ok(Json(
        privacy::requests(&state.pool, caller.tenant_id, filter.patient_id).await?,
    ))
}
