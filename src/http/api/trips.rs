//! `/trips` and an ambulance's crew and position: create a trip, rank the units for it, dispatch,
//! follow its steps and intervals, cancel.

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::auth::ApiCaller;
use crate::{
    audit,
    domains::ambulance::trips::{
        self, By, Intervals, NewTrip, STEPS, Suggestions, Trip, TripError, TripEvent,
    },
    error::Invalid,
    http::AppState,
    http::error::{AppError, AppResult},
    http::extract::{self, Path},
    types::Coordinates,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_trips, create_trip))
        .routes(routes!(response_report))
        .routes(routes!(get_trip))
        .routes(routes!(suggest_units))
        .routes(routes!(dispatch_trip))
        .routes(routes!(record_step))
        .routes(routes!(cancel_trip))
        .routes(routes!(recall_trip))
        .routes(routes!(set_crew))
        .routes(routes!(report_position))
}

impl From<TripError> for AppError {
    fn from(error: TripError) -> Self {
        match error {
            TripError::Invalid(invalid) => invalid.into(),
            TripError::NotFound(what) => Self::NotFound(what),
            TripError::NotNow(message) => Self::Conflict(message),
            TripError::Database(error) => Self::Database(error),
            TripError::Internal(error) => Self::Internal(error),
        }
    }
}

/// A new trip; emergencies are dispatched at once to the nearest unit when the organisation has
/// turned that on (`tenants.auto_dispatch_emergency`).
#[utoipa::path(post, path = "/trips", tag = "trips", request_body = NewTrip,
    responses((status = 201, body = Trip), (status = 422, body = crate::http::error::ErrorBody)))]
async fn create_trip(
    State(state): State<AppState>,
    caller: ApiCaller,
    extract::Json(input): extract::Json<NewTrip>,
) -> AppResult<(StatusCode, Json<Trip>)> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let mut trip = trips::create(&mut tx, caller.tenant_id, input).await?;
    let auto: bool =
        sqlx::query_scalar("SELECT auto_dispatch_emergency FROM tenants WHERE id = $1")
            .bind(caller.tenant_id)
            .fetch_one(&mut *tx)
            .await?;
    if auto && trip.request_type == trips::RequestType::Emergency {
        // With no unit to send, the trip stays pending for a coordinator.
        let mut attempt = sqlx::Connection::begin(&mut *tx).await?;
        match trips::dispatch(
            &mut attempt,
            &state.messaging.templates,
            caller.tenant_id,
            trip.id,
            None,
            &By::system(),
        )
        .await
        {
            Ok(dispatched) => {
                attempt.commit().await?;
                trip = dispatched;
            }
            Err(TripError::NotNow(why)) => {
                attempt.rollback().await?;
                tracing::warn!(%why, "emergency trip left pending");
            }
            Err(other) => return Err(other.into()),
        }
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(trip)))
}

/// Open trips (most urgent, oldest first), then those finished in the last day.
#[utoipa::path(get, path = "/trips", tag = "trips",
    responses((status = 200, body = [Trip])))]
async fn list_trips(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> AppResult<Json<Vec<Trip>>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(trips::list(&mut conn, caller.tenant_id).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TripDetail {
    #[serde(flatten)]
    pub trip: Trip,
    pub intervals: Intervals,
    pub events: Vec<TripEvent>,
}

/// A trip with its timeline (every step with time, actor, channel, position and NEMSIS element)
/// and its response intervals.
#[utoipa::path(get, path = "/trips/{id}", tag = "trips",
    responses((status = 200, body = TripDetail), (status = 404, body = crate::http::error::ErrorBody)))]
async fn get_trip(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
) -> AppResult<Json<TripDetail>> {
    let mut conn = state.pool.acquire().await?;
    let trip = trips::get(&mut conn, caller.tenant_id, id).await?;
    let events = trips::events(&mut conn, caller.tenant_id, id).await?;
    Ok(Json(TripDetail {
        intervals: Intervals::of(&trip),
        trip,
        events,
    }))
}

/// The units for this trip, nearest first, with why; and those left out, with why.
#[utoipa::path(get, path = "/trips/{id}/suggestions", tag = "trips",
    responses((status = 200, body = Suggestions), (status = 404, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody)))]
async fn suggest_units(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
) -> AppResult<Json<Suggestions>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        trips::suggestions(&mut conn, caller.tenant_id, id).await?,
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dispatch {
    /// Left out: the first suggestion.
    pub ambulance_id: Option<Uuid>,
}

/// Give a pending trip to a unit; its crew get the dispatch with Accept and Decline.
#[utoipa::path(post, path = "/trips/{id}/dispatch", tag = "trips", request_body = Dispatch,
    responses((status = 200, body = Trip), (status = 404, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody)))]
async fn dispatch_trip(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<Dispatch>,
) -> AppResult<Json<Trip>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let trip = trips::dispatch(
        &mut tx,
        &state.messaging.templates,
        caller.tenant_id,
        id,
        input.ambulance_id,
        &By::api(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(trip))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepInput {
    /// en_route, at_pickup, leaving_pickup, at_destination, handover or available
    pub step: String,
}

/// Record a step for the crew (a radio call, a phone call): the same rule as by message.
#[utoipa::path(post, path = "/trips/{id}/steps", tag = "trips", request_body = StepInput,
    responses((status = 200, body = Trip), (status = 404, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody)))]
