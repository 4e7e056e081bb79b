//! The one survey: after a completed visit, non-emergency trip or work order with a requester (and
//! after a complaint is resolved), the person is asked the Friends and Family Test question, then
//! for a comment. Scheduled when the service ends; at its time the rules are checked (quiet hours,
//! once per person in so many days, opted out, a complaint of theirs open, a sensitive trip) and it
//! is sent or skipped with the reason kept.

use std::{sync::Arc, time::Duration};

use apalis::prelude::{BoxDynError, Data};
use chrono::{TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Fft, calendar::Calendar, settings};
use crate::{
    audit,
    jobs::{self, Job},
    messaging::{
        Messaging, contacts,
        notify::{self, Notification, Notified},
        templates::Values,
    },
};

/// What a survey asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Visit(Uuid),
    Trip(Uuid),
    WorkOrder(Uuid),
    /// Whether the complainant is satisfied with how their complaint was resolved.
    Complaint(Uuid),
}

#[derive(sqlx::FromRow)]
struct Recipient {
    contact_id: Option<Uuid>,
    patient_id: Option<Uuid>,
    worker_id: Option<Uuid>,
    service: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SurveyDue {
    pub tenant_id: Uuid,
    pub survey_id: Uuid,
    /// Held over the quiet hours once already: it runs at their end, and goes then.
    #[serde(default)]
    pub held: bool,
}

impl Job for SurveyDue {
    const QUEUE: &'static str = "surveys";
}

/// Schedules the survey for a service that has just ended; a service with nobody to ask (a
/// patient with no phone, a work order nobody reported, an emergency trip) has none.
#[tracing::instrument(skip(conn))]
pub async fn schedule(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    subject: Subject,
) -> anyhow::Result<Option<Uuid>> {
    let (recipient, column, id): (Option<Recipient>, &str, Uuid) = match subject {
        Subject::Visit(id) => {
            let row: Option<(Uuid, Uuid, String, bool)> = sqlx::query_as(
                "SELECT v.patient_id, v.caregiver_id, v.service_type, p.phone IS NOT NULL
                 FROM visits v JOIN patients p ON p.tenant_id = v.tenant_id AND p.id = v.patient_id
                 WHERE v.tenant_id = $1 AND v.id = $2 AND p.deleted_at IS NULL",
            )
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            let recipient = match row {
                Some((patient, caregiver, service, true)) => Some(Recipient {
                    contact_id: Some(contacts::for_patient(conn, tenant_id, patient).await?),
                    patient_id: Some(patient),
                    worker_id: Some(caregiver),
                    service,
                }),
                _ => None,
            };
            (recipient, "visit_id", id)
        }
        Subject::Trip(id) => {
            let row: Option<(Option<Uuid>, bool, Option<Uuid>)> = sqlx::query_as(
                "SELECT t.patient_id, p.phone IS NOT NULL AND p.deleted_at IS NULL, t.contact_id
                 FROM trips t LEFT JOIN patients p ON p.tenant_id = t.tenant_id AND p.id = t.patient_id
                 WHERE t.tenant_id = $1 AND t.id = $2 AND t.request_type <> 'emergency'",
            )
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            let recipient = match row {
                Some((Some(patient), true, _)) => Some(Recipient {
                    contact_id: Some(contacts::for_patient(conn, tenant_id, patient).await?),
                    patient_id: Some(patient),
                    worker_id: None,
                    service: "ambulance".into(),
                }),
                Some((patient, _, Some(contact))) => Some(Recipient {
                    contact_id: Some(contact),
                    patient_id: patient,
                    worker_id: None,
                    service: "ambulance".into(),
                }),
                _ => None,
            };
            (recipient, "trip_id", id)
        }
        Subject::WorkOrder(id) => {
            let recipient: Option<Recipient> = sqlx::query_as(
                "SELECT requester_contact_id AS contact_id, NULL::uuid AS patient_id,
                        assigned_worker_id AS worker_id, 'maintenance' AS service
                 FROM work_orders WHERE tenant_id = $1 AND id = $2 AND requester_contact_id IS NOT NULL",
            )
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            (recipient, "work_order_id", id)
        }
        Subject::Complaint(id) => {
            let recipient: Option<Recipient> = sqlx::query_as(
                "SELECT contact_id, patient_id, worker_id, 'complaint' AS service
                 FROM complaints WHERE tenant_id = $1 AND id = $2 AND contact_id IS NOT NULL",
            )
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            (recipient, "complaint_id", id)
        }
    };
    let Some(Recipient {
        contact_id: Some(contact_id),
        patient_id,
        worker_id,
        service,
    }) = recipient
    else {
        return Ok(None);
    };
    let subject_name = column.trim_end_matches("_id");
    let delay = match subject {
        Subject::Complaint(_) => TimeDelta::zero(),
        _ => {
            let minutes: i32 =
                sqlx::query_scalar("SELECT survey_delay_minutes FROM tenants WHERE id = $1")
                    .bind(tenant_id)
                    .fetch_one(&mut *conn)
                    .await?;
            TimeDelta::minutes(minutes.into())
        }
    };
    let due_at = Utc::now() + delay;
    // A complaint may be resolved, reopened and resolved again: each time is asked about.
    let conflict = if subject_name == "complaint" {
        String::new()
    } else {
        format!(
            "ON CONFLICT ({column}, tenant_id, contact_id) WHERE {column} IS NOT NULL DO NOTHING"
        )
    };
    let survey: Option<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "INSERT INTO surveys (tenant_id, contact_id, patient_id, subject, {column}, worker_id, service, due_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         {conflict}
         RETURNING id"
    )))
    .bind(tenant_id)
    .bind(contact_id)
    .bind(patient_id)
    .bind(subject_name)
    .bind(id)
    .bind(worker_id)
    .bind(&service)
    .bind(due_at)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(survey_id) = survey {
        let job = SurveyDue {
            tenant_id,
            survey_id,
            held: false,
        };
        jobs::enqueue(conn, &job, delay.to_std().unwrap_or(Duration::ZERO)).await?;
    }
    Ok(survey)
}

