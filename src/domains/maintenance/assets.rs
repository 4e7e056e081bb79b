//! Assets: pumps, lifts, generators, air handlers; what gets maintained, and how often.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    domains::crud::{self, Resource},
    error::{FieldErrors, Invalid},
    types::{optional_text, required_text},
};

crate::text_enum! {
    /// Whether an asset works.
    pub enum AssetStatus {
        Operational = "operational",
        NeedsMaintenance = "needs_maintenance",
        UnderMaintenance = "under_maintenance",
        OutOfService = "out_of_service",
        Retired = "retired",
    }
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Asset {
    pub id: Uuid,
    pub site_id: Option<Uuid>,
    pub name: String,
    /// Free classification, lowercase: pump, elevator, generator, hvac, ...
    pub asset_type: String,
    pub status: AssetStatus,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub manufacturer: Option<String>,
    pub location_detail: Option<String>,
    pub installed_on: Option<NaiveDate>,
    /// Preventive maintenance every this many days.
    pub maintenance_frequency_days: Option<i32>,
    pub last_maintenance_at: Option<DateTime<Utc>>,
    /// Derived from the last maintenance and the frequency unless given.
    pub next_maintenance_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetInput {
    pub name: String,
    pub asset_type: String,
    pub site_id: Option<Uuid>,
    pub status: Option<String>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub manufacturer: Option<String>,
    pub location_detail: Option<String>,
    pub installed_on: Option<NaiveDate>,
    pub maintenance_frequency_days: Option<i32>,
    pub last_maintenance_at: Option<DateTime<Utc>>,
    pub next_maintenance_at: Option<DateTime<Utc>>,
}

impl From<&Asset> for AssetInput {
    fn from(a: &Asset) -> Self {
        Self {
            name: a.name.clone(),
            asset_type: a.asset_type.clone(),
            site_id: a.site_id,
            status: Some(a.status.to_string()),
            serial_number: a.serial_number.clone(),
            model: a.model.clone(),
            manufacturer: a.manufacturer.clone(),
            location_detail: a.location_detail.clone(),
            installed_on: a.installed_on,
            maintenance_frequency_days: a.maintenance_frequency_days,
            last_maintenance_at: a.last_maintenance_at,
            next_maintenance_at: a.next_maintenance_at,
        }
    }
}

pub struct ValidAsset {
    input: AssetInput,
    status: AssetStatus,
}

impl Resource for Asset {
    const NAME: &'static str = "asset";
    const TABLE: &'static str = "assets";
    type Input = AssetInput;
    type Valid = ValidAsset;

    fn validate(mut input: AssetInput) -> Result<ValidAsset, Invalid> {
        let mut errors = FieldErrors::new();
        if let Some(name) = errors.check("name", required_text(&input.name, 200)) {
            input.name = name;
        }
        if let Some(t) = errors.check("asset_type", required_text(&input.asset_type, 50)) {
            input.asset_type = t.to_lowercase();
        }
        for (field, value) in [
            ("serial_number", &mut input.serial_number),
            ("model", &mut input.model),
            ("manufacturer", &mut input.manufacturer),
            ("location_detail", &mut input.location_detail),
        ] {
            if let Some(clean) = errors.check(field, optional_text(value.as_deref(), 200)) {
                *value = clean;
            }
        }
        let status = AssetStatus::field(
            input.status.as_deref(),
            AssetStatus::Operational,
            "status",
            &mut errors,
        );
        if input
            .maintenance_frequency_days
            .is_some_and(|d| !(1..=3650).contains(&d))
        {
            errors.add(
                "maintenance_frequency_days",
                "must be between 1 and 3650 days",
            );
        }
        errors.into_result()?;
        // The next date follows from the last one and the frequency, unless a coordinator set it.
        if input.next_maintenance_at.is_none()
            && let (Some(last), Some(days)) =
                (input.last_maintenance_at, input.maintenance_frequency_days)
        {
            input.next_maintenance_at = Some(last + Duration::days(days.into()));
        }
        Ok(ValidAsset { input, status })
    }

    async fn insert(
        conn: &mut PgConnection,
        tenant_id: Uuid,
        v: &ValidAsset,
    ) -> sqlx::Result<Self> {
        write(conn, tenant_id, Uuid::now_v7(), v, true).await
    }

    async fn update(
        conn: &mut PgConnection,
        tenant_id: Uuid,
        id: Uuid,
        v: &ValidAsset,
    ) -> sqlx::Result<Self> {
        write(conn, tenant_id, id, v, false).await
    }
}

async fn write(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    v: &ValidAsset,
    insert: bool,
) -> sqlx::Result<Asset> {
    let sql = if insert {
        "INSERT INTO assets (id, tenant_id, name, asset_type, site_id, status, serial_number, model, manufacturer,
                             location_detail, installed_on, maintenance_frequency_days, last_maintenance_at, next_maintenance_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         RETURNING *"
    } else {
        "UPDATE assets
            SET name = $3, asset_type = $4, site_id = $5, status = $6, serial_number = $7, model = $8, manufacturer = $9,
                location_detail = $10, installed_on = $11, maintenance_frequency_days = $12, last_maintenance_at = $13,
                next_maintenance_at = $14
          WHERE id = $1 AND tenant_id = $2
      RETURNING *"
    };
    let i = &v.input;
    sqlx::query_as(sql)
        .bind(id)
        .bind(tenant_id)
        .bind(&i.name)
        .bind(&i.asset_type)
        .bind(i.site_id)
        .bind(v.status)
        .bind(&i.serial_number)
        .bind(&i.model)
        .bind(&i.manufacturer)
        .bind(&i.location_detail)
        .bind(i.installed_on)
        .bind(i.maintenance_frequency_days)
        .bind(i.last_maintenance_at)
        .bind(i.next_maintenance_at)
        .fetch_one(conn)
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssetFilter {
    pub site_id: Option<Uuid>,
    pub status: Option<AssetStatus>,
    pub asset_type: Option<String>,
    /// Only assets whose next maintenance is due before this time.
    pub due_before: Option<DateTime<Utc>>,
    /// Matches name, serial number or model.
    pub q: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub after: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssetPage {
    pub items: Vec<Asset>,
    pub next_cursor: Option<Uuid>,
}

/// The organisation's assets, a page at a time, filtered.
pub async fn list(
    pool: &PgPool,
    tenant_id: Uuid,
    filter: &AssetFilter,
) -> crud::RecordResult<AssetPage> {
    let limit = crud::page_size(filter.limit)?;
    let rows: Vec<Asset> = sqlx::query_as(
        "SELECT * FROM assets
          WHERE tenant_id = $1 AND deleted_at IS NULL
            AND ($2::uuid IS NULL OR site_id = $2)
            AND ($3::text IS NULL OR status = $3)
            AND ($4::text IS NULL OR asset_type = lower($4))
            AND ($5::timestamptz IS NULL OR next_maintenance_at < $5)
            AND ($6::text IS NULL OR name ILIKE '%' || $6 || '%' OR serial_number ILIKE '%' || $6 || '%' OR model ILIKE '%' || $6 || '%')
            AND ($7::uuid IS NULL OR id > $7)
          ORDER BY id
          LIMIT $8",
    )
    .bind(tenant_id)
    .bind(filter.site_id)
    .bind(filter.status)
    .bind(&filter.asset_type)
    .bind(filter.due_before)
    .bind(&filter.q)
    .bind(filter.after)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let (items, next_cursor) = crud::into_page(rows, limit, |a| a.id);
    Ok(AssetPage { items, next_cursor })
}
