//! Visits and their check-in and check-out: every reading is kept as an event with its
//! distance, accuracy and verdict; what breaks the rules becomes an exception for coordinators.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    CareError, CareResult,
    verify::{self, Code, Exception, Rules},
};
use crate::{
    error::{FieldErrors, Invalid},
    types::{Coordinates, required_text},
};

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Visit {
    pub id: Uuid,
    pub caregiver_id: Uuid,
    pub patient_id: Uuid,
    pub patient_name: String,
    pub address: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub service_type: String,
    pub scheduled_start: DateTime<Utc>,
    pub scheduled_end: DateTime<Utc>,
    /// scheduled, in_progress, completed, missed, cancelled.
    pub status: VisitStatus,
    pub late: bool,
    pub check_in_at: Option<DateTime<Utc>>,
    pub check_in_distance_m: Option<f64>,
    pub check_in_verified: Option<bool>,
    pub check_out_at: Option<DateTime<Utc>>,
    pub check_out_distance_m: Option<f64>,
    pub check_out_verified: Option<bool>,
    pub manually_edited: bool,
}

const COLUMNS: &str =
    "v.id, v.caregiver_id, v.patient_id, p.first_name || ' ' || p.last_name AS patient_name,
    NULLIF(concat_ws(', ', p.address_line, p.city), '') AS address,
    p.latitude::float8 AS latitude, p.longitude::float8 AS longitude, v.service_type,
    v.scheduled_start, v.scheduled_end, v.status, v.late_at IS NOT NULL AS late, v.check_in_at,
    v.check_in_distance_m, v.check_in_verified, v.check_out_at, v.check_out_distance_m,
    v.check_out_verified, v.manually_edited";

const FROM: &str = "visits v JOIN patients p ON p.tenant_id = v.tenant_id AND p.id = v.patient_id";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVisit {
    pub caregiver_id: Uuid,
    pub patient_id: Uuid,
    /// What is done: personal_care, nursing, physiotherapy, ...
    pub service_type: String,
    pub scheduled_start: DateTime<Utc>,
    pub scheduled_end: DateTime<Utc>,
}

/// A check-in or check-out the visit does not allow, said to the API caller in English and to a
/// caregiver writing in by [`Refusal::message_key`], in their language.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this visit was cancelled")]
    Cancelled,
    #[error("this visit is already checked in: check out instead")]
    AlreadyCheckedIn,
    #[error("this visit is already checked out")]
    AlreadyCheckedOut,
    #[error("this visit is not checked in yet: check in first")]
    NotCheckedIn,
    /// Completed, missed or otherwise over.
    #[error("this visit is {}: it can no longer be checked in", .0.as_str().replace('_', " "))]
    Closed(VisitStatus),
    #[error(
        "this visit is scheduled for another caregiver: ask a coordinator to reassign it, or send \"covering\": true if you are standing in"
    )]
    AnotherCaregivers,
    #[error(
        "this visit is scheduled for another caregiver, and you are not set up to stand in: ask a coordinator to reassign it to you"
    )]
    MayNotCover,
}

impl Refusal {
    /// The reply a caregiver gets by message.
    pub fn message_key(&self) -> &'static str {
        match self {
            Self::Cancelled => "visit_refused_cancelled",
            Self::AlreadyCheckedIn => "visit_refused_already_in",
            Self::AlreadyCheckedOut => "visit_refused_already_out",
            Self::NotCheckedIn => "visit_refused_not_in",
            Self::Closed(_) => "visit_refused_closed",
            Self::AnotherCaregivers | Self::MayNotCover => "visit_refused_not_yours",
        }
    }
}

/// Visits go to active caregivers of the organisation only (the API field is `caregiver_id`).
pub async fn check_caregiver(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    caregiver_id: Uuid,
) -> CareResult<()> {
    let caregiver: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM workers WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
                          AND status = 'active' AND 'caregiver' = ANY (kinds))",
    )
    .bind(tenant_id)
    .bind(caregiver_id)
    .fetch_one(conn)
    .await?;
    if caregiver {
        Ok(())
    } else {
        Err(Invalid::field(
            "caregiver_id",
            "no active caregiver of this organisation has this id",
        )
        .into())
    }
}

