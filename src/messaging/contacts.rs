//! The contact behind a worker or patient, so domains can message people who have never written.

use sqlx::PgConnection;
use uuid::Uuid;

/// The worker's contact, made from the worker's phone if they have none yet; `None` once the
/// worker was removed.
pub async fn for_live_worker(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    worker_id: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "INSERT INTO contacts (tenant_id, phone, whatsapp_enabled, display_name, worker_id, preferred_locale)
         SELECT tenant_id, phone, whatsapp_enabled, first_name || ' ' || last_name, id, preferred_locale
         FROM workers WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
         ON CONFLICT ON CONSTRAINT contacts_tenant_phone_key DO UPDATE SET
             worker_id = CASE WHEN contacts.patient_id IS NULL THEN EXCLUDED.worker_id ELSE contacts.worker_id END,
             whatsapp_enabled = contacts.whatsapp_enabled OR EXCLUDED.whatsapp_enabled
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(worker_id)
    .fetch_optional(conn)
    .await
}

/// [`for_live_worker`] for a worker who must exist.
pub async fn for_worker(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    worker_id: Uuid,
) -> anyhow::Result<Uuid> {
    for_live_worker(conn, tenant_id, worker_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("worker {worker_id} does not exist in this organisation"))
}

/// The patient's contact, made from the patient's phone if they have none yet. WhatsApp only
/// when the patient consented to it.
pub async fn for_patient(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    patient_id: Uuid,
) -> anyhow::Result<Uuid> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO contacts (tenant_id, phone, whatsapp_enabled, display_name, patient_id, preferred_locale)
         SELECT tenant_id, phone, consent_whatsapp, first_name || ' ' || last_name, id, preferred_locale
         FROM patients WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL AND phone IS NOT NULL
         ON CONFLICT ON CONSTRAINT contacts_tenant_phone_key DO UPDATE SET
             patient_id = CASE WHEN contacts.worker_id IS NULL THEN EXCLUDED.patient_id ELSE contacts.patient_id END
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(patient_id)
    .fetch_optional(conn)
    .await?;
    id.ok_or_else(|| {
        anyhow::anyhow!("patient {patient_id} does not exist here or has no phone number")
    })
}

/// The contact with this number (a coordinator, a caller), made if there is none yet.
pub async fn for_phone(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    phone: &str,
    name: Option<&str>,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO contacts (tenant_id, phone, display_name) VALUES ($1, $2, $3)
         ON CONFLICT ON CONSTRAINT contacts_tenant_phone_key DO UPDATE SET phone = EXCLUDED.phone
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(phone)
    .bind(name)
    .fetch_one(conn)
    .await
}
