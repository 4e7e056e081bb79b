//! Erasure (article 17): a patient's personal data removed or irreversibly replaced, with what
//! the organisation must keep left in place: visit and trip times (payroll, EVV, response-time
//! statistics), ratings and complaint categories (counts), and the audit chain, which records
//! that the erasure happened and still verifies.
//!
//! Personal data: names, numbers, addresses, positions, free text and media files. A contact's
//! number becomes an unassigned `+999…` one, so a later message from the real number finds no
//! contact and is treated as from a stranger.

use std::path::PathBuf;

use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{PrivacyResult, RequestKind, THEIR_CONTACTS, patient_for_request, record_fulfilled};
use crate::{
    audit::{self, Actor},
    error::Invalid,
    messaging::inbox,
};

/// What an erasure did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Erased {
    pub request_id: Uuid,
    /// Rows changed per table.
    pub changed: Value,
    pub files_removed: u64,
}

/// Each statement scrubs one table's rows that belong to the patient. `$1` tenant, `$2`
/// patient; `contacts_of` and friends are the patient's rows in other tables, by id.
const SCRUB: &[(&str, &str)] = &[
    (
        "messages",
        "UPDATE messages SET body = NULL, latitude = NULL, longitude = NULL, location_label = NULL,
                sender_profile_name = NULL, template_params = NULL, secret_body = NULL,
                secret_template_params = NULL, buttons = NULL, error_message = NULL
          WHERE tenant_id = $1 AND (contact_id IN (SELECT id FROM erased_contacts) OR id IN (SELECT id FROM about_them))",
    ),
    (
        "messages about their visits and trips",
        // A caregiver's shared location at their door is their address.
        "UPDATE messages SET latitude = NULL, longitude = NULL, location_label = NULL
          WHERE tenant_id = $1 AND related_entity_id IN (SELECT id FROM erased_records) AND latitude IS NOT NULL",
    ),
    (
        "queued messages",
        // Nothing more goes to a number that is no longer theirs.
        "UPDATE messages SET status = 'failed', failed_at = now(), error_code = 'erased'
          WHERE tenant_id = $1 AND contact_id IN (SELECT id FROM erased_contacts)
            AND direction = 'outbound' AND status = 'queued'",
    ),
    (
        "message_fallbacks",
        // The SMS planned beside a WhatsApp message carries the same words.
        "UPDATE message_fallbacks SET body = '[erased]', secret_body = NULL
          WHERE tenant_id = $1 AND (message_id IN (SELECT id FROM about_them)
                OR message_id IN (SELECT id FROM messages WHERE tenant_id = $1 AND contact_id IN (SELECT id FROM erased_contacts)))",
    ),
    (
        "message_media",
        // The provider's id stays where there is one (it names no one, and the table needs a
        // source); its copy at the provider is the provider's to delete.
        "UPDATE message_media SET caption = NULL, file_name = NULL, storage_path = NULL,
                provider_url = CASE WHEN provider_media_id IS NULL THEN provider_url END
          WHERE tenant_id = $1 AND message_id IN (SELECT id FROM messages WHERE tenant_id = $1 AND contact_id IN (SELECT id FROM erased_contacts))",
    ),
    (
        "conversations",
        "UPDATE conversations SET bot_state = '{}'::jsonb
          WHERE tenant_id = $1 AND contact_id IN (SELECT id FROM erased_contacts)",
    ),
    (
        "feedback_relays",
        "DELETE FROM feedback_relays WHERE tenant_id = $1 AND contact_id IN (SELECT id FROM erased_contacts)",
    ),
    (
        "feedback",
        "UPDATE feedback SET comments = NULL, relay_token = NULL
          WHERE tenant_id = $1 AND (patient_id = $2 OR contact_id IN (SELECT id FROM erased_contacts))",
    ),
    (
        "feedback_responses",
        "UPDATE feedback_responses SET body = '[erased]'
          WHERE tenant_id = $1 AND feedback_id IN (SELECT id FROM feedback WHERE tenant_id = $1
                AND (patient_id = $2 OR contact_id IN (SELECT id FROM erased_contacts)))",
    ),
    (
        "complaint_actions",
        "UPDATE complaint_actions SET description = '[erased]'
          WHERE tenant_id = $1 AND complaint_id IN (SELECT id FROM complaints WHERE tenant_id = $1
                AND (patient_id = $2 OR contact_id IN (SELECT id FROM erased_contacts)))",
    ),
    (
        "complaints",
        "UPDATE complaints SET description = '[erased]', resolution = NULL
          WHERE tenant_id = $1 AND (patient_id = $2 OR contact_id IN (SELECT id FROM erased_contacts))",
    ),
    (
        "trip_status_events",
        "UPDATE trip_status_events SET latitude = NULL, longitude = NULL, accuracy_m = NULL, note = NULL
          WHERE tenant_id = $1 AND trip_id IN (SELECT id FROM trips WHERE tenant_id = $1
                AND (patient_id = $2 OR contact_id IN (SELECT id FROM erased_contacts)))",
    ),
    (
        "trips",
        "UPDATE trips SET pickup_address = '[erased]', pickup_latitude = NULL, pickup_longitude = NULL,
                dropoff_address = '[erased]', dropoff_latitude = NULL, dropoff_longitude = NULL,
                contact_name = NULL, contact_phone = NULL, special_instructions = NULL, notes = NULL,
                cancel_reason = NULL
          WHERE tenant_id = $1 AND (patient_id = $2 OR contact_id IN (SELECT id FROM erased_contacts))",
    ),
    (
        "visit_events",
        "UPDATE visit_events SET latitude = NULL, longitude = NULL, accuracy_m = NULL, distance_m = NULL,
                result = result - 'patient_name'
          WHERE tenant_id = $1 AND visit_id IN (SELECT id FROM visits WHERE tenant_id = $1 AND patient_id = $2)",
    ),
    (
        "visit_exceptions",
        "UPDATE visit_exceptions SET detail = '[erased]', resolution_note = NULL
          WHERE tenant_id = $1 AND visit_id IN (SELECT id FROM visits WHERE tenant_id = $1 AND patient_id = $2)",
    ),
    (
        "visits",
        // The times stay: payroll and electronic visit verification need them.
        "UPDATE visits SET check_in_latitude = NULL, check_in_longitude = NULL, check_in_accuracy_m = NULL,
                check_in_distance_m = NULL, check_out_latitude = NULL, check_out_longitude = NULL,
                check_out_accuracy_m = NULL, check_out_distance_m = NULL, notes = NULL, vitals = NULL,
                cancelled_reason = NULL
          WHERE tenant_id = $1 AND patient_id = $2",
    ),
    (
        "caregiver_assignments",
        "UPDATE caregiver_assignments SET notes = NULL WHERE tenant_id = $1 AND patient_id = $2",
    ),
    (
        "work_order_comments",
        "UPDATE work_order_comments SET body = '[erased]'
          WHERE tenant_id = $1 AND author_contact_id IN (SELECT id FROM erased_contacts)",
    ),
    (
        "work_orders",
        "UPDATE work_orders SET description = NULL, location_detail = NULL, latitude = NULL, longitude = NULL
          WHERE tenant_id = $1 AND requester_contact_id IN (SELECT id FROM erased_contacts)",
    ),
    (
        "contacts",
        // An unassigned country code, unique per contact: the real number is free again.
        "UPDATE contacts SET display_name = NULL, profile_name = NULL,
                phone = '+999' || lpad((('x' || substr(md5(id::text), 1, 12))::bit(48)::bigint % 100000000000)::text, 11, '0')
          WHERE tenant_id = $1 AND id IN (SELECT id FROM erased_contacts)",
    ),
    (
        "patients",
        "UPDATE patients SET first_name = '[erased]', last_name = '[erased]', date_of_birth = NULL, gender = NULL,
                national_id = NULL, nhs_number = NULL, medical_record_number = NULL, phone = NULL, email = NULL,
                address_line = NULL, city = NULL, region = NULL, postal_code = NULL, country_code = NULL,
                emergency_contact_name = NULL, emergency_contact_phone = NULL, emergency_contact_relation = NULL,
                latitude = NULL, longitude = NULL, notes = NULL, erased_at = now(),
                deleted_at = coalesce(deleted_at, now())
          WHERE tenant_id = $1 AND id = $2",
    ),
];

