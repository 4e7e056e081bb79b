//! The exception queue: what did not go by the book on a visit, resolved by a coordinator with
//! a reason; and manual corrections of visit times, kept with their originals in the audit log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{CareError, CareResult, visits::VisitStatus};
use crate::{
    audit,
    error::{FieldErrors, Invalid},
    types::required_text,
};

/// Raises an exception on a visit. A reading's exceptions belong to its event; a timer's (no
/// event) are raised once per visit and code, however often the timer runs.
pub async fn raise(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    visit_id: Uuid,
    event_id: Option<Uuid>,
    code: &str,
    detail: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO visit_exceptions (tenant_id, visit_id, event_id, code, detail)
         SELECT $1, $2, $3, $4, $5
         WHERE $3::uuid IS NOT NULL
            OR NOT EXISTS (SELECT 1 FROM visit_exceptions WHERE tenant_id = $1 AND visit_id = $2 AND code = $4)",
    )
    .bind(tenant_id)
    .bind(visit_id)
    .bind(event_id)
    .bind(code)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// Why an exception was closed.
pub const RESOLUTIONS: &[&str] = &[
    "confirmed_with_patient",
    "confirmed_with_caregiver",
    "gps_problem",
    "schedule_changed",
    "substitute_approved",
    "corrected_times",
    "not_a_problem",
    "other",
];

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct VisitException {
    pub id: Uuid,
    pub visit_id: Uuid,
    pub code: String,
    pub detail: String,
    pub created_at: DateTime<Utc>,
    pub patient_name: String,
    pub caregiver_name: String,
    pub scheduled_start: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution_code: Option<String>,
    pub resolution_note: Option<String>,
}

/// Open exceptions first, newest first; or one visit's, all of them.
pub async fn list(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    open_only: bool,
    visit_id: Option<Uuid>,
) -> sqlx::Result<Vec<VisitException>> {
    sqlx::query_as(
        "SELECT e.id, e.visit_id, e.code, e.detail, e.created_at,
                p.first_name || ' ' || p.last_name AS patient_name,
                w.first_name || ' ' || w.last_name AS caregiver_name, v.scheduled_start,
                e.resolved_at, e.resolution_code, e.resolution_note
         FROM visit_exceptions e
         JOIN visits v ON v.tenant_id = e.tenant_id AND v.id = e.visit_id
         JOIN patients p ON p.tenant_id = v.tenant_id AND p.id = v.patient_id
         JOIN workers w ON w.tenant_id = v.tenant_id AND w.id = v.caregiver_id
         WHERE e.tenant_id = $1 AND (NOT $2 OR e.resolved_at IS NULL) AND ($3::uuid IS NULL OR e.visit_id = $3)
         ORDER BY e.resolved_at IS NULL DESC, e.created_at DESC
         LIMIT 500",
    )
    .bind(tenant_id)
    .bind(open_only)
    .bind(visit_id)
    .fetch_all(conn)
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    /// confirmed_with_patient, confirmed_with_caregiver, gps_problem, schedule_changed,
    /// substitute_approved, corrected_times, not_a_problem, other.
    pub resolution_code: String,
    pub note: String,
}

pub async fn resolve(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    input: &Resolution,
    user_id: Option<Uuid>,
) -> CareResult<()> {
    let mut errors = FieldErrors::new();
    if !RESOLUTIONS.contains(&input.resolution_code.as_str()) {
        errors.add(
            "resolution_code",
            format!("use one of: {}", RESOLUTIONS.join(", ")),
        );
    }
    let note = errors.check("note", required_text(&input.note, 2000));
    errors.into_result()?;
    let resolved: Option<Uuid> = sqlx::query_scalar(
        "UPDATE visit_exceptions SET resolved_at = now(), resolved_by = $3, resolution_code = $4, resolution_note = $5
         WHERE tenant_id = $1 AND id = $2 AND resolved_at IS NULL
         RETURNING visit_id",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(user_id)
    .bind(&input.resolution_code)
    .bind(&note)
    .fetch_optional(&mut *conn)
    .await?;
    if resolved.is_none() {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM visit_exceptions WHERE tenant_id = $1 AND id = $2)",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
        return Err(if exists {
            CareError::Conflict("this exception is already resolved".into())
        } else {
            CareError::NotFound("visit exception")
        });
    }
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Correction {
    pub check_in_at: Option<DateTime<Utc>>,
    pub check_out_at: Option<DateTime<Utc>>,
    /// Why the recorded times were wrong: kept in the audit log with the originals.
    pub reason: String,
}

#[derive(sqlx::FromRow, Serialize)]
struct Times {
    status: VisitStatus,
    check_in_at: Option<DateTime<Utc>>,
    check_out_at: Option<DateTime<Utc>>,
    check_in_method: Option<String>,
    check_out_method: Option<String>,
}

/// A coordinator sets the check-in and/or check-out time by hand. The visit is marked manually
/// edited; the audit log keeps the original times, who changed them, when and why.
pub async fn correct(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    visit_id: Uuid,
    input: &Correction,
) -> CareResult<()> {
    let mut errors = FieldErrors::new();
    let reason = errors.check("reason", required_text(&input.reason, 2000));
    if input.check_in_at.is_none() && input.check_out_at.is_none() {
        errors.add("check_in_at", "give check_in_at, check_out_at or both");
    }
    // Each time on its own: a check-in given too must not hide a future check-out.
    let now = Utc::now();
    for (field, at) in [
        ("check_in_at", input.check_in_at),
        ("check_out_at", input.check_out_at),
    ] {
        if at.is_some_and(|at| at > now) {
            errors.add(field, "a visit time cannot be in the future");
        }
    }
    errors.into_result()?;
    let before: Times = sqlx::query_as(
        "SELECT status, check_in_at, check_out_at, check_in_method, check_out_method FROM visits
         WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant_id)
    .bind(visit_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(CareError::NotFound("visit"))?;
    if before.status == VisitStatus::Cancelled {
        return Err(CareError::Conflict(
            "a cancelled visit has no times to correct".into(),
        ));
    }
    let check_in = input.check_in_at.or(before.check_in_at);
    let check_out = input.check_out_at.or(before.check_out_at);
    match (check_in, check_out) {
        (None, Some(_)) => {
            return Err(
                Invalid::field("check_in_at", "a check-out needs a check-in: give both").into(),
            );
        }
        (Some(i), Some(o)) if o < i => {
            return Err(Invalid::field("check_out_at", "must not be before the check-in").into());
        }
        _ => {}
    }
    let status = if check_out.is_some() {
        VisitStatus::Completed
    } else {
        VisitStatus::InProgress
    };
    // The trigger's audit row carries the reason with the original and new times.
    audit::because(conn, reason.as_deref().unwrap_or_default()).await?;
    sqlx::query(
        "UPDATE visits SET check_in_at = $3, check_out_at = $4, status = $5, manually_edited = true,
             check_in_method = CASE WHEN $6 THEN 'manual' ELSE check_in_method END,
             check_out_method = CASE WHEN $7 THEN 'manual' ELSE check_out_method END
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(visit_id)
    .bind(check_in)
    .bind(check_out)
    .bind(status)
    .bind(input.check_in_at.is_some())
    .bind(input.check_out_at.is_some())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
