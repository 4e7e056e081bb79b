//! A real HTTP server on loopback standing in for Twilio and Meta: it records every request and
//! answers sends with scripted responses (or a success by default). Also the signing helpers and
//! the app set-up the messaging tests share.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use fieldline::channels::signature;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub use crate::helpers::JOBS_BY_HAND;
use crate::helpers::{Tenant, TestApp, spawn_app_with};

pub const PUBLIC_BASE_URL: &str = "https://fieldline.test";
pub const TWILIO_SID: &str = "AC00000000000000000000000000000001";
pub const TWILIO_TOKEN: &str = "twilio-test-auth-token";
pub const META_SECRET: &str = "meta-test-app-secret";
pub const META_VERIFY: &str = "meta-verify-token";
pub const META_TOKEN: &str = "meta-test-access-token";
/// The numbers in the fixtures under `webhooks/`.
pub const TWILIO_NUMBER: &str = "+251911500000";
pub const META_NUMBER: &str = "+251911600000";
pub const META_PHONE_NUMBER_ID: &str = "106540352242922";
pub const WORKER_PHONE: &str = "+251911000101";
pub const PATIENT_PHONE: &str = "+251911000201";
/// What the fake answers with as the first message id, as the status fixtures expect.
pub const FIRST_TWILIO_SID: &str = "SM90000000000000000000000000000001";

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Recorded {
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
    fn is_send(&self) -> bool {
        self.method == Method::POST
            && (self.path.ends_with("/Messages.json") || self.path.ends_with("/messages"))
    }
}

#[derive(Clone)]
struct Scripted {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

#[derive(Clone, Default)]
struct Shared {
    requests: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<VecDeque<Scripted>>>,
    base: Arc<Mutex<String>>,
    /// How long each send waits before it is answered (taken as soon as it arrives).
    send_delay: Arc<Mutex<Duration>>,
    /// How many of the next media downloads answer 503.
    media_failures: Arc<Mutex<usize>>,
    /// Every send's recipient and the status it was answered with, in answer order.
    answers: Arc<Mutex<Vec<Answer>>>,
}

/// How the fake answered one send: the ledger the fault tests score against.
#[derive(Clone, Debug)]
pub struct Answer {
    pub to: String,
    pub status: u16,
    pub at: Instant,
}

pub struct FakeProvider {
    pub base: String,
    shared: Shared,
}

pub const MEDIA_BYTES: &[u8] = b"\xff\xd8\xff\xe0 a tiny jpeg";

async fn answer(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = Recorded {
        method: method.clone(),
        path: uri.path().to_owned(),
        headers,
        body,
        at: Instant::now(),
    };
    let is_send = recorded.is_send();
    let path = recorded.path.clone();
    let to = if recorded.path.ends_with("/Messages.json") {
        recorded.field("To")
    } else if is_send {
        serde_json::from_slice::<Value>(&recorded.body)
            .ok()
            .and_then(|body| body["to"].as_str().map(str::to_owned))
    } else {
        None
    };
    let answered = |status: u16| {
        if is_send {
            shared.answers.lock().unwrap().push(Answer {
                to: to.clone().unwrap_or_default(),
                status,
                at: Instant::now(),
            });
        }
    };
    // Each provider numbers its own messages, as the status fixtures expect.
    let sends = {
        let mut requests = shared.requests.lock().unwrap();
        requests.push(recorded);
        let twilio = path.ends_with("/Messages.json");
        requests
            .iter()
            .filter(|r| r.is_send() && r.path.ends_with("/Messages.json") == twilio)
            .count()
    };
    let delay = *shared.send_delay.lock().unwrap();
    if is_send && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let scripted = if is_send {
        shared.script.lock().unwrap().pop_front()
    } else {
        None
    };
    if let Some(scripted) = scripted {
        answered(scripted.status);
        let mut response = (
            StatusCode::from_u16(scripted.status).unwrap(),
            scripted.body,
        )
            .into_response();
        for (k, v) in scripted.headers {
            response.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        return response;
    }
    if method == Method::GET && path.ends_with("/Messages.json") {
        // Twilio's list of sent messages, newest first, filtered by To as the real one is.
        let to: Option<String> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == "To")
            .map(|(_, v)| v.into_owned());
        let requests = shared.requests.lock().unwrap();
        let mut messages: Vec<Value> = requests
            .iter()
            .filter(|r| r.is_send() && r.path.ends_with("/Messages.json"))
            .enumerate()
            .filter(|(_, r)| to.is_none() || r.field("To") == to)
            .map(|(n, r)| {
                json!({ "sid": format!("SM9{:031}", n + 1), "to": r.field("To"), "from": r.field("From"),
                        "body": r.field("Body"), "status": "delivered",
                        "date_created": chrono::Utc::now().to_rfc2822() })
            })
            .collect();
        messages.reverse();
        return axum::Json(json!({ "messages": messages, "page": 0, "page_size": 50 }))
            .into_response();
    }
    if path.ends_with("/Messages.json") {
        answered(201);
        let sid = format!("SM9{sends:031}");
        return (
            StatusCode::CREATED,
            axum::Json(json!({ "sid": sid, "status": "queued" })),
        )
            .into_response();
    }
    if path.ends_with("/messages") {
        answered(200);
        let id = format!("wamid.HBgMMjUxOTExMDAwMTAxFQIAEhgg{:032}AA==", 899 + sends);
        return axum::Json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": "251911000101", "wa_id": "251911000101" }],
            "messages": [{ "id": id }],
        }))
        .into_response();
    }
    if path.starts_with("/download/") || path.contains("/Media/") {
        let mut failures = shared.media_failures.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return (StatusCode::SERVICE_UNAVAILABLE, "media store unavailable").into_response();
        }
        return (
            StatusCode::OK,
            [("content-type", "image/jpeg")],
            MEDIA_BYTES,
        )
            .into_response();
    }
    if method == Method::GET && path.starts_with("/v23.0/") {
        // Meta's media lookup: a short-lived download URL.
        let id = path.trim_start_matches("/v23.0/");
        let base = shared.base.lock().unwrap().clone();
        return axum::Json(json!({
            "messaging_product": "whatsapp",
            "url": format!("{base}/download/{id}"),
            "mime_type": "image/jpeg",
            // Meta sends the size as a string.
            "file_size": MEDIA_BYTES.len().to_string(),
            "id": id,
        }))
        .into_response();
    }
    (StatusCode::NOT_FOUND, "no such fake endpoint").into_response()
}

