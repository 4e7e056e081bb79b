//! `fieldline seed-demo`: one demo organisation with everything a first look needs.
//!
//! Safe to run again: every record is found by its natural key (slug, email, phone, code, serial,
//! registration) and created only when missing. The panel password and the API token are rotated
//! on each run, because only their hashes are stored and they must be printed.

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    audit::{self, Actor},
    auth,
    domains::tenancy::{self, NewTenant, Role},
    types::{Email, Locale, PhoneNumber, Slug, TimeZone},
};

pub const DEMO_SLUG: &str = "addis-care";
const DEMO_TOKEN_NAME: &str = "demo";
/// The demo coordinator's number: alerts go to it.
const COORDINATOR_PHONE: &str = "+251911000900";

#[derive(Debug, Serialize)]
pub struct DemoData {
    pub tenant_slug: String,
    pub tenant_id: Uuid,
    pub api_token: String,
    pub panel: PanelLogin,
    pub channels: Vec<DemoChannel>,
    pub workers: Vec<DemoPerson>,
    pub patients: Vec<DemoPerson>,
}

#[derive(Debug, Serialize)]
pub struct PanelLogin {
    pub path: &'static str,
    pub organisation: String,
    pub email: String,
    pub password: String,
    pub admin_email: String,
}

#[derive(Debug, Serialize)]
pub struct DemoChannel {
    pub provider: &'static str,
    pub kind: &'static str,
    pub number: &'static str,
}

#[derive(Debug, Serialize)]
pub struct DemoPerson {
    pub id: Uuid,
    pub name: String,
    pub phone: &'static str,
    pub kinds: Vec<&'static str>,
}

impl DemoData {
    pub fn as_text(&self, base_url: &str) -> String {
        let mut out = format!(
            "Demo organisation {slug} is ready.\n\n\
             Panel:      {base_url}{path}\n\
             Organisation: {slug}\n\
             Email:      {email}   (admin: {admin})\n\
             Password:   {password}\n\n\
             API token:  {token}\n\
             Try:        curl -H 'Authorization: Bearer {token}' {base_url}/api/v1/workers\n\n\
             (The password and token are new on every run of seed-demo.)\n\nWorkers:\n",
            slug = self.tenant_slug,
            path = self.panel.path,
            email = self.panel.email,
            admin = self.panel.admin_email,
            password = self.panel.password,
            token = self.api_token,
        );
        for w in &self.workers {
            out.push_str(&format!(
                "  {:<18} {}  {}\n",
                w.name,
                w.phone,
                w.kinds.join(", ")
            ));
        }
        out.push_str("Patients:\n");
        for p in &self.patients {
            out.push_str(&format!("  {:<18} {}\n", p.name, p.phone));
        }
        out
    }
}

struct SiteSeed {
    code: &'static str,
    parent: Option<&'static str>,
    kind: &'static str,
    name: &'static str,
    address: &'static str,
    lat: f64,
    lon: f64,
}

const SITES: &[SiteSeed] = &[
    SiteSeed {
        code: "HQ",
        parent: None,
        kind: "office",
        name: "Head office, Kazanchis",
        address: "Kazanchis, Kirkos",
        lat: 9.0126,
        lon: 38.7636,
    },
    SiteSeed {
        code: "BOLE-GDN",
        parent: None,
        kind: "complex",
        name: "Bole Gardens",
        address: "Bole Road, near Edna Mall",
        lat: 8.9936,
        lon: 38.7866,
    },
    SiteSeed {
        code: "CMC-HTS",
        parent: None,
        kind: "complex",
        name: "CMC Heights",
        address: "CMC Road, Yeka",
        lat: 9.0227,
        lon: 38.8488,
    },
    SiteSeed {
        code: "SGH",
        parent: None,
        kind: "hospital",
        name: "St. Gabriel Support Hospital",
        address: "Gerji, Bole",
        lat: 9.0155,
        lon: 38.8017,
    },
    SiteSeed {
        code: "SGH-W3",
        parent: Some("SGH"),
        kind: "ward",
        name: "Ward 3 (medical)",
        address: "St. Gabriel, 2nd floor",
        lat: 9.0156,
        lon: 38.8019,
    },
];