/// A one-off visit.
pub async fn create(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    input: NewVisit,
) -> CareResult<Visit> {
    let mut errors = FieldErrors::new();
    let service = errors.check("service_type", required_text(&input.service_type, 100));
    if input.scheduled_end <= input.scheduled_start {
        errors.add("scheduled_end", "must be after scheduled_start");
    }
    errors.into_result()?;
    check_caregiver(conn, tenant_id, input.caregiver_id).await?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO visits (tenant_id, caregiver_id, patient_id, service_type, scheduled_start, scheduled_end)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(tenant_id)
    .bind(input.caregiver_id)
    .bind(input.patient_id)
    .bind(service.map(|s| s.to_lowercase()))
    .bind(input.scheduled_start)
    .bind(input.scheduled_end)
    .fetch_one(&mut *conn)
    .await?;
    super::timers::start(conn, tenant_id, id).await?;
    get(conn, tenant_id, id).await
}

pub async fn get(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> CareResult<Visit> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE v.tenant_id = $1 AND v.id = $2"
    )))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(CareError::NotFound("visit"))
}

/// The visits starting on `date` in the organisation's time zone, optionally one caregiver's.
pub async fn on_date(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    date: NaiveDate,
    caregiver_id: Option<Uuid>,
) -> sqlx::Result<Vec<Visit>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} JOIN tenants t ON t.id = v.tenant_id
         WHERE v.tenant_id = $1 AND (v.scheduled_start AT TIME ZONE t.time_zone)::date = $2
           AND ($3::uuid IS NULL OR v.caregiver_id = $3)
         ORDER BY v.scheduled_start, v.id"
    )))
    .bind(tenant_id)
    .bind(date)
    .bind(caregiver_id)
    .fetch_all(conn)
    .await
}

/// Today in the organisation's time zone.
pub async fn today(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<NaiveDate> {
    sqlx::query_scalar("SELECT (now() AT TIME ZONE time_zone)::date FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_one(conn)
        .await
}

crate::text_enum! {
    /// Where a visit is in its day.
    pub enum VisitStatus {
        Scheduled = "scheduled",
        InProgress = "in_progress",
        Completed = "completed",
        Missed = "missed",
        Cancelled = "cancelled",
    }
}

impl VisitStatus {
    /// The one place a check-in or check-out moves a visit: where it goes, or why it cannot.
    pub fn after(
        self,
        event: EventKind,
        checked_in: bool,
        checked_out: bool,
    ) -> Result<Self, Refusal> {
        match (event, self) {
            (_, Self::Cancelled) => Err(Refusal::Cancelled),
            (EventKind::CheckIn, Self::Scheduled) => Ok(Self::InProgress),
            (EventKind::CheckOut, Self::InProgress) => Ok(Self::Completed),
            (EventKind::CheckIn, _) if checked_in => Err(Refusal::AlreadyCheckedIn),
            (EventKind::CheckOut, _) if checked_out => Err(Refusal::AlreadyCheckedOut),
            (EventKind::CheckOut, _) => Err(Refusal::NotCheckedIn),
            (EventKind::CheckIn, status) => Err(Refusal::Closed(status)),
        }
    }
}

crate::text_enum! {
    /// Arriving at or leaving a visit.
    pub enum EventKind {
        CheckIn = "check_in",
        CheckOut = "check_out",
    }
}

/// Measurements taken at the visit; each within what a living patient can show.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Vitals {
    pub systolic_mmhg: Option<i32>,
    pub diastolic_mmhg: Option<i32>,
    pub pulse_bpm: Option<i32>,
    pub temperature_c: Option<f64>,
    pub spo2_percent: Option<i32>,
}

impl Vitals {
    fn check(&self, errors: &mut FieldErrors) {
        let mut range = |field: &str, value: Option<f64>, low: f64, high: f64, unit: &str| {
            if let Some(v) = value
                && !(low..=high).contains(&v)
            {
                errors.add(
                    format!("vitals.{field}"),
                    format!("{v} is not plausible: give a value from {low} to {high} {unit}"),
                );
            }
        };
        range(
            "systolic_mmhg",
            self.systolic_mmhg.map(f64::from),
            50.0,
            260.0,
            "mmHg",
        );
        range(
            "diastolic_mmhg",
            self.diastolic_mmhg.map(f64::from),
            30.0,
            160.0,
            "mmHg",
        );
        range(
            "pulse_bpm",
            self.pulse_bpm.map(f64::from),
            20.0,
            250.0,
            "beats per minute",
        );
        range("temperature_c", self.temperature_c, 30.0, 45.0, "°C");
        range(
            "spo2_percent",
            self.spo2_percent.map(f64::from),
            50.0,
            100.0,
            "%",
        );
        if let (Some(s), Some(d)) = (self.systolic_mmhg, self.diastolic_mmhg)
            && d >= s
        {
            errors.add("vitals.diastolic_mmhg", "must be lower than systolic_mmhg");
        }
        if self.systolic_mmhg.is_some() != self.diastolic_mmhg.is_some() {
            errors.add(
                "vitals",
                "give blood pressure as both systolic_mmhg and diastolic_mmhg",
            );
        }
    }
}

/// One reading from the caregiver's phone or message.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub position: Option<Coordinates>,
    pub accuracy_m: Option<f64>,
    pub device_time: Option<DateTime<Utc>>,
    pub client_event_id: Option<String>,
    /// app, whatsapp, sms.
    pub method: &'static str,
    pub message_id: Option<Uuid>,
    /// A substitute checking in to someone else's visit (recorded as an exception).
    pub covering: bool,
    pub notes: Option<String>,
    pub vitals: Option<Vitals>,
}

