//! Patients: who caregivers visit, ambulances carry and surveys ask.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    domains::crud::{self, Resource},
    error::{FieldErrors, Invalid},
    types::{Coordinates, Email, Locale, PhoneNumber, optional_text, required_text},
};

pub const GENDERS: &[&str] = &["female", "male", "other", "unknown"];

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Patient {
    pub id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: Option<NaiveDate>,
    /// female | male | other | unknown
    pub gender: Option<String>,
    pub national_id: Option<String>,
    pub nhs_number: Option<String>,
    pub medical_record_number: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address_line: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2, e.g. ET.
    pub country_code: Option<String>,
    pub emergency_contact_name: Option<String>,
    pub emergency_contact_phone: Option<String>,
    pub emergency_contact_relation: Option<String>,
    /// Where visits happen (WGS84).
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// Check-ins within this many metres count as at the patient's home (tenant default when absent).
    pub geofence_radius_m: Option<i32>,
    pub preferred_locale: Option<String>,
    pub consent_sms: bool,
    pub consent_whatsapp: bool,
    pub consent_data_processing: bool,
    pub consent_recorded_at: Option<DateTime<Utc>>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientInput {
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: Option<NaiveDate>,
    pub gender: Option<String>,
    pub national_id: Option<String>,
    pub nhs_number: Option<String>,
    pub medical_record_number: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address_line: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub country_code: Option<String>,
    pub emergency_contact_name: Option<String>,
    pub emergency_contact_phone: Option<String>,
    pub emergency_contact_relation: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub geofence_radius_m: Option<i32>,
    pub preferred_locale: Option<String>,
    #[serde(default)]
    pub consent_sms: bool,
    #[serde(default)]
    pub consent_whatsapp: bool,
    #[serde(default)]
    pub consent_data_processing: bool,
    pub notes: Option<String>,
}

impl From<&Patient> for PatientInput {
    fn from(p: &Patient) -> Self {
        Self {
            first_name: p.first_name.clone(),
            last_name: p.last_name.clone(),
            date_of_birth: p.date_of_birth,
            gender: p.gender.clone(),
            national_id: p.national_id.clone(),
            nhs_number: p.nhs_number.clone(),
            medical_record_number: p.medical_record_number.clone(),
            phone: p.phone.clone(),
            email: p.email.clone(),
            address_line: p.address_line.clone(),
            city: p.city.clone(),
            region: p.region.clone(),
            postal_code: p.postal_code.clone(),
            country_code: p.country_code.clone(),
            emergency_contact_name: p.emergency_contact_name.clone(),
            emergency_contact_phone: p.emergency_contact_phone.clone(),
            emergency_contact_relation: p.emergency_contact_relation.clone(),
            latitude: p.latitude,
            longitude: p.longitude,
            geofence_radius_m: p.geofence_radius_m,
            preferred_locale: p.preferred_locale.clone(),
            consent_sms: p.consent_sms,
            consent_whatsapp: p.consent_whatsapp,
            consent_data_processing: p.consent_data_processing,
            notes: p.notes.clone(),
        }
    }
}

pub struct ValidPatient {
    input: PatientInput,
    phone: Option<PhoneNumber>,
    email: Option<Email>,
    emergency_contact_phone: Option<PhoneNumber>,
    position: Option<Coordinates>,
    preferred_locale: Option<Locale>,
}

fn optional<T>(
    errors: &mut FieldErrors,
    field: &str,
    raw: Option<&str>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<T> {
    match raw.map(str::trim).filter(|v| !v.is_empty()) {
        Some(value) => errors.check(field, parse(value)),
        None => None,
    }
}

impl Resource for Patient {
    const NAME: &'static str = "patient";
    const TABLE: &'static str = "patients";
    type Input = PatientInput;
    type Valid = ValidPatient;

    fn validate(mut input: PatientInput) -> Result<ValidPatient, Invalid> {
        let mut errors = FieldErrors::new();
        if let Some(name) = errors.check("first_name", required_text(&input.first_name, 100)) {
            input.first_name = name;
        }
        if let Some(name) = errors.check("last_name", required_text(&input.last_name, 100)) {
            input.last_name = name;
        }
        if input
            .gender
            .as_deref()
            .is_some_and(|g| !GENDERS.contains(&g))
        {
            errors.add("gender", format!("must be one of: {}", GENDERS.join(", ")));
        }
        if input
            .date_of_birth
            .is_some_and(|d| d > Utc::now().date_naive())
        {
            errors.add("date_of_birth", "must not be in the future");
        }
        if let Some(nhs) = input.nhs_number.as_deref()
            && !is_valid_nhs_number(nhs)
        {
            errors.add("nhs_number", "must be 10 digits with a valid check digit");
        }
        if let Some(code) = input.country_code.as_deref()
            && !(code.len() == 2 && code.chars().all(|c| c.is_ascii_uppercase()))
        {
            errors.add(
                "country_code",
                "must be two capital letters (ISO 3166-1), e.g. ET",
            );
        }
        for (field, value) in [
            ("national_id", &mut input.national_id),
            ("medical_record_number", &mut input.medical_record_number),
            ("address_line", &mut input.address_line),
            ("city", &mut input.city),
            ("region", &mut input.region),
            ("postal_code", &mut input.postal_code),
            ("emergency_contact_name", &mut input.emergency_contact_name),
            (
                "emergency_contact_relation",
                &mut input.emergency_contact_relation,
            ),
            ("notes", &mut input.notes),
        ] {
            let max = if field == "notes" { 5000 } else { 500 };
            if let Some(clean) = errors.check(field, optional_text(value.as_deref(), max)) {
                *value = clean;
            }
        }
        let phone = optional(
            &mut errors,
            "phone",
            input.phone.as_deref(),
            PhoneNumber::parse,
        );
        let email = optional(&mut errors, "email", input.email.as_deref(), Email::parse);
        let emergency_contact_phone = optional(
            &mut errors,
            "emergency_contact_phone",
            input.emergency_contact_phone.as_deref(),
            PhoneNumber::parse,
        );
        let preferred_locale = optional(
            &mut errors,
            "preferred_locale",
            input.preferred_locale.as_deref(),
            Locale::parse,
        );
        let position = Coordinates::from_optional(input.latitude, input.longitude)
            .map_err(|(field, message)| errors.add(field, message))
            .ok()
            .flatten();
        if input
            .geofence_radius_m
            .is_some_and(|r| !(10..=5_000).contains(&r))
        {
            errors.add("geofence_radius_m", "must be between 10 and 5000 metres");
        }
        errors.into_result()?;
        Ok(ValidPatient {
            input,
            phone,
            email,
            emergency_contact_phone,
            position,
            preferred_locale,
        })
    }

    async fn insert(
        conn: &mut PgConnection,
        tenant_id: Uuid,
        v: &ValidPatient,
    ) -> sqlx::Result<Self> {
        write(conn, tenant_id, Uuid::now_v7(), v, true).await
    }

    async fn update(
        conn: &mut PgConnection,
        tenant_id: Uuid,
        id: Uuid,
        v: &ValidPatient,
    ) -> sqlx::Result<Self> {
        write(conn, tenant_id, id, v, false).await
    }
}

/// One statement for both insert and update, so the two can never disagree about a column.
async fn write(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    v: &ValidPatient,
    insert: bool,
) -> sqlx::Result<Patient> {
    let sql = if insert {
        "INSERT INTO patients (id, tenant_id, first_name, last_name, date_of_birth, gender, national_id, nhs_number,
                               medical_record_number, phone, email, address_line, city, region, postal_code, country_code,
                               emergency_contact_name, emergency_contact_phone, emergency_contact_relation, latitude, longitude,
                               geofence_radius_m, preferred_locale, consent_sms, consent_whatsapp, consent_data_processing,
                               consent_recorded_at, notes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23,
                 $24, $25, $26, CASE WHEN $24 OR $25 OR $26 THEN now() END, $27)
         RETURNING *"
    } else {
        "UPDATE patients
            SET first_name = $3, last_name = $4, date_of_birth = $5, gender = $6, national_id = $7, nhs_number = $8,
                medical_record_number = $9, phone = $10, email = $11, address_line = $12, city = $13, region = $14,
                postal_code = $15, country_code = $16, emergency_contact_name = $17, emergency_contact_phone = $18,
                emergency_contact_relation = $19, latitude = $20, longitude = $21, geofence_radius_m = $22,
                preferred_locale = $23,
                -- A change of consent is dated; an unchanged one keeps its date.
                consent_recorded_at = CASE WHEN (consent_sms, consent_whatsapp, consent_data_processing) IS DISTINCT FROM ($24, $25, $26)
                                           THEN now() ELSE consent_recorded_at END,
                consent_sms = $24, consent_whatsapp = $25, consent_data_processing = $26, notes = $27
          WHERE id = $1 AND tenant_id = $2
      RETURNING *"
    };
    let i = &v.input;
    sqlx::query_as(sql)
        .bind(id)
        .bind(tenant_id)
        .bind(&i.first_name)
        .bind(&i.last_name)
        .bind(i.date_of_birth)
        .bind(&i.gender)
        .bind(&i.national_id)
        .bind(&i.nhs_number)
        .bind(&i.medical_record_number)
        .bind(v.phone.as_ref().map(PhoneNumber::as_str))
        .bind(v.email.as_ref().map(Email::as_str))
        .bind(&i.address_line)
        .bind(&i.city)
        .bind(&i.region)
        .bind(&i.postal_code)
        .bind(&i.country_code)
        .bind(&i.emergency_contact_name)
        .bind(v.emergency_contact_phone.as_ref().map(PhoneNumber::as_str))
        .bind(&i.emergency_contact_relation)
        .bind(v.position.map(|p| p.latitude))
        .bind(v.position.map(|p| p.longitude))
        .bind(i.geofence_radius_m)
        .bind(v.preferred_locale.as_ref().map(Locale::as_str))
        .bind(i.consent_sms)
        .bind(i.consent_whatsapp)
        .bind(i.consent_data_processing)
        .bind(&i.notes)
        .fetch_one(conn)
        .await
}

/// NHS numbers carry a modulus-11 check digit; a typo almost always breaks it.
pub fn is_valid_nhs_number(raw: &str) -> bool {
    let digits: Vec<u32> = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_digit(10))
        .collect::<Option<_>>()
        .unwrap_or_default();
    if digits.len() != 10 {
        return false;
    }
    let sum: u32 = digits[..9]
        .iter()
        .enumerate()
        .map(|(i, d)| d * (10 - i as u32))
        .sum();
    let check = 11 - (sum % 11);
    match check {
        11 => digits[9] == 0,
        10 => false,
        c => digits[9] == c,
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PatientFilter {
    /// Matches first or last name, national id, NHS number or medical record number.
    pub q: Option<String>,
    /// Exact phone number, E.164.
    pub phone: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub after: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PatientPage {
    pub items: Vec<Patient>,
    pub next_cursor: Option<Uuid>,
}

/// The organisation's patients, a page at a time, filtered.
pub async fn list(
    pool: &PgPool,
    tenant_id: Uuid,
    filter: &PatientFilter,
) -> crud::RecordResult<PatientPage> {
    let limit = crud::page_size(filter.limit)?;
    let rows: Vec<Patient> = sqlx::query_as(
        "SELECT * FROM patients
          WHERE tenant_id = $1 AND deleted_at IS NULL
            AND ($2::text IS NULL OR first_name ILIKE '%' || $2 || '%' OR last_name ILIKE '%' || $2 || '%'
                 OR national_id = $2 OR nhs_number = $2 OR medical_record_number = $2)
            AND ($3::text IS NULL OR phone = $3)
            AND ($4::uuid IS NULL OR id > $4)
          ORDER BY id
          LIMIT $5",
    )
    .bind(tenant_id)
    .bind(&filter.q)
    .bind(&filter.phone)
    .bind(filter.after)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let (items, next_cursor) = crud::into_page(rows, limit, |p| p.id);
    Ok(PatientPage { items, next_cursor })
}

#[cfg(test)]
mod tests {
    #[test]
    fn nhs_check_digit() {
        assert!(super::is_valid_nhs_number("943 476 5919"));
        assert!(!super::is_valid_nhs_number("943 476 5918"));
        assert!(!super::is_valid_nhs_number("12345"));
    }
}