struct WorkerSeed {
    first: &'static str,
    last: &'static str,
    phone: &'static str,
    kinds: &'static [&'static str],
    specialties: &'static [&'static str],
    certifications: &'static [&'static str],
    locale: &'static str,
    sites: &'static [(&'static str, bool)],
    crew_role: Option<&'static str>,
}

const WORKERS: &[WorkerSeed] = &[
    WorkerSeed {
        first: "Abebe",
        last: "Kebede",
        phone: "+251911000101",
        kinds: &["maintenance"],
        specialties: &["plumbing", "electrical"],
        certifications: &[],
        locale: "am",
        sites: &[("BOLE-GDN", true), ("CMC-HTS", false)],
        crew_role: None,
    },
    WorkerSeed {
        first: "Tigist",
        last: "Haile",
        phone: "+251911000102",
        kinds: &["maintenance"],
        specialties: &["hvac", "electrical"],
        certifications: &["hvac_technician"],
        locale: "en",
        sites: &[("SGH", true), ("BOLE-GDN", false)],
        crew_role: None,
    },
    WorkerSeed {
        first: "Dawit",
        last: "Alemu",
        phone: "+251911000103",
        kinds: &["housekeeping"],
        specialties: &["cleaning", "disinfection", "linen"],
        certifications: &[],
        locale: "am",
        sites: &[("SGH", true), ("SGH-W3", true)],
        crew_role: None,
    },
    WorkerSeed {
        first: "Hirut",
        last: "Tesfaye",
        phone: "+251911000104",
        kinds: &["caregiver"],
        specialties: &["elderly_care", "wound_care"],
        certifications: &["nursing_assistant"],
        locale: "am",
        sites: &[],
        crew_role: None,
    },
    WorkerSeed {
        first: "Meron",
        last: "Girma",
        phone: "+251911000105",
        kinds: &["caregiver"],
        specialties: &["physiotherapy"],
        certifications: &["physiotherapist"],
        locale: "en",
        sites: &[],
        crew_role: None,
    },
    WorkerSeed {
        first: "Yonas",
        last: "Bekele",
        phone: "+251911000106",
        kinds: &["ambulance_crew"],
        specialties: &[],
        certifications: &["driver_class_4"],
        locale: "am",
        sites: &[("SGH", true)],
        crew_role: Some("driver"),
    },
    WorkerSeed {
        first: "Selam",
        last: "Mekonnen",
        phone: "+251911000107",
        kinds: &["ambulance_crew"],
        specialties: &[],
        certifications: &["paramedic", "acls"],
        locale: "en",
        sites: &[("SGH", true)],
        crew_role: Some("paramedic"),
    },
];

struct PatientSeed {
    first: &'static str,
    last: &'static str,
    national_id: &'static str,
    dob: &'static str,
    gender: &'static str,
    phone: &'static str,
    address: &'static str,
    lat: f64,
    lon: f64,
    locale: &'static str,
}

const PATIENTS: &[PatientSeed] = &[
    PatientSeed {
        first: "Almaz",
        last: "Ayana",
        national_id: "ET-DEMO-1001",
        dob: "1948-03-12",
        gender: "female",
        phone: "+251911000201",
        address: "Bole, Woreda 3, House 112",
        lat: 8.9950,
        lon: 38.7890,
        locale: "am",
    },
    PatientSeed {
        first: "Kebede",
        last: "Tadesse",
        national_id: "ET-DEMO-1002",
        dob: "1952-11-02",
        gender: "male",
        phone: "+251911000202",
        address: "Piassa, near St. George",
        lat: 9.0350,
        lon: 38.7520,
        locale: "am",
    },
    PatientSeed {
        first: "Fatuma",
        last: "Ahmed",
        national_id: "ET-DEMO-1003",
        dob: "1961-07-25",
        gender: "female",
        phone: "+251911000203",
        address: "Sarbet, Old Airport",
        lat: 8.9980,
        lon: 38.7360,
        locale: "en",
    },
];

