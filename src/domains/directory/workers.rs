//! Workers: maintenance staff, housekeepers, caregivers and ambulance crew, in one table.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    domains::crud::{self, Resource},
    error::{FieldErrors, Invalid},
    types::{Email, Locale, PhoneNumber, required_text},
};

pub const KINDS: &[&str] = &["maintenance", "housekeeping", "caregiver", "ambulance_crew"];
crate::text_enum! {
    /// Whether a worker is offered work.
    pub enum WorkerStatus {
        Active = "active",
        Inactive = "inactive",
        OnLeave = "on_leave",
    }
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Worker {
    pub id: Uuid,
    pub first_name: String,
    pub last_name: String,
    /// E.164, e.g. +251911234567.
    pub phone: String,
    pub whatsapp_enabled: bool,
    pub email: Option<String>,
    /// Any of: maintenance, housekeeping, caregiver, ambulance_crew.
    pub kinds: Vec<String>,
    pub specialties: Vec<String>,
    pub certifications: Vec<String>,
    pub status: WorkerStatus,
    pub preferred_locale: Option<String>,
    /// A caregiver who may check in to another caregiver's visit, standing in (`covering`).
    pub may_cover: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerInput {
    pub first_name: String,
    pub last_name: String,
    pub phone: String,
    #[serde(default = "yes")]
    pub whatsapp_enabled: bool,
    pub email: Option<String>,
    pub kinds: Vec<String>,
    #[serde(default)]
    pub specialties: Vec<String>,
    #[serde(default)]
    pub certifications: Vec<String>,
    pub status: Option<String>,
    pub preferred_locale: Option<String>,
    /// Allowed to stand in on another caregiver's visit from the app. Default false.
    #[serde(default)]
    pub may_cover: bool,
}

fn yes() -> bool {
    true
}

impl From<&Worker> for WorkerInput {
    fn from(w: &Worker) -> Self {
        Self {
            first_name: w.first_name.clone(),
            last_name: w.last_name.clone(),
            phone: w.phone.clone(),
            whatsapp_enabled: w.whatsapp_enabled,
            email: w.email.clone(),
            kinds: w.kinds.clone(),
            specialties: w.specialties.clone(),
            certifications: w.certifications.clone(),
            status: Some(w.status.to_string()),
            preferred_locale: w.preferred_locale.clone(),
            may_cover: w.may_cover,
        }
    }
}

pub struct ValidWorker {
    first_name: String,
    last_name: String,
    phone: PhoneNumber,
    whatsapp_enabled: bool,
    email: Option<Email>,
    kinds: Vec<String>,
    specialties: Vec<String>,
    certifications: Vec<String>,
    status: WorkerStatus,
    preferred_locale: Option<Locale>,
    may_cover: bool,
}

/// Lowercase, trimmed, de-duplicated tags such as specialties: matching later is by equality.
pub fn tags(field: &str, raw: &[String], errors: &mut FieldErrors) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for tag in raw {
        let tag = tag.trim().to_lowercase().replace([' ', '-'], "_");
        if tag.is_empty() || tag.len() > 50 {
            errors.add(field, "each entry must be 1 to 50 characters");
        } else if !out.contains(&tag) {
            out.push(tag);
        }
    }
    out
}

impl Resource for Worker {
    const NAME: &'static str = "worker";
    const TABLE: &'static str = "workers";
    type Input = WorkerInput;
    type Valid = ValidWorker;

    fn validate(input: WorkerInput) -> Result<ValidWorker, Invalid> {
        let mut errors = FieldErrors::new();
        let first_name = errors.check("first_name", required_text(&input.first_name, 100));
        let last_name = errors.check("last_name", required_text(&input.last_name, 100));
        let phone = errors.check("phone", PhoneNumber::parse(&input.phone));
        let email = match input
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            Some(e) => errors.check("email", Email::parse(e)),
            None => None,
        };
        let kinds = tags("kinds", &input.kinds, &mut errors);
        if kinds.is_empty() {
            errors.add(
                "kinds",
                format!("give at least one of: {}", KINDS.join(", ")),
            );
        } else if let Some(bad) = kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
            errors.add(
                "kinds",
                format!("{bad:?} is not a kind; use: {}", KINDS.join(", ")),
            );
        }
        let specialties = tags("specialties", &input.specialties, &mut errors);
        let certifications = tags("certifications", &input.certifications, &mut errors);
        let status = WorkerStatus::field(
            input.status.as_deref(),
            WorkerStatus::Active,
            "status",
            &mut errors,
        );
        let preferred_locale = match input.preferred_locale.as_deref() {
            Some(l) => errors.check("preferred_locale", Locale::parse(l)),
            None => None,
        };
        errors.into_result()?;
        Ok(ValidWorker {
            first_name: first_name.unwrap_or_default(),
            last_name: last_name.unwrap_or_default(),
            phone: phone.expect("checked above"),
            whatsapp_enabled: input.whatsapp_enabled,
            email,
            kinds,
            specialties,
            certifications,
            status,
            preferred_locale,
            may_cover: input.may_cover,
        })
    }

    async fn insert(
        conn: &mut PgConnection,
        tenant_id: Uuid,
        v: &ValidWorker,
    ) -> sqlx::Result<Self> {
        write(conn, tenant_id, Uuid::now_v7(), v, true).await
    }

    async fn update(
        conn: &mut PgConnection,
        tenant_id: Uuid,
        id: Uuid,
        v: &ValidWorker,
    ) -> sqlx::Result<Self> {
        write(conn, tenant_id, id, v, false).await
    }
}

