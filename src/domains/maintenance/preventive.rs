//! Preventive maintenance: a recurring sweep opens a work order for every asset whose
//! maintenance has come due, once; completing it moves the asset's last and next dates.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::state::Priority;
use super::work_orders::{self, Actor, NewWorkOrder};
use crate::{
    audit,
    jobs::{self, Job},
    messaging::Messaging,
};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PreventiveSweep {}

impl Job for PreventiveSweep {
    const QUEUE: &'static str = "preventive-maintenance";
}

#[derive(sqlx::FromRow)]
struct DueAsset {
    tenant_id: Uuid,
    id: Uuid,
    name: String,
    site_id: Option<Uuid>,
    location_detail: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn preventive_sweep(
    _: PreventiveSweep,
    messaging: Data<Arc<Messaging>>,
) -> Result<(), BoxDynError> {
    let mut tx = audit::begin(&messaging.pool, audit::Actor::System).await?;
    jobs::lock_recurring::<PreventiveSweep>(&mut tx).await?;
    // Due, and without an open preventive work order already.
    let due: Vec<DueAsset> = sqlx::query_as(
        "SELECT a.tenant_id, a.id, a.name, a.site_id, a.location_detail
         FROM assets a
         WHERE a.deleted_at IS NULL AND a.maintenance_frequency_days IS NOT NULL
           AND a.status <> 'retired'
           AND COALESCE(a.next_maintenance_at,
                        a.last_maintenance_at + make_interval(days => a.maintenance_frequency_days),
                        a.installed_on + make_interval(days => a.maintenance_frequency_days),
                        now()) <= now()
           AND NOT EXISTS (SELECT 1 FROM work_orders wo WHERE wo.tenant_id = a.tenant_id AND wo.asset_id = a.id
                             AND wo.request_type = 'preventive' AND wo.status NOT IN ('completed', 'cancelled'))
         ORDER BY a.next_maintenance_at NULLS FIRST
         LIMIT 200",
    )
    .fetch_all(&mut *tx)
    .await?;
    for asset in &due {
        let input = NewWorkOrder {
            kind: "maintenance".into(),
            request_type: Some("preventive".into()),
            title: format!("Preventive maintenance: {}", asset.name),
            description: None,
            priority: Some(Priority::Low),
            site_id: asset.site_id,
            location_detail: asset.location_detail.clone(),
            asset_id: Some(asset.id),
            required_specialty: None,
            requester_phone: None,
            scheduled_at: None,
            expected_duration_minutes: None,
        };
        let order = work_orders::create(
            &mut tx,
            &messaging.templates,
            asset.tenant_id,
            input,
            Actor::System,
            "system",
        )
        .await
        .map_err(|e| format!("preventive work order for asset {}: {e}", asset.id))?;
        tracing::info!(reference = %order.reference, asset = %asset.name, "preventive work order opened");
    }
    jobs::schedule_recurring::<PreventiveSweep>(
        &mut tx,
        messaging.config.preventive_sweep_interval,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Completed work on an asset with a schedule moves its last and next maintenance dates.
pub async fn completed(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    asset_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE assets SET last_maintenance_at = now(),
             next_maintenance_at = now() + make_interval(days => maintenance_frequency_days)
         WHERE tenant_id = $1 AND id = $2 AND maintenance_frequency_days IS NOT NULL",
    )
    .bind(tenant_id)
    .bind(asset_id)
    .execute(conn)
    .await?;
    Ok(())
}
