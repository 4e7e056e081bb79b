//! The coordinators' first screen: how much is open in each domain right now.

use chrono::{NaiveTime, TimeZone, Utc};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Default, sqlx::FromRow)]
pub struct Counts {
    pub open_work_orders: i64,
    pub urgent_work_orders: i64,
    pub visits_today: i64,
    pub visits_in_progress: i64,
    pub active_trips: i64,
    pub available_ambulances: i64,
    pub new_feedback: i64,
    pub open_complaints: i64,
    pub active_workers: i64,
    pub patients: i64,
}

/// Counts for one tenant; "today" is the tenant's own calendar day.
pub async fn counts(pool: &PgPool, tenant_id: Uuid, time_zone: &str) -> sqlx::Result<Counts> {
    let tz = crate::types::TimeZone::stored(time_zone);
    let today = Utc::now().with_timezone(&tz).date_naive();
    let day_start = |date: chrono::NaiveDate| {
        tz.from_local_datetime(&date.and_time(NaiveTime::MIN))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(Utc::now)
    };
    let (from, to) = (
        day_start(today),
        day_start(today.succ_opt().unwrap_or(today)),
    );
    sqlx::query_as(
        "SELECT
            (SELECT count(*) FROM work_orders WHERE tenant_id = $1 AND status NOT IN ('completed', 'cancelled')) AS open_work_orders,
            (SELECT count(*) FROM work_orders WHERE tenant_id = $1 AND status NOT IN ('completed', 'cancelled') AND priority = 'urgent') AS urgent_work_orders,
            (SELECT count(*) FROM visits WHERE tenant_id = $1 AND scheduled_start >= $2 AND scheduled_start < $3 AND status <> 'cancelled') AS visits_today,
            (SELECT count(*) FROM visits WHERE tenant_id = $1 AND status = 'in_progress') AS visits_in_progress,
            (SELECT count(*) FROM trips WHERE tenant_id = $1 AND status IN ('assigned', 'en_route_to_pickup', 'at_pickup', 'en_route_to_dropoff')) AS active_trips,
            (SELECT count(*) FROM ambulances WHERE tenant_id = $1 AND status = 'available' AND deleted_at IS NULL) AS available_ambulances,
            (SELECT count(*) FROM feedback WHERE tenant_id = $1 AND status = 'new') AS new_feedback,
            (SELECT count(*) FROM complaints WHERE tenant_id = $1 AND status IN ('open', 'investigating')) AS open_complaints,
            (SELECT count(*) FROM workers WHERE tenant_id = $1 AND status = 'active' AND deleted_at IS NULL) AS active_workers,
            (SELECT count(*) FROM patients WHERE tenant_id = $1 AND deleted_at IS NULL) AS patients",
    )
    .bind(tenant_id)
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await
}