struct AssetSeed {
    serial: &'static str,
    site: &'static str,
    name: &'static str,
    asset_type: &'static str,
    manufacturer: &'static str,
    model: &'static str,
    location: &'static str,
    frequency_days: i32,
}

const ASSETS: &[AssetSeed] = &[
    AssetSeed {
        serial: "GRF-CR5-0012",
        site: "BOLE-GDN",
        name: "Booster water pump",
        asset_type: "pump",
        manufacturer: "Grundfos",
        model: "CR 5-10",
        location: "Basement plant room",
        frequency_days: 90,
    },
    AssetSeed {
        serial: "OTS-GEN2-3391",
        site: "CMC-HTS",
        name: "Lift, block B",
        asset_type: "elevator",
        manufacturer: "Otis",
        model: "Gen2",
        location: "Block B core",
        frequency_days: 30,
    },
    AssetSeed {
        serial: "CAT-DE110-778",
        site: "SGH",
        name: "Standby generator",
        asset_type: "generator",
        manufacturer: "Caterpillar",
        model: "DE110",
        location: "Generator house",
        frequency_days: 60,
    },
    AssetSeed {
        serial: "DAI-FXZQ-2210",
        site: "SGH-W3",
        name: "Ward 3 air handler",
        asset_type: "hvac",
        manufacturer: "Daikin",
        model: "FXZQ",
        location: "Ceiling void, bay 2",
        frequency_days: 90,
    },
];

const CHANNELS: &[DemoChannel] = &[
    DemoChannel {
        provider: "console",
        kind: "whatsapp",
        number: "+251911000000",
    },
    DemoChannel {
        provider: "console",
        kind: "sms",
        number: "+251911000000",
    },
];

