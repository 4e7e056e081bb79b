//! Ambulance trips: created by coordinators, matched to the nearest suitable unit, dispatched to
//! its crew, and moved on step by step by the crew's messages. One transition function; every step
//! an event with time, actor, channel, position and the NEMSIS v3.5 eTimes element it records.
//! Times stay in order; a skipped step is "not recorded", never back-filled.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::ambulances::{AmbulanceStatus, AmbulanceType};
use crate::{
    domains::alerts::{self, About, AlertKind},
    error::{FieldErrors, Invalid},
    messaging::{
        contacts,
        notify::{self, Notification},
        templates::{Templates, Values},
    },
    types::{Coordinates, PhoneNumber, required_text},
};

#[derive(Debug, thiserror::Error)]
pub enum TripError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The trip is not in a state that allows it.
    #[error("{0}")]
    NotNow(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type TripResult<T> = Result<T, TripError>;

crate::text_enum! {
    pub enum TripStatus {
        Pending = "pending",
        Assigned = "assigned",
        EnRouteToPickup = "en_route_to_pickup",
        AtPickup = "at_pickup",
        EnRouteToDropoff = "en_route_to_dropoff",
        AtDestination = "at_destination",
        HandoverDone = "handover_done",
        Completed = "completed",
        Cancelled = "cancelled",
    }
}

impl TripStatus {
    /// Where in the trip's life this is: steps only move forward.
    fn rank(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Assigned => 1,
            Self::EnRouteToPickup => 2,
            Self::AtPickup => 3,
            Self::EnRouteToDropoff => 4,
            Self::AtDestination => 5,
            Self::HandoverDone => 6,
            Self::Completed => 7,
            Self::Cancelled => 8,
        }
    }

    /// A unit is on it.
    pub fn is_active(self) -> bool {
        (1..=6).contains(&self.rank())
    }
}

crate::text_enum! {
    pub enum RequestType {
        Emergency = "emergency",
        NonEmergency = "non_emergency",
        Transfer = "transfer",
        Discharge = "discharge",
        Scheduled = "scheduled",
    }
}

crate::text_enum! {
    pub enum TripPriority {
        Low = "low",
        Medium = "medium",
        High = "high",
        Urgent = "urgent",
    }
}

/// A step the crew reports: one table drives the parser's digits, the help and the transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    EnRoute,
    AtPickup,
    LeavingPickup,
    AtDestination,
    Handover,
    Available,
}

/// (step, digit the crew sends, intent in `intents/`, status it moves to, NEMSIS element, the
/// trip's time column).
pub const STEPS: &[(Step, u8, &str, TripStatus, &str, &str)] = &[
    (
        Step::EnRoute,
        1,
        "en_route",
        TripStatus::EnRouteToPickup,
        "eTimes.05",
        "en_route_to_pickup_at",
    ),
    (
        Step::AtPickup,
        2,
        "at_pickup",
        TripStatus::AtPickup,
        "eTimes.06",
        "at_pickup_at",
    ),
    (
        Step::LeavingPickup,
        3,
        "leaving_pickup",
        TripStatus::EnRouteToDropoff,
        "eTimes.09",
        "en_route_to_dropoff_at",
    ),
    (
        Step::AtDestination,
        4,
        "at_destination",
        TripStatus::AtDestination,
        "eTimes.10",
        "at_destination_at",
    ),
    (
        Step::Handover,
        5,
        "handover",
        TripStatus::HandoverDone,
        "eTimes.11",
        "handover_at",
    ),
    (
        Step::Available,
        6,
        "available",
        TripStatus::Completed,
        "eTimes.12",
        "completed_at",
    ),
];
/// The digit for a vehicle problem.
pub const PROBLEM_DIGIT: u8 = 9;

impl Step {
    fn row(
        self,
    ) -> &'static (
        Step,
        u8,
        &'static str,
        TripStatus,
        &'static str,
        &'static str,
    ) {
        STEPS
            .iter()
            .find(|r| r.0 == self)
            .expect("every step is in the table")
    }
    pub fn from_digit(digit: u8) -> Option<Self> {
        STEPS.iter().find(|r| r.1 == digit).map(|r| r.0)
    }
    pub fn from_intent(intent: &str) -> Option<Self> {
        STEPS.iter().find(|r| r.2 == intent).map(|r| r.0)
    }
    pub fn intent(self) -> &'static str {
        self.row().2
    }
    pub fn target(self) -> TripStatus {
        self.row().3
    }
}

