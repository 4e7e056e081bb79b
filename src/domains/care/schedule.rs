//! Caregiver assignments (who visits whom, which days, which hours) and the visits generated
//! from them: ahead of time, in the organisation's time zone, never twice.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{CareError, CareResult, timers};
use crate::{
    audit,
    error::FieldErrors,
    jobs::{self, Job},
    messaging::{
        Messaging, contacts,
        notify::{self, Notification},
        templates::{Templates, Values},
    },
    types::required_text,
};

/// How far ahead recurring visits exist.
pub const HORIZON: TimeDelta = TimeDelta::days(14);

crate::text_enum! {
    /// Whether an assignment still generates visits.
    pub enum AssignmentStatus {
        Active = "active",
        Paused = "paused",
        Ended = "ended",
        Cancelled = "cancelled",
    }
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Assignment {
    pub id: Uuid,
    pub caregiver_id: Uuid,
    pub patient_id: Uuid,
    pub service_type: String,
    pub starts_on: NaiveDate,
    pub ends_on: Option<NaiveDate>,
    /// Local time, HH:MM:SS.
    pub shift_start: NaiveTime,
    pub shift_end: NaiveTime,
    /// 1 = Monday ... 7 = Sunday.
    pub days_of_week: Vec<i16>,
    /// active, paused, ended, cancelled.
    pub status: AssignmentStatus,
}

const COLUMNS: &str = "id, caregiver_id, patient_id, service_type, starts_on, ends_on, shift_start, \
    shift_end, days_of_week, status";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAssignment {
    pub caregiver_id: Uuid,
    pub patient_id: Uuid,
    pub service_type: String,
    pub starts_on: NaiveDate,
    pub ends_on: Option<NaiveDate>,
    /// Local time in the organisation's time zone, "08:00".
    pub shift_start: String,
    /// "09:00"; earlier than the start means the shift ends the next day.
    pub shift_end: String,
    /// 1 = Monday ... 7 = Sunday; at least one.
    pub days_of_week: Vec<i16>,
}

fn parse_time(field: &str, raw: &str, errors: &mut FieldErrors) -> Option<NaiveTime> {
    let parsed = NaiveTime::parse_from_str(raw.trim(), "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(raw.trim(), "%H:%M:%S"));
    match parsed {
        Ok(t) => Some(t),
        Err(_) => {
            errors.add(
                field,
                format!("{raw:?} is not a time: write it as HH:MM, e.g. 08:30"),
            );
            None
        }
    }
}

/// The local moment `date` + `time` in `tz`, as UTC. A time the clocks skip (spring forward)
/// becomes the same wall time an hour later; a time that happens twice (fall back) the first.
pub fn local_to_utc<Tz: TimeZone>(tz: &Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let naive = date.and_time(time);
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(naive + TimeDelta::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| naive.and_utc())
}

/// The visits an assignment makes from `from` to `to` (inclusive), as UTC start and end.
pub fn occurrences<Tz: TimeZone>(
    tz: &Tz,
    days_of_week: &[i16],
    shift_start: NaiveTime,
    shift_end: NaiveTime,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    from.iter_days()
        .take_while(|d| *d <= to)
        .filter(|d| days_of_week.contains(&(d.weekday().number_from_monday() as i16)))
        .map(|d| {
            let end_date = if shift_end <= shift_start {
                d.succ_opt().unwrap_or(d)
            } else {
                d
            };
            (
                local_to_utc(tz, d, shift_start),
                local_to_utc(tz, end_date, shift_end),
            )
        })
        .collect()
}

pub async fn create(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    input: NewAssignment,
) -> CareResult<Assignment> {
    let mut errors = FieldErrors::new();
    let service = errors.check("service_type", required_text(&input.service_type, 100));
    let start = parse_time("shift_start", &input.shift_start, &mut errors);
    let end = parse_time("shift_end", &input.shift_end, &mut errors);
    if start.is_some() && start == end {
        errors.add("shift_end", "must differ from shift_start");
    }
    let mut days = input.days_of_week.clone();
    days.sort_unstable();
    days.dedup();
    if days.is_empty() || days.iter().any(|d| !(1..=7).contains(d)) {
        errors.add(
            "days_of_week",
            "give at least one day, 1 (Monday) to 7 (Sunday); a single visit goes to POST /visits",
        );
    }
    if input.ends_on.is_some_and(|e| e < input.starts_on) {
        errors.add("ends_on", "must not be before starts_on");
    }
    errors.into_result()?;
    super::visits::check_caregiver(conn, tenant_id, input.caregiver_id).await?;
    let assignment: Assignment = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO caregiver_assignments (tenant_id, caregiver_id, patient_id, service_type, starts_on,
             ends_on, shift_start, shift_end, days_of_week)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    )))
    .bind(tenant_id)
    .bind(input.caregiver_id)
    .bind(input.patient_id)
    .bind(service.map(|s| s.to_lowercase()))
    .bind(input.starts_on)
    .bind(input.ends_on)
    .bind(start)
    .bind(end)
    .bind(&days)
    .fetch_one(&mut *conn)
    .await?;
    generate(conn, tenant_id, Some(assignment.id)).await?;
    Ok(assignment)
}

