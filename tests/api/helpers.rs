//! A real app on port 0 against its own fresh PostgreSQL database, dropped afterwards.

use std::{collections::HashMap, sync::Arc, time::Duration};

use fieldline::{
    Application, Config,
    audit::{self, Actor},
    domains::tenancy::{self, NewTenant, Role},
    messaging::Messaging,
    types::{Email, Locale, Slug, TimeZone},
};
use reqwest::{Client, Response, redirect::Policy};
use serde_json::Value;
use sqlx::PgPool;
use tokio::{sync::oneshot, task::JoinHandle};
use uuid::Uuid;

/// Starts the app without job workers: the test runs the jobs ([`TestApp::run_jobs`]).
pub const JOBS_BY_HAND: (&str, &str) = ("JOB_WORKERS", "off");

/// Where the test databases are created. CI and a fresh machine use the local server.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432".into())
}

/// A new, empty database of its own. Strict about auditing: a change to an audited table in a
/// transaction that has not said who is acting fails, so a door that forgets fails its test.
pub fn fresh_database_url() -> (String, String) {
    let name = format!("fieldline_test_{}", Uuid::new_v4().simple());
    administer(vec![
        format!("CREATE DATABASE \"{name}\""),
        format!("ALTER DATABASE \"{name}\" SET fieldline.audit_strict = 'on'"),
    ]);
    (format!("{}/{name}", server_url()), name)
}

/// The test's own connections, for arranging and inspecting: not strict about auditing, so
/// a test may set a row up directly (its audit row names no actor). The app's connections stay
/// strict.
pub async fn test_pool(database_url: &str) -> PgPool {
    let options: sqlx::postgres::PgConnectOptions = database_url.parse().unwrap();
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .connect_with(options.options([("fieldline.audit_strict", "off")]))
        .await
        .expect("the test database is reachable")
}

/// Runs statements on the server's `postgres` database, from any context (tests' runtimes are
/// single-threaded, and this is also called from `Drop`).
fn administer(statements: Vec<String>) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let admin = PgPool::connect(&format!("{}/postgres", server_url()))
                .await
                .expect("the test database server is reachable");
            for statement in statements {
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&admin)
                    .await
                    .expect("the administrative statement runs");
            }
        });
    })
    .join()
    .expect("the administrative statements ran");
}

pub struct TestApp {
    pub base: String,
    pub pool: PgPool,
    /// What the job handlers run with, for [`TestApp::run_jobs`].
    pub messaging: Arc<Messaging>,
    /// Started with `JOB_WORKERS=off`: jobs run only when the test runs them.
    pub jobs_by_hand: bool,
    pub database_url: String,
    pub client: Client,
    db_name: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

pub struct Tenant {
    pub id: Uuid,
    pub token: String,
}

/// The scraper's token every test app is started with (`/metrics` is closed without one).
pub const METRICS_TOKEN: &str = "metrics-scraper-token-for-tests";

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let (database_url, db_name) = fresh_database_url();
    let data_dir = std::env::temp_dir().join(&db_name);
    let mut env: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), database_url.clone()),
        ("PORT".into(), "0".into()),
        ("FIELDLINE_DATA_DIR".into(), data_dir.display().to_string()),
        ("SHUTDOWN_TIMEOUT_SECS".into(), "5".into()),
        ("METRICS_TOKEN".into(), METRICS_TOKEN.into()),
    ]);
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("test config is valid");
    let jobs_by_hand = !config.run_job_workers;
    let app = Application::build(config).await.expect("the app starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let pool = test_pool(&database_url).await;
    let messaging = app.messaging();
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let client = Client::builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        // Well inside the server's header timeout, so no request is sent on a connection the
        // server is just closing.
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    TestApp {
        base,
        pool,
        messaging,
        jobs_by_hand,
        database_url,
        client,
        db_name,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    /// Runs every due job inline until none is left (the app's own workers are off): after it,
    /// what the jobs do is done, and nothing more happens until the test moves the clock.
    pub async fn run_jobs(&self) -> usize {
        assert!(
            self.jobs_by_hand,
            "start the app with JOB_WORKERS=off to run jobs by hand"
        );
        fieldline::worker::run_due_jobs(&self.messaging)
            .await
            .expect("the due jobs ran")
    }

    /// Moves the jobs' clock forward: every waiting job (timers, retries, sweeps) comes `by`
    /// closer to its time, as if that much time had passed.
    pub async fn advance(&self, by: Duration) {
        sqlx::query(
            "UPDATE apalis.jobs SET run_at = run_at - $1
              WHERE status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts)",
        )
        .bind(by)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// The waiting jobs of `queue` come due now, as if their time had come.
    pub async fn due_now(&self, queue: &str) {
        sqlx::query(
            "UPDATE apalis.jobs SET run_at = now() - interval '1 second'
              WHERE job_type = $1 AND status = 'Pending'",
        )
        .bind(queue)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// What `/metrics` shows the scraper.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap();
        response.text().await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A tenant with an API token, made through the same functions the CLI uses.
    pub async fn tenant(&self, slug: &str) -> Tenant {
        let mut tx = audit::begin(&self.pool, Actor::Cli).await.unwrap();
        let new = NewTenant {
            name: format!("Org {slug}"),
            slug: Slug::parse(slug).unwrap(),
            time_zone: TimeZone::parse("Africa/Addis_Ababa").unwrap(),
            locale: Locale::parse("en").unwrap(),
        };
        let tenant = tenancy::create_tenant(&mut tx, &new).await.unwrap();
        let (_, token) = tenancy::create_api_token(&mut tx, tenant.id, "tests", Role::Admin)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        Tenant {
            id: tenant.id,
            token,
        }
    }

    pub async fn user(&self, tenant: &Tenant, email: &str, password: &str) {
        let mut tx = audit::begin(&self.pool, Actor::Cli).await.unwrap();
        tenancy::upsert_user(
            &mut tx,
            tenant.id,
            &Email::parse(email).unwrap(),
            None,
            Role::Coordinator,
            password,
            false,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    pub async fn get(&self, tenant: &Tenant, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&tenant.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, tenant: &Tenant, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&tenant.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, tenant: &Tenant, path: &str, body: &Value) -> Response {
        self.client
            .put(self.url(path))
            .bearer_auth(&tenant.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, tenant: &Tenant, path: &str, body: &Value) -> Response {
        self.client
            .patch(self.url(path))
            .bearer_auth(&tenant.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, tenant: &Tenant, path: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(&tenant.token)
            .send()
            .await
            .unwrap()
    }

    /// Stops the server as SIGTERM would, and waits for it.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(server) => server.await.expect("server task"),
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        drop_database(&self.db_name);
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&self.db_name));
    }
}

/// Drops a test database, from a thread of its own: Drop cannot await on the test's runtime.
pub fn drop_database(name: &str) {
    let name = name.to_owned();
    // Best effort: a database left behind is harmless, a panic in Drop is not.
    let _ = std::panic::catch_unwind(|| {
        administer(vec![format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )])
    });
}

/// Status and parsed JSON body, for one-line assertions.
pub async fn json(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The field names of a validation error body.
pub fn error_fields(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
