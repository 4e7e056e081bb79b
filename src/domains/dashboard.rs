//! The coordinators' first screen: how much is open in each domain right now.

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
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

/// Something a coordinator should act on, with where it is done.
#[derive(Debug, sqlx::FromRow)]
pub struct Attention {
    /// "alert", "overdue", "unassigned", "exception" or "complaint".
    pub kind: String,
    /// A reference, or what the alert or exception is ("visit late", "outside geofence").
    pub label: String,
    pub detail: String,
    /// The panel page where it is dealt with.
    pub link: String,
    pub since: DateTime<Utc>,
}

/// Everything waiting on a coordinator across the domains, alerts first, then overdue and
/// unassigned work, then visit exceptions, then complaints nobody has answered yet; the longest
/// waiting first within each.
pub async fn needs_attention(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<Vec<Attention>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT kind, label, detail, link, since FROM (
             SELECT 1 AS rank, 'alert' AS kind, replace(a.kind, '_', ' ') AS label, a.message AS detail,
                    CASE WHEN a.work_order_id IS NOT NULL THEN '/panel/work-orders/' || a.work_order_id
                         WHEN a.complaint_id IS NOT NULL THEN '/panel/complaints/' || a.complaint_id
                         WHEN a.trip_id IS NOT NULL THEN '/panel/trips/' || a.trip_id
                         ELSE '/panel/visits/' || a.visit_id END AS link,
                    a.created_at AS since
             FROM coordinator_alerts a WHERE a.tenant_id = $1 AND a.resolved_at IS NULL
             UNION ALL
             SELECT 2, 'overdue', reference, title || ': overdue', '/panel/work-orders/' || id,
                    COALESCE(started_at, scheduled_at, created_at)
             FROM work_orders WHERE tenant_id = $1 AND {overdue}
             UNION ALL
             SELECT 3, 'unassigned', reference, title || ' (' || priority || '): nobody has it',
                    '/panel/work-orders/' || id, created_at
             FROM work_orders WHERE tenant_id = $1 AND status = 'pending'
             UNION ALL
             SELECT 4, 'exception', replace(e.code, '_', ' '), e.detail, '/panel/visits/' || e.visit_id,
                    e.created_at
             FROM visit_exceptions e WHERE e.tenant_id = $1 AND e.resolved_at IS NULL
             UNION ALL
             SELECT 5, 'complaint', reference, severity || ': ' || left(description, 120),
                    '/panel/complaints/' || id, created_at
             FROM complaints WHERE tenant_id = $1 AND status IN ('open', 'reopened') AND first_contacted_at IS NULL
         ) waiting
         ORDER BY rank, since LIMIT 50",
        overdue = crate::domains::maintenance::work_orders::OVERDUE
    )))
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}

/// Changes whenever a message comes or goes, a work order or visit moves, a visit is scheduled,
/// or an alert or exception is raised or dealt with, for this tenant: what the panel's live pages
/// poll every few seconds. Ids are time-ordered (UUID v7), so "the latest" is one step down each
/// primary key, without an index that every message write would pay for.
pub async fn change_token(pool: &PgPool, tenant_id: Uuid) -> sqlx::Result<String> {
    let token: Option<String> = sqlx::query_scalar(
        "SELECT concat_ws('/',
             (SELECT id FROM messages WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1),
             (SELECT id FROM work_order_status_history WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1),
             (SELECT id FROM work_order_comments WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1),
             (SELECT id FROM visits WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1),
             (SELECT id FROM visit_events WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1),
             (SELECT id FROM coordinator_alerts WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1),
             (SELECT count(*) FROM coordinator_alerts WHERE tenant_id = $1 AND resolved_at IS NULL),
             (SELECT id FROM visit_exceptions WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1),
             (SELECT count(*) FROM visit_exceptions WHERE tenant_id = $1 AND resolved_at IS NULL),
             (SELECT id FROM complaint_actions WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1),
             (SELECT id FROM feedback WHERE tenant_id = $1 ORDER BY updated_at DESC LIMIT 1))",
    )
    .bind(tenant_id)
    .fetch_one(pool)
    .await?;
    Ok(token.unwrap_or_default())
}

/// How fast work orders of one priority were answered, from their report, over a period.
#[derive(Debug, sqlx::FromRow)]
pub struct ResponseTimes {
    pub priority: String,
    pub orders: i64,
    /// Medians in minutes; `None` when none got that far.
    pub to_accept: Option<f64>,
    pub to_start: Option<f64>,
    pub to_finish: Option<f64>,
}

/// Medians per priority for work orders reported since `since`, most urgent first.
pub async fn response_times(
    pool: &PgPool,
    tenant_id: Uuid,
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<ResponseTimes>> {
    sqlx::query_as(
        "SELECT priority, count(*) AS orders,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM accepted_at - created_at) / 60)
                    FILTER (WHERE accepted_at IS NOT NULL) AS to_accept,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at) / 60)
                    FILTER (WHERE started_at IS NOT NULL) AS to_start,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at) / 60)
                    FILTER (WHERE completed_at IS NOT NULL) AS to_finish
         FROM work_orders WHERE tenant_id = $1 AND created_at >= $2
         GROUP BY priority
         ORDER BY array_position(ARRAY['urgent', 'high', 'medium', 'low'], priority)",
    )
    .bind(tenant_id)
    .bind(since)
    .fetch_all(pool)
    .await
}

/// Visits checked in since `since`: how many, and how many within ten minutes of their start.
#[derive(Debug, Default, sqlx::FromRow)]
pub struct Punctuality {
    pub checked_in: i64,
    pub on_time: i64,
    /// Median minutes after the scheduled start (negative: early).
    pub median_late: Option<f64>,
}

pub async fn punctuality(
    pool: &PgPool,
    tenant_id: Uuid,
    since: DateTime<Utc>,
) -> sqlx::Result<Punctuality> {
    sqlx::query_as(
        "SELECT count(*) AS checked_in,
                count(*) FILTER (WHERE check_in_at <= scheduled_start + interval '10 minutes') AS on_time,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM check_in_at - scheduled_start) / 60) AS median_late
         FROM visits WHERE tenant_id = $1 AND check_in_at IS NOT NULL AND scheduled_start >= $2",
    )
    .bind(tenant_id)
    .bind(since)
    .fetch_one(pool)
    .await
}