async fn record_step(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<StepInput>,
) -> AppResult<Json<Trip>> {
    let step = trips::Step::from_intent(&input.step).ok_or_else(|| {
        let names: Vec<&str> = STEPS.iter().map(|s| s.2).collect();
        AppError::field("step", format!("must be one of: {}", names.join(", ")))
    })?;
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let trip = trips::step(
        &mut tx,
        &state.messaging.templates,
        caller.tenant_id,
        id,
        step,
        &By::api(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(trip))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelInput {
    pub reason: Option<String>,
}

/// Cancel a trip not yet finished; its crew is told.
#[utoipa::path(post, path = "/trips/{id}/cancel", tag = "trips", request_body = CancelInput,
    responses((status = 200, body = Trip), (status = 404, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody)))]
async fn cancel_trip(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<CancelInput>,
) -> AppResult<Json<Trip>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let trip = trips::cancel(
        &mut tx,
        &state.messaging.templates,
        caller.tenant_id,
        id,
        input.reason.as_deref(),
        &By::api(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(trip))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrewMember {
    pub worker_id: Uuid,
    /// driver, paramedic, emt, nurse or doctor
    pub role: String,
}

/// Replace the vehicle's roster: the crew a dispatch goes to.
#[utoipa::path(put, path = "/ambulances/{id}/crew", tag = "ambulances", request_body = [CrewMember],
    responses((status = 200, body = [CrewMember]), (status = 404, body = crate::http::error::ErrorBody),
              (status = 422, body = crate::http::error::ErrorBody)))]
async fn set_crew(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(crew): extract::Json<Vec<CrewMember>>,
) -> AppResult<Json<Vec<CrewMember>>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM ambulances WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL)",
    )
    .bind(caller.tenant_id)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if !exists {
        return Err(AppError::NotFound("ambulance"));
    }
    sqlx::query(
        "UPDATE ambulance_crew_members SET ambulance_id = NULL WHERE tenant_id = $1 AND ambulance_id = $2",
    )
    .bind(caller.tenant_id)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    for (i, member) in crew.iter().enumerate() {
        if !["driver", "paramedic", "emt", "nurse", "doctor"].contains(&member.role.as_str()) {
            return Err(Invalid::field(
                &format!("[{i}].role"),
                "must be one of: driver, paramedic, emt, nurse, doctor",
            )
            .into());
        }
        let crew_worker: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM workers WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
                                AND 'ambulance_crew' = ANY (kinds))",
        )
        .bind(caller.tenant_id)
        .bind(member.worker_id)
        .fetch_one(&mut *tx)
        .await?;
        if !crew_worker {
            return Err(Invalid::field(
                &format!("[{i}].worker_id"),
                "is not a worker of this organisation with the kind ambulance_crew",
            )
            .into());
        }
        sqlx::query(
            "INSERT INTO ambulance_crew_members (tenant_id, worker_id, ambulance_id, role)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT ON CONSTRAINT crew_members_worker_key
             DO UPDATE SET ambulance_id = EXCLUDED.ambulance_id, role = EXCLUDED.role, active = true",
        )
        .bind(caller.tenant_id)
        .bind(member.worker_id)
        .bind(id)
        .bind(&member.role)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Json(crew))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub latitude: f64,
    pub longitude: f64,
    pub accuracy_m: Option<f64>,
}

/// Where the vehicle is now (a tracker, a dispatcher on the radio).
#[utoipa::path(post, path = "/ambulances/{id}/position", tag = "ambulances", request_body = Position,
    responses((status = 204), (status = 404, body = crate::http::error::ErrorBody),
              (status = 422, body = crate::http::error::ErrorBody)))]
async fn report_position(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
    extract::Json(input): extract::Json<Position>,
) -> AppResult<StatusCode> {
    let at = Coordinates::new(input.latitude, input.longitude)
        .map_err(|(f, m)| AppError::field(f, m))?;
    if input
        .accuracy_m
        .is_some_and(|a| !(0.0..=100_000.0).contains(&a))
    {
        return Err(AppError::field(
            "accuracy_m",
            "must be between 0 and 100000",
        ));
    }
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM ambulances WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL)",
    )
    .bind(caller.tenant_id)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if !exists {
        return Err(AppError::NotFound("ambulance"));
    }
    trips::record_position(
        &mut tx,
        caller.tenant_id,
        id,
        None,
        at,
        input.accuracy_m,
        "api",
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// Days back from now (1–366, default 30).
    pub days: Option<i64>,
}

/// Turnout and response times per priority (mean, 90th percentile, share within target).
#[utoipa::path(get, path = "/trips/response-times", tag = "trips", params(Period),
    responses((status = 200, body = [crate::domains::ambulance::response_times::ResponseTimes]),
              (status = 422, body = crate::http::error::ErrorBody)))]
async fn response_report(
    State(state): State<AppState>,
    caller: ApiCaller,
    crate::http::extract::Query(period): crate::http::extract::Query<Period>,
) -> AppResult<Json<Vec<crate::domains::ambulance::response_times::ResponseTimes>>> {
    let days = period.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(AppError::field("days", "must be between 1 and 366"));
    }
    let since = chrono::Utc::now() - chrono::TimeDelta::days(days);
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        crate::domains::ambulance::response_times::report(&mut conn, caller.tenant_id, since)
            .await?,
    ))
}

/// Take a trip back from its unit before the patient is on board (to give it to another): the
/// crew is told not to go and the trip is pending again.
#[utoipa::path(post, path = "/trips/{id}/recall", tag = "trips",
    responses((status = 200, body = Trip), (status = 404, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody)))]
async fn recall_trip(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<Uuid>,
) -> AppResult<Json<Trip>> {
    let mut tx = audit::begin(&state.pool, caller.actor()).await?;
    let trip = trips::recall(
        &mut tx,
        &state.messaging.templates,
        caller.tenant_id,
        id,
        &By::api(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(trip))
}
