//! Everything held about one patient, as one JSON document (articles 15 and 20).

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::{PrivacyResult, RequestKind, THEIR_CONTACTS, patient_for_request, record_fulfilled};
use crate::audit::{self, Actor};

/// Rows of `table` (aliased `t`) matching `condition`, as a JSON array, without the tenant id
/// and without secrets (sign-in codes kept apart from message bodies); `extra` adds nested
/// fields to each row.
fn rows(table: &str, condition: &str, order: &str, extra: &str) -> String {
    format!(
        "coalesce((SELECT jsonb_agg((to_jsonb(t) - '{{tenant_id,secret_body,secret_template_params,relay_token}}'::text[]){extra} ORDER BY {order})
                     FROM {table} t WHERE t.tenant_id = $1 AND {condition}), '[]'::jsonb)"
    )
}

/// The whole document, built in one statement so it is one consistent snapshot.
fn document_sql() -> String {
    let contacts = THEIR_CONTACTS;
    let trips = format!(
        "(SELECT id FROM trips WHERE tenant_id = $1 AND (patient_id = $2 OR contact_id IN {contacts}))"
    );
    let feedback = format!(
        "(SELECT id FROM feedback WHERE tenant_id = $1 AND (patient_id = $2 OR contact_id IN {contacts}))"
    );
    let complaints = format!(
        "(SELECT id FROM complaints WHERE tenant_id = $1 AND (patient_id = $2 OR contact_id IN {contacts}))"
    );
    let nested = |table: &str, key: &str, order: &str| {
        format!(
            " || jsonb_build_object('{table}', {})",
            rows(table, &format!("{key} = outer_row.id"), order, "")
        )
    };
    // `outer_row` names the enclosing row inside nested arrays.
    let with_nested = |table: &str, condition: &str, order: &str, children: &[String]| {
        format!(
            "coalesce((SELECT jsonb_agg((to_jsonb(outer_row) - '{{tenant_id,secret_body,secret_template_params,relay_token}}'::text[]){} ORDER BY {order})
                         FROM {table} outer_row WHERE outer_row.tenant_id = $1 AND {condition}), '[]'::jsonb)",
            children.concat()
        )
    };
    format!(
        "SELECT jsonb_build_object(
            'generated_at', now(),
            'organisation', (SELECT name FROM tenants WHERE id = $1),
            'patient', (SELECT to_jsonb(p) - 'tenant_id' FROM patients p WHERE p.tenant_id = $1 AND p.id = $2),
            'contacts', {contacts_rows},
            'consent', jsonb_build_object(
                'events', {consent_events},
                'opt_outs', {opt_outs}),
            'care_assignments', {assignments},
            'visits', {visits_rows},
            'messages', {messages},
            'feedback', {feedback_rows},
            'complaints', {complaint_rows},
            'surveys', {surveys},
            'trips', {trip_rows},
            'reported_work', {work},
            'data_requests', {requests})",
        contacts_rows = rows("contacts", &format!("t.id IN {contacts}"), "t.created_at", ""),
        consent_events = rows(
            "consent_events",
            &format!("t.contact_id IN {contacts}"),
            "t.created_at",
            ""
        ),
        opt_outs = rows(
            "opt_outs",
            &format!("t.contact_id IN {contacts}"),
            "t.opted_out_at",
            ""
        ),
        assignments = rows("caregiver_assignments", "t.patient_id = $2", "t.starts_on", ""),
        visits_rows = with_nested(
            "visits",
            "outer_row.patient_id = $2",
            "outer_row.scheduled_start",
            &[
                nested("visit_events", "t.visit_id", "t.received_at"),
                nested("visit_exceptions", "t.visit_id", "t.created_at"),
            ]
        ),
        messages = with_nested(
            "messages",
            // An anonymous exchange is left out: an export goes through staff hands.
            &format!("outer_row.contact_id IN {contacts} AND NOT outer_row.anonymous"),
            "outer_row.created_at",
            &[nested("message_media", "t.message_id", "t.created_at")]
        ),
        feedback_rows = with_nested(
            "feedback",
            &format!("outer_row.id IN {feedback}"),
            "outer_row.created_at",
            &[nested("feedback_responses", "t.feedback_id", "t.created_at")]
        ),
        complaint_rows = with_nested(
            "complaints",
            &format!("outer_row.id IN {complaints}"),
            "outer_row.created_at",
            &[nested("complaint_actions", "t.complaint_id", "t.created_at")]
        ),
        surveys = rows(
            "surveys",
            &format!("(t.patient_id = $2 OR t.contact_id IN {contacts})"),
            "t.created_at",
            ""
        ),
        trip_rows = with_nested(
            "trips",
            &format!("outer_row.id IN {trips}"),
            "outer_row.created_at",
            &[nested("trip_status_events", "t.trip_id", "t.created_at")]
        ),
        work = with_nested(
            "work_orders",
            &format!("outer_row.requester_contact_id IN {contacts}"),
            "outer_row.created_at",
            &[nested("work_order_comments", "t.work_order_id", "t.created_at")]
        ),
        requests = rows("gdpr_data_requests", "t.patient_id = $2", "t.requested_at", ""),
    )
}

static DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(document_sql);

/// Everything held about the patient, recorded as a fulfilled request of `kind` by `actor`.
#[tracing::instrument(skip(pool))]
pub async fn export(
    pool: &PgPool,
    tenant_id: Uuid,
    patient_id: Uuid,
    kind: RequestKind,
    actor: Actor,
) -> PrivacyResult<Value> {
    let mut tx = audit::begin(pool, actor).await?;
    patient_for_request(&mut tx, tenant_id, patient_id).await?;
    record_fulfilled(&mut tx, tenant_id, patient_id, kind, actor, None).await?;
    let document: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(DOCUMENT.as_str()))
        .bind(tenant_id)
        .bind(patient_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(document)
}