/// The one transition rule: forward only, from a trip a unit is on; back in service once the
/// patient is at the destination. Skipped steps stay unrecorded.
pub fn may_step(from: TripStatus, step: Step) -> bool {
    let to = step.target();
    from.is_active()
        && to.rank() > from.rank()
        && (step != Step::Available || from.rank() >= TripStatus::AtDestination.rank())
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTrip {
    /// emergency, non_emergency, transfer, discharge or scheduled
    pub request_type: String,
    /// low, medium, high or urgent (default medium; urgent for emergencies)
    pub priority: Option<String>,
    pub pickup_address: String,
    pub pickup_latitude: Option<f64>,
    pub pickup_longitude: Option<f64>,
    pub dropoff_address: String,
    pub dropoff_latitude: Option<f64>,
    pub dropoff_longitude: Option<f64>,
    pub patient_id: Option<Uuid>,
    /// When the unit should be at pickup; now when left out.
    pub scheduled_at: Option<DateTime<Utc>>,
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
    /// Features the vehicle must carry ("oxygen", "stretcher").
    #[serde(default)]
    pub equipment_needed: Vec<String>,
    /// The class of vehicle required, if any.
    pub required_type: Option<String>,
    pub special_instructions: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Trip {
    pub id: Uuid,
    pub reference: String,
    pub request_type: RequestType,
    pub priority: TripPriority,
    pub status: TripStatus,
    pub pickup_address: String,
    pub pickup_latitude: Option<f64>,
    pub pickup_longitude: Option<f64>,
    pub dropoff_address: String,
    pub patient_id: Option<Uuid>,
    pub ambulance_id: Option<Uuid>,
    pub registration_number: Option<String>,
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
    pub scheduled_at: DateTime<Utc>,
    pub equipment_needed: Vec<String>,
    pub required_type: Option<String>,
    pub special_instructions: Option<String>,
    pub sensitive: bool,
    /// NEMSIS eTimes: unit notified (03), acknowledged (04), en route (05), at pickup (06), left
    /// pickup (09), at destination (10), transfer of care (11), back in service (12); cancelled is (13). `null` is
    /// "not recorded".
    pub assigned_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub en_route_to_pickup_at: Option<DateTime<Utc>>,
    pub at_pickup_at: Option<DateTime<Utc>>,
    pub en_route_to_dropoff_at: Option<DateTime<Utc>>,
    pub at_destination_at: Option<DateTime<Utc>>,
    pub handover_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const SELECT: &str = "
    SELECT t.id, t.reference, t.request_type, t.priority, t.status, t.pickup_address,
           t.pickup_latitude::float8 AS pickup_latitude, t.pickup_longitude::float8 AS pickup_longitude,
           t.dropoff_address, t.patient_id, t.ambulance_id, a.registration_number, t.contact_name,
           t.contact_phone::text AS contact_phone, t.scheduled_at, t.equipment_needed, t.required_type,
           t.special_instructions, t.sensitive, t.assigned_at, t.acknowledged_at, t.en_route_to_pickup_at,
           t.at_pickup_at, t.en_route_to_dropoff_at, t.at_destination_at, t.handover_at, t.completed_at,
           t.cancelled_at, t.created_at
    FROM trips t LEFT JOIN ambulances a ON a.tenant_id = t.tenant_id AND a.id = t.ambulance_id";

pub async fn get(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> TripResult<Trip> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE t.tenant_id = $1 AND t.id = $2"
    )))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(TripError::NotFound("trip"))
}

/// Open trips first by priority and age, then the day's finished ones.
pub async fn list(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<Vec<Trip>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE t.tenant_id = $1
           AND (t.status NOT IN ('completed', 'cancelled') OR t.updated_at > now() - interval '1 day')
         ORDER BY t.status IN ('completed', 'cancelled'),
                  array_position(ARRAY['urgent', 'high', 'medium', 'low'], t.priority), t.created_at
         LIMIT 500"
    )))
    .bind(tenant_id)
    .fetch_all(conn)
    .await
}

#[tracing::instrument(skip(conn, new))]
pub async fn create(conn: &mut PgConnection, tenant_id: Uuid, new: NewTrip) -> TripResult<Trip> {
    let mut errors = FieldErrors::new();
    let request_type = RequestType::field(
        Some(&new.request_type),
        RequestType::NonEmergency,
        "request_type",
        &mut errors,
    );
    let default_priority = if request_type == RequestType::Emergency {
        TripPriority::Urgent
    } else {
        TripPriority::Medium
    };
    let priority = TripPriority::field(
        new.priority.as_deref(),
        default_priority,
        "priority",
        &mut errors,
    );
    let pickup = errors.check("pickup_address", required_text(&new.pickup_address, 300));
    let dropoff = errors.check("dropoff_address", required_text(&new.dropoff_address, 300));
    let pickup_at = Coordinates::from_optional(new.pickup_latitude, new.pickup_longitude)
        .map_err(|(f, m)| errors.add(format!("pickup_{f}"), m))
        .ok()
        .flatten();
    let dropoff_at = Coordinates::from_optional(new.dropoff_latitude, new.dropoff_longitude)
        .map_err(|(f, m)| errors.add(format!("dropoff_{f}"), m))
        .ok()
        .flatten();
    let phone = new
        .contact_phone
        .as_deref()
        .and_then(|p| errors.check("contact_phone", PhoneNumber::parse(p)));
    if let Some(t) = &new.required_type
        && t.parse::<AmbulanceType>().is_err()
    {
        errors.add("required_type", format!("{t:?} is not an ambulance type"));
    }
    errors.into_result()?;
    let number: i64 = sqlx::query_scalar(
        "INSERT INTO tenant_counters (tenant_id, name, last_value) VALUES ($1, 'trip', 1001)
         ON CONFLICT ON CONSTRAINT tenant_counters_pkey DO UPDATE SET last_value = tenant_counters.last_value + 1
         RETURNING last_value",
    )
    .bind(tenant_id)
    .fetch_one(&mut *conn)
    .await?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO trips (tenant_id, reference, request_type, priority, pickup_address, pickup_latitude,
             pickup_longitude, dropoff_address, dropoff_latitude, dropoff_longitude, patient_id, contact_name,
             contact_phone, scheduled_at, equipment_needed, required_type, special_instructions)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, COALESCE($14, now()), $15, $16, $17)
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(format!("T-{number}"))
    .bind(request_type)
    .bind(priority)
    .bind(pickup)
    .bind(pickup_at.map(|c| c.latitude))
    .bind(pickup_at.map(|c| c.longitude))
    .bind(dropoff)
    .bind(dropoff_at.map(|c| c.latitude))
    .bind(dropoff_at.map(|c| c.longitude))
    .bind(new.patient_id)
    .bind(new.contact_name.as_deref().map(str::trim))
    .bind(phone.map(|p| p.to_string()))
    .bind(new.scheduled_at)
    .bind(&new.equipment_needed)
    .bind(&new.required_type)
    .bind(new.special_instructions.as_deref().map(str::trim))
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("trips_patient_fkey") => {
            TripError::Invalid(Invalid::field("patient_id", "is not a patient of this organisation"))
        }
        _ => TripError::Database(e),
    })?;
    event(
        conn,
        tenant_id,
        id,
        None,
        TripStatus::Pending,
        &By::system(),
        None,
    )
    .await?;
    get(conn, tenant_id, id).await
}

