//! Complaints: opened from a message, a poor survey answer or by staff; acknowledged at once with
//! a reference; two deadlines (first human contact, resolution) on the working-day calendar, with
//! a warning to the assignee before each and an alert to the coordinators when one passes; every
//! step in the case's timeline.

use std::{sync::Arc, time::Duration};

use apalis::prelude::{BoxDynError, Data};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{VoiceError, VoiceResult, calendar::Calendar, surveys};
use crate::{
    audit::{self, Actor},
    domains::alerts::{self, About, AlertKind},
    error::Invalid,
    jobs::{self, Job},
    messaging::{
        Messaging,
        notify::{self, Notification, Notified},
        templates::{Templates, Values},
    },
};

crate::text_enum! {
    pub enum Severity {
        Low = "low",
        Medium = "medium",
        High = "high",
        Critical = "critical",
    }
}

crate::text_enum! {
    /// The document's statuses, plus reopened.
    pub enum ComplaintStatus {
        Open = "open",
        Investigating = "investigating",
        Resolved = "resolved",
        Closed = "closed",
        Reopened = "reopened",
    }
}

impl ComplaintStatus {
    pub fn is_open(self) -> bool {
        matches!(self, Self::Open | Self::Investigating | Self::Reopened)
    }

    /// The one transition function: where a case may go from here.
    fn may_become(self, to: Self) -> bool {
        use ComplaintStatus::*;
        matches!(
            (self, to),
            (Open | Reopened, Investigating)
                | (Open | Investigating | Reopened, Resolved)
                | (Resolved, Closed)
                | (Resolved | Closed, Reopened)
        )
    }
}

crate::text_enum! {
    /// What staff record on a case by hand.
    pub enum ActionKind {
        Note = "note",
        Investigated = "investigated",
        Contacted = "contacted",
        Escalated = "escalated",
    }
}

/// A poor survey answer is called back within this long, whatever the severity.
pub const CALL_BACK_WITHIN: TimeDelta = TimeDelta::hours(48);
/// Working days to the first human contact for low and medium complaints.
const FIRST_CONTACT_WORKING_DAYS: u32 = 3;
/// Working days to resolution.
const RESOLUTION_WORKING_DAYS: u32 = 20;

/// When the first human contact is due for a complaint of this severity made at `at`. Critical
/// and high are clock hours (harm does not wait for Monday); the rest working days.
pub fn first_contact_due(
    severity: Severity,
    at: DateTime<Utc>,
    calendar: &Calendar,
) -> DateTime<Utc> {
    match severity {
        Severity::Critical => at + TimeDelta::hours(24),
        Severity::High => at + TimeDelta::hours(48),
        Severity::Low | Severity::Medium => {
            calendar.add_working_days(at, FIRST_CONTACT_WORKING_DAYS)
        }
    }
}

/// What a complaint is about, when it is known.
#[derive(Debug, Clone, Default)]
pub struct Links {
    pub patient_id: Option<Uuid>,
    pub visit_id: Option<Uuid>,
    pub trip_id: Option<Uuid>,
    pub work_order_id: Option<Uuid>,
    pub worker_id: Option<Uuid>,
}

#[derive(Debug, Clone)]
pub struct NewComplaint<'a> {
    pub contact_id: Option<Uuid>,
    pub links: Links,
    pub description: &'a str,
    pub severity: Severity,
    pub channel: &'static str,
    pub survey_id: Option<Uuid>,
    pub feedback_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    /// A call-back promised sooner than the severity's deadline (a poor survey answer).
    pub call_back_within: Option<TimeDelta>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    New {
        id: Uuid,
        reference: String,
        first_contact_due_at: DateTime<Utc>,
    },
    /// The person already had an open case: the words went onto it.
    Attached { id: Uuid, reference: String },
}

/// The person's open case, if any.
pub async fn open_case_of(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    contact_id: Uuid,
) -> sqlx::Result<Option<(Uuid, String)>> {
    sqlx::query_as(
        "SELECT id, reference FROM complaints
         WHERE tenant_id = $1 AND contact_id = $2 AND status IN ('open', 'investigating', 'reopened')",
    )
    .bind(tenant_id)
    .bind(contact_id)
    .fetch_optional(conn)
    .await
}

