//! Survey results per worker or per service, month by month: responses, the share positive (very
//! good or good) and negative (poor or very poor), and the response rate. A cell with fewer than
//! five responses shows none of these ("too few"), so no patient can be picked out by small numbers.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

/// Fewer responses than this and a cell shows nothing but that there were too few.
pub const MIN_RESPONSES: i64 = 5;

crate::text_enum! {
    pub enum GroupBy {
        Worker = "worker",
        Service = "service",
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct TrendCell {
    /// The worker's name or the service.
    pub group: String,
    pub worker_id: Option<Uuid>,
    /// The month, `YYYY-MM`, in the organisation's time zone.
    pub period: String,
    /// Fewer than five responses: the figures below are withheld.
    pub too_few: bool,
    pub responses: Option<i64>,
    pub surveys_sent: Option<i64>,
    /// Very good or good, per cent of the responses.
    pub positive_pct: Option<f64>,
    /// Poor or very poor, per cent of the responses.
    pub negative_pct: Option<f64>,
    /// Responses per survey sent, per cent.
    pub response_rate_pct: Option<f64>,
}

#[derive(sqlx::FromRow)]
struct Row {
    group_name: String,
    worker_id: Option<Uuid>,
    period: String,
    sent: i64,
    responses: i64,
    positive: i64,
    negative: i64,
}

/// The last `months` months, newest first, then by group.
pub async fn trends(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    by: GroupBy,
    months: i32,
) -> sqlx::Result<Vec<TrendCell>> {
    let (group, worker) = match by {
        GroupBy::Worker => (
            "COALESCE(w.first_name || ' ' || w.last_name, '(nobody named)')",
            "s.worker_id",
        ),
        GroupBy::Service => ("s.service", "NULL::uuid"),
    };
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {group} AS group_name, {worker} AS worker_id,
                to_char(s.sent_at AT TIME ZONE t.time_zone, 'YYYY-MM') AS period,
                count(*) AS sent,
                count(s.fft_code) AS responses,
                count(*) FILTER (WHERE s.fft_code IN (1, 2)) AS positive,
                count(*) FILTER (WHERE s.fft_code IN (4, 5)) AS negative
         FROM surveys s
         JOIN tenants t ON t.id = s.tenant_id
         LEFT JOIN workers w ON w.tenant_id = s.tenant_id AND w.id = s.worker_id
         WHERE s.tenant_id = $1 AND s.subject <> 'complaint' AND s.sent_at IS NOT NULL
           AND s.sent_at >= date_trunc('month', now() AT TIME ZONE t.time_zone) - make_interval(months => $2 - 1)
         GROUP BY 1, 2, 3
         ORDER BY 3 DESC, 1"
    )))
    .bind(tenant_id)
    .bind(months.clamp(1, 36))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(cell).collect())
}

fn cell(row: Row) -> TrendCell {
    let pct = |part: i64, whole: i64| (1000.0 * part as f64 / whole as f64).round() / 10.0;
    let too_few = row.responses < MIN_RESPONSES;
    let shown = |value: f64| (!too_few).then_some(value);
    TrendCell {
        group: row.group_name,
        worker_id: row.worker_id,
        period: row.period,
        too_few,
        responses: (!too_few).then_some(row.responses),
        surveys_sent: (!too_few).then_some(row.sent),
        positive_pct: shown(pct(row.positive, row.responses.max(1))),
        negative_pct: shown(pct(row.negative, row.responses.max(1))),
        response_rate_pct: shown(pct(row.responses, row.sent.max(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(responses: i64, positive: i64, negative: i64, sent: i64) -> Row {
        Row {
            group_name: "Sara".into(),
            worker_id: None,
            period: "2026-11".into(),
            sent,
            responses,
            positive,
            negative,
        }
    }

    #[test]
    fn small_cells_show_nothing_but_too_few() {
        let small = cell(row(4, 4, 0, 6));
        assert!(small.too_few);
        assert_eq!(
            (small.responses, small.positive_pct, small.response_rate_pct),
            (None, None, None)
        );
        let enough = cell(row(8, 6, 1, 10));
        assert!(!enough.too_few);
        assert_eq!(enough.positive_pct, Some(75.0));
        assert_eq!(enough.negative_pct, Some(12.5));
        assert_eq!(enough.response_rate_pct, Some(80.0));
    }
}