/// Who moved a trip, how, and where they were.
#[derive(Debug, Clone)]
pub struct By {
    pub kind: &'static str,
    pub user_id: Option<Uuid>,
    pub worker_id: Option<Uuid>,
    pub channel: &'static str,
    pub position: Option<(Coordinates, Option<f64>)>,
    pub message_id: Option<Uuid>,
}

impl By {
    pub fn system() -> Self {
        Self {
            kind: "system",
            user_id: None,
            worker_id: None,
            channel: "system",
            position: None,
            message_id: None,
        }
    }
    pub fn api() -> Self {
        Self {
            kind: "coordinator",
            channel: "api",
            ..Self::system()
        }
    }
    pub fn coordinator(user_id: Uuid) -> Self {
        Self {
            kind: "coordinator",
            user_id: Some(user_id),
            channel: "panel",
            ..Self::system()
        }
    }
}

async fn event(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    trip_id: Uuid,
    from: Option<TripStatus>,
    to: TripStatus,
    by: &By,
    nemsis: Option<&str>,
) -> sqlx::Result<()> {
    let (lat, lon, accuracy) = match by.position {
        Some((at, accuracy)) => (Some(at.latitude), Some(at.longitude), accuracy),
        None => (None, None, None),
    };
    sqlx::query(
        "INSERT INTO trip_status_events (tenant_id, trip_id, from_status, to_status, actor_kind, actor_user_id,
             actor_worker_id, channel, latitude, longitude, accuracy_m, nemsis_element, message_id, ambulance_id)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, ambulance_id FROM trips
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(trip_id)
    .bind(from)
    .bind(to)
    .bind(by.kind)
    .bind(by.user_id)
    .bind(by.worker_id)
    .bind(by.channel)
    .bind(lat)
    .bind(lon)
    .bind(accuracy)
    .bind(nemsis)
    .bind(by.message_id)
    .execute(conn)
    .await?;
    Ok(())
}

// ---- Nearest available unit ----

/// A unit as the ranking sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Unit {
    pub id: Uuid,
    pub registration_number: String,
    pub ambulance_type: AmbulanceType,
    pub status: AmbulanceStatus,
    pub features: Vec<String>,
    pub current_latitude: Option<f64>,
    pub current_longitude: Option<f64>,
    pub position_reported_at: Option<DateTime<Utc>>,
    /// Crew members on its roster: a vehicle nobody drives is no suggestion.
    pub crew: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Suggestion {
    pub ambulance_id: Uuid,
    pub registration_number: String,
    pub ambulance_type: AmbulanceType,
    pub distance_m: f64,
    pub eta_minutes: f64,
    /// Where the unit was last seen.
    pub latitude: f64,
    pub longitude: f64,
    /// Why it is where it is in the list.
    pub why: String,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct LeftOut {
    pub ambulance_id: Uuid,
    pub registration_number: String,
    /// `busy`, `no_crew`, `wrong_type`, `missing_equipment`, `no_position` or `stale_position`,
    /// with detail.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Suggestions {
    pub ranked: Vec<Suggestion>,
    pub left_out: Vec<LeftOut>,
}

/// Types fit for a request when the trip names none: an emergency needs life support.
fn suitable(request: RequestType, required: Option<&str>, unit: AmbulanceType) -> bool {
    match required {
        Some(t) => t == unit.as_str(),
        None => request != RequestType::Emergency || unit != AmbulanceType::PatientTransport,
    }
}

/// Ranks the units for a pickup: available, of a suitable type, carrying the equipment, with a
/// position fresher than `fresh`; nearest first (straight line) with a travel time at `speed_kmh`.
pub fn rank(
    trip: &Trip,
    pickup: Coordinates,
    units: &[Unit],
    now: DateTime<Utc>,
    fresh: TimeDelta,
    speed_kmh: f64,
) -> Suggestions {
    let mut ranked = Vec::new();
    let mut left_out = Vec::new();
    for unit in units {
        let leave = |reason: String| LeftOut {
            ambulance_id: unit.id,
            registration_number: unit.registration_number.clone(),
            reason,
        };
        if unit.status != AmbulanceStatus::Available {
            left_out.push(leave(format!("busy: {}", unit.status)));
            continue;
        }
        if unit.crew == 0 {
            left_out.push(leave("no_crew: nobody is on its roster".into()));
            continue;
        }
        if !suitable(
            trip.request_type,
            trip.required_type.as_deref(),
            unit.ambulance_type,
        ) {
            left_out.push(leave(format!("wrong_type: {}", unit.ambulance_type)));
            continue;
        }
        let missing: Vec<&str> = trip
            .equipment_needed
            .iter()
            .filter(|e| !unit.features.iter().any(|f| f.eq_ignore_ascii_case(e)))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            left_out.push(leave(format!("missing_equipment: {}", missing.join(", "))));
            continue;
        }
        let Some(at) = unit
            .current_latitude
            .zip(unit.current_longitude)
            .and_then(|(lat, lon)| Coordinates::new(lat, lon).ok())
        else {
            left_out.push(leave("no_position".into()));
            continue;
        };
        let seen = unit
            .position_reported_at
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        if now - seen > fresh {
            let minutes = (now - seen).num_minutes();
            left_out.push(leave(format!(
                "stale_position: last seen {minutes} min ago"
            )));
            continue;
        }
        let distance_m = at.metres_to(pickup);
        let eta_minutes = (distance_m / 1000.0 / speed_kmh * 60.0 * 10.0).round() / 10.0;
        ranked.push(Suggestion {
            ambulance_id: unit.id,
            registration_number: unit.registration_number.clone(),
            ambulance_type: unit.ambulance_type,
            distance_m: distance_m.round(),
            eta_minutes,
            latitude: at.latitude,
            longitude: at.longitude,
            why: format!(
                "available {}, {:.1} km away, seen {} min ago",
                unit.ambulance_type,
                distance_m / 1000.0,
                (now - seen).num_minutes()
            ),
        });
    }
    ranked.sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m));
    Suggestions { ranked, left_out }
}