/// Opens a case, or adds the words to the person's open one.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant_id))]
pub async fn open(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    new: NewComplaint<'_>,
) -> VoiceResult<Opened> {
    let description = crate::types::required_text(new.description, 4000)
        .map_err(|m| Invalid::field("description", m))?;
    if let Some(contact_id) = new.contact_id
        && let Some((id, reference)) = open_case_of(conn, tenant_id, contact_id).await?
    {
        add_action(
            conn,
            tenant_id,
            id,
            "complainant_wrote",
            &description,
            None,
            new.message_id,
        )
        .await?;
        return Ok(Opened::Attached { id, reference });
    }
    let now = Utc::now();
    let calendar = Calendar::load(conn, tenant_id).await?;
    let mut contact_due = first_contact_due(new.severity, now, &calendar);
    if let Some(within) = new.call_back_within {
        contact_due = contact_due.min(now + within);
    }
    let resolution_due = calendar.add_working_days(now, RESOLUTION_WORKING_DAYS);
    let number: i64 = sqlx::query_scalar(
        "INSERT INTO tenant_counters (tenant_id, name, last_value) VALUES ($1, 'complaint', 1001)
         ON CONFLICT ON CONSTRAINT tenant_counters_pkey DO UPDATE SET last_value = tenant_counters.last_value + 1
         RETURNING last_value",
    )
    .bind(tenant_id)
    .fetch_one(&mut *conn)
    .await?;
    let reference = format!("C-{number}");
    let l = &new.links;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO complaints (tenant_id, reference, feedback_id, patient_id, contact_id, visit_id, trip_id,
             work_order_id, worker_id, description, severity, channel, survey_id, due_by,
             first_contact_due_at, resolution_due_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $15, $14, $15)
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(&reference)
    .bind(new.feedback_id)
    .bind(l.patient_id)
    .bind(new.contact_id)
    .bind(l.visit_id)
    .bind(l.trip_id)
    .bind(l.work_order_id)
    .bind(l.worker_id)
    .bind(&description)
    .bind(new.severity)
    .bind(new.channel)
    .bind(new.survey_id)
    .bind(contact_due)
    .bind(resolution_due)
    .fetch_one(&mut *conn)
    .await?;
    add_action(
        conn,
        tenant_id,
        id,
        "opened",
        &description,
        None,
        new.message_id,
    )
    .await?;
    start_clocks(conn, tenant_id, id, contact_due, resolution_due).await?;
    tracing::info!(%reference, severity = new.severity.as_str(), "complaint opened");
    Ok(Opened::New {
        id,
        reference,
        first_contact_due_at: contact_due,
    })
}