impl FakeProvider {
    pub async fn start() -> Self {
        let shared = Shared::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        *shared.base.lock().unwrap() = base.clone();
        let app = Router::new().fallback(answer).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, shared }
    }

    /// The next send gets this answer instead of a success.
    pub fn respond(&self, status: u16, headers: &[(&str, &str)], body: Value) {
        self.shared.script.lock().unwrap().push_back(Scripted {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_string(),
        });
    }

    /// The next `n` media downloads fail with 503, as a provider's short outage would.
    pub fn fail_media(&self, n: usize) {
        *self.shared.media_failures.lock().unwrap() = n;
    }

    /// Every later send is answered only after `delay`, as a slow provider would.
    pub fn slow(&self, delay: Duration) {
        *self.shared.send_delay.lock().unwrap() = delay;
    }

    /// How every send was answered, in order.
    pub fn answers(&self) -> Vec<Answer> {
        self.shared.answers.lock().unwrap().clone()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn sends(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::is_send)
            .collect()
    }

    /// Waits until at least `n` sends arrived (or 15 s passed) and returns them all.
    pub async fn wait_for_sends(&self, n: usize) -> Vec<Recorded> {
        let started = Instant::now();
        loop {
            let sends = self.sends();
            if sends.len() >= n || started.elapsed() > Duration::from_secs(15) {
                return sends;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl FakeProvider {
    /// Waits (up to 15 s) for a send that `matches`, and returns it.
    pub async fn wait_for(&self, what: &str, matches: impl Fn(&Recorded) -> bool) -> Recorded {
        let started = Instant::now();
        loop {
            if let Some(found) = self.sends().into_iter().find(|r| matches(r)) {
                return found;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "no send {what} among {:#?}",
                self.sends()
                    .iter()
                    .map(|r| (&r.path, String::from_utf8_lossy(&r.body).into_owned()))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// An app with both providers configured against the fake, and a tenant owning the fixtures'
/// numbers, a worker and a patient.
pub struct MessagingApp {
    pub app: TestApp,
    pub fake: FakeProvider,
    pub tenant: Tenant,
}

pub async fn spawn_messaging_app(extra: &[(&str, &str)]) -> MessagingApp {
    let fake = FakeProvider::start().await;
    let graph = format!("{}/v23.0", fake.base);
    let mut env = vec![
        ("PUBLIC_BASE_URL", PUBLIC_BASE_URL),
        ("TWILIO_ACCOUNT_SID", TWILIO_SID),
        ("TWILIO_AUTH_TOKEN", TWILIO_TOKEN),
        ("TWILIO_API_BASE", fake.base.as_str()),
        ("META_APP_SECRET", META_SECRET),
        ("META_VERIFY_TOKEN", META_VERIFY),
        ("META_ACCESS_TOKEN", META_TOKEN),
        ("META_GRAPH_BASE", graph.as_str()),
        ("SEND_RETRY_BASE_MS", "100"),
    ];
    env.extend_from_slice(extra);
    let app = spawn_app_with(&env).await;
    let tenant = app.tenant("msg-org").await;
    for channel in [
        json!({ "provider": "twilio", "kind": "sms", "phone_number": TWILIO_NUMBER }),
        json!({ "provider": "twilio", "kind": "whatsapp", "phone_number": TWILIO_NUMBER }),
        json!({ "provider": "meta", "kind": "whatsapp", "phone_number": META_NUMBER, "provider_id": META_PHONE_NUMBER_ID }),
    ] {
        let response = app.post(&tenant, "/api/v1/channels", &channel).await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }
    let worker = json!({ "first_name": "Abebe", "last_name": "Kebede", "phone": WORKER_PHONE,
        "kinds": ["maintenance"], "specialties": ["plumbing"] });
    assert_eq!(
        app.post(&tenant, "/api/v1/workers", &worker).await.status(),
        201
    );
    let patient = json!({ "first_name": "Hana", "last_name": "Tesfaye", "phone": PATIENT_PHONE,
        "consent_sms": true });
    assert_eq!(
        app.post(&tenant, "/api/v1/patients", &patient)
            .await
            .status(),
        201
    );
    MessagingApp { app, fake, tenant }
}

/// A fixture from `webhooks/`, exactly as stored.
pub fn fixture(path: &str) -> String {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("webhooks")
        .join(path);
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim_end()
        .to_owned()
}

/// A Twilio fixture whose media URLs point at `base` instead of Twilio, so fetches reach a fake.
pub fn with_media_at(fixture_body: String, base: &str) -> String {
    fixture_body.replace(
        "https%3A%2F%2Fapi.twilio.com",
        &url::form_urlencoded::byte_serialize(base.as_bytes()).collect::<String>(),
    )
}

pub fn twilio_signature(path: &str, body: &str) -> String {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    signature::twilio_expected(TWILIO_TOKEN, &format!("{PUBLIC_BASE_URL}{path}"), &params)
}

impl MessagingApp {
    /// Waits for at least `n` sends, running the due jobs first when the test runs them.
    pub async fn wait_for_sends(&self, n: usize) -> Vec<Recorded> {
        if self.app.jobs_by_hand {
            self.app.run_jobs().await;
        }
        self.fake.wait_for_sends(n).await
    }

    /// Runs every due job (the app's workers are off): nothing more happens until the clock moves.
    pub async fn settle(&self) {
        self.app.run_jobs().await;
    }

    /// Posts a Twilio form body signed as Twilio would sign it.
    pub async fn twilio(&self, path: &str, body: &str) -> reqwest::Response {
        self.twilio_signed(path, body, Some(&twilio_signature(path, body)))
            .await
    }

    /// Posts a signed Twilio message webhook, expects it acknowledged, and waits until stored.
    pub async fn twilio_message_stored(&self, body: &str) {
        let response = self.twilio("/webhooks/twilio/messages", body).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        self.inbox_stored().await;
    }

    /// Waits until every acknowledged message has left the inbox: stored, its routing job
    /// pushed. When the test runs the jobs, stores them here as the drainer would, and runs
    /// nothing else.
    pub async fn inbox_stored(&self) {
        if self.app.jobs_by_hand {
            fieldline::messaging::inbox::drain(&self.app.pool)
                .await
                .expect("the inbox drained");
            return;
        }
        assert!(
            self.eventually("SELECT NOT EXISTS (SELECT 1 FROM inbox)")
                .await,
            "the drainer stored every acknowledged message"
        );
    }

    pub async fn twilio_signed(
        &self,
        path: &str,
        body: &str,
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .app
            .client
            .post(self.app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header("x-twilio-signature", signature);
        }
        request.send().await.unwrap()
    }

    /// Posts a Meta body signed with the app secret.
    pub async fn meta(&self, body: &str) -> reqwest::Response {
        self.meta_signed(
            body,
            Some(&signature::meta_expected(META_SECRET, body.as_bytes())),
        )
        .await
    }

    pub async fn meta_signed(&self, body: &str, signature: Option<&str>) -> reqwest::Response {
        let mut request = self
            .app
            .client
            .post(self.app.url("/webhooks/meta/whatsapp"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        request.send().await.unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.app.pool)
            .await
            .unwrap()
    }

    /// Polls `sql` (a boolean query) until it returns true, for up to 15 s; no row counts as false.
    /// With the jobs run by hand, runs the due ones first.
    pub async fn eventually(&self, sql: &str) -> bool {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if self.app.jobs_by_hand {
                self.app.run_jobs().await;
            }
            let done: Option<Option<bool>> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_optional(&self.app.pool)
                    .await
                    .unwrap();
            if done.flatten() == Some(true) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }
}
