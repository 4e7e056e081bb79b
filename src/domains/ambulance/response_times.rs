//! How fast units answered, per priority over a period: turnout (notified → en route) and
//! response (notified → at pickup), mean and 90th percentile, against the organisation's
//! NFPA 1710-style targets (turnout 60 s; response 8 min for emergencies by default).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ResponseTimes {
    pub priority: String,
    /// Trips dispatched in the period.
    pub trips: i64,
    pub turnout_mean_s: Option<f64>,
    pub turnout_p90_s: Option<f64>,
    pub response_mean_s: Option<f64>,
    pub response_p90_s: Option<f64>,
    pub transport_mean_s: Option<f64>,
    pub handover_mean_s: Option<f64>,
    /// Share of recorded turnouts within the target, per cent.
    pub turnout_within_target_pct: Option<f64>,
    /// Share of recorded responses within the target, per cent.
    pub response_within_target_pct: Option<f64>,
    pub turnout_target_s: i32,
    pub response_target_s: i32,
}

/// Per priority, most urgent first, for trips dispatched since `since`.
pub async fn report(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<ResponseTimes>> {
    sqlx::query_as(
        "WITH t AS (
             SELECT priority,
                    extract(epoch FROM en_route_to_pickup_at - assigned_at)::float8 AS turnout,
                    extract(epoch FROM at_pickup_at - assigned_at)::float8 AS response,
                    extract(epoch FROM at_destination_at - en_route_to_dropoff_at)::float8 AS transport,
                    extract(epoch FROM handover_at - at_destination_at)::float8 AS handover
             FROM trips WHERE tenant_id = $1 AND assigned_at >= $2)
         SELECT t.priority, count(*) AS trips,
                round(avg(turnout)::numeric, 1)::float8 AS turnout_mean_s,
                percentile_cont(0.9) WITHIN GROUP (ORDER BY turnout) AS turnout_p90_s,
                round(avg(response)::numeric, 1)::float8 AS response_mean_s,
                percentile_cont(0.9) WITHIN GROUP (ORDER BY response) AS response_p90_s,
                round(avg(transport)::numeric, 1)::float8 AS transport_mean_s,
                round(avg(handover)::numeric, 1)::float8 AS handover_mean_s,
                round((100.0 * count(*) FILTER (WHERE turnout <= tn.trip_turnout_target_secs)
                       / NULLIF(count(turnout), 0))::numeric, 1)::float8 AS turnout_within_target_pct,
                round((100.0 * count(*) FILTER (WHERE response <= tn.trip_response_target_secs)
                       / NULLIF(count(response), 0))::numeric, 1)::float8 AS response_within_target_pct,
                tn.trip_turnout_target_secs AS turnout_target_s,
                tn.trip_response_target_secs AS response_target_s
         FROM t CROSS JOIN tenants tn
         WHERE tn.id = $1
         GROUP BY t.priority, tn.trip_turnout_target_secs, tn.trip_response_target_secs
         ORDER BY array_position(ARRAY['urgent', 'high', 'medium', 'low'], t.priority)",
    )
    .bind(tenant_id)
    .bind(since)
    .fetch_all(conn)
    .await
}