async fn add_action(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    complaint_id: Uuid,
    kind: &str,
    description: &str,
    user_id: Option<Uuid>,
    message_id: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO complaint_actions (tenant_id, complaint_id, action_type, description, actor_user_id, message_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant_id)
    .bind(complaint_id)
    .bind(kind)
    .bind(description)
    .bind(user_id)
    .bind(message_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The contact who complained, when there is one to answer.
async fn complainant(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT contact_id FROM complaints WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .fetch_one(conn)
        .await
}

fn user_of(actor: Actor) -> Option<Uuid> {
    match actor {
        Actor::User(id) => Some(id),
        _ => None,
    }
}

// ---- The clock ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deadline {
    FirstContact,
    Resolution,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    Warn,
    Overdue,
}

impl Deadline {
    /// How long before the deadline the assignee is warned.
    fn warn_before(self) -> TimeDelta {
        match self {
            Self::FirstContact => TimeDelta::hours(6),
            Self::Resolution => TimeDelta::hours(24),
        }
    }

    fn alert(self) -> AlertKind {
        match self {
            Self::FirstContact => AlertKind::ComplaintContactOverdue,
            Self::Resolution => AlertKind::ComplaintResolutionOverdue,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ComplaintClock {
    pub tenant_id: Uuid,
    pub complaint_id: Uuid,
    pub deadline: Deadline,
    pub stage: Stage,
    /// The deadline this clock runs to: a clock whose deadline has since moved does nothing (the
    /// move started a clock of its own).
    pub due: DateTime<Utc>,
}

impl ComplaintClock {
    /// Starts the clock of one deadline: the warning first.
    async fn start(
        conn: &mut PgConnection,
        tenant_id: Uuid,
        complaint_id: Uuid,
        deadline: Deadline,
        due: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let clock = Self {
            tenant_id,
            complaint_id,
            deadline,
            stage: Stage::Warn,
            due,
        };
        jobs::enqueue(conn, &clock, delay_until(due - deadline.warn_before())).await
    }
}

impl Job for ComplaintClock {
    const QUEUE: &'static str = "complaint-clocks";
}

fn delay_until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

async fn start_clocks(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    complaint_id: Uuid,
    contact_due: DateTime<Utc>,
    resolution_due: DateTime<Utc>,
) -> anyhow::Result<()> {
    ComplaintClock::start(
        conn,
        tenant_id,
        complaint_id,
        Deadline::FirstContact,
        contact_due,
    )
    .await?;
    ComplaintClock::start(
        conn,
        tenant_id,
        complaint_id,
        Deadline::Resolution,
        resolution_due,
    )
    .await
}

#[derive(sqlx::FromRow)]
struct Clocked {
    reference: String,
    status: ComplaintStatus,
    first_contacted_at: Option<DateTime<Utc>>,
    first_contact_due_at: Option<DateTime<Utc>>,
    resolution_due_at: Option<DateTime<Utc>>,
    first_contact_warned_at: Option<DateTime<Utc>>,
    resolution_warned_at: Option<DateTime<Utc>>,
    assignee_phone: Option<String>,
    assignee_name: Option<String>,
}

/// One step of a deadline: warn the assignee, then alert the coordinators. A step does nothing
/// once the deadline is met, or when it has moved (its own clock then runs).
#[tracing::instrument(skip_all, fields(complaint_id = %job.complaint_id, deadline = ?job.deadline, stage = ?job.stage))]
pub async fn complaint_clock(
    job: ComplaintClock,
    messaging: Data<Arc<Messaging>>,
) -> Result<(), BoxDynError> {
    let mut tx = audit::begin(&messaging.pool, Actor::System).await?;
    let case: Option<Clocked> = sqlx::query_as(
        "SELECT c.reference, c.status, c.first_contacted_at, c.first_contact_due_at, c.resolution_due_at,
                c.first_contact_warned_at, c.resolution_warned_at, u.phone AS assignee_phone,
                u.full_name AS assignee_name
         FROM complaints c
         LEFT JOIN users u ON u.tenant_id = c.tenant_id AND u.id = c.assigned_user_id AND u.active
         WHERE c.tenant_id = $1 AND c.id = $2
         FOR UPDATE OF c",
    )
    .bind(job.tenant_id)
    .bind(job.complaint_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(case) = case else {
        return Ok(());
    };
    let (met, due, warned) = match job.deadline {
        Deadline::FirstContact => (
            case.first_contacted_at.is_some() || !case.status.is_open(),
            case.first_contact_due_at,
            case.first_contact_warned_at.is_some(),
        ),
        Deadline::Resolution => (
            !case.status.is_open(),
            case.resolution_due_at,
            case.resolution_warned_at.is_some(),
        ),
    };
    // The database keeps microseconds; the job, whatever the clock gave.
    if met || due.map(|d| d.timestamp_micros()) != Some(job.due.timestamp_micros()) {
        return Ok(());
    }
    let due = job.due;
    let what = match job.deadline {
        Deadline::FirstContact => "first contact",
        Deadline::Resolution => "resolution",
    };
    match job.stage {
        Stage::Warn => {
            if !warned {
                let column = match job.deadline {
                    Deadline::FirstContact => "first_contact_warned_at",
                    Deadline::Resolution => "resolution_warned_at",
                };
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE complaints SET {column} = now() WHERE tenant_id = $1 AND id = $2"
                )))
                .bind(job.tenant_id)
                .bind(job.complaint_id)
                .execute(&mut *tx)
                .await?;
                if let Some(phone) = case.assignee_phone {
                    let contact = crate::messaging::contacts::for_phone(
                        &mut tx,
                        job.tenant_id,
                        &phone,
                        case.assignee_name.as_deref(),
                    )
                    .await?;
                    let zone = super::calendar::Calendar::load(&mut tx, job.tenant_id)
                        .await?
                        .zone;
                    let values = Values::new()
                        .with("reference", &case.reference)
                        .with("deadline", what)
                        .with(
                            "due",
                            due.with_timezone(&zone)
                                .format("%a %d %b %H:%M")
                                .to_string(),
                        );
                    let mut warning =
                        Notification::new(job.tenant_id, contact, "complaint_due_soon", values);
                    warning.related = Some(("complaint", job.complaint_id));
                    notify::notify(&mut tx, &messaging.templates, &warning).await?;
                }
            }
            let next = ComplaintClock {
                stage: Stage::Overdue,
                ..job
            };
            jobs::enqueue(&mut tx, &next, delay_until(due)).await?;
        }
        Stage::Overdue => {
            let text = format!("Complaint {}: {what} is overdue.", case.reference);
            alerts::raise(
                &mut tx,
                &messaging.templates,
                job.tenant_id,
                job.deadline.alert(),
                About::Complaint(job.complaint_id),
                &text,
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

// ---- Staff handling ----

/// A case in the queue.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Complaint {
    pub id: Uuid,
    pub reference: String,
    pub status: ComplaintStatus,
    pub severity: Severity,
    pub complaint_type: String,
    pub description: String,
    pub channel: String,
    /// Who complained, when known (never for anonymous feedback).
    pub patient_id: Option<Uuid>,
    pub patient_name: Option<String>,
    pub complainant_phone: Option<String>,
    pub visit_id: Option<Uuid>,
    pub trip_id: Option<Uuid>,
    pub work_order_id: Option<Uuid>,
    pub worker_id: Option<Uuid>,
    pub worker_name: Option<String>,
    pub survey_id: Option<Uuid>,
    pub assigned_user_id: Option<Uuid>,
    pub assignee_name: Option<String>,
    pub resolution: Option<String>,
    pub first_contact_due_at: Option<DateTime<Utc>>,
    pub first_contacted_at: Option<DateTime<Utc>>,
    pub resolution_due_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The deadline that matters now: first contact until someone has spoken to the person,
    /// then resolution; none once resolved.
    pub next_due_at: Option<DateTime<Utc>>,
    /// `overdue`, `due_soon` (within a day), `on_track` or `done`.
    pub clock: String,
    pub created_at: DateTime<Utc>,
}

const SELECT: &str = "
    SELECT c.id, c.reference, c.status, c.severity, c.complaint_type, c.description, c.channel,
           c.patient_id, p.first_name || ' ' || p.last_name AS patient_name, ct.phone AS complainant_phone,
           c.visit_id, c.trip_id, c.work_order_id, c.worker_id,
           w.first_name || ' ' || w.last_name AS worker_name, c.survey_id, c.assigned_user_id,
           COALESCE(u.full_name, u.email) AS assignee_name, c.resolution, c.first_contact_due_at,
           c.first_contacted_at, c.resolution_due_at, c.resolved_at, d.next_due_at,
           CASE WHEN d.next_due_at IS NULL THEN 'done'
                WHEN d.next_due_at < now() THEN 'overdue'
                WHEN d.next_due_at < now() + interval '1 day' THEN 'due_soon'
                ELSE 'on_track' END AS clock,
           c.created_at
    FROM complaints c
    CROSS JOIN LATERAL (SELECT CASE
        WHEN c.status NOT IN ('open', 'investigating', 'reopened') THEN NULL
        WHEN c.first_contacted_at IS NULL THEN c.first_contact_due_at
        ELSE c.resolution_due_at END AS next_due_at) d
    LEFT JOIN patients p ON p.tenant_id = c.tenant_id AND p.id = c.patient_id
    LEFT JOIN contacts ct ON ct.tenant_id = c.tenant_id AND ct.id = c.contact_id
    LEFT JOIN workers w ON w.tenant_id = c.tenant_id AND w.id = c.worker_id
    LEFT JOIN users u ON u.tenant_id = c.tenant_id AND u.id = c.assigned_user_id";

/// Open cases by their next deadline (most urgent first), then the rest newest first.
pub async fn list(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    status: Option<ComplaintStatus>,
) -> sqlx::Result<Vec<Complaint>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE c.tenant_id = $1 AND ($2::text IS NULL OR c.status = $2)
         ORDER BY d.next_due_at ASC NULLS LAST, c.created_at DESC LIMIT 500"
    )))
    .bind(tenant_id)
    .bind(status)
    .fetch_all(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> VoiceResult<Complaint> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE c.tenant_id = $1 AND c.id = $2"
    )))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(VoiceError::NotFound("complaint"))
}