/// One statement shape for insert and update, so the two can never disagree about a column.
async fn write(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    v: &ValidWorker,
    insert: bool,
) -> sqlx::Result<Worker> {
    let sql = if insert {
        "INSERT INTO workers (id, tenant_id, first_name, last_name, phone, whatsapp_enabled, email, kinds,
                              specialties, certifications, status, preferred_locale, may_cover)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         RETURNING *"
    } else {
        "UPDATE workers
            SET first_name = $3, last_name = $4, phone = $5, whatsapp_enabled = $6, email = $7, kinds = $8,
                specialties = $9, certifications = $10, status = $11, preferred_locale = $12,
                may_cover = $13
          WHERE id = $1 AND tenant_id = $2
      RETURNING *"
    };
    sqlx::query_as(sql)
        .bind(id)
        .bind(tenant_id)
        .bind(&v.first_name)
        .bind(&v.last_name)
        .bind(v.phone.as_str())
        .bind(v.whatsapp_enabled)
        .bind(v.email.as_ref().map(Email::as_str))
        .bind(&v.kinds)
        .bind(&v.specialties)
        .bind(&v.certifications)
        .bind(v.status)
        .bind(v.preferred_locale.as_ref().map(Locale::as_str))
        .bind(v.may_cover)
        .fetch_one(conn)
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkerFilter {
    pub status: Option<WorkerStatus>,
    /// Workers having this kind.
    pub kind: Option<String>,
    /// Workers having this specialty.
    pub specialty: Option<String>,
    /// Workers assigned to this site.
    pub site_id: Option<Uuid>,
    /// Matches first or last name, or phone.
    pub q: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub after: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerPage {
    pub items: Vec<Worker>,
    pub next_cursor: Option<Uuid>,
}

/// The organisation's workers, a page at a time, filtered.
pub async fn list(
    pool: &PgPool,
    tenant_id: Uuid,
    filter: &WorkerFilter,
) -> crud::RecordResult<WorkerPage> {
    let limit = crud::page_size(filter.limit)?;
    let rows: Vec<Worker> = sqlx::query_as(
        "SELECT w.* FROM workers w
          WHERE w.tenant_id = $1 AND w.deleted_at IS NULL
            AND ($2::text IS NULL OR w.status = $2)
            AND ($3::text IS NULL OR $3 = ANY (w.kinds))
            AND ($4::text IS NULL OR lower($4) = ANY (w.specialties))
            AND ($5::uuid IS NULL OR EXISTS (SELECT 1 FROM worker_sites ws WHERE ws.tenant_id = $1 AND ws.worker_id = w.id AND ws.site_id = $5))
            AND ($6::text IS NULL OR w.first_name ILIKE '%' || $6 || '%' OR w.last_name ILIKE '%' || $6 || '%' OR w.phone LIKE '%' || $6 || '%')
            AND ($7::uuid IS NULL OR w.id > $7)
          ORDER BY w.id
          LIMIT $8",
    )
    .bind(tenant_id)
    .bind(filter.status)
    .bind(&filter.kind)
    .bind(&filter.specialty)
    .bind(filter.site_id)
    .bind(&filter.q)
    .bind(filter.after)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let (items, next_cursor) = crud::into_page(rows, limit, |w| w.id);
    Ok(WorkerPage { items, next_cursor })
}
