//! `/app/...`: the caregivers' phone app. Sign-in by a code sent to the phone; every other call
//! carries the app token, which decides the worker and the organisation.

use axum::{
    Json,
    extract::{FromRequestParts, State},
    http::{StatusCode, request::Parts},
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    audit::{self, Actor},
    domains::care::{
        app_auth::{self, AppSession},
        visits::{self, EventKind, EventResult, Reading, Visit, Vitals},
    },
    http::AppState,
    http::error::{AppError, AppResult},
    http::extract::{self, Path, Query},
    types::Coordinates,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(verify))
        .routes(routes!(my_visits))
        .routes(routes!(check_in))
        .routes(routes!(check_out))
        .routes(routes!(report_my_position))
}

/// A caregiver signed in on the app.
pub struct AppWorker {
    pub tenant_id: Uuid,
    pub worker_id: Uuid,
}

impl FromRequestParts<AppState> for AppWorker {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AppError::Unauthorized(
                    "send the app token: Authorization: Bearer <token> (sign in with POST /api/v1/app/login)".into(),
                )
            })?;
        match app_auth::authenticate(&state.pool, token)
            .await
            .map_err(AppError::Unavailable)?
        {
            Some((tenant_id, worker_id)) => Ok(Self {
                tenant_id,
                worker_id,
            }),
            None => Err(AppError::Unauthorized(
                "the app token is unknown, expired or was revoked: sign in again".into(),
            )),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The caregiver's number in E.164, as the organisation has it.
    pub phone: String,
    /// The organisation's short name: needed only when the number works for several.
    pub organisation: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginAccepted {
    pub message: &'static str,
}

/// Ask for a sign-in code. It goes to the number by WhatsApp or SMS, lasts 10 minutes and allows
/// 5 attempts. The answer is the same whether or not the number belongs to a caregiver.
#[utoipa::path(post, path = "/app/login", tag = "app", request_body = LoginRequest, security(()),
    responses((status = 202, body = LoginAccepted), (status = 422, body = crate::http::error::ErrorBody),
              (status = 429, body = crate::http::error::ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    extract::ClientAddress(address): extract::ClientAddress,
    extract::Json(input): extract::Json<LoginRequest>,
) -> AppResult<(StatusCode, Json<LoginAccepted>)> {
    in_even_time(app_auth::request_code(
        &state.pool,
        &state.messaging.templates,
        &input.phone,
        input.organisation.as_deref(),
        address,
    ))
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(LoginAccepted {
            message: "if this number belongs to a caregiver, a code is on its way",
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub phone: String,
    pub organisation: Option<String>,
    /// The 6 digits received.
    pub code: String,
}

/// Exchange the code for the app token (valid 30 days; a coordinator can revoke it).
#[utoipa::path(post, path = "/app/verify", tag = "app", request_body = VerifyRequest, security(()),
    responses((status = 200, body = AppSession), (status = 401, body = crate::http::error::ErrorBody),
              (status = 429, body = crate::http::error::ErrorBody)))]
async fn verify(
    State(state): State<AppState>,
    extract::Json(input): extract::Json<VerifyRequest>,
) -> AppResult<Json<AppSession>> {
    Ok(Json(
        in_even_time(app_auth::verify_code(
            &state.pool,
            &input.phone,
            input.organisation.as_deref(),
            &input.code,
        ))
        .await?,
    ))
}

/// Sign-in answers take no less than this: sending a caregiver their code took ~5 ms against
/// ~2 ms for a number of no one, which told the two apart however alike the answers were.
const SIGN_IN_ANSWER_FLOOR: std::time::Duration = std::time::Duration::from_millis(40);

/// Runs a sign-in step and answers no sooner than [`SIGN_IN_ANSWER_FLOOR`] after it began.
async fn in_even_time<T>(step: impl std::future::Future<Output = T>) -> T {
    let floor = tokio::time::Instant::now() + SIGN_IN_ANSWER_FLOOR;
    let outcome = step.await;
    tokio::time::sleep_until(floor).await;
    outcome
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DateQuery {
    /// YYYY-MM-DD in the organisation's time zone; today when left out.
    pub date: Option<NaiveDate>,
}

/// The signed-in caregiver's visits on a day, with each patient's name, address and position.
#[utoipa::path(get, path = "/app/visits", tag = "app", params(DateQuery),
    responses((status = 200, body = [Visit]), (status = 401, body = crate::http::error::ErrorBody)))]
async fn my_visits(
    State(state): State<AppState>,
    me: AppWorker,
    Query(query): Query<DateQuery>,
) -> AppResult<Json<Vec<Visit>>> {
    let mut conn = state.pool.acquire().await?;
    let date = match query.date {
        Some(date) => date,
        None => visits::today(&mut conn, me.tenant_id).await?,
    };
    Ok(Json(
        visits::on_date(&mut conn, me.tenant_id, date, Some(me.worker_id)).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInput {
    pub latitude: f64,
    pub longitude: f64,
    /// The reading's accuracy radius in metres, as the phone reports it.
    pub accuracy_m: f64,
    /// When the phone took the reading (it may have been offline since).
    pub device_time: DateTime<Utc>,
    /// The phone's own id for this event: a retry with the same id changes nothing and gets
    /// the first answer.
    pub client_event_id: String,
    /// Standing in for the scheduled caregiver (raises a wrong_caregiver exception).
    #[serde(default)]
    pub covering: bool,
    /// Check-out only: what was done.
    pub notes: Option<String>,
    /// Check-out only: measurements taken.
    pub vitals: Option<Vitals>,
}

fn reading(input: CheckInput) -> AppResult<Reading> {
    let position = Coordinates::new(input.latitude, input.longitude)
        .map_err(|(field, message)| AppError::field(field, message))?;
    Ok(Reading {
        position: Some(position),
        accuracy_m: Some(input.accuracy_m),
        device_time: Some(input.device_time),
        client_event_id: Some(input.client_event_id),
        method: "app",
        covering: input.covering,
        notes: input.notes,
        vitals: input.vitals,
        ..Reading::default()
    })
}

async fn record(
    state: &AppState,
    me: &AppWorker,
    id: Uuid,
    kind: EventKind,
    reading: Reading,
) -> AppResult<Json<EventResult>> {
    let mut tx = audit::begin(&state.pool, Actor::Worker(me.worker_id)).await?;
    let result = visits::record(&mut tx, me.tenant_id, me.worker_id, id, kind, reading).await?;
    tx.commit().await?;
    Ok(Json(result))
}

/// Check in with the phone's position. The answer says whether the position was verified
/// against the patient's home and which exceptions the reading raised.
#[utoipa::path(post, path = "/app/visits/{id}/check-in", tag = "app", request_body = CheckInput,
    responses((status = 200, body = EventResult), (status = 403, body = crate::http::error::ErrorBody),
              (status = 404, body = crate::http::error::ErrorBody), (status = 409, body = crate::http::error::ErrorBody),
              (status = 422, body = crate::http::error::ErrorBody)))]
async fn check_in(
    State(state): State<AppState>,
    me: AppWorker,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<CheckInput>,
) -> AppResult<Json<EventResult>> {
    if input.notes.is_some() || input.vitals.is_some() {
        return Err(AppError::field(
            "notes",
            "notes and vitals go with the check-out",
        ));
    }
    record(&state, &me, id, EventKind::CheckIn, reading(input)?).await
}

/// Check out, with the visit's notes and optional vitals.
#[utoipa::path(post, path = "/app/visits/{id}/check-out", tag = "app", request_body = CheckInput,
    responses((status = 200, body = EventResult), (status = 403, body = crate::http::error::ErrorBody),
              (status = 404, body = crate::http::error::ErrorBody), (status = 409, body = crate::http::error::ErrorBody),
              (status = 422, body = crate::http::error::ErrorBody)))]
