//! The rules an organisation can change: when surveys go, and its days off.

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::VoiceResult;
use crate::error::FieldErrors;

/// When surveys go out and which days complaint deadlines skip.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FeedbackSettings {
    /// Minutes after the service ends that its survey goes (0–10080).
    pub survey_delay_minutes: i32,
    /// No survey goes between these local times ("20:00" to "08:00"); it waits until the end.
    #[schema(value_type = String, example = "20:00")]
    pub quiet_from: NaiveTime,
    #[schema(value_type = String, example = "08:00")]
    pub quiet_until: NaiveTime,
    /// At most one survey per person in this many days (0–365).
    pub min_days_between: i32,
    /// A survey not answered within this many hours is closed (1–720).
    pub expiry_hours: i32,
    /// Days off besides Saturdays and Sundays.
    #[schema(value_type = Vec<String>, example = json!(["2027-01-07"]))]
    pub holidays: Vec<NaiveDate>,
}

#[derive(sqlx::FromRow)]
struct Row {
    survey_delay_minutes: i32,
    survey_quiet_from: NaiveTime,
    survey_quiet_until: NaiveTime,
    survey_min_days_between: i32,
    survey_expiry_hours: i32,
}

pub async fn load(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<FeedbackSettings> {
    let row: Row = sqlx::query_as(
        "SELECT survey_delay_minutes, survey_quiet_from, survey_quiet_until, survey_min_days_between,
                survey_expiry_hours
         FROM tenants WHERE id = $1",
    )
    .bind(tenant_id)
    .fetch_one(&mut *conn)
    .await?;
    let holidays =
        sqlx::query_scalar("SELECT day FROM tenant_holidays WHERE tenant_id = $1 ORDER BY day")
            .bind(tenant_id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(FeedbackSettings {
        survey_delay_minutes: row.survey_delay_minutes,
        quiet_from: row.survey_quiet_from,
        quiet_until: row.survey_quiet_until,
        min_days_between: row.survey_min_days_between,
        expiry_hours: row.survey_expiry_hours,
        holidays,
    })
}

/// Holidays an organisation keeps at most.
pub const MAX_HOLIDAYS: usize = 366;

/// Replaces the settings and the list of holidays.
pub async fn save(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    settings: &FeedbackSettings,
) -> VoiceResult<FeedbackSettings> {
    let mut errors = FieldErrors::new();
    let mut range = |field: &str, value: i32, low: i32, high: i32| {
        if !(low..=high).contains(&value) {
            errors.add(field, format!("must be between {low} and {high}"));
        }
    };
    range(
        "survey_delay_minutes",
        settings.survey_delay_minutes,
        0,
        10_080,
    );
    range("min_days_between", settings.min_days_between, 0, 365);
    range("expiry_hours", settings.expiry_hours, 1, 720);
    // Every deadline walks the calendar day by day past the holidays: a year's worth, from last
    // year to five years on, keeps that walk short and every deadline inside the service's dates.
    if settings.holidays.len() > MAX_HOLIDAYS {
        errors.add(
            "holidays",
            format!(
                "at most {MAX_HOLIDAYS} days (got {}): list the days off of the years ahead only",
                settings.holidays.len()
            ),
        );
    } else {
        let today = chrono::Utc::now().date_naive();
        let (first, last) = (
            today - chrono::Months::new(12),
            today + chrono::Months::new(60),
        );
        if let Some(day) = settings.holidays.iter().find(|d| **d < first || **d > last) {
            errors.add(
                "holidays",
                format!("{day} is outside {first} to {last}: holidays are kept from a year back to five years ahead"),
            );
        }
    }
    errors.into_result()?;
    sqlx::query(
        "UPDATE tenants SET survey_delay_minutes = $2, survey_quiet_from = $3, survey_quiet_until = $4,
             survey_min_days_between = $5, survey_expiry_hours = $6
         WHERE id = $1",
    )
    .bind(tenant_id)
    .bind(settings.survey_delay_minutes)
    .bind(settings.quiet_from)
    .bind(settings.quiet_until)
    .bind(settings.min_days_between)
    .bind(settings.expiry_hours)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM tenant_holidays WHERE tenant_id = $1")
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO tenant_holidays (tenant_id, day) SELECT $1, unnest($2::date[]) ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id)
    .bind(&settings.holidays)
    .execute(&mut *conn)
    .await?;
    Ok(load(conn, tenant_id).await?)
}