pub async fn list(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<Vec<Assignment>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM caregiver_assignments WHERE tenant_id = $1 ORDER BY created_at"
    )))
    .bind(tenant_id)
    .fetch_all(conn)
    .await
}

#[derive(sqlx::FromRow)]
struct Active {
    id: Uuid,
    tenant_id: Uuid,
    caregiver_id: Uuid,
    patient_id: Uuid,
    service_type: String,
    starts_on: NaiveDate,
    ends_on: Option<NaiveDate>,
    shift_start: NaiveTime,
    shift_end: NaiveTime,
    days_of_week: Vec<i16>,
    time_zone: String,
    today: NaiveDate,
}

/// Creates the missing visits of active assignments (one tenant's, or one assignment) from
/// today, or the first day, for [`HORIZON`]. Running it again creates nothing new. Returns the
/// visits made.
#[tracing::instrument(skip(conn))]
pub async fn generate(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    assignment_id: Option<Uuid>,
) -> anyhow::Result<Vec<Uuid>> {
    let active: Vec<Active> = sqlx::query_as(
        "SELECT a.id, a.tenant_id, a.caregiver_id, a.patient_id, a.service_type, a.starts_on, a.ends_on,
                a.shift_start, a.shift_end, a.days_of_week, t.time_zone,
                (now() AT TIME ZONE t.time_zone)::date AS today
         FROM caregiver_assignments a JOIN tenants t ON t.id = a.tenant_id
         WHERE a.tenant_id = $1 AND ($2::uuid IS NULL OR a.id = $2) AND a.status = 'active'
         FOR UPDATE OF a",
    )
    .bind(tenant_id)
    .bind(assignment_id)
    .fetch_all(&mut *conn)
    .await?;
    generate_for(conn, &active).await
}

async fn generate_for(conn: &mut PgConnection, active: &[Active]) -> anyhow::Result<Vec<Uuid>> {
    let mut made = Vec::new();
    for a in active {
        let tz = crate::types::TimeZone::stored(&a.time_zone);
        let from = a.today.max(a.starts_on);
        let mut to = from + HORIZON;
        if let Some(ends) = a.ends_on {
            to = to.min(ends);
        }
        for (start, end) in occurrences(&tz, &a.days_of_week, a.shift_start, a.shift_end, from, to)
        {
            if end <= Utc::now() {
                continue;
            }
            let created: Option<Uuid> = sqlx::query_scalar(
                "INSERT INTO visits (tenant_id, assignment_id, caregiver_id, patient_id, service_type,
                     scheduled_start, scheduled_end)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT ON CONSTRAINT visits_assignment_start_key DO NOTHING
                 RETURNING id",
            )
            .bind(a.tenant_id)
            .bind(a.id)
            .bind(a.caregiver_id)
            .bind(a.patient_id)
            .bind(&a.service_type)
            .bind(start)
            .bind(end)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(visit) = created {
                timers::start(conn, a.tenant_id, visit).await?;
                made.push(visit);
            }
        }
    }
    Ok(made)
}

/// The recurring job that keeps every tenant's visits generated ahead.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct VisitSchedule {}

impl Job for VisitSchedule {
    const QUEUE: &'static str = "visit-schedule";
}