/// One line of a case's timeline: an action, or a message to or from the complainant.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    /// An action type (`opened`, `note`, `contacted`, …), or `message_in` / `message_out`.
    pub kind: String,
    pub text: Option<String>,
    pub by: Option<String>,
}

pub async fn timeline(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Vec<TimelineEntry>> {
    sqlx::query_as(
        "SELECT a.created_at AS at, a.action_type AS kind, a.description AS text,
                COALESCE(u.full_name, u.email) AS by
         FROM complaint_actions a LEFT JOIN users u ON u.tenant_id = a.tenant_id AND u.id = a.actor_user_id
         WHERE a.tenant_id = $1 AND a.complaint_id = $2
         UNION ALL
         SELECT m.created_at, 'message_' || CASE m.direction WHEN 'inbound' THEN 'in' ELSE 'out' END, m.body, NULL
         FROM messages m
         WHERE m.tenant_id = $1 AND m.related_entity_type = 'complaint' AND m.related_entity_id = $2
         ORDER BY 1, 2",
    )
    .bind(tenant_id)
    .bind(id)
    .fetch_all(conn)
    .await
}

/// What staff change on a case: severity (the first-contact deadline follows while nobody has
/// spoken to the person yet) and assignee.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplaintChange {
    pub severity: Option<Severity>,
    pub assigned_user_id: Option<Uuid>,
}