/// What a check-in or check-out came to; a retry with the same client event id gets it again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventResult {
    pub event_id: Uuid,
    pub visit_id: Uuid,
    pub kind: EventKind,
    /// When it happened: the device's reading time when plausible.
    pub at: DateTime<Utc>,
    pub patient_name: String,
    pub distance_m: Option<f64>,
    pub accuracy_m: Option<f64>,
    pub verified: bool,
    /// Exception codes raised by this reading: outside_geofence, poor_accuracy, no_position,
    /// early_check_in, late_check_in, wrong_caregiver, impossible_journey, device_time_skew.
    pub exceptions: Vec<String>,
    pub status: VisitStatus,
}

#[derive(sqlx::FromRow)]
struct Locked {
    caregiver_id: Uuid,
    status: VisitStatus,
    scheduled_start: DateTime<Utc>,
    check_in_at: Option<DateTime<Utc>>,
    check_out_at: Option<DateTime<Utc>>,
    patient_name: String,
    home_latitude: Option<f64>,
    home_longitude: Option<f64>,
    radius_m: i32,
}

/// Records a check-in or check-out by `worker_id` on `visit_id`, in the caller's transaction.
#[tracing::instrument(skip(conn, reading), fields(method = reading.method))]
pub async fn record(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    worker_id: Uuid,
    visit_id: Uuid,
    kind: EventKind,
    reading: Reading,
) -> CareResult<EventResult> {
    let mut errors = FieldErrors::new();
    if let Some(accuracy) = reading.accuracy_m
        && !(accuracy.is_finite() && accuracy >= 0.0)
    {
        errors.add("accuracy_m", "give the accuracy in metres, 0 or more");
    }
    if let Some(id) = &reading.client_event_id
        && (id.trim().is_empty() || id.len() > 100)
    {
        errors.add("client_event_id", "give 1 to 100 characters");
    }
    if let Some(vitals) = &reading.vitals {
        vitals.check(&mut errors);
    }
    if reading.notes.as_ref().is_some_and(|n| n.len() > 4000) {
        errors.add("notes", "must be at most 4000 characters");
    }
    errors.into_result()?;

    let visit: Locked = sqlx::query_as(
        "SELECT v.caregiver_id, v.status, v.scheduled_start, v.check_in_at, v.check_out_at,
                p.first_name || ' ' || p.last_name AS patient_name,
                p.latitude::float8 AS home_latitude, p.longitude::float8 AS home_longitude,
                COALESCE(p.geofence_radius_m, t.default_geofence_radius_m) AS radius_m
         FROM visits v
         JOIN patients p ON p.tenant_id = v.tenant_id AND p.id = v.patient_id
         JOIN tenants t ON t.id = v.tenant_id
         WHERE v.tenant_id = $1 AND v.id = $2
         FOR UPDATE OF v",
    )
    .bind(tenant_id)
    .bind(visit_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(CareError::NotFound("visit"))?;

    // A retry of an event already recorded: the first answer, nothing changed.
    if let Some(client_event_id) = &reading.client_event_id {
        let earlier: Option<serde_json::Value> = sqlx::query_scalar(
            "SELECT result FROM visit_events
             WHERE tenant_id = $1 AND worker_id = $2 AND visit_id = $3 AND client_event_id = $4",
        )
        .bind(tenant_id)
        .bind(worker_id)
        .bind(visit_id)
        .bind(client_event_id)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(earlier) = earlier {
            return serde_json::from_value(earlier)
                .map_err(|e| CareError::Internal(anyhow::anyhow!("stored event result: {e}")));
        }
    }

    let mut exceptions: Vec<Exception> = Vec::new();
    if visit.caregiver_id != worker_id {
        if !reading.covering {
            return Err(Refusal::AnotherCaregivers.into());
        }
        let may_cover: bool = sqlx::query_scalar(
            "SELECT may_cover AND 'caregiver' = ANY (kinds) AND status = 'active'
             FROM workers WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(worker_id)
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or(false);
        if !may_cover {
            return Err(Refusal::MayNotCover.into());
        }
        exceptions.push(Exception {
            code: Code::WrongCaregiver,
            detail: "checked by a caregiver other than the one scheduled".into(),
        });
    }
    let status = visit.status.after(
        kind,
        visit.check_in_at.is_some(),
        visit.check_out_at.is_some(),
    )?;

    let rules = Rules::default();
    let received = Utc::now();
    let (at, skew) = verify::event_time(reading.device_time, received, &rules);
    exceptions.extend(skew);
    if kind == EventKind::CheckOut
        && let Some(check_in) = visit.check_in_at
        && at < check_in
    {
        return Err(Invalid::field(
            "device_time",
            "is before the check-in: check the phone's clock",
        )
        .into());
    }
    let home = visit
        .home_latitude
        .zip(visit.home_longitude)
        .and_then(|(lat, lon)| Coordinates::new(lat, lon).ok());
    let place = verify::position(
        reading.position,
        reading.accuracy_m,
        home,
        f64::from(visit.radius_m),
        &rules,
    );
    exceptions.extend(place.exceptions.iter().cloned());
    if kind == EventKind::CheckIn {
        exceptions.extend(verify::check_in_timing(at, visit.scheduled_start, &rules));
    }
    if let Some(here) = reading.position {
        let previous: Option<(f64, f64, DateTime<Utc>)> = sqlx::query_as(
            "SELECT latitude::float8, longitude::float8, COALESCE(event_time, received_at) FROM visit_events
             WHERE tenant_id = $1 AND worker_id = $2 AND latitude IS NOT NULL
             ORDER BY COALESCE(event_time, received_at) DESC LIMIT 1",
        )
        .bind(tenant_id)
        .bind(worker_id)
        .fetch_optional(&mut *conn)
        .await?;
        let previous =
            previous.and_then(|(lat, lon, t)| Some((Coordinates::new(lat, lon).ok()?, t)));
        exceptions.extend(verify::journey(previous, (here, at), &rules));
    }

    let event_id = Uuid::now_v7();
    let result = EventResult {
        event_id,
        visit_id,
        kind,
        at,
        patient_name: visit.patient_name,
        distance_m: place.distance_m.map(|d| d.round()),
        accuracy_m: reading.accuracy_m,
        verified: place.verified,
        exceptions: exceptions
            .iter()
            .map(|e| e.code.as_str().to_owned())
            .collect(),
        status,
    };
    let (lat, lon) = match reading.position {
        Some(p) => (Some(p.latitude), Some(p.longitude)),
        None => (None, None),
    };
    sqlx::query(
        "INSERT INTO visit_events (id, tenant_id, visit_id, worker_id, kind, method, client_event_id,
             latitude, longitude, accuracy_m, distance_m, verified, device_time, event_time, message_id, result)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(event_id)
    .bind(tenant_id)
    .bind(visit_id)
    .bind(worker_id)
    .bind(kind.as_str())
    .bind(reading.method)
    .bind(&reading.client_event_id)
    .bind(lat)
    .bind(lon)
    .bind(reading.accuracy_m)
    .bind(place.distance_m)
    .bind(place.verified)
    .bind(reading.device_time)
    .bind(at)
    .bind(reading.message_id)
    .bind(serde_json::to_value(&result).map_err(anyhow::Error::from)?)
    .execute(&mut *conn)
    .await?;
    let vitals = reading
        .vitals
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(anyhow::Error::from)?;
    let update = match kind {
        EventKind::CheckIn => sqlx::query(
            "UPDATE visits SET status = 'in_progress', check_in_at = $3, check_in_latitude = $4,
                 check_in_longitude = $5, check_in_accuracy_m = $6, check_in_distance_m = $7,
                 check_in_verified = $8, check_in_method = $9
             WHERE tenant_id = $1 AND id = $2",
        ),
        EventKind::CheckOut => sqlx::query(
            "UPDATE visits SET status = 'completed', check_out_at = $3, check_out_latitude = $4,
                 check_out_longitude = $5, check_out_accuracy_m = $6, check_out_distance_m = $7,
                 check_out_verified = $8, check_out_method = $9,
                 notes = COALESCE($10, notes), vitals = COALESCE($11, vitals)
             WHERE tenant_id = $1 AND id = $2",
        ),
    }
    .bind(tenant_id)
    .bind(visit_id)
    .bind(at)
    .bind(lat)
    .bind(lon)
    .bind(reading.accuracy_m)
    .bind(place.distance_m)
    .bind(place.verified)
    .bind(reading.method);
    match kind {
        EventKind::CheckIn => update,
        EventKind::CheckOut => update.bind(&reading.notes).bind(vitals),
    }
    .execute(&mut *conn)
    .await?;
    for exception in &exceptions {
        super::exceptions::raise(
            conn,
            tenant_id,
            visit_id,
            Some(event_id),
            exception.code.as_str(),
            &exception.detail,
        )
        .await?;
    }
    if kind == EventKind::CheckOut {
        crate::domains::patients::surveys::schedule(
            conn,
            tenant_id,
            crate::domains::patients::surveys::Subject::Visit(visit_id),
        )
        .await?;
    }
    tracing::info!(kind = kind.as_str(), verified = place.verified, exceptions = ?result.exceptions, "visit event recorded");
    Ok(result)
}

#[cfg(test)]
mod lifecycle {
    use super::{EventKind::*, Refusal, VisitStatus::*};

    #[test]
    fn a_visit_moves_only_forward_and_says_why_not() {
        assert_eq!(Scheduled.after(CheckIn, false, false), Ok(InProgress));
        assert_eq!(InProgress.after(CheckOut, true, false), Ok(Completed));
        assert_eq!(
            InProgress.after(CheckIn, true, false),
            Err(Refusal::AlreadyCheckedIn)
        );
        assert_eq!(
            Completed.after(CheckOut, true, true),
            Err(Refusal::AlreadyCheckedOut)
        );
        assert_eq!(
            Scheduled.after(CheckOut, false, false),
            Err(Refusal::NotCheckedIn)
        );
        assert_eq!(
            Missed.after(CheckIn, false, false),
            Err(Refusal::Closed(Missed))
        );
        assert_eq!(
            Cancelled.after(CheckIn, false, false),
            Err(Refusal::Cancelled)
        );
        assert_eq!(
            Refusal::Closed(Missed).to_string(),
            "this visit is missed: it can no longer be checked in"
        );
    }
}