async fn check_out(
    State(state): State<AppState>,
    me: AppWorker,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<CheckInput>,
) -> AppResult<Json<EventResult>> {
    record(&state, &me, id, EventKind::CheckOut, reading(input)?).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MyPosition {
    pub latitude: f64,
    pub longitude: f64,
    pub accuracy_m: Option<f64>,
}

/// A crew member's phone reports where their vehicle is (the one on whose roster they are).
#[utoipa::path(post, path = "/app/position", tag = "app", request_body = MyPosition,
    responses((status = 204), (status = 401, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody)))]
async fn report_my_position(
    State(state): State<AppState>,
    me: AppWorker,
    extract::Json(input): extract::Json<MyPosition>,
) -> AppResult<axum::http::StatusCode> {
    let at = Coordinates::new(input.latitude, input.longitude)
        .map_err(|(field, message)| AppError::field(field, message))?;
    if input
        .accuracy_m
        .is_some_and(|a| !(0.0..=100_000.0).contains(&a))
    {
        return Err(AppError::field(
            "accuracy_m",
            "must be between 0 and 100000",
        ));
    }
    let mut tx = audit::begin(&state.pool, Actor::Worker(me.worker_id)).await?;
    let vehicle: Option<Uuid> = sqlx::query_scalar(
        "SELECT ambulance_id FROM ambulance_crew_members
         WHERE tenant_id = $1 AND worker_id = $2 AND active AND ambulance_id IS NOT NULL",
    )
    .bind(me.tenant_id)
    .bind(me.worker_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(vehicle) = vehicle else {
        return Err(AppError::Conflict(
            "you are on no ambulance's crew: ask your coordinator to put you on one".into(),
        ));
    };
    crate::domains::ambulance::trips::record_position(
        &mut tx,
        me.tenant_id,
        vehicle,
        Some(me.worker_id),
        at,
        input.accuracy_m,
        "app",
    )
    .await?;
    tx.commit().await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