#[tracing::instrument(skip_all)]
pub async fn visit_schedule(
    _: VisitSchedule,
    messaging: Data<Arc<Messaging>>,
) -> Result<(), BoxDynError> {
    let mut tx = audit::begin(&messaging.pool, audit::Actor::System).await?;
    jobs::lock_recurring::<VisitSchedule>(&mut tx).await?;
    let active: Vec<Active> = sqlx::query_as(
        "SELECT a.id, a.tenant_id, a.caregiver_id, a.patient_id, a.service_type, a.starts_on, a.ends_on,
                a.shift_start, a.shift_end, a.days_of_week, t.time_zone,
                (now() AT TIME ZONE t.time_zone)::date AS today
         FROM caregiver_assignments a JOIN tenants t ON t.id = a.tenant_id
         WHERE a.status = 'active' AND t.deleted_at IS NULL
         -- A change or cancellation in flight either finishes first (and is read here) or waits
         -- for this run and then sees what it made; never stale rows that resurrect visits.
         FOR UPDATE OF a",
    )
    .fetch_all(&mut *tx)
    .await?;
    let made = generate_for(&mut tx, &active).await?.len();
    // Hourly housekeeping rides along: old sign-in requests, codes, panel attempts, early
    // statuses and finished jobs.
    super::app_auth::prune(&mut tx).await?;
    crate::domains::sign_in_attempts::prune(&mut tx).await?;
    crate::messaging::ingest::prune_early_statuses(&mut tx).await?;
    jobs::prune_finished(&mut tx).await?;
    jobs::schedule_recurring::<VisitSchedule>(&mut tx, messaging.config.visit_schedule_interval)
        .await?;
    tx.commit().await?;
    tracing::info!(made, assignments = active.len(), "visits generated ahead");
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Upcoming {
    id: Uuid,
    caregiver_id: Uuid,
    scheduled_start: DateTime<Utc>,
    scheduled_end: DateTime<Utc>,
    patient_name: String,
    time_zone: String,
}

async fn upcoming(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    assignment_id: Option<Uuid>,
    visit_id: Option<Uuid>,
) -> sqlx::Result<Vec<Upcoming>> {
    sqlx::query_as(
        "SELECT v.id, v.caregiver_id, v.scheduled_start, v.scheduled_end, p.first_name || ' ' || p.last_name AS patient_name, t.time_zone
         FROM visits v JOIN patients p ON p.tenant_id = v.tenant_id AND p.id = v.patient_id
         JOIN tenants t ON t.id = v.tenant_id
         WHERE v.tenant_id = $1 AND v.status = 'scheduled' AND v.scheduled_end > now()
           AND ($2::uuid IS NULL OR v.assignment_id = $2) AND ($3::uuid IS NULL OR v.id = $3)
         ORDER BY v.scheduled_start
         FOR UPDATE OF v",
    )
    .bind(tenant_id)
    .bind(assignment_id)
    .bind(visit_id)
    .fetch_all(conn)
    .await
}

fn when(at: DateTime<Utc>, time_zone: &str) -> String {
    let tz = crate::types::TimeZone::stored(time_zone);
    at.with_timezone(&tz).format("%a %d %b %H:%M").to_string()
}

async fn tell(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    caregiver: Uuid,
    key: &'static str,
    visit: &Upcoming,
) -> anyhow::Result<()> {
    // A caregiver who was removed has nobody to tell.
    let Some(contact) = contacts::for_live_worker(conn, tenant_id, caregiver).await? else {
        return Ok(());
    };
    let values = Values::new()
        .with("patient", &visit.patient_name)
        .with("time", when(visit.scheduled_start, &visit.time_zone));
    let mut notification = Notification::new(tenant_id, contact, key, values);
    notification.related = Some(("visit", visit.id));
    notify::notify(conn, templates, &notification).await?;
    Ok(())
}

/// What a cancellation or reassignment touches: one visit, or an assignment and its visits to come.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Visit(Uuid),
    Assignment(Uuid),
}

