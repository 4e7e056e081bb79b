//! The ambulance fleet: type, status, capacity, equipment, and where each one was last seen.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    domains::{
        crud::{self, Resource},
        directory::workers::tags,
    },
    error::{FieldErrors, Invalid},
    types::{Coordinates, required_text},
};

crate::text_enum! {
    /// The ambulance's class: what crew and care it carries.
    pub enum AmbulanceType {
        BasicLifeSupport = "basic_life_support",
        AdvancedLifeSupport = "advanced_life_support",
        PatientTransport = "patient_transport",
        Neonatal = "neonatal",
        MobileIcu = "mobile_icu",
    }
}
crate::text_enum! {
    /// Whether an ambulance can take a trip.
    pub enum AmbulanceStatus {
        Available = "available",
        Assigned = "assigned",
        InService = "in_service",
        UnderMaintenance = "under_maintenance",
        OutOfService = "out_of_service",
    }
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Ambulance {
    pub id: Uuid,
    /// Unique within the organisation's fleet, compared without regard to case.
    pub registration_number: String,
    pub ambulance_type: AmbulanceType,
    pub status: AmbulanceStatus,
    pub capacity: i32,
    pub features: Vec<String>,
    pub base_site_id: Option<Uuid>,
    pub last_maintenance_at: Option<DateTime<Utc>>,
    pub next_maintenance_at: Option<DateTime<Utc>>,
    pub current_latitude: Option<f64>,
    pub current_longitude: Option<f64>,
    pub current_accuracy_m: Option<f64>,
    pub position_reported_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmbulanceInput {
    pub registration_number: String,
    pub ambulance_type: String,
    pub status: Option<String>,
    pub capacity: Option<i32>,
    #[serde(default)]
    pub features: Vec<String>,
    pub base_site_id: Option<Uuid>,
    pub last_maintenance_at: Option<DateTime<Utc>>,
    pub next_maintenance_at: Option<DateTime<Utc>>,
    pub current_latitude: Option<f64>,
    pub current_longitude: Option<f64>,
    pub current_accuracy_m: Option<f64>,
}

impl From<&Ambulance> for AmbulanceInput {
    fn from(a: &Ambulance) -> Self {
        Self {
            registration_number: a.registration_number.clone(),
            ambulance_type: a.ambulance_type.to_string(),
            status: Some(a.status.to_string()),
            capacity: Some(a.capacity),
            features: a.features.clone(),
            base_site_id: a.base_site_id,
            last_maintenance_at: a.last_maintenance_at,
            next_maintenance_at: a.next_maintenance_at,
            current_latitude: a.current_latitude,
            current_longitude: a.current_longitude,
            current_accuracy_m: a.current_accuracy_m,
        }
    }
}

pub struct ValidAmbulance {
    input: AmbulanceInput,
    ambulance_type: AmbulanceType,
    status: AmbulanceStatus,
    capacity: i32,
    features: Vec<String>,
    position: Option<Coordinates>,
}

impl Resource for Ambulance {
    const NAME: &'static str = "ambulance";
    const TABLE: &'static str = "ambulances";
    type Input = AmbulanceInput;
    type Valid = ValidAmbulance;

    fn validate(mut input: AmbulanceInput) -> Result<ValidAmbulance, Invalid> {
        let mut errors = FieldErrors::new();
        if let Some(reg) = errors.check(
            "registration_number",
            required_text(&input.registration_number, 30),
        ) {
            input.registration_number = reg.to_uppercase();
        }
        let ambulance_type = AmbulanceType::field(
            Some(&input.ambulance_type),
            AmbulanceType::BasicLifeSupport,
            "ambulance_type",
            &mut errors,
        );
        let status = AmbulanceStatus::field(
            input.status.as_deref(),
            AmbulanceStatus::Available,
            "status",
            &mut errors,
        );
        let capacity = input.capacity.unwrap_or(1);
        if !(1..=20).contains(&capacity) {
            errors.add("capacity", "must be between 1 and 20");
        }
        let features = tags("features", &input.features, &mut errors);
        let position = Coordinates::from_optional(input.current_latitude, input.current_longitude)
            .map_err(|(field, message)| errors.add(format!("current_{field}"), message))
            .ok()
            .flatten();
        if input
            .current_accuracy_m
            .is_some_and(|a| !(0.0..=100_000.0).contains(&a))
        {
            errors.add("current_accuracy_m", "must be between 0 and 100000 metres");
        }
        errors.into_result()?;
        Ok(ValidAmbulance {
            input,
            ambulance_type,
            status,
            capacity,
            features,
            position,
        })
    }

    async fn insert(
        conn: &mut PgConnection,
        tenant_id: Uuid,
        v: &ValidAmbulance,
    ) -> sqlx::Result<Self> {
        write(conn, tenant_id, Uuid::now_v7(), v, true).await
    }

    async fn update(
        conn: &mut PgConnection,
        tenant_id: Uuid,
        id: Uuid,
        v: &ValidAmbulance,
    ) -> sqlx::Result<Self> {
        write(conn, tenant_id, id, v, false).await
    }
}

async fn write(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    v: &ValidAmbulance,
    insert: bool,
) -> sqlx::Result<Ambulance> {
    // A position change is stamped with the time it was reported.
    let sql = if insert {
        "INSERT INTO ambulances (id, tenant_id, registration_number, ambulance_type, status, capacity, features, base_site_id,
                                 last_maintenance_at, next_maintenance_at, current_latitude, current_longitude,
                                 current_accuracy_m, position_reported_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, CASE WHEN $11 IS NOT NULL THEN now() END)
         RETURNING *"
    } else {
        "UPDATE ambulances
            SET registration_number = $3, ambulance_type = $4, status = $5, capacity = $6, features = $7,
                base_site_id = $8, last_maintenance_at = $9, next_maintenance_at = $10,
                position_reported_at = CASE WHEN (current_latitude, current_longitude) IS DISTINCT FROM ($11, $12)
                                            THEN CASE WHEN $11 IS NOT NULL THEN now() END
                                            ELSE position_reported_at END,
                current_latitude = $11, current_longitude = $12, current_accuracy_m = $13
          WHERE id = $1 AND tenant_id = $2
      RETURNING *"
    };
    let i = &v.input;
    sqlx::query_as(sql)
        .bind(id)
        .bind(tenant_id)
        .bind(&i.registration_number)
        .bind(v.ambulance_type)
        .bind(v.status)
        .bind(v.capacity)
        .bind(&v.features)
        .bind(i.base_site_id)
        .bind(i.last_maintenance_at)
        .bind(i.next_maintenance_at)
        .bind(v.position.map(|p| p.latitude))
        .bind(v.position.map(|p| p.longitude))
        .bind(i.current_accuracy_m)
        .fetch_one(conn)
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AmbulanceFilter {
    pub status: Option<AmbulanceStatus>,
    pub ambulance_type: Option<AmbulanceType>,
    pub base_site_id: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub after: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AmbulancePage {
    pub items: Vec<Ambulance>,
    pub next_cursor: Option<Uuid>,
}

/// The organisation's ambulances, a page at a time, filtered.
pub async fn list(
    pool: &PgPool,
    tenant_id: Uuid,
    filter: &AmbulanceFilter,
) -> crud::RecordResult<AmbulancePage> {
    let limit = crud::page_size(filter.limit)?;
    let rows: Vec<Ambulance> = sqlx::query_as(
        "SELECT * FROM ambulances
          WHERE tenant_id = $1 AND deleted_at IS NULL
            AND ($2::text IS NULL OR status = $2)
            AND ($3::text IS NULL OR ambulance_type = $3)
            AND ($4::uuid IS NULL OR base_site_id = $4)
            AND ($5::uuid IS NULL OR id > $5)
          ORDER BY id
          LIMIT $6",
    )
    .bind(tenant_id)
    .bind(filter.status)
    .bind(filter.ambulance_type)
    .bind(filter.base_site_id)
    .bind(filter.after)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let (items, next_cursor) = crud::into_page(rows, limit, |a| a.id);
    Ok(AmbulancePage { items, next_cursor })
}
