//! The electronic visit verification export: one row per visit with the six elements (type of
//! service, person receiving it, person providing it, date, location, start and end time), the
//! verification result, the exception codes and whether a person edited the times.

use super::visits::VisitStatus;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct ExportRow {
    pub visit_id: Uuid,
    pub service_type: String,
    pub patient_id: Uuid,
    pub patient_name: String,
    pub caregiver_id: Uuid,
    pub caregiver_name: String,
    /// The visit's date in the organisation's time zone.
    pub date: NaiveDate,
    /// The patient's address and position on record.
    pub address: Option<String>,
    pub patient_latitude: Option<f64>,
    pub patient_longitude: Option<f64>,
    pub scheduled_start: DateTime<Utc>,
    pub scheduled_end: DateTime<Utc>,
    pub status: VisitStatus,
    pub check_in_at: Option<DateTime<Utc>>,
    pub check_in_latitude: Option<f64>,
    pub check_in_longitude: Option<f64>,
    pub check_in_distance_m: Option<f64>,
    pub check_in_verified: Option<bool>,
    pub check_in_method: Option<String>,
    pub check_out_at: Option<DateTime<Utc>>,
    pub check_out_latitude: Option<f64>,
    pub check_out_longitude: Option<f64>,
    pub check_out_distance_m: Option<f64>,
    pub check_out_verified: Option<bool>,
    pub check_out_method: Option<String>,
    /// Both check-in and check-out verified against the patient's home.
    pub verified: bool,
    /// Every exception raised on the visit, separated by ";" (resolved ones included).
    pub exception_codes: String,
    pub manually_edited: bool,
}

/// Visits whose local date is from `from` to `to`, inclusive.
pub async fn rows(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> sqlx::Result<Vec<ExportRow>> {
    sqlx::query_as(
        "SELECT v.id AS visit_id, v.service_type, v.patient_id, p.first_name || ' ' || p.last_name AS patient_name,
                v.caregiver_id, w.first_name || ' ' || w.last_name AS caregiver_name,
                (v.scheduled_start AT TIME ZONE t.time_zone)::date AS date,
                NULLIF(concat_ws(', ', p.address_line, p.city), '') AS address,
                p.latitude::float8 AS patient_latitude, p.longitude::float8 AS patient_longitude,
                v.scheduled_start, v.scheduled_end, v.status,
                v.check_in_at, v.check_in_latitude::float8 AS check_in_latitude,
                v.check_in_longitude::float8 AS check_in_longitude, round(v.check_in_distance_m)::float8 AS check_in_distance_m,
                v.check_in_verified, v.check_in_method,
                v.check_out_at, v.check_out_latitude::float8 AS check_out_latitude,
                v.check_out_longitude::float8 AS check_out_longitude, round(v.check_out_distance_m)::float8 AS check_out_distance_m,
                v.check_out_verified, v.check_out_method,
                COALESCE(v.check_in_verified AND v.check_out_verified, false) AS verified,
                COALESCE((SELECT string_agg(DISTINCT e.code, ';' ORDER BY e.code) FROM visit_exceptions e
                          WHERE e.tenant_id = v.tenant_id AND e.visit_id = v.id), '') AS exception_codes,
                v.manually_edited
         FROM visits v
         JOIN tenants t ON t.id = v.tenant_id
         JOIN patients p ON p.tenant_id = v.tenant_id AND p.id = v.patient_id
         JOIN workers w ON w.tenant_id = v.tenant_id AND w.id = v.caregiver_id
         WHERE v.tenant_id = $1
           AND (v.scheduled_start AT TIME ZONE t.time_zone)::date BETWEEN $2 AND $3
         ORDER BY v.scheduled_start, v.id",
    )
    .bind(tenant_id)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}

/// The rows as CSV with a header line.
pub fn to_csv(rows: &[ExportRow]) -> anyhow::Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    if rows.is_empty() {
        // serde writes the header with the first row; an empty export still says what it holds.
        writer.write_record(EMPTY_HEADER)?;
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}

const EMPTY_HEADER: &[&str] = &[
    "visit_id",
    "service_type",
    "patient_id",
    "patient_name",
    "caregiver_id",
    "caregiver_name",
    "date",
    "address",
    "patient_latitude",
    "patient_longitude",
    "scheduled_start",
    "scheduled_end",
    "status",
    "check_in_at",
    "check_in_latitude",
    "check_in_longitude",
    "check_in_distance_m",
    "check_in_verified",
    "check_in_method",
    "check_out_at",
    "check_out_latitude",
    "check_out_longitude",
    "check_out_distance_m",
    "check_out_verified",
    "check_out_method",
    "verified",
    "exception_codes",
    "manually_edited",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_export_has_the_same_header_as_a_full_one() {
        let row = ExportRow {
            visit_id: Uuid::nil(),
            service_type: "personal_care".into(),
            patient_id: Uuid::nil(),
            patient_name: "Hana, \"Tesfaye\"".into(),
            caregiver_id: Uuid::nil(),
            caregiver_name: "Selam".into(),
            date: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
            address: None,
            patient_latitude: Some(9.03),
            patient_longitude: Some(38.75),
            scheduled_start: DateTime::UNIX_EPOCH,
            scheduled_end: DateTime::UNIX_EPOCH,
            status: VisitStatus::Completed,
            check_in_at: None,
            check_in_latitude: None,
            check_in_longitude: None,
            check_in_distance_m: None,
            check_in_verified: None,
            check_in_method: None,
            check_out_at: None,
            check_out_latitude: None,
            check_out_longitude: None,
            check_out_distance_m: None,
            check_out_verified: None,
            check_out_method: None,
            verified: false,
            exception_codes: "late;missed".into(),
            manually_edited: true,
        };
        let full = to_csv(&[row]).unwrap();
        let empty = to_csv(&[]).unwrap();
        assert_eq!(full.lines().next(), empty.lines().next());
        // Commas and quotes in names are quoted, not split.
        assert!(full.contains("\"Hana, \"\"Tesfaye\"\"\""), "{full}");
    }
}