/// Cancels the visit, or the assignment and all its visits to come; each caregiver is told.
pub async fn cancel(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    scope: Scope,
    reason: Option<&str>,
) -> CareResult<u64> {
    let visits = match scope {
        Scope::Visit(id) => {
            let visits = upcoming(conn, tenant_id, None, Some(id)).await?;
            if visits.is_empty() {
                let exists: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM visits WHERE tenant_id = $1 AND id = $2)",
                )
                .bind(tenant_id)
                .bind(id)
                .fetch_one(&mut *conn)
                .await?;
                return Err(if exists {
                    CareError::Conflict(
                        "only a scheduled visit still to come can be cancelled".into(),
                    )
                } else {
                    CareError::NotFound("visit")
                });
            }
            visits
        }
        Scope::Assignment(id) => {
            let done = sqlx::query(
                "UPDATE caregiver_assignments SET status = 'cancelled' WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                return Err(CareError::NotFound("assignment"));
            }
            upcoming(conn, tenant_id, Some(id), None).await?
        }
    };
    for visit in &visits {
        sqlx::query(
            "UPDATE visits SET status = 'cancelled', cancelled_at = now(), cancelled_reason = $3
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(visit.id)
        .bind(reason)
        .execute(&mut *conn)
        .await?;
        tell(
            conn,
            templates,
            tenant_id,
            visit.caregiver_id,
            "visit_cancelled",
            visit,
        )
        .await?;
    }
    Ok(visits.len() as u64)
}