pub async fn suggestions(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    trip_id: Uuid,
) -> TripResult<Suggestions> {
    let trip = get(conn, tenant_id, trip_id).await?;
    let Some(pickup) = trip
        .pickup_latitude
        .zip(trip.pickup_longitude)
        .and_then(|(lat, lon)| Coordinates::new(lat, lon).ok())
    else {
        return Err(TripError::NotNow(
            "the trip has no pickup position: give pickup_latitude and pickup_longitude to rank units".into(),
        ));
    };
    let units: Vec<Unit> = sqlx::query_as(
        "SELECT id, registration_number, ambulance_type, status, features,
                current_latitude::float8 AS current_latitude, current_longitude::float8 AS current_longitude,
                position_reported_at,
                (SELECT count(*) FROM ambulance_crew_members c
                  WHERE c.tenant_id = a.tenant_id AND c.ambulance_id = a.id AND c.active) AS crew
         FROM ambulances a WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY registration_number",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    let (fresh, speed): (i32, i32) =
        sqlx::query_as("SELECT position_fresh_minutes, urban_speed_kmh FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_one(&mut *conn)
            .await?;
    Ok(rank(
        &trip,
        pickup,
        &units,
        Utc::now(),
        TimeDelta::minutes(fresh.into()),
        speed.into(),
    ))
}

// ---- Dispatch and the crew's answers ----

/// Gives the trip to a unit (the nearest suggestion when none is named) and sends the dispatch
/// to everyone on its roster.
#[tracing::instrument(skip(conn, templates, by))]
pub async fn dispatch(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    trip_id: Uuid,
    ambulance_id: Option<Uuid>,
    by: &By,
) -> TripResult<Trip> {
    let trip = get(conn, tenant_id, trip_id).await?;
    if trip.status != TripStatus::Pending {
        return Err(TripError::NotNow(format!(
            "trip {} is {}: only a pending trip is dispatched",
            trip.reference, trip.status
        )));
    }
    let ambulance_id = match ambulance_id {
        Some(id) => id,
        None => suggestions(conn, tenant_id, trip_id)
            .await?
            .ranked
            .first()
            .map(|s| s.ambulance_id)
            .ok_or_else(|| TripError::NotNow("no unit is available for this trip".into()))?,
    };
    let taken = sqlx::query(
        "UPDATE ambulances SET status = 'assigned'
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL AND status = 'available'",
    )
    .bind(tenant_id)
    .bind(ambulance_id)
    .execute(&mut *conn)
    .await?;
    if taken.rows_affected() == 0 {
        return Err(TripError::NotNow(
            "that ambulance is not available (busy, in maintenance, or not this organisation's)"
                .into(),
        ));
    }
    let crew: Vec<(Uuid, String)> = sqlx::query_as(
        "INSERT INTO trip_crew (tenant_id, trip_id, worker_id, role)
         SELECT tenant_id, $2, worker_id, role FROM ambulance_crew_members
         WHERE tenant_id = $1 AND ambulance_id = $3 AND active
         ON CONFLICT DO NOTHING
         RETURNING worker_id, role",
    )
    .bind(tenant_id)
    .bind(trip_id)
    .bind(ambulance_id)
    .fetch_all(&mut *conn)
    .await?;
    if crew.is_empty() {
        return Err(TripError::NotNow(
            "that ambulance has no crew on its roster: PUT /ambulances/{id}/crew first".into(),
        ));
    }
    sqlx::query(
        "UPDATE trips SET status = 'assigned', ambulance_id = $3, assigned_at = now(), acknowledged_at = NULL
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(trip_id)
    .bind(ambulance_id)
    .execute(&mut *conn)
    .await?;
    event(
        conn,
        tenant_id,
        trip_id,
        Some(TripStatus::Pending),
        TripStatus::Assigned,
        by,
        Some("eTimes.03"),
    )
    .await?;
    let dispatched = get(conn, tenant_id, trip_id).await?;
    for (worker_id, _) in &crew {
        let Some(contact_id) = contacts::for_live_worker(conn, tenant_id, *worker_id).await? else {
            continue;
        };
        let mut message = Notification::new(
            tenant_id,
            contact_id,
            "trip_dispatch",
            dispatch_values(&dispatched),
        );
        message.related = Some(("trip", trip_id));
        message.urgent = trip.request_type == RequestType::Emergency;
        notify::notify(conn, templates, &message).await?;
    }
    if let Some(since) = dispatched.assigned_at {
        super::timers::start(
            conn,
            tenant_id,
            trip_id,
            super::timers::Stage::ResendDispatch,
            since,
        )
        .await?;
    }
    Ok(dispatched)
}

/// What the dispatch tells the crew: reference, priority, pickup with a map link, destination,
/// contact, instructions.
pub fn dispatch_values(trip: &Trip) -> Values {
    let map = trip.pickup_latitude.zip(trip.pickup_longitude).map_or_else(
        || "no position given".to_owned(),
        |(lat, lon)| format!("https://maps.google.com/?q={lat:.5},{lon:.5}"),
    );
    let contact = match (&trip.contact_name, &trip.contact_phone) {
        (Some(name), Some(phone)) => format!("{name} {phone}"),
        (Some(name), None) => name.clone(),
        (None, Some(phone)) => phone.clone(),
        (None, None) => "none given".into(),
    };
    Values::new()
        .with("reference", &trip.reference)
        .with("priority", trip.priority)
        .with("pickup", &trip.pickup_address)
        .with("map", &map)
        .with("dropoff", &trip.dropoff_address)
        .with("contact", &contact)
        .with(
            "instructions",
            trip.special_instructions.as_deref().unwrap_or("none"),
        )
}

/// The crew took the dispatch: acknowledged (eTimes.04), once.
pub async fn accept(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    trip_id: Uuid,
    by: &By,
) -> TripResult<bool> {
    let first = sqlx::query(
        "UPDATE trips SET acknowledged_at = now()
         WHERE tenant_id = $1 AND id = $2 AND status = 'assigned' AND acknowledged_at IS NULL",
    )
    .bind(tenant_id)
    .bind(trip_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if first {
        event(
            conn,
            tenant_id,
            trip_id,
            Some(TripStatus::Assigned),
            TripStatus::Assigned,
            by,
            Some("eTimes.04"),
        )
        .await?;
        alerts::settle(
            conn,
            tenant_id,
            AlertKind::TripNotAcknowledged,
            About::Trip(trip_id),
        )
        .await?;
    }
    Ok(first)
}

/// The unit cannot take it (declined, or its vehicle broke down): the trip goes back to pending
/// for the next unit, and the coordinators are alerted with what to do.
/// Takes the trip off its unit: the vehicle to `vehicle`, the trip pending for the next one.
async fn unassign(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    trip: &Trip,
    vehicle: AmbulanceStatus,
    by: &By,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE ambulances SET status = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(trip.ambulance_id)
        .bind(vehicle)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE trips SET status = 'pending', ambulance_id = NULL, acknowledged_at = NULL
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(trip.id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM trip_crew WHERE tenant_id = $1 AND trip_id = $2")
        .bind(tenant_id)
        .bind(trip.id)
        .execute(&mut *conn)
        .await?;
    event(
        conn,
        tenant_id,
        trip.id,
        Some(trip.status),
        TripStatus::Pending,
        by,
        None,
    )
    .await
}

/// Why a unit gives a trip back: what becomes of the vehicle, and the alert.
struct HandBack {
    vehicle: AmbulanceStatus,
    alert: AlertKind,
    why: String,
}

async fn give_back(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    trip: &Trip,
    back: HandBack,
    by: &By,
) -> TripResult<()> {
    let HandBack {
        vehicle,
        alert: kind,
        why,
    } = back;
    unassign(conn, tenant_id, trip, vehicle, by).await?;
    let next = match suggestions(conn, tenant_id, trip.id).await {
        Ok(s) => s
            .ranked
            .first()
            .map_or("no unit is available".to_owned(), |u| {
                format!("nearest now: {} ({})", u.registration_number, u.why)
            }),
        Err(_) => "no pickup position to rank units".to_owned(),
    };
    let text = format!(
        "Trip {} ({}): {why}; {next}. Dispatch it again.",
        trip.reference, trip.priority
    );
    alerts::raise(
        conn,
        templates,
        tenant_id,
        kind,
        About::Trip(trip.id),
        &text,
    )
    .await
    .map_err(TripError::Internal)?;
    Ok(())
}

pub async fn decline(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    trip_id: Uuid,
    reason: Option<&str>,
    by: &By,
) -> TripResult<()> {
    let trip = get(conn, tenant_id, trip_id).await?;
    if trip.status != TripStatus::Assigned {
        return Err(TripError::NotNow(format!(
            "trip {} is {}: it can no longer be declined",
            trip.reference, trip.status
        )));
    }
    let why = format!(
        "{} declined{}",
        trip.registration_number.as_deref().unwrap_or("the unit"),
        reason.map(|r| format!(" ({r})")).unwrap_or_default()
    );
    let back = HandBack {
        vehicle: AmbulanceStatus::Available,
        alert: AlertKind::TripDeclined,
        why,
    };
    give_back(conn, templates, tenant_id, &trip, back, by).await
}

/// The vehicle broke down on the trip: it goes under maintenance and the trip to the next unit.
pub async fn vehicle_problem(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    trip_id: Uuid,
    what: Option<&str>,
    by: &By,
) -> TripResult<Trip> {
    let trip = get(conn, tenant_id, trip_id).await?;
    if !trip.status.is_active() {
        return Err(TripError::NotNow(format!(
            "trip {} is {}",
            trip.reference, trip.status
        )));
    }
    let why = format!(
        "vehicle problem on {}{}",
        trip.registration_number.as_deref().unwrap_or("the unit"),
        what.map(|w| format!(": {w}")).unwrap_or_default()
    );
    let back = HandBack {
        vehicle: AmbulanceStatus::UnderMaintenance,
        alert: AlertKind::VehicleProblem,
        why,
    };
    give_back(conn, templates, tenant_id, &trip, back, by).await?;
    get(conn, tenant_id, trip_id).await
}

/// One step forward, recorded with its NEMSIS time; the vehicle follows (in service while
/// carrying, available once back in service) and the requester hears the unit is on its way
/// and when it arrived.
#[tracing::instrument(skip(conn, templates, by))]
pub async fn step(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    trip_id: Uuid,
    step: Step,
    by: &By,
) -> TripResult<Trip> {
    let trip = get(conn, tenant_id, trip_id).await?;
    if !may_step(trip.status, step) {
        return Err(TripError::NotNow(format!(
            "trip {} is {}: it cannot go to {}",
            trip.reference,
            trip.status,
            step.target()
        )));
    }
    let (_, _, _, to, nemsis, column) = *step.row();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE trips SET status = $3, {column} = now(),
             acknowledged_at = COALESCE(acknowledged_at, CASE WHEN status = 'assigned' THEN now() END)
         WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant_id)
    .bind(trip_id)
    .bind(to)
    .execute(&mut *conn)
    .await?;
    event(
        conn,
        tenant_id,
        trip_id,
        Some(trip.status),
        to,
        by,
        Some(nemsis),
    )
    .await?;
    let vehicle = match step {
        Step::LeavingPickup => Some(AmbulanceStatus::InService),
        Step::Available => Some(AmbulanceStatus::Available),
        _ => None,
    };
    if let (Some(vehicle), Some(ambulance)) = (vehicle, trip.ambulance_id) {
        sqlx::query("UPDATE ambulances SET status = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(ambulance)
            .bind(vehicle)
            .execute(&mut *conn)
            .await?;
    }
    let courtesy = match step {
        Step::EnRoute => Some("trip_contact_on_the_way"),
        Step::AtPickup => Some("trip_contact_arrived"),
        _ => None,
    };
    if let (Some(key), Some(phone)) = (courtesy, &trip.contact_phone) {
        let contact =
            contacts::for_phone(conn, tenant_id, phone, trip.contact_name.as_deref()).await?;
        let values = Values::new()
            .with("reference", &trip.reference)
            .with("unit", trip.registration_number.as_deref().unwrap_or(""));
        let mut message = Notification::new(tenant_id, contact, key, values);
        message.related = Some(("trip", trip_id));
        notify::notify(conn, templates, &message).await?;
    }
    match step {
        Step::AtDestination => {
            let arrived = get(conn, tenant_id, trip_id).await?.at_destination_at;
            if let Some(since) = arrived {
                super::timers::start(
                    conn,
                    tenant_id,
                    trip_id,
                    super::timers::Stage::HandoverReminder,
                    since,
                )
                .await?;
            }
        }
        Step::Handover | Step::Available => {
            alerts::settle(
                conn,
                tenant_id,
                AlertKind::HandoverDelay,
                About::Trip(trip_id),
            )
            .await?;
        }
        _ => {
            alerts::settle(
                conn,
                tenant_id,
                AlertKind::TripNotAcknowledged,
                About::Trip(trip_id),
            )
            .await?
        }
    }
    if step == Step::Available && trip.request_type != RequestType::Emergency && !trip.sensitive {
        crate::domains::patients::surveys::schedule(
            conn,
            tenant_id,
            crate::domains::patients::surveys::Subject::Trip(trip_id),
        )
        .await?;
    }
    get(conn, tenant_id, trip_id).await
}

/// Tells everyone who rode (or rides) the trip `key`, about it.
async fn tell_crew(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    trip: &Trip,
    key: &'static str,
    values: Values,
) -> TripResult<()> {
    let crew: Vec<Uuid> =
        sqlx::query_scalar("SELECT worker_id FROM trip_crew WHERE tenant_id = $1 AND trip_id = $2")
            .bind(tenant_id)
            .bind(trip.id)
            .fetch_all(&mut *conn)
            .await?;
    for worker in crew {
        if let Some(contact) = contacts::for_live_worker(conn, tenant_id, worker).await? {
            let mut message = Notification::new(tenant_id, contact, key, values.clone());
            message.related = Some(("trip", trip.id));
            notify::notify(conn, templates, &message).await?;
        }
    }
    Ok(())
}

/// A coordinator's own words to the trip's crew.
pub async fn message_crew(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    trip_id: Uuid,
    text: &str,
) -> TripResult<()> {
    let text = required_text(text, 900).map_err(|m| Invalid::field("text", m))?;
    let trip = get(conn, tenant_id, trip_id).await?;
    if !trip.status.is_active() {
        return Err(TripError::NotNow(format!(
            "trip {} is {}: no crew is on it",
            trip.reference, trip.status
        )));
    }
    let tenant: String = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_one(&mut *conn)
        .await?;
    let values = Values::new().with("tenant", tenant).with("text", text);
    tell_crew(
        conn,
        templates,
        tenant_id,
        &trip,
        "coordinator_message",
        values,
    )
    .await
}

/// Takes a trip back from its unit before the patient is on board, to give it to another: the
/// crew is told not to go, the vehicle is free, the trip pending again.
pub async fn recall(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    trip_id: Uuid,
    by: &By,
) -> TripResult<Trip> {
    let trip = get(conn, tenant_id, trip_id).await?;
    if !matches!(
        trip.status,
        TripStatus::Assigned | TripStatus::EnRouteToPickup | TripStatus::AtPickup
    ) {
        return Err(TripError::NotNow(format!(
            "trip {} is {}: only a trip whose patient is not yet on board goes to another unit",
            trip.reference, trip.status
        )));
    }
    let values = Values::new().with("reference", &trip.reference);
    tell_crew(
        conn,
        templates,
        tenant_id,
        &trip,
        "trip_reassigned_away",
        values,
    )
    .await?;
    unassign(conn, tenant_id, &trip, AmbulanceStatus::Available, by).await?;
    get(conn, tenant_id, trip_id).await
}

/// Cancels a trip not yet finished; the crew, if any, is told and the vehicle freed.
pub async fn cancel(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    trip_id: Uuid,
    reason: Option<&str>,
    by: &By,
) -> TripResult<Trip> {
    let trip = get(conn, tenant_id, trip_id).await?;
    if matches!(trip.status, TripStatus::Completed | TripStatus::Cancelled) {
        return Err(TripError::NotNow(format!(
            "trip {} is already {}",
            trip.reference, trip.status
        )));
    }
    sqlx::query(
        "UPDATE trips SET status = 'cancelled', cancelled_at = now(), cancel_reason = $3
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(trip_id)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    event(
        conn,
        tenant_id,
        trip_id,
        Some(trip.status),
        TripStatus::Cancelled,
        by,
        Some("eTimes.13"),
    )
    .await?;
    if let Some(ambulance) = trip.ambulance_id {
        sqlx::query(
            "UPDATE ambulances SET status = 'available' WHERE tenant_id = $1 AND id = $2 AND status IN ('assigned', 'in_service')",
        )
        .bind(tenant_id)
        .bind(ambulance)
        .execute(&mut *conn)
        .await?;
        let values = Values::new().with("reference", &trip.reference);
        tell_crew(conn, templates, tenant_id, &trip, "trip_cancelled", values).await?;
    }
    get(conn, tenant_id, trip_id).await
}

/// Where a vehicle is, from a crew member's message or phone.
pub async fn record_position(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    ambulance_id: Uuid,
    worker_id: Option<Uuid>,
    at: Coordinates,
    accuracy_m: Option<f64>,
    source: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO ambulance_positions (tenant_id, ambulance_id, worker_id, latitude, longitude, accuracy_m, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant_id)
    .bind(ambulance_id)
    .bind(worker_id)
    .bind(at.latitude)
    .bind(at.longitude)
    .bind(accuracy_m)
    .bind(source)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE ambulances SET current_latitude = $3, current_longitude = $4, current_accuracy_m = $5,
             position_reported_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(ambulance_id)
    .bind(at.latitude)
    .bind(at.longitude)
    .bind(accuracy_m)
    .execute(conn)
    .await?;
    Ok(())
}

/// One line of a trip's timeline.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct TripEvent {
    pub at: DateTime<Utc>,
    pub from_status: Option<String>,
    pub to_status: String,
    pub nemsis_element: Option<String>,
    pub actor_kind: String,
    pub actor_name: Option<String>,
    pub channel: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub accuracy_m: Option<f64>,
}

pub async fn events(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    trip_id: Uuid,
) -> sqlx::Result<Vec<TripEvent>> {
    sqlx::query_as(
        "SELECT e.created_at AS at, e.from_status, e.to_status, e.nemsis_element, e.actor_kind,
                COALESCE(w.first_name || ' ' || w.last_name, u.full_name, u.email) AS actor_name, e.channel,
                e.latitude::float8 AS latitude, e.longitude::float8 AS longitude, e.accuracy_m
         FROM trip_status_events e
         LEFT JOIN workers w ON w.tenant_id = e.tenant_id AND w.id = e.actor_worker_id
         LEFT JOIN users u ON u.tenant_id = e.tenant_id AND u.id = e.actor_user_id
         WHERE e.tenant_id = $1 AND e.trip_id = $2 ORDER BY e.created_at, e.id",
    )
    .bind(tenant_id)
    .bind(trip_id)
    .fetch_all(conn)
    .await
}

/// Response-time intervals of one trip, in seconds; `None` where a step was not recorded.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Intervals {
    /// Notified → en route.
    pub turnout_s: Option<i64>,
    /// Notified → at pickup.
    pub response_s: Option<i64>,
    /// En route → at pickup.
    pub travel_s: Option<i64>,
    /// At pickup → left pickup.
    pub on_scene_s: Option<i64>,
    /// Left pickup → at destination.
    pub transport_s: Option<i64>,
    /// At destination → transfer of care.
    pub handover_s: Option<i64>,
    /// Notified → back in service.
    pub on_task_s: Option<i64>,
}

impl Intervals {
    pub fn of(trip: &Trip) -> Self {
        let between = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| {
            a.zip(b).map(|(a, b)| (b - a).num_seconds())
        };
        Self {
            turnout_s: between(trip.assigned_at, trip.en_route_to_pickup_at),
            response_s: between(trip.assigned_at, trip.at_pickup_at),
            travel_s: between(trip.en_route_to_pickup_at, trip.at_pickup_at),
            on_scene_s: between(trip.at_pickup_at, trip.en_route_to_dropoff_at),
            transport_s: between(trip.en_route_to_dropoff_at, trip.at_destination_at),
            handover_s: between(trip.at_destination_at, trip.handover_at),
            on_task_s: between(trip.assigned_at, trip.completed_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_move_forward_only_and_back_in_service_after_the_destination() {
        use TripStatus::*;
        assert!(may_step(Assigned, Step::EnRoute));
        assert!(
            may_step(Assigned, Step::AtPickup),
            "a skipped step is allowed, not back-filled"
        );
        assert!(!may_step(AtPickup, Step::EnRoute));
        assert!(!may_step(Pending, Step::EnRoute));
        assert!(!may_step(Completed, Step::Handover));
        assert!(!may_step(EnRouteToPickup, Step::Available));
        assert!(may_step(AtDestination, Step::Available));
        assert!(may_step(HandoverDone, Step::Available));
        for (step, digit, intent, ..) in STEPS {
            assert_eq!(Step::from_digit(*digit), Some(*step));
            assert_eq!(Step::from_intent(intent), Some(*step));
        }
    }

    fn unit(
        n: u8,
        kind: AmbulanceType,
        status: AmbulanceStatus,
        at: Option<(f64, f64)>,
        seen_min: i64,
    ) -> Unit {
        Unit {
            id: Uuid::from_u128(n.into()),
            registration_number: format!("AA-{n}"),
            ambulance_type: kind,
            status,
            features: vec!["oxygen".into()],
            current_latitude: at.map(|a| a.0),
            current_longitude: at.map(|a| a.1),
            position_reported_at: Some(Utc::now() - TimeDelta::minutes(seen_min)),
            crew: 2,
        }
    }

    #[test]
    fn units_are_ranked_by_distance_and_the_rest_left_out_with_reasons() {
        let now = Utc::now();
        let trip = Trip {
            id: Uuid::nil(),
            reference: "T-1001".into(),
            request_type: RequestType::Emergency,
            priority: TripPriority::Urgent,
            status: TripStatus::Pending,
            pickup_address: "Bole".into(),
            pickup_latitude: Some(9.0),
            pickup_longitude: Some(38.75),
            dropoff_address: "Black Lion".into(),
            patient_id: None,
            ambulance_id: None,
            registration_number: None,
            contact_name: None,
            contact_phone: None,
            scheduled_at: now,
            equipment_needed: vec!["oxygen".into()],
            required_type: None,
            special_instructions: None,
            sensitive: false,
            assigned_at: None,
            acknowledged_at: None,
            en_route_to_pickup_at: None,
            at_pickup_at: None,
            en_route_to_dropoff_at: None,
            at_destination_at: None,
            handover_at: None,
            completed_at: None,
            cancelled_at: None,
            created_at: now,
        };
        use AmbulanceStatus::*;
        use AmbulanceType::*;
        let units = [
            unit(1, BasicLifeSupport, Available, Some((9.02, 38.75)), 5),
            unit(2, AdvancedLifeSupport, Available, Some((9.005, 38.75)), 1),
            unit(3, PatientTransport, Available, Some((9.0, 38.75)), 1),
            unit(4, BasicLifeSupport, Available, Some((9.0, 38.751)), 45),
            unit(5, BasicLifeSupport, Assigned, Some((9.0, 38.75)), 1),
            unit(6, BasicLifeSupport, Available, None, 1),
            Unit {
                crew: 0,
                ..unit(7, BasicLifeSupport, Available, Some((9.0, 38.75)), 1)
            },
        ];
        let s = rank(
            &trip,
            Coordinates::new(9.0, 38.75).unwrap(),
            &units,
            now,
            TimeDelta::minutes(30),
            30.0,
        );
        let order: Vec<&str> = s
            .ranked
            .iter()
            .map(|u| u.registration_number.as_str())
            .collect();
        assert_eq!(order, ["AA-2", "AA-1"]);
        // 556 m at 30 km/h is about 1.1 minutes.
        assert_eq!(s.ranked[0].eta_minutes, 1.1);
        let reasons: Vec<(&str, &str)> = s
            .left_out
            .iter()
            .map(|l| {
                (
                    l.registration_number.as_str(),
                    l.reason.split(':').next().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            reasons,
            [
                ("AA-3", "wrong_type"),
                ("AA-4", "stale_position"),
                ("AA-5", "busy"),
                ("AA-6", "no_position"),
                ("AA-7", "no_crew")
            ]
        );
    }
}