/// Erases the patient's personal data; `reason` is kept with the request (say why, not who).
#[tracing::instrument(skip(pool, reason))]
pub async fn erase(
    pool: &PgPool,
    data_dir: &std::path::Path,
    tenant_id: Uuid,
    patient_id: Uuid,
    reason: &str,
    actor: Actor,
) -> PrivacyResult<Erased> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(Invalid::field(
            "reason",
            "say in a few words why the data is erased (the request, a date), up to 500 characters",
        )
        .into());
    }
    let mut tx = audit::begin(pool, actor).await?;
    patient_for_request(&mut tx, tenant_id, patient_id).await?;
    let request_id = record_fulfilled(
        &mut tx,
        tenant_id,
        patient_id,
        RequestKind::Erasure,
        actor,
        Some(reason),
    )
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TEMPORARY TABLE erased_contacts ON COMMIT DROP AS SELECT id FROM {THEIR_CONTACTS} theirs"
    )))
    .bind(tenant_id)
    .bind(patient_id)
    .execute(&mut *tx)
    .await?;
    // Every record of theirs, by id: rows about one of them are theirs. Found through ids only,
    // never by what a field says: another patient's text that happens to hold their words
    // is not theirs.
    sqlx::query(
        "CREATE TEMPORARY TABLE erased_records ON COMMIT DROP AS
         WITH own (id) AS (
             SELECT $2::uuid
             UNION SELECT id FROM erased_contacts
             UNION SELECT id FROM visits WHERE tenant_id = $1 AND patient_id = $2
             UNION SELECT id FROM caregiver_assignments WHERE tenant_id = $1 AND patient_id = $2
             UNION SELECT id FROM trips WHERE tenant_id = $1 AND (patient_id = $2 OR contact_id IN (SELECT id FROM erased_contacts))
             UNION SELECT id FROM feedback WHERE tenant_id = $1 AND (patient_id = $2 OR contact_id IN (SELECT id FROM erased_contacts))
             UNION SELECT id FROM complaints WHERE tenant_id = $1 AND (patient_id = $2 OR contact_id IN (SELECT id FROM erased_contacts))
             UNION SELECT id FROM surveys WHERE tenant_id = $1 AND (patient_id = $2 OR contact_id IN (SELECT id FROM erased_contacts))
             UNION SELECT id FROM work_orders WHERE tenant_id = $1 AND requester_contact_id IN (SELECT id FROM erased_contacts)
             UNION SELECT id FROM work_order_comments WHERE tenant_id = $1 AND author_contact_id IN (SELECT id FROM erased_contacts)
             UNION SELECT id FROM work_order_attachments WHERE tenant_id = $1 AND uploaded_by_contact_id IN (SELECT id FROM erased_contacts)
             UNION SELECT id FROM consent_events WHERE tenant_id = $1 AND contact_id IN (SELECT id FROM erased_contacts)
             UNION SELECT id FROM gdpr_data_requests WHERE tenant_id = $1 AND patient_id = $2
         )
         SELECT id FROM own
         UNION SELECT id FROM visit_exceptions WHERE tenant_id = $1 AND visit_id IN (SELECT id FROM own)
         UNION SELECT id FROM feedback_responses WHERE tenant_id = $1 AND feedback_id IN (SELECT id FROM own)
         UNION SELECT id FROM complaint_actions WHERE tenant_id = $1 AND complaint_id IN (SELECT id FROM own)
         UNION SELECT id FROM work_order_comments WHERE tenant_id = $1 AND work_order_id IN (SELECT id FROM own)
         UNION SELECT id FROM coordinator_alerts WHERE tenant_id = $1
                AND (visit_id IN (SELECT id FROM own) OR trip_id IN (SELECT id FROM own)
                     OR complaint_id IN (SELECT id FROM own) OR work_order_id IN (SELECT id FROM own))",
    )
    .bind(tenant_id)
    .bind(patient_id)
    .execute(&mut *tx)
    .await?;
    // The erasure may blank the audit rows of these records and no others (the log's guard
    // holds it to the list, and `audit verify` checks it).
    sqlx::query(
        "UPDATE gdpr_data_requests SET erased_records = ARRAY(SELECT id FROM erased_records ORDER BY id)
          WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(request_id)
    .execute(&mut *tx)
    .await?;
    // From here the audit trigger records which fields changed, never their values.
    sqlx::query("SELECT set_config('fieldline.erasure', $1, true)")
        .bind(request_id.to_string())
        .execute(&mut *tx)
        .await?;
    // Messages to others about their records (a caregiver's visit reminder, a crew's job).
    sqlx::query(
        "CREATE TEMPORARY TABLE about_them ON COMMIT DROP AS
         SELECT id FROM messages WHERE tenant_id = $1 AND related_entity_id IN (SELECT id FROM erased_records)",
    )
    .bind(tenant_id)
    .execute(&mut *tx)
    .await?;
    let files: Vec<String> = sqlx::query_scalar(
        "SELECT storage_path FROM message_media
          WHERE tenant_id = $1 AND storage_path IS NOT NULL
            AND message_id IN (SELECT id FROM messages WHERE tenant_id = $1 AND contact_id IN (SELECT id FROM erased_contacts))
         UNION
         SELECT a.storage_path FROM work_order_attachments a
          WHERE a.tenant_id = $1 AND a.uploaded_by_contact_id IN (SELECT id FROM erased_contacts)",
    )
    .bind(tenant_id)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM work_order_attachments WHERE tenant_id = $1
            AND uploaded_by_contact_id IN (SELECT id FROM erased_contacts)",
    )
    .bind(tenant_id)
    .execute(&mut *tx)
    .await?;
    let mut changed = serde_json::Map::new();
    // Acknowledged but not yet stored: kept, it would be stored after the erasure as a stranger's
    // message holding their number and words. Before the scrub below changes their numbers, and
    // under the drainer's lock (held from here, not from the start, so the scans above do not
    // hold up storing): a message of theirs is either stored already, and scrubbed below with
    // their others, or still in the inbox and deleted here, never half way.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(inbox::DRAINER)
        .execute(&mut *tx)
        .await?;
    let unstored = sqlx::query(
        "DELETE FROM inbox i
          WHERE i.message ->> 'from' IN (
                    SELECT phone::text FROM patients WHERE tenant_id = $1 AND id = $2 AND phone IS NOT NULL
                    UNION SELECT phone::text FROM contacts WHERE tenant_id = $1 AND id IN (SELECT id FROM erased_contacts))
            AND EXISTS (
                    SELECT 1 FROM channels ch
                     WHERE ch.tenant_id = $1 AND ch.provider = i.message ->> 'provider'
                       AND ch.kind = i.message ->> 'kind'
                       AND (ch.phone_number = i.message -> 'to' ->> 'phone'
                            OR ch.provider_ref = i.message -> 'to' ->> 'provider_ref'))",
    )
    .bind(tenant_id)
    .bind(patient_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    changed.insert("inbox (not yet stored)".into(), json!(unstored));
    for (table, statement) in SCRUB {
        let rows = sqlx::query(sqlx::AssertSqlSafe(*statement))
            .bind(tenant_id)
            .bind(patient_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        changed.insert((*table).to_owned(), json!(rows));
    }
    let redacted = redact_audit_log(&mut tx, tenant_id, request_id).await?;
    changed.insert("audit_log (values blanked)".into(), json!(redacted));
    let changed = Value::Object(changed);
    sqlx::query("UPDATE gdpr_data_requests SET outcome = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(request_id)
        .bind(json!({ "changed": changed, "files": files.len() }))
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        audit::Entry {
            tenant_id: Some(tenant_id),
            actor,
            action: "gdpr.erasure",
            entity_type: "gdpr_data_requests",
            entity_id: Some(request_id),
            after: Some(json!({ "patient_id": patient_id, "audit_rows_blanked": redacted })),
        },
    )
    .await?;
    tx.commit().await?;
    // After the commit: a failed erasure must not have deleted anything it still refers to.
    let files_removed = remove_files(data_dir, &files).await;
    Ok(Erased {
        request_id,
        changed,
        files_removed,
    })
}

/// Blanks the before, after and reason of every audit row about the patient's records. The
/// chain still verifies: it covers a hash of those values, not the values. Rows not yet sealed
/// are blanked too (their hash is fixed at insert, so the seal that follows is unchanged); only
/// this transaction's own rows are left, which say what the erasure changed, never a value.
async fn redact_audit_log(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    request_id: Uuid,
) -> PrivacyResult<u64> {
    // Before blanking rows a sealer may be sealing.
    audit::hold_chain(conn, tenant_id).await?;
    let redacted = sqlx::query(
        "UPDATE audit_log a SET before = NULL, after = NULL, reason = NULL, redacted_by = $2
          WHERE a.tenant_id = $1 AND a.xmin <> pg_current_xact_id()::xid AND a.redacted_by IS NULL
            AND (a.before IS NOT NULL OR a.after IS NOT NULL OR a.reason IS NOT NULL)
            AND a.entity_id IN (SELECT id FROM erased_records)",
    )
    .bind(tenant_id)
    .bind(request_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(redacted)
}

/// Removes the files, inside the data folder only; returns how many went.
async fn remove_files(data_dir: &std::path::Path, paths: &[String]) -> u64 {
    let mut removed = 0;
    let root = tokio::fs::canonicalize(data_dir)
        .await
        .unwrap_or_else(|_| data_dir.to_path_buf());
    for path in paths {
        let path = PathBuf::from(path);
        let path = if path.is_absolute() {
            path
        } else {
            data_dir.join(path)
        };
        match tokio::fs::canonicalize(&path).await {
            Ok(real) if real.starts_with(&root) => match tokio::fs::remove_file(&real).await {
                Ok(()) => removed += 1,
                Err(error) => {
                    tracing::error!(path = %real.display(), %error, "erasure could not remove a file: remove it by hand")
                }
            },
            Ok(real) => {
                tracing::error!(path = %real.display(), "erasure refused a file outside the data folder")
            }
            // Already gone (or never fetched): nothing to remove.
            Err(_) => {}
        }
    }
    removed
}