/// Gives the visit, or the assignment and its visits to come, to another caregiver; both hear.
pub async fn reassign(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    scope: Scope,
    caregiver_id: Uuid,
) -> CareResult<u64> {
    super::visits::check_caregiver(conn, tenant_id, caregiver_id).await?;
    let visits = match scope {
        Scope::Visit(id) => upcoming(conn, tenant_id, None, Some(id)).await?,
        Scope::Assignment(id) => {
            let done = sqlx::query(
                "UPDATE caregiver_assignments SET caregiver_id = $3 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant_id)
            .bind(id)
            .bind(caregiver_id)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                return Err(CareError::NotFound("assignment"));
            }
            upcoming(conn, tenant_id, Some(id), None).await?
        }
    };
    if visits.is_empty() && matches!(scope, Scope::Visit(_)) {
        return Err(CareError::NotFound("scheduled visit"));
    }
    let mut moved = 0;
    for visit in visits.iter().filter(|v| v.caregiver_id != caregiver_id) {
        sqlx::query("UPDATE visits SET caregiver_id = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(visit.id)
            .bind(caregiver_id)
            .execute(&mut *conn)
            .await?;
        tell(
            conn,
            templates,
            tenant_id,
            visit.caregiver_id,
            "visit_reassigned_away",
            visit,
        )
        .await?;
        tell(
            conn,
            templates,
            tenant_id,
            caregiver_id,
            "visit_assigned_to_you",
            visit,
        )
        .await?;
        moved += 1;
    }
    Ok(moved)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentChange {
    pub days_of_week: Option<Vec<i16>>,
    pub shift_start: Option<String>,
    pub shift_end: Option<String>,
    /// The last day; `null` leaves it as it is.
    pub ends_on: Option<NaiveDate>,
}

/// Changes an assignment's days, hours or last day. Visits to come that no longer fit are
/// removed (the caregiver is told), new ones are made (and announced); the rest stay as they
/// are, with their reminders.
pub async fn change(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    id: Uuid,
    input: AssignmentChange,
) -> CareResult<Assignment> {
    let current: Assignment = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM caregiver_assignments WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    )))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(CareError::NotFound("assignment"))?;
    if current.status != AssignmentStatus::Active {
        return Err(CareError::Conflict(format!(
            "this assignment is {}: only an active one can change",
            current.status
        )));
    }
    let mut errors = FieldErrors::new();
    let start = match &input.shift_start {
        Some(raw) => parse_time("shift_start", raw, &mut errors),
        None => Some(current.shift_start),
    };
    let end = match &input.shift_end {
        Some(raw) => parse_time("shift_end", raw, &mut errors),
        None => Some(current.shift_end),
    };
    let mut days = input
        .days_of_week
        .clone()
        .unwrap_or(current.days_of_week.clone());
    days.sort_unstable();
    days.dedup();
    if days.is_empty() || days.iter().any(|d| !(1..=7).contains(d)) {
        errors.add(
            "days_of_week",
            "give at least one day, 1 (Monday) to 7 (Sunday)",
        );
    }
    if start.is_some() && start == end {
        errors.add("shift_end", "must differ from shift_start");
    }
    let ends_on = input.ends_on.or(current.ends_on);
    if ends_on.is_some_and(|e| e < current.starts_on) {
        errors.add("ends_on", "must not be before starts_on");
    }
    errors.into_result()?;
    let updated: Assignment = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE caregiver_assignments SET days_of_week = $3, shift_start = $4, shift_end = $5, ends_on = $6
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    )))
    .bind(tenant_id)
    .bind(id)
    .bind(&days)
    .bind(start)
    .bind(end)
    .bind(ends_on)
    .fetch_one(&mut *conn)
    .await?;
    // Visits to come that the new pattern does not make go; generate() adds the new ones.
    let (tz_name, today): (String, NaiveDate) = sqlx::query_as(
        "SELECT time_zone, (now() AT TIME ZONE time_zone)::date FROM tenants WHERE id = $1",
    )
    .bind(tenant_id)
    .fetch_one(&mut *conn)
    .await?;
    let tz = crate::types::TimeZone::stored(&tz_name);
    let horizon_end = today.max(updated.starts_on) + HORIZON + TimeDelta::days(1);
    let wanted = occurrences(
        &tz,
        &updated.days_of_week,
        updated.shift_start,
        updated.shift_end,
        today.max(updated.starts_on),
        updated.ends_on.map_or(horizon_end, |e| e.min(horizon_end)),
    );
    for visit in upcoming(conn, tenant_id, Some(id), None).await? {
        let fits = wanted
            .iter()
            .any(|(s, e)| *s == visit.scheduled_start && *e == visit.scheduled_end);
        // A visit already under way stays whatever the new pattern says.
        if fits || visit.scheduled_start <= Utc::now() {
            continue;
        }
        sqlx::query("DELETE FROM visits WHERE tenant_id = $1 AND id = $2 AND status = 'scheduled'")
            .bind(tenant_id)
            .bind(visit.id)
            .execute(&mut *conn)
            .await?;
        tell(
            conn,
            templates,
            tenant_id,
            visit.caregiver_id,
            "visit_cancelled",
            &visit,
        )
        .await?;
    }
    for new in generate(conn, tenant_id, Some(id)).await? {
        for visit in upcoming(conn, tenant_id, None, Some(new)).await? {
            tell(
                conn,
                templates,
                tenant_id,
                visit.caregiver_id,
                "visit_assigned_to_you",
                &visit,
            )
            .await?;
        }
    }
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }
    fn time(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").unwrap()
    }

    #[test]
    fn recurring_visits_keep_local_time_across_daylight_saving() {
        let london = chrono_tz::Europe::London;
        // Clocks go forward on Sunday 28 March 2027.
        let visits = occurrences(
            &london,
            &[1, 2, 3, 4, 5, 6, 7],
            time("08:00"),
            time("09:00"),
            day("2027-03-27"),
            day("2027-03-29"),
        );
        let starts: Vec<String> = visits.iter().map(|(s, _)| s.to_rfc3339()).collect();
        assert_eq!(
            starts,
            [
                "2027-03-27T08:00:00+00:00",
                "2027-03-28T07:00:00+00:00",
                "2027-03-29T07:00:00+00:00"
            ]
        );
        assert!(visits.iter().all(|(s, e)| *e - *s == TimeDelta::hours(1)));
    }

    #[test]
    fn skipped_and_doubled_hours_and_overnight_shifts() {
        let london = chrono_tz::Europe::London;
        // 01:30 does not exist on 28 March 2027: the visit is at 02:30 BST (01:30 UTC).
        let gap = occurrences(
            &london,
            &[7],
            time("01:30"),
            time("03:00"),
            day("2027-03-28"),
            day("2027-03-28"),
        );
        assert_eq!(gap[0].0.to_rfc3339(), "2027-03-28T01:30:00+00:00");
        // 01:30 happens twice on 31 October 2027: the first (BST).
        let twice = occurrences(
            &london,
            &[7],
            time("01:30"),
            time("03:00"),
            day("2027-10-31"),
            day("2027-10-31"),
        );
        assert_eq!(twice[0].0.to_rfc3339(), "2027-10-31T00:30:00+00:00");
        // 22:00 to 06:00 ends the next morning; only the chosen weekdays (Monday 29 March 2027).
        let night = occurrences(
            &london,
            &[1],
            time("22:00"),
            time("06:00"),
            day("2027-03-27"),
            day("2027-04-04"),
        );
        assert_eq!(night.len(), 1);
        assert_eq!(night[0].0.to_rfc3339(), "2027-03-29T21:00:00+00:00");
        assert_eq!(night[0].1.to_rfc3339(), "2027-03-30T05:00:00+00:00");
    }
}