pub async fn seed_demo(pool: &PgPool) -> anyhow::Result<DemoData> {
    let mut tx = audit::begin(pool, Actor::Cli).await?;
    // Two seeders at once would race on natural keys; one at a time is plenty for demo data.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('fieldline.seed_demo'))")
        .execute(&mut *tx)
        .await?;
    let tenant_id = ensure_tenant(&mut tx).await?;

    let password = auth::new_password();
    let coordinator = Email::parse("coordinator@addis-care.example").map_err(anyhow::Error::msg)?;
    let admin = Email::parse("admin@addis-care.example").map_err(anyhow::Error::msg)?;
    let coordinator_id = tenancy::upsert_user(
        &mut tx,
        tenant_id,
        &coordinator,
        Some("Liya Coordinator"),
        Role::Coordinator,
        &password,
        true,
    )
    .await?;
    // Alerts reach Liya by message too (on the console channel in the demo).
    let coordinator_phone = PhoneNumber::parse(COORDINATOR_PHONE).map_err(anyhow::Error::msg)?;
    tenancy::set_user_phone(&mut tx, tenant_id, coordinator_id, Some(&coordinator_phone)).await?;
    tenancy::upsert_user(
        &mut tx,
        tenant_id,
        &admin,
        Some("Samuel Admin"),
        Role::Admin,
        &password,
        true,
    )
    .await?;
    sqlx::query("DELETE FROM api_tokens WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id)
        .bind(DEMO_TOKEN_NAME)
        .execute(&mut *tx)
        .await?;
    let (_, api_token) =
        tenancy::create_api_token(&mut tx, tenant_id, DEMO_TOKEN_NAME, Role::Admin).await?;

    for site in SITES {
        ensure_site(&mut tx, tenant_id, site).await?;
    }
    let mut workers = Vec::new();
    for w in WORKERS {
        workers.push(ensure_worker(&mut tx, tenant_id, w).await?);
    }
    let mut patients = Vec::new();
    for p in PATIENTS {
        patients.push(ensure_patient(&mut tx, tenant_id, p).await?);
    }
    for a in ASSETS {
        ensure_asset(&mut tx, tenant_id, a).await?;
    }
    ensure_ambulances(&mut tx, tenant_id).await?;
    ensure_assignments(&mut tx, tenant_id, &workers, &patients).await?;
    for c in CHANNELS {
        sqlx::query(
            "INSERT INTO channels (id, tenant_id, provider, kind, phone_number, display_name) VALUES ($1, $2, $3, $4, $5, 'Demo console')
             ON CONFLICT ON CONSTRAINT channels_provider_kind_number_key DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(tenant_id)
        .bind(c.provider)
        .bind(c.kind)
        .bind(c.number)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;

    Ok(DemoData {
        tenant_slug: DEMO_SLUG.to_owned(),
        tenant_id,
        api_token,
        panel: PanelLogin {
            path: "/panel/login",
            organisation: DEMO_SLUG.to_owned(),
            email: coordinator.as_str().to_owned(),
            password,
            admin_email: admin.as_str().to_owned(),
        },
        channels: CHANNELS
            .iter()
            .map(|c| DemoChannel {
                provider: c.provider,
                kind: c.kind,
                number: c.number,
            })
            .collect(),
        workers,
        patients,
    })
}

/// Caregiver, patient, days (1 = Monday), local start and end.
const ASSIGNMENTS: &[(&str, &str, &[i16], &str, &str)] = &[
    ("Hirut", "Almaz", &[1, 2, 3, 4, 5, 6, 7], "09:00", "10:00"),
    ("Meron", "Kebede", &[1, 2, 3, 4, 5], "14:00", "15:30"),
    ("Hirut", "Fatuma", &[2, 4], "16:00", "17:00"),
];

/// Recurring home visits from today, and their visits for the next two weeks.
async fn ensure_assignments(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    workers: &[DemoPerson],
    patients: &[DemoPerson],
) -> anyhow::Result<()> {
    let id_of = |people: &[DemoPerson], first: &str| {
        people
            .iter()
            .find(|p| p.name.starts_with(first))
            .map(|p| p.id)
            .ok_or_else(|| anyhow::anyhow!("demo data has no {first}"))
    };
    for (caregiver, patient, days, start, end) in ASSIGNMENTS {
        let caregiver = id_of(workers, caregiver)?;
        let patient = id_of(patients, patient)?;
        sqlx::query(
            "INSERT INTO caregiver_assignments (tenant_id, caregiver_id, patient_id, service_type, starts_on,
                 shift_start, shift_end, days_of_week)
             SELECT $1, $2, $3, 'personal_care', (now() AT TIME ZONE t.time_zone)::date, $4::time, $5::time, $6
             FROM tenants t WHERE t.id = $1
               AND NOT EXISTS (SELECT 1 FROM caregiver_assignments a WHERE a.tenant_id = $1 AND a.caregiver_id = $2
                                 AND a.patient_id = $3 AND a.shift_start = $4::time)",
        )
        .bind(tenant_id)
        .bind(caregiver)
        .bind(patient)
        .bind(start)
        .bind(end)
        .bind(days.to_vec())
        .execute(&mut *tx)
        .await?;
    }
    crate::domains::care::schedule::generate(tx, tenant_id, None).await?;
    Ok(())
}

async fn ensure_tenant(tx: &mut PgConnection) -> anyhow::Result<Uuid> {
    if let Some(id) = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(DEMO_SLUG)
        .fetch_optional(&mut *tx)
        .await?
    {
        return Ok(id);
    }
    let new = NewTenant {
        name: "Addis Care & Facilities".into(),
        slug: Slug::parse(DEMO_SLUG).map_err(anyhow::Error::msg)?,
        time_zone: TimeZone::parse("Africa/Addis_Ababa").map_err(anyhow::Error::msg)?,
        locale: Locale::parse("en").map_err(anyhow::Error::msg)?,
    };
    Ok(tenancy::create_tenant(tx, &new).await?.id)
}

async fn site_id(tx: &mut PgConnection, tenant_id: Uuid, code: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM sites WHERE tenant_id = $1 AND code = $2 AND deleted_at IS NULL",
    )
    .bind(tenant_id)
    .bind(code)
    .fetch_optional(tx)
    .await
}

async fn ensure_site(tx: &mut PgConnection, tenant_id: Uuid, s: &SiteSeed) -> anyhow::Result<()> {
    if site_id(tx, tenant_id, s.code).await?.is_some() {
        return Ok(());
    }
    let parent = match s.parent {
        Some(code) => site_id(tx, tenant_id, code).await?,
        None => None,
    };
    sqlx::query(
        "INSERT INTO sites (id, tenant_id, parent_id, kind, name, code, address_line, city, latitude, longitude)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'Addis Ababa', $8, $9)",
    )
    .bind(Uuid::now_v7())
    .bind(tenant_id)
    .bind(parent)
    .bind(s.kind)
    .bind(s.name)
    .bind(s.code)
    .bind(s.address)
    .bind(s.lat)
    .bind(s.lon)
    .execute(tx)
    .await?;
    Ok(())
}

async fn ensure_worker(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    w: &WorkerSeed,
) -> anyhow::Result<DemoPerson> {
    let existing: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM workers WHERE tenant_id = $1 AND phone = $2 AND deleted_at IS NULL",
    )
    .bind(tenant_id)
    .bind(w.phone)
    .fetch_optional(&mut *tx)
    .await?;
    let id = match existing {
        Some(id) => id,
        None => {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO workers (id, tenant_id, first_name, last_name, phone, whatsapp_enabled, email, kinds, specialties, certifications, preferred_locale)
                 VALUES ($1, $2, $3, $4, $5, true, $6, $7, $8, $9, $10)",
            )
            .bind(id)
            .bind(tenant_id)
            .bind(w.first)
            .bind(w.last)
            .bind(w.phone)
            .bind(format!("{}.{}@addis-care.example", w.first.to_lowercase(), w.last.to_lowercase()))
            .bind(w.kinds)
            .bind(w.specialties)
            .bind(w.certifications)
            .bind(w.locale)
            .execute(&mut *tx)
            .await?;
            id
        }
    };
    for (code, primary) in w.sites {
        if let Some(site) = site_id(tx, tenant_id, code).await? {
            sqlx::query(
                "INSERT INTO worker_sites (tenant_id, worker_id, site_id, is_primary) VALUES ($1, $2, $3, $4)
                 ON CONFLICT ON CONSTRAINT worker_sites_worker_site_key DO NOTHING",
            )
            .bind(tenant_id)
            .bind(id)
            .bind(site)
            .bind(primary)
            .execute(&mut *tx)
            .await?;
        }
    }
    if let Some(role) = w.crew_role {
        sqlx::query(
            "INSERT INTO ambulance_crew_members (tenant_id, worker_id, role) VALUES ($1, $2, $3)
             ON CONFLICT ON CONSTRAINT crew_members_worker_key DO NOTHING",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(role)
        .execute(&mut *tx)
        .await?;
    }
    ensure_contact(
        tx,
        tenant_id,
        w.phone,
        &format!("{} {}", w.first, w.last),
        Some(id),
        None,
        w.locale,
    )
    .await?;
    Ok(DemoPerson {
        id,
        name: format!("{} {}", w.first, w.last),
        phone: w.phone,
        kinds: w.kinds.to_vec(),
    })
}

