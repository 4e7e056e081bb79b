//! What coordinators must act on: a row the panel shows until someone resolves it, and a message
//! to every active coordinator who gave a phone number.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domains::crud::{RecordError, RecordResult},
    messaging::{
        notify::{self, Notification},
        templates::{Templates, Values},
    },
};

crate::text_enum! {
    /// Why the coordinators are told.
    pub enum AlertKind {
        /// Nobody left to offer a work order to.
        NoWorkerAvailable = "no_worker_available",
        /// Accepted but not started by its scheduled time.
        NotStarted = "not_started",
        /// In progress past its expected duration.
        Overdue = "overdue",
        /// No check-in half an hour after a visit's start.
        VisitLate = "visit_late",
        /// Nobody has spoken to a complainant by the first-contact deadline.
        ComplaintContactOverdue = "complaint_contact_overdue",
        /// A complaint is not resolved by its deadline.
        ComplaintResolutionOverdue = "complaint_resolution_overdue",
        /// A crew declined a trip: it needs another unit.
        TripDeclined = "trip_declined",
        /// A vehicle broke down on a trip: it needs another unit, and the vehicle a mechanic.
        VehicleProblem = "vehicle_problem",
        /// Nobody on the unit acknowledged a dispatch in time.
        TripNotAcknowledged = "trip_not_acknowledged",
        /// At the destination too long without a handover.
        HandoverDelay = "handover_delay",
    }
}

/// What an alert is about: the panel links to it, and messages go on its timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum About {
    WorkOrder(Uuid),
    Visit(Uuid),
    Complaint(Uuid),
    Trip(Uuid),
}

impl About {
    /// The alert's `work_order_id`, `visit_id`, `complaint_id` and `trip_id` columns.
    fn ids(self) -> [Option<Uuid>; 4] {
        let mut ids = [None; 4];
        let (slot, id) = match self {
            Self::WorkOrder(id) => (0, id),
            Self::Visit(id) => (1, id),
            Self::Complaint(id) => (2, id),
            Self::Trip(id) => (3, id),
        };
        ids[slot] = Some(id);
        ids
    }

    /// The record's timeline the alert's messages go on.
    fn related(self) -> (&'static str, Uuid) {
        match self {
            Self::WorkOrder(id) => ("work_order", id),
            Self::Visit(id) => ("visit", id),
            Self::Complaint(id) => ("complaint", id),
            Self::Trip(id) => ("trip", id),
        }
    }
}

/// Records the alert and messages the coordinators. `NotStarted` and `Overdue` are raised once
/// per work order, and visit alerts once per visit (unique indexes): a second call returns
/// `false` and sends nothing.
#[tracing::instrument(skip(conn, templates, text))]
pub async fn raise(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    kind: AlertKind,
    about: About,
    text: &str,
) -> anyhow::Result<bool> {
    let [work_order_id, visit_id, complaint_id, trip_id] = about.ids();
    let raised: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO coordinator_alerts (tenant_id, kind, work_order_id, visit_id, complaint_id, trip_id, message)
         VALUES ($1, $2, $3, $4, $6, $7, $5)
         ON CONFLICT DO NOTHING
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(kind.as_str())
    .bind(work_order_id)
    .bind(visit_id)
    .bind(text)
    .bind(complaint_id)
    .bind(trip_id)
    .fetch_optional(&mut *conn)
    .await?;
    if raised.is_none() {
        return Ok(false);
    }
    let recipients: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO contacts (tenant_id, phone, display_name)
         SELECT tenant_id, phone, full_name FROM users
         WHERE tenant_id = $1 AND active AND phone IS NOT NULL
         ON CONFLICT ON CONSTRAINT contacts_tenant_phone_key DO UPDATE SET phone = EXCLUDED.phone
         RETURNING id",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    let tenant: String = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_one(&mut *conn)
        .await?;
    for contact in recipients {
        let values = Values::new().with("tenant", &tenant).with("text", text);
        // A courtesy (core.toml): someone who replied STOP does not get alerts by message; the
        // panel still shows them.
        let mut alert = Notification::new(tenant_id, contact, "coordinator_alert", values);
        alert.related = Some(about.related());
        notify::notify(conn, templates, &alert).await?;
    }
    tracing::warn!(kind = kind.as_str(), "coordinators alerted");
    Ok(true)
}

/// An alert nobody has dealt with yet.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OpenAlert {
    pub id: Uuid,
    pub kind: AlertKind,
    pub work_order_id: Option<Uuid>,
    pub visit_id: Option<Uuid>,
    pub complaint_id: Option<Uuid>,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// Unresolved alerts, newest first.
pub async fn open(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<Vec<OpenAlert>> {
    sqlx::query_as(
        "SELECT id, kind, work_order_id, visit_id, complaint_id, message, created_at FROM coordinator_alerts
         WHERE tenant_id = $1 AND resolved_at IS NULL ORDER BY created_at DESC LIMIT 100",
    )
    .bind(tenant_id)
    .fetch_all(conn)
    .await
}

/// What the alert was about is over (the work order found a worker): it closes by itself, with
/// no one named as having resolved it.
pub async fn settle(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    kind: AlertKind,
    about: About,
) -> sqlx::Result<()> {
    let [work_order_id, visit_id, complaint_id, trip_id] = about.ids();
    sqlx::query(
        "UPDATE coordinator_alerts SET resolved_at = now()
         WHERE tenant_id = $1 AND kind = $2 AND resolved_at IS NULL
           AND work_order_id IS NOT DISTINCT FROM $3 AND visit_id IS NOT DISTINCT FROM $4
           AND complaint_id IS NOT DISTINCT FROM $5 AND trip_id IS NOT DISTINCT FROM $6",
    )
    .bind(tenant_id)
    .bind(kind)
    .bind(work_order_id)
    .bind(visit_id)
    .bind(complaint_id)
    .bind(trip_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A coordinator has dealt with it.
pub async fn resolve(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    user_id: Uuid,
) -> RecordResult<()> {
    let done = sqlx::query(
        "UPDATE coordinator_alerts SET resolved_at = now(), resolved_by = $3
         WHERE tenant_id = $1 AND id = $2 AND resolved_at IS NULL",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(user_id)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(RecordError::NotFound("open alert"));
    }
    Ok(())
}