pub async fn change(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    change: ComplaintChange,
    actor: Actor,
) -> VoiceResult<Complaint> {
    let current = get(conn, tenant_id, id).await?;
    if let Some(user_id) = change.assigned_user_id {
        let name: Option<String> = sqlx::query_scalar(
            "SELECT COALESCE(full_name, email) FROM users WHERE tenant_id = $1 AND id = $2 AND active",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(name) = name else {
            return Err(Invalid::field(
                "assigned_user_id",
                "is not an active user of this organisation",
            )
            .into());
        };
        sqlx::query("UPDATE complaints SET assigned_user_id = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
        add_action(
            conn,
            tenant_id,
            id,
            "assigned",
            &format!("Assigned to {name}"),
            user_of(actor),
            None,
        )
        .await?;
    }
    if let Some(severity) = change.severity.filter(|s| *s != current.severity) {
        let calendar = Calendar::load(conn, tenant_id).await?;
        let due = first_contact_due(severity, current.created_at, &calendar);
        sqlx::query(
            "UPDATE complaints SET severity = $3,
                 first_contact_due_at = CASE WHEN first_contacted_at IS NULL THEN $4 ELSE first_contact_due_at END,
                 due_by = CASE WHEN first_contacted_at IS NULL THEN $4 ELSE due_by END
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(severity)
        .bind(due)
        .execute(&mut *conn)
        .await?;
        add_action(
            conn,
            tenant_id,
            id,
            "severity_changed",
            &format!("Severity {} → {}", current.severity, severity),
            user_of(actor),
            None,
        )
        .await?;
        if current.first_contacted_at.is_none() {
            ComplaintClock::start(conn, tenant_id, id, Deadline::FirstContact, due).await?;
        }
    }
    get(conn, tenant_id, id).await
}

/// Records an action by hand; "contacted" meets the first-contact deadline.
pub async fn record_action(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    kind: ActionKind,
    description: &str,
    actor: Actor,
) -> VoiceResult<Complaint> {
    let description = crate::types::required_text(description, 4000)
        .map_err(|m| Invalid::field("description", m))?;
    get(conn, tenant_id, id).await?;
    add_action(
        conn,
        tenant_id,
        id,
        kind.as_str(),
        &description,
        user_of(actor),
        None,
    )
    .await?;
    if kind == ActionKind::Contacted {
        contacted(conn, tenant_id, id).await?;
    }
    get(conn, tenant_id, id).await
}

async fn contacted(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE complaints SET first_contacted_at = COALESCE(first_contacted_at, now()),
             status = CASE WHEN status = 'open' THEN 'investigating' ELSE status END
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    alerts::settle(
        conn,
        tenant_id,
        AlertKind::ComplaintContactOverdue,
        About::Complaint(id),
    )
    .await
}

/// Answers the complainant by message, through the service (their number is never needed).
pub async fn respond(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    id: Uuid,
    text: &str,
    actor: Actor,
) -> VoiceResult<Complaint> {
    let text = crate::types::required_text(text, 900).map_err(|m| Invalid::field("text", m))?;
    let case = get(conn, tenant_id, id).await?;
    let contact = complainant(conn, tenant_id, id).await?;
    let Some(contact) = contact else {
        return Err(VoiceError::Conflict(
            "this complaint came with no number to answer; record a contact by phone as an action"
                .into(),
        ));
    };
    let values = Values::new()
        .with("reference", &case.reference)
        .with("text", &text);
    let mut message = Notification::new(tenant_id, contact, "complaint_response", values);
    message.related = Some(("complaint", id));
    if notify::notify(conn, templates, &message).await? == Notified::NoChannel {
        return Err(VoiceError::Conflict(
            "no channel of this organisation can reach the complainant".into(),
        ));
    }
    add_action(
        conn,
        tenant_id,
        id,
        "contacted",
        &text,
        user_of(actor),
        None,
    )
    .await?;
    contacted(conn, tenant_id, id).await?;
    get(conn, tenant_id, id).await
}

/// What staff set a case to.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    pub status: ComplaintStatus,
    /// What was done: required to resolve, sent to the complainant.
    pub resolution: Option<String>,
}

/// Moves a case on. Resolving tells the complainant what was done and asks whether they are
/// satisfied (the survey); reopening starts a new resolution deadline.
pub async fn set_status(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    id: Uuid,
    to: StatusChange,
    actor: Actor,
) -> VoiceResult<Complaint> {
    let case = get(conn, tenant_id, id).await?;
    if !case.status.may_become(to.status) {
        return Err(VoiceError::Conflict(format!(
            "a {} complaint cannot become {}",
            case.status, to.status
        )));
    }
    let user = user_of(actor);
    match to.status {
        ComplaintStatus::Resolved => {
            let resolution = to
                .resolution
                .as_deref()
                .map(|r| crate::types::required_text(r, 900))
                .transpose()
                .map_err(|m| Invalid::field("resolution", m))?
                .ok_or_else(|| Invalid::field("resolution", "say what was done to resolve it"))?;
            sqlx::query(
                "UPDATE complaints SET status = 'resolved', resolution = $3, resolved_at = now()
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant_id)
            .bind(id)
            .bind(&resolution)
            .execute(&mut *conn)
            .await?;
            add_action(conn, tenant_id, id, "resolved", &resolution, user, None).await?;
            alerts::settle(
                conn,
                tenant_id,
                AlertKind::ComplaintResolutionOverdue,
                About::Complaint(id),
            )
            .await?;
            alerts::settle(
                conn,
                tenant_id,
                AlertKind::ComplaintContactOverdue,
                About::Complaint(id),
            )
            .await?;
            let contact = complainant(conn, tenant_id, id).await?;
            if let Some(contact) = contact {
                let values = Values::new()
                    .with("reference", &case.reference)
                    .with("resolution", &resolution);
                let mut message =
                    Notification::new(tenant_id, contact, "complaint_resolved", values);
                message.related = Some(("complaint", id));
                notify::notify(conn, templates, &message).await?;
                surveys::schedule(conn, tenant_id, surveys::Subject::Complaint(id)).await?;
            }
        }
        ComplaintStatus::Reopened => {
            let contact = complainant(conn, tenant_id, id).await?;
            if let Some(contact) = contact
                && let Some((_, other)) = open_case_of(conn, tenant_id, contact).await?
            {
                return Err(VoiceError::Conflict(format!(
                    "the complainant has another open case, {other}: add to that one"
                )));
            }
            let calendar = Calendar::load(conn, tenant_id).await?;
            let due = calendar.add_working_days(Utc::now(), RESOLUTION_WORKING_DAYS);
            sqlx::query(
                "UPDATE complaints SET status = 'reopened', resolved_at = NULL, resolution_due_at = $3,
                     resolution_warned_at = NULL
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant_id)
            .bind(id)
            .bind(due)
            .execute(&mut *conn)
            .await?;
            add_action(
                conn,
                tenant_id,
                id,
                "reopened",
                to.resolution.as_deref().unwrap_or("Reopened"),
                user,
                None,
            )
            .await?;
            ComplaintClock::start(conn, tenant_id, id, Deadline::Resolution, due).await?;
        }
        status => {
            sqlx::query("UPDATE complaints SET status = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(id)
                .bind(status)
                .execute(&mut *conn)
                .await?;
            let kind = if status == ComplaintStatus::Closed {
                "closed"
            } else {
                "investigated"
            };
            add_action(
                conn,
                tenant_id,
                id,
                kind,
                &format!("Status: {status}"),
                user,
                None,
            )
            .await?;
        }
    }
    get(conn, tenant_id, id).await
}

/// The complainant said they were not satisfied with the resolution: the case opens again.
pub async fn reopen_unsatisfied(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    id: Uuid,
) -> VoiceResult<()> {
    let case = get(conn, tenant_id, id).await?;
    let contact = complainant(conn, tenant_id, id).await?;
    let another_open = match contact {
        Some(contact) => open_case_of(conn, tenant_id, contact).await?.is_some(),
        None => false,
    };
    // With another case of theirs open, that case is where the call-back happens.
    if case.status.may_become(ComplaintStatus::Reopened) && !another_open {
        let change = StatusChange {
            status: ComplaintStatus::Reopened,
            resolution: Some("The complainant is not satisfied with the resolution".into()),
        };
        set_status(conn, templates, tenant_id, id, change, Actor::System).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_move_one_way_except_for_reopening() {
        use ComplaintStatus::*;
        assert!(Open.may_become(Investigating));
        assert!(Investigating.may_become(Resolved));
        assert!(Resolved.may_become(Closed));
        assert!(Closed.may_become(Reopened));
        assert!(Reopened.may_become(Resolved));
        assert!(!Open.may_become(Closed));
        assert!(!Closed.may_become(Resolved));
        assert!(!Resolved.may_become(Resolved));
    }

    #[test]
    fn serious_complaints_are_due_in_clock_hours_the_rest_in_working_days() {
        let calendar = Calendar {
            zone: chrono_tz::UTC,
            holidays: vec![],
        };
        // Friday noon.
        let at: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().unwrap();
        assert_eq!(
            first_contact_due(Severity::Critical, at, &calendar),
            at + TimeDelta::hours(24)
        );
        assert_eq!(
            first_contact_due(Severity::High, at, &calendar),
            at + TimeDelta::hours(48)
        );
        assert_eq!(
            first_contact_due(Severity::Medium, at, &calendar),
            "2026-12-09T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}
