//! Sites: complexes, properties, buildings, wards and departments, anywhere work happens.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    domains::crud::{self, Resource},
    error::{FieldErrors, Invalid},
    types::{Coordinates, optional_text, required_text},
};

crate::text_enum! {
    /// What kind of place a site is.
    pub enum SiteKind {
        Complex = "complex",
        Property = "property",
        Building = "building",
        Hospital = "hospital",
        Ward = "ward",
        Department = "department",
        Office = "office",
        Other = "other",
    }
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Site {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub kind: SiteKind,
    pub name: String,
    pub code: Option<String>,
    pub address_line: Option<String>,
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// Radius in metres within which a check-in counts as on site.
    pub geofence_radius_m: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteInput {
    pub kind: String,
    pub name: String,
    pub parent_id: Option<Uuid>,
    pub code: Option<String>,
    pub address_line: Option<String>,
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub geofence_radius_m: Option<i32>,
}

impl From<&Site> for SiteInput {
    fn from(s: &Site) -> Self {
        Self {
            kind: s.kind.to_string(),
            name: s.name.clone(),
            parent_id: s.parent_id,
            code: s.code.clone(),
            address_line: s.address_line.clone(),
            city: s.city.clone(),
            latitude: s.latitude,
            longitude: s.longitude,
            geofence_radius_m: s.geofence_radius_m,
        }
    }
}

pub struct ValidSite {
    kind: SiteKind,
    name: String,
    parent_id: Option<Uuid>,
    code: Option<String>,
    address_line: Option<String>,
    city: Option<String>,
    position: Option<Coordinates>,
    geofence_radius_m: Option<i32>,
}

impl Resource for Site {
    const NAME: &'static str = "site";
    const TABLE: &'static str = "sites";
    type Input = SiteInput;
    type Valid = ValidSite;

    fn validate(input: SiteInput) -> Result<ValidSite, Invalid> {
        let mut errors = FieldErrors::new();
        let kind = SiteKind::field(Some(&input.kind), SiteKind::Other, "kind", &mut errors);
        let name = errors.check("name", required_text(&input.name, 200));
        let code = errors.check("code", optional_text(input.code.as_deref(), 50));
        let address_line = errors.check(
            "address_line",
            optional_text(input.address_line.as_deref(), 500),
        );
        let city = errors.check("city", optional_text(input.city.as_deref(), 100));
        let position = Coordinates::from_optional(input.latitude, input.longitude)
            .map_err(|(field, message)| errors.add(field, message))
            .ok();
        if input
            .geofence_radius_m
            .is_some_and(|r| !(1..=50_000).contains(&r))
        {
            errors.add("geofence_radius_m", "must be between 1 and 50000 metres");
        }
        errors.into_result()?;
        Ok(ValidSite {
            kind,
            name: name.unwrap_or_default(),
            parent_id: input.parent_id,
            code: code.flatten(),
            address_line: address_line.flatten(),
            city: city.flatten(),
            position: position.flatten(),
            geofence_radius_m: input.geofence_radius_m,
        })
    }

    async fn insert(conn: &mut PgConnection, tenant_id: Uuid, v: &ValidSite) -> sqlx::Result<Self> {
        write(conn, tenant_id, Uuid::now_v7(), v, true).await
    }

    async fn update(
        conn: &mut PgConnection,
        tenant_id: Uuid,
        id: Uuid,
        v: &ValidSite,
    ) -> sqlx::Result<Self> {
        write(conn, tenant_id, id, v, false).await
    }
}

/// One statement shape for insert and update, so the two can never disagree about a column.
async fn write(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    v: &ValidSite,
    insert: bool,
) -> sqlx::Result<Site> {
    let sql = if insert {
        "INSERT INTO sites (id, tenant_id, kind, name, parent_id, code, address_line, city, latitude, longitude, geofence_radius_m)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         RETURNING *"
    } else {
        "UPDATE sites
            SET kind = $3, name = $4, parent_id = $5, code = $6, address_line = $7, city = $8,
                latitude = $9, longitude = $10, geofence_radius_m = $11
          WHERE id = $1 AND tenant_id = $2
      RETURNING *"
    };
    sqlx::query_as(sql)
        .bind(id)
        .bind(tenant_id)
        .bind(v.kind)
        .bind(&v.name)
        .bind(v.parent_id)
        .bind(&v.code)
        .bind(&v.address_line)
        .bind(&v.city)
        .bind(v.position.map(|p| p.latitude))
        .bind(v.position.map(|p| p.longitude))
        .bind(v.geofence_radius_m)
        .fetch_one(conn)
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SiteFilter {
    /// Only sites of this kind.
    pub kind: Option<SiteKind>,
    /// Only the children of this site.
    pub parent_id: Option<Uuid>,
    /// Matches name or code, case-insensitively.
    pub q: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub after: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SitePage {
    pub items: Vec<Site>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

/// The organisation's sites, a page at a time, filtered.
pub async fn list(
    pool: &PgPool,
    tenant_id: Uuid,
    filter: &SiteFilter,
) -> crud::RecordResult<SitePage> {
    let limit = crud::page_size(filter.limit)?;
    let rows: Vec<Site> = sqlx::query_as(
        "SELECT * FROM sites
          WHERE tenant_id = $1 AND deleted_at IS NULL
            AND ($2::text IS NULL OR kind = $2)
            AND ($3::uuid IS NULL OR parent_id = $3)
            AND ($4::text IS NULL OR name ILIKE '%' || $4 || '%' OR code ILIKE '%' || $4 || '%')
            AND ($5::uuid IS NULL OR id > $5)
          ORDER BY id
          LIMIT $6",
    )
    .bind(tenant_id)
    .bind(filter.kind)
    .bind(filter.parent_id)
    .bind(&filter.q)
    .bind(filter.after)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let (items, next_cursor) = crud::into_page(rows, limit, |s| s.id);
    Ok(SitePage { items, next_cursor })
}