async fn ensure_patient(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    p: &PatientSeed,
) -> anyhow::Result<DemoPerson> {
    let existing: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM patients WHERE tenant_id = $1 AND national_id = $2 AND deleted_at IS NULL",
    )
    .bind(tenant_id)
    .bind(p.national_id)
    .fetch_optional(&mut *tx)
    .await?;
    let id = match existing {
        Some(id) => id,
        None => {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO patients (id, tenant_id, first_name, last_name, date_of_birth, gender, national_id, phone,
                                       address_line, city, country_code, latitude, longitude, preferred_locale,
                                       consent_sms, consent_whatsapp, consent_data_processing, consent_recorded_at)
                 VALUES ($1, $2, $3, $4, $5::date, $6, $7, $8, $9, 'Addis Ababa', 'ET', $10, $11, $12, true, true, true, now())",
            )
            .bind(id)
            .bind(tenant_id)
            .bind(p.first)
            .bind(p.last)
            .bind(p.dob)
            .bind(p.gender)
            .bind(p.national_id)
            .bind(p.phone)
            .bind(p.address)
            .bind(p.lat)
            .bind(p.lon)
            .bind(p.locale)
            .execute(&mut *tx)
            .await?;
            id
        }
    };
    ensure_contact(
        tx,
        tenant_id,
        p.phone,
        &format!("{} {}", p.first, p.last),
        None,
        Some(id),
        p.locale,
    )
    .await?;
    Ok(DemoPerson {
        id,
        name: format!("{} {}", p.first, p.last),
        phone: p.phone,
        kinds: vec!["patient"],
    })
}