#[derive(sqlx::FromRow)]
struct Due {
    contact_id: Uuid,
    subject: String,
    status: String,
    sensitive: bool,
    complaint_open: bool,
    surveyed_recently: bool,
    complaint_reference: Option<String>,
}

/// Sends the survey when its time has come, or skips it saying why.
#[tracing::instrument(skip_all, fields(survey_id = %job.survey_id))]
pub async fn survey_due(
    job: SurveyDue,
    messaging: Data<Arc<Messaging>>,
) -> Result<(), BoxDynError> {
    let mut tx = audit::begin(&messaging.pool, audit::Actor::System).await?;
    let rules = settings::load(&mut tx, job.tenant_id).await?;
    let due: Option<Due> = sqlx::query_as(
        "SELECT s.contact_id, s.subject, s.status,
                COALESCE(t.sensitive, false) AS sensitive,
                EXISTS (SELECT 1 FROM complaints c WHERE c.tenant_id = s.tenant_id AND c.contact_id = s.contact_id
                        AND c.status IN ('open', 'investigating', 'reopened')) AS complaint_open,
                EXISTS (SELECT 1 FROM surveys o WHERE o.tenant_id = s.tenant_id AND o.contact_id = s.contact_id
                        AND o.id <> s.id AND o.subject <> 'complaint'
                        AND o.sent_at > now() - make_interval(days => $3)) AS surveyed_recently,
                c.reference AS complaint_reference
         FROM surveys s
         LEFT JOIN trips t ON t.tenant_id = s.tenant_id AND t.id = s.trip_id
         LEFT JOIN complaints c ON c.tenant_id = s.tenant_id AND c.id = s.complaint_id
         WHERE s.tenant_id = $1 AND s.id = $2
         FOR UPDATE OF s",
    )
    .bind(job.tenant_id)
    .bind(job.survey_id)
    .bind(rules.min_days_between)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(due) = due.filter(|d| d.status == "scheduled") else {
        return Ok(());
    };
    let now = Utc::now();
    let about_service = due.subject != "complaint";
    let skip = if due.sensitive {
        Some("sensitive")
    } else if about_service && due.complaint_open {
        Some("complaint_open")
    } else if about_service && due.surveyed_recently {
        Some("surveyed_recently")
    } else {
        None
    };
    if skip.is_none() && !job.held {
        let calendar = Calendar::load(&mut tx, job.tenant_id).await?;
        let send_at = calendar.outside_quiet_hours(now, rules.quiet_from, rules.quiet_until);
        if send_at > now {
            sqlx::query("UPDATE surveys SET due_at = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(job.tenant_id)
                .bind(job.survey_id)
                .bind(send_at)
                .execute(&mut *tx)
                .await?;
            let held = SurveyDue { held: true, ..job };
            jobs::enqueue(&mut tx, &held, (send_at - now).to_std().unwrap_or_default()).await?;
            tx.commit().await?;
            tracing::info!(%send_at, "survey held until the quiet hours end");
            return Ok(());
        }
    }
    let skip = match skip {
        Some(reason) => Some(reason),
        None => {
            let tenant: String = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
                .bind(job.tenant_id)
                .fetch_one(&mut *tx)
                .await?;
            let (key, values) = match &due.complaint_reference {
                Some(reference) => (
                    "survey_complaint_question",
                    Values::new()
                        .with("tenant", &tenant)
                        .with("reference", reference),
                ),
                None => ("survey_question", Values::new().with("tenant", &tenant)),
            };
            let mut question = Notification::new(job.tenant_id, due.contact_id, key, values);
            question.essential = false;
            question.related = Some(("survey", job.survey_id));
            match notify::notify(&mut tx, &messaging.templates, &question).await? {
                Notified::Queued(_) => None,
                Notified::OptedOut => Some("opted_out"),
                Notified::NoChannel => Some("no_channel"),
            }
        }
    };
    match skip {
        Some(reason) => {
            sqlx::query(
                "UPDATE surveys SET status = 'skipped', skip_reason = $3 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(job.tenant_id)
            .bind(job.survey_id)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            tracing::info!(reason, "survey skipped");
        }
        None => {
            sqlx::query(
                "UPDATE surveys SET status = 'sent', sent_at = now(),
                     expires_at = now() + make_interval(hours => $3)
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(job.tenant_id)
            .bind(job.survey_id)
            .bind(rules.expiry_hours)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The survey a person's message may be answering: the latest sent or answered one.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Open {
    pub id: Uuid,
    pub status: String,
    pub expired: bool,
    pub subject: String,
    pub patient_id: Option<Uuid>,
    pub visit_id: Option<Uuid>,
    pub trip_id: Option<Uuid>,
    pub work_order_id: Option<Uuid>,
    pub complaint_id: Option<Uuid>,
    pub worker_id: Option<Uuid>,
    pub service: String,
    pub fft_code: Option<i16>,
    pub feedback_id: Option<Uuid>,
}

/// A late answer is still recognised (and told the survey closed) for this long after expiry.
const LATE_ANSWERS_RECOGNISED: TimeDelta = TimeDelta::days(7);

pub async fn latest_open(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    contact_id: Uuid,
) -> sqlx::Result<Option<Open>> {
    sqlx::query_as(
        "SELECT id, status, expires_at < now() AS expired, subject, patient_id, visit_id, trip_id,
                work_order_id, complaint_id, worker_id, service, fft_code, feedback_id
         FROM surveys
         WHERE tenant_id = $1 AND contact_id = $2 AND status IN ('sent', 'answered')
           AND expires_at > now() - $3::interval
         ORDER BY sent_at DESC LIMIT 1",
    )
    .bind(tenant_id)
    .bind(contact_id)
    .bind(LATE_ANSWERS_RECOGNISED)
    .fetch_optional(conn)
    .await
}

/// The answer, kept as feedback about the service and the worker(s) who gave it. A second
/// answer before the comment corrects the first.
pub async fn answer(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    contact_id: Uuid,
    survey: &Open,
    fft: Fft,
    channel: &str,
    message_id: Uuid,
) -> sqlx::Result<Uuid> {
    let feedback_id: Uuid = sqlx::query_scalar(
        "INSERT INTO feedback (tenant_id, patient_id, contact_id, visit_id, trip_id, work_order_id, worker_id,
             feedback_type, rating, fft_code, service, survey_id, channel, message_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'survey', $8, $9, $10, $11, $12, $13)
         ON CONFLICT (tenant_id, survey_id) WHERE survey_id IS NOT NULL
         DO UPDATE SET rating = EXCLUDED.rating, fft_code = EXCLUDED.fft_code, message_id = EXCLUDED.message_id
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(survey.patient_id)
    .bind(contact_id)
    .bind(survey.visit_id)
    .bind(survey.trip_id)
    .bind(survey.work_order_id)
    .bind(survey.worker_id)
    .bind(fft.rating())
    .bind(fft.code())
    .bind(&survey.service)
    .bind(survey.id)
    .bind(channel)
    .bind(message_id)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE surveys SET status = 'answered', fft_code = $3, answered_at = now(), feedback_id = $4,
             -- Time to write the comment, even when the answer came at the last minute.
             expires_at = greatest(expires_at, now() + interval '24 hours')
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(survey.id)
    .bind(fft.code())
    .bind(feedback_id)
    .execute(&mut *conn)
    .await?;
    Ok(feedback_id)
}

/// The free-text follow-up: kept on the answer's feedback; the survey is complete.
pub async fn comment(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    survey: &Open,
    text: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE feedback SET comments = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(survey.feedback_id)
        .bind(text)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE surveys SET status = 'commented' WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(survey.id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Closes a survey nobody answered in time (found when a late answer comes).
pub async fn expire(conn: &mut PgConnection, tenant_id: Uuid, survey_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE surveys SET status = CASE WHEN status = 'sent' THEN 'expired' ELSE 'commented' END
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(survey_id)
    .execute(conn)
    .await?;
    Ok(())
}