async fn ensure_contact(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    phone: &str,
    name: &str,
    worker_id: Option<Uuid>,
    patient_id: Option<Uuid>,
    locale: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO contacts (id, tenant_id, phone, whatsapp_enabled, display_name, worker_id, patient_id, preferred_locale)
         VALUES ($1, $2, $3, true, $4, $5, $6, $7)
         ON CONFLICT ON CONSTRAINT contacts_tenant_phone_key DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(tenant_id)
    .bind(phone)
    .bind(name)
    .bind(worker_id)
    .bind(patient_id)
    .bind(locale)
    .execute(tx)
    .await?;
    Ok(())
}

async fn ensure_asset(tx: &mut PgConnection, tenant_id: Uuid, a: &AssetSeed) -> anyhow::Result<()> {
    let site = site_id(tx, tenant_id, a.site).await?;
    sqlx::query(
        "INSERT INTO assets (id, tenant_id, site_id, name, asset_type, serial_number, model, manufacturer, location_detail,
                             maintenance_frequency_days, last_maintenance_at, next_maintenance_at)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now() - interval '20 days', now() - interval '20 days' + make_interval(days => $10)
         WHERE NOT EXISTS (SELECT 1 FROM assets WHERE tenant_id = $2 AND serial_number = $6 AND deleted_at IS NULL)",
    )
    .bind(Uuid::now_v7())
    .bind(tenant_id)
    .bind(site)
    .bind(a.name)
    .bind(a.asset_type)
    .bind(a.serial)
    .bind(a.model)
    .bind(a.manufacturer)
    .bind(a.location)
    .bind(a.frequency_days)
    .execute(tx)
    .await?;
    Ok(())
}

async fn ensure_ambulances(tx: &mut PgConnection, tenant_id: Uuid) -> anyhow::Result<()> {
    let base = site_id(tx, tenant_id, "SGH").await?;
    type Fleet<'a> = &'a [(&'a str, &'a str, i32, &'a [&'a str], f64, f64)];
    let fleet: Fleet = &[
        (
            "AA-3-12345",
            "advanced_life_support",
            2,
            &["defibrillator", "ventilator", "oxygen"],
            9.0157,
            38.8015,
        ),
        (
            "AA-3-54321",
            "basic_life_support",
            1,
            &["oxygen", "stretcher"],
            9.0101,
            38.7612,
        ),
    ];
    for (registration, kind, capacity, features, lat, lon) in fleet {
        sqlx::query(
            "INSERT INTO ambulances (id, tenant_id, registration_number, ambulance_type, capacity, features, base_site_id,
                                     current_latitude, current_longitude, current_accuracy_m, position_reported_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, 15, now()
             WHERE NOT EXISTS (SELECT 1 FROM ambulances WHERE tenant_id = $2 AND upper(registration_number) = upper($3) AND deleted_at IS NULL)",
        )
        .bind(Uuid::now_v7())
        .bind(tenant_id)
        .bind(registration)
        .bind(kind)
        .bind(capacity)
        .bind(features)
        .bind(base)
        .bind(lat)
        .bind(lon)
        .execute(&mut *tx)
        .await?;
    }
    // The first crew members ride the first ambulance.
    sqlx::query(
        "UPDATE ambulance_crew_members SET ambulance_id = (SELECT id FROM ambulances WHERE tenant_id = $1 AND registration_number = 'AA-3-12345')
          WHERE tenant_id = $1 AND ambulance_id IS NULL",
    )
    .bind(tenant_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
