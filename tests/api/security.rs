//! What an attacker tried, kept closed: one test per finding of the security review, through the
//! real server, the real database and the fake providers.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    helpers::{error_fields, json, spawn_app, spawn_app_with},
    panel::{PASSWORD, login_form, sign_in},
    providers::*,
};

const CAREGIVER: &str = "+251911000401";

async fn add_worker(app: &MessagingApp, phone: &str, kinds: Value) -> String {
    let (status, worker) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/workers",
                &json!({ "first_name": "Selam", "last_name": "Bekele", "phone": phone,
                         "whatsapp_enabled": false, "kinds": kinds }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{worker}");
    worker["id"].as_str().unwrap().to_owned()
}

/// A Meta fixture with one string of its first message (at `pointer` within the message)
/// replaced by `raw`, written into the JSON text as is (so it may hold escapes such as \u0000).
fn meta_fixture_with(name: &str, pointer: &str, raw: &str) -> String {
    let body = fixture(name);
    let document: Value = serde_json::from_str(&body).unwrap();
    let old = document["entry"][0]["changes"][0]["value"]["messages"][0]
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{name} has no {pointer}"))
        .to_owned();
    body.replace(&old, raw)
}

/// The six digits of the sign-in code the provider was asked to send.
async fn code_sent(app: &MessagingApp) -> String {
    let sent = app
        .fake
        .wait_for("with the code", |r| {
            r.field("Body").is_some_and(|b| b.contains("sign-in code"))
        })
        .await
        .field("Body")
        .unwrap();
    sent.split(|c: char| !c.is_ascii_digit())
        .find(|t| t.len() == 6)
        .expect("six digits in the message")
        .to_owned()
}

async fn post_json(app: &crate::helpers::TestApp, path: &str, body: &Value) -> (u16, Value) {
    json(
        app.client
            .post(app.url(path))
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

// 1. Sign-in attempts are limited per account and per address, in the database.

#[tokio::test]
async fn panel_sign_in_stops_guessing_with_a_429_and_retry_after() {
    let app = spawn_app().await;
    let tenant = app.tenant("guess-org").await;
    app.user(&tenant, "liya@guess.example", PASSWORD).await;
    let csrf = login_form(&app).await;
    for _ in 0..5 {
        let response = sign_in(&app, "guess-org", "liya@guess.example", "wrong one", &csrf).await;
        assert_eq!(response.status(), 401);
    }
    // The right password no longer helps once the account's attempts are used up.
    let refused = sign_in(&app, "guess-org", "liya@guess.example", PASSWORD, &csrf).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("too many sign-in attempts")
    );
    // Kept in the database, so every process sees them.
    let counted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sign_in_attempts WHERE account = 'guess-org/liya@guess.example' AND NOT succeeded",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(counted, 5);
    // Another account from the same address still works, and a success stops its count.
    app.user(&tenant, "abel@guess.example", PASSWORD).await;
    let other = sign_in(&app, "guess-org", "abel@guess.example", PASSWORD, &csrf).await;
    assert_eq!(other.status(), 303);
}

#[tokio::test]
async fn the_address_limit_reads_the_proxy_header_only_when_told_to() {
    // Behind Fly's proxy: each client address has its own budget.
    let app = spawn_app_with(&[("TRUSTED_PROXY", "fly")]).await;
    let tenant = app.tenant("proxy-org").await;
    app.user(&tenant, "liya@proxy.example", PASSWORD).await;
    let csrf = login_form(&app).await;
    let attempt = |ip: &'static str, email: String| {
        let app = &app;
        let csrf = csrf.clone();
        async move {
            app.client
                .post(app.url("/panel/login"))
                .header("fly-client-ip", ip)
                .form(&[
                    ("organisation", "proxy-org"),
                    ("email", email.as_str()),
                    ("password", "wrong password"),
                    ("csrf_token", csrf.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for i in 0..20 {
        assert_eq!(
            attempt("203.0.113.7", format!("u{i}@proxy.example")).await,
            401
        );
    }
    assert_eq!(attempt("203.0.113.7", "x@proxy.example".into()).await, 429);
    assert_eq!(attempt("198.51.100.9", "x@proxy.example".into()).await, 401);

    // Without TRUSTED_PROXY the header is anyone's word and is ignored: one socket, one budget.
    let direct = spawn_app().await;
    let tenant = direct.tenant("proxy-org").await;
    direct.user(&tenant, "liya@proxy.example", PASSWORD).await;
    let csrf = login_form(&direct).await;
    for i in 0..21 {
        let status = direct
            .client
            .post(direct.url("/panel/login"))
            .header("fly-client-ip", format!("203.0.113.{i}"))
            .form(&[
                ("organisation", "proxy-org"),
                ("email", &format!("u{i}@proxy.example")),
                ("password", "wrong password"),
                ("csrf_token", &csrf),
            ])
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, if i < 20 { 401 } else { 429 }, "attempt {i}");
    }
}

// 2. Inbound media never runs as a page of the panel.

#[tokio::test]
async fn media_is_shown_inline_only_when_its_bytes_are_a_raster_image() {
    let app = spawn_messaging_app(&[]).await;
    let body = with_media_at(fixture("twilio/whatsapp_image.form"), &app.fake.base);
    app.twilio_message_stored(&body).await;
    assert!(
        app.eventually("SELECT fetched_at IS NOT NULL FROM message_media")
            .await
    );
    let (id, path): (Uuid, String) = sqlx::query_as("SELECT id, storage_path FROM message_media")
        .fetch_one(&app.app.pool)
        .await
        .unwrap();
    app.app
        .user(&app.tenant, "liya@msg.example", PASSWORD)
        .await;
    let csrf = login_form(&app.app).await;
    assert_eq!(
        sign_in(&app.app, "msg-org", "liya@msg.example", PASSWORD, &csrf)
            .await
            .status(),
        303
    );
    let fetch = || async {
        app.app
            .client
            .get(app.app.url(&format!("/panel/media/{id}")))
            .send()
            .await
            .unwrap()
    };
    let photo = fetch().await;
    assert_eq!(photo.status(), 200);
    assert_eq!(photo.headers()["content-type"], "image/jpeg");
    assert_eq!(photo.headers()["content-disposition"], "inline");
    assert_eq!(photo.headers()["x-content-type-options"], "nosniff");
    assert!(
        photo.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );

    // The sender's provider says image/svg+xml; the bytes are a script.
    std::fs::write(
        &path,
        "<svg xmlns='http://www.w3.org/2000/svg'><script>alert(document.cookie)</script></svg>",
    )
    .unwrap();
    sqlx::query("UPDATE message_media SET content_type = 'image/svg+xml'")
        .execute(&app.app.pool)
        .await
        .unwrap();
    let svg = fetch().await;
    assert_eq!(svg.status(), 200);
    assert_eq!(svg.headers()["content-type"], "application/octet-stream");
    assert!(
        svg.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"),
    );

    // Every panel page carries the policy that keeps injected scripts and framing out.
    let page = app
        .app
        .client
        .get(app.app.url("/panel"))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    // Images only from the panel and the configured map tile server.
    assert!(
        csp.contains("img-src 'self' data: https://tile.openstreetmap.org;"),
        "{csp}"
    );
    let leaflet = app
        .app
        .client
        .get(app.app.url("/panel/static/leaflet.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(leaflet.status(), 200);
    assert!(
        leaflet.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(leaflet.text().await.unwrap().contains("1.9.4"));
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["referrer-policy"], "same-origin");
}

// 3. Provider credentials go only to the provider's own hosts.

#[tokio::test]
async fn twilio_credentials_are_never_sent_to_a_media_url_elsewhere() {
    let app = spawn_messaging_app(&[]).await;
    let elsewhere = FakeProvider::start().await;
    let body = with_media_at(fixture("twilio/whatsapp_image.form"), &elsewhere.base);
    app.twilio_message_stored(&body).await;
    assert!(
        app.eventually(
            "SELECT fetch_error LIKE 'refused to send provider credentials%' FROM message_media"
        )
        .await,
        "the fetch was refused and says why"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "the other host was never called"
    );
    assert!(
        app.fake
            .requests()
            .iter()
            .all(|r| !r.path.contains("/Media/")),
        "nothing was fetched anywhere"
    );
}

#[tokio::test]
async fn a_meta_media_id_names_one_graph_path_segment() {
    let app = spawn_messaging_app(&[]).await;
    let body = meta_fixture_with("meta/image.json", "/image/id", "1/../../me?fields=x");
    assert_eq!(app.meta(&body).await.status(), 200);
    assert!(
        app.eventually(
            "SELECT fetch_error IS NOT NULL OR fetched_at IS NOT NULL FROM message_media"
        )
        .await
    );
    let lookup = app
        .fake
        .requests()
        .into_iter()
        .find(|r| r.method == axum::http::Method::GET && r.path.starts_with("/v23.0/"))
        .expect("one media lookup");
    assert_eq!(lookup.path, "/v23.0/1%2F..%2F..%2Fme%3Ffields%3Dx");
}

// 4. Sign-in codes are secrets: not readable through the API, nor kept after delivery.

#[tokio::test]
async fn sign_in_codes_are_masked_in_the_api_and_dropped_once_delivered() {
    let app = spawn_messaging_app(&[]).await;
    add_worker(&app, CAREGIVER, json!(["caregiver"])).await;
    let (status, _) = post_json(
        &app.app,
        "/api/v1/app/login",
        &json!({ "phone": CAREGIVER }),
    )
    .await;
    assert_eq!(status, 202);
    let code = code_sent(&app).await;
    assert!(
        app.eventually("SELECT secret_body IS NULL AND provider_message_id IS NOT NULL FROM messages WHERE template_key = 'app_login_code'")
            .await,
        "the real text is gone once the provider has it"
    );
    let (status, page) = json(app.app.get(&app.tenant, "/api/v1/messages").await).await;
    assert_eq!(status, 200);
    let text = page.to_string();
    assert!(!text.contains(&code), "{text}");
    assert!(text.contains("••••••"), "{text}");
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE body LIKE '%' || $1 || '%' OR template_params::text LIKE '%' || $1 || '%'",
    )
    .bind(&code)
    .fetch_one(&app.app.pool)
    .await
    .unwrap();
    assert_eq!(stored, 0, "the code is nowhere in the messages table");
    // And it still works for the caregiver.
    let (status, session) = post_json(
        &app.app,
        "/api/v1/app/verify",
        &json!({ "phone": CAREGIVER, "code": code }),
    )
    .await;
    assert_eq!(status, 200, "{session}");
}

// 5. Only active caregivers get an app token.

#[tokio::test]
async fn a_maintenance_worker_gets_no_app_code_and_the_same_answer_as_a_stranger() {
    let app = spawn_messaging_app(&[]).await;
    let (status, _) = post_json(
        &app.app,
        "/api/v1/app/login",
        &json!({ "phone": WORKER_PHONE }),
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = post_json(
        &app.app,
        "/api/v1/app/login",
        &json!({ "phone": "+251911999999" }),
    )
    .await;
    assert_eq!(status, 202);
    let (worker_status, worker) = post_json(
        &app.app,
        "/api/v1/app/verify",
        &json!({ "phone": WORKER_PHONE, "code": "123456" }),
    )
    .await;
    let (stranger_status, stranger) = post_json(
        &app.app,
        "/api/v1/app/verify",
        &json!({ "phone": "+251911999999", "code": "123456" }),
    )
    .await;
    assert_eq!((worker_status, stranger_status), (401, 401));
    assert_eq!(worker, stranger, "nothing tells a worker from a stranger");
    assert_eq!(
        app.count("SELECT count(*) FROM app_login_codes").await,
        0,
        "no code was made for a maintenance worker"
    );

    // A caregiver who is signed in loses the app when they stop being a caregiver.
    let caregiver = add_worker(&app, CAREGIVER, json!(["caregiver"])).await;
    post_json(
        &app.app,
        "/api/v1/app/login",
        &json!({ "phone": CAREGIVER }),
    )
    .await;
    let code = code_sent(&app).await;
    let (_, session) = post_json(
        &app.app,
        "/api/v1/app/verify",
        &json!({ "phone": CAREGIVER, "code": code }),
    )
    .await;
    let token = session["token"].as_str().unwrap();
    let visits = |token: String| {
        let app = &app;
        async move {
            app.app
                .client
                .get(app.app.url("/api/v1/app/visits"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(visits(token.to_owned()).await, 200);
    sqlx::query("UPDATE workers SET kinds = '{maintenance}' WHERE id = $1::uuid")
        .bind(&caregiver)
        .execute(&app.app.pool)
        .await
        .unwrap();
    assert_eq!(visits(token.to_owned()).await, 401);
}

// 6. Numbers are an admin's to add, and a refusal names nobody.

#[tokio::test]
async fn only_admin_tokens_add_numbers_and_a_taken_number_names_no_one() {
    let app = spawn_app().await;
    let holder = app.tenant("holder-org").await;
    let claimant = app.tenant("claimant-org").await;
    let number = json!({ "provider": "twilio", "kind": "sms", "phone_number": "+251911500000" });
    assert_eq!(
        app.post(&holder, "/api/v1/channels", &number)
            .await
            .status(),
        201
    );
    let mut tx = app.pool.begin().await.unwrap();
    let (_, coordinator_token) = fieldline::domains::tenancy::create_api_token(
        &mut tx,
        claimant.id,
        "integration",
        fieldline::domains::tenancy::Role::Coordinator,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let coordinator = crate::helpers::Tenant {
        id: claimant.id,
        token: coordinator_token,
    };
    let (status, body) = json(app.post(&coordinator, "/api/v1/channels", &number).await).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("admin"));

    let (status, body) = json(app.post(&claimant, "/api/v1/channels", &number).await).await;
    assert_eq!(status, 409, "{body}");
    let text = body.to_string();
    assert!(
        !text.contains("holder") && !text.contains("another organisation"),
        "{text}"
    );
    // The same answer for a number the claimant holds itself: nothing to tell them apart.
    let own = json!({ "provider": "twilio", "kind": "sms", "phone_number": "+251911500001" });
    assert_eq!(
        app.post(&claimant, "/api/v1/channels", &own).await.status(),
        201
    );
    let (_, again) = json(app.post(&claimant, "/api/v1/channels", &own).await).await;
    assert_eq!(again, body);
}

// 7. NUL characters: stored without them from providers, named as the field's fault in the API.

#[tokio::test]
async fn nul_characters_are_dropped_from_webhooks_and_refused_by_the_api() {
    let app = spawn_messaging_app(&[]).await;
    let twilio = fixture("twilio/sms_text.form").replace("Body=", "Body=before%00after+");
    app.twilio_message_stored(&twilio).await;
    let meta = meta_fixture_with("meta/text.json", "/text/body", "meta\\u0000text");
    assert_eq!(app.meta(&meta).await.status(), 200);
    app.inbox_stored().await;
    let bodies: Vec<String> = sqlx::query_scalar(
        "SELECT body FROM messages WHERE direction = 'inbound' ORDER BY received_at, id",
    )
    .fetch_all(&app.app.pool)
    .await
    .unwrap();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(
        bodies.iter().any(|b| b.starts_with("beforeafter ")),
        "{bodies:?}"
    );
    assert!(bodies.contains(&"metatext".to_owned()), "{bodies:?}");

    let (status, body) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/sites",
                &json!({ "kind": "office", "name": "Ward\u{0}3" }),
            )
            .await,
    )
    .await;
    assert_eq!(
        (status, error_fields(&body)),
        (422, vec!["name".to_owned()])
    );
    let (status, body) = json(app.app.get(&app.tenant, "/api/v1/sites?q=a%00b").await).await;
    assert_eq!((status, error_fields(&body)), (422, vec!["q".to_owned()]));
}

// 8. Edge input: dates outside any real range and removed workers give 4xx, never 5xx.

#[tokio::test]
async fn dates_far_outside_any_real_range_are_422_naming_the_field() {
    let app = spawn_messaging_app(&[]).await;
    let caregiver = add_worker(&app, CAREGIVER, json!(["caregiver"])).await;
    let patient: Uuid = sqlx::query_scalar("SELECT id FROM patients")
        .fetch_one(&app.app.pool)
        .await
        .unwrap();
    for (start, end) in [
        ("-262143-01-01T00:00:00Z", "2026-01-01T10:00:00Z"),
        ("2026-01-01T09:00:00Z", "+262142-12-31T00:00:00Z"),
    ] {
        let (status, body) = json(
            app.app
                .post(
                    &app.tenant,
                    "/api/v1/visits",
                    &json!({ "caregiver_id": caregiver, "patient_id": patient, "service_type": "personal_care",
                             "scheduled_start": start, "scheduled_end": end }),
                )
                .await,
        )
        .await;
        assert_eq!(status, 422, "{body}");
        let field = if start.starts_with('-') {
            "scheduled_start"
        } else {
            "scheduled_end"
        };
        assert_eq!(error_fields(&body), [field]);
    }
    let (status, body) = json(
        app.app
            .get(
                &app.tenant,
                "/api/v1/visits/export?from=-9999-01-01&to=2026-01-01",
            )
            .await,
    )
    .await;
    assert_eq!(
        (status, error_fields(&body)),
        (422, vec!["from".to_owned()])
    );

    app.app
        .user(&app.tenant, "liya@msg.example", PASSWORD)
        .await;
    let csrf = login_form(&app.app).await;
    sign_in(&app.app, "msg-org", "liya@msg.example", PASSWORD, &csrf).await;
    for date in ["%2B262142-12-31", "-262143-01-01"] {
        let response = app
            .app
            .client
            .get(app.app.url(&format!("/panel/visits?date={date}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{date}");
    }
}

#[tokio::test]
async fn cancelling_work_whose_worker_was_removed_is_not_a_server_error() {
    let app = spawn_messaging_app(&[]).await;
    let (_, workers) = json(app.app.get(&app.tenant, "/api/v1/workers").await).await;
    let worker = workers["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, order) = json(
        app.app
            .post(
                &app.tenant,
                "/api/v1/work-orders",
                &json!({ "kind": "maintenance", "title": "Leaking tap", "priority": "low" }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap();
    let (status, body) = json(
        app.app
            .post(
                &app.tenant,
                &format!("/api/v1/work-orders/{id}/assign"),
                &json!({ "worker_id": worker }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.app
            .delete(&app.tenant, &format!("/api/v1/workers/{worker}"))
            .await
            .status()
            .as_u16()
            / 100,
        2
    );
    let (status, body) = json(
        app.app
            .post(
                &app.tenant,
                &format!("/api/v1/work-orders/{id}/cancel"),
                &json!({ "reason": "duplicate" }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
}

// 9. The smaller findings.

#[tokio::test]
async fn metrics_are_closed_unless_a_token_is_set() {
    let app = spawn_app_with(&[("METRICS_TOKEN", "")]).await;
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("set METRICS_TOKEN"),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_can_require_a_bearer_token() {
    let app = spawn_app_with(&[("METRICS_TOKEN", "metrics-scraper-token-0123")]).await;
    let get = |token: Option<&'static str>| {
        let app = &app;
        async move {
            let mut request = app.client.get(app.url("/metrics"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(get(None).await, 401);
    assert_eq!(get(Some("wrong-token-wrong-token")).await, 401);
    assert_eq!(get(Some("metrics-scraper-token-0123")).await, 200);
}

#[tokio::test]
async fn a_worker_covers_at_most_two_hundred_sites_in_one_request() {
    let app = spawn_messaging_app(&[]).await;
    let (_, workers) = json(app.app.get(&app.tenant, "/api/v1/workers").await).await;
    let worker = workers["items"][0]["id"].as_str().unwrap();
    let sites: Vec<Value> = (0..201)
        .map(|_| json!({ "site_id": Uuid::now_v7(), "is_primary": false }))
        .collect();
    let (status, body) = json(
        app.app
            .put(
                &app.tenant,
                &format!("/api/v1/workers/{worker}/sites"),
                &json!(sites),
            )
            .await,
    )
    .await;
    assert_eq!(
        (status, error_fields(&body)),
        (422, vec!["sites".to_owned()])
    );
}

// Round 2: slow and idle clients.

/// Opens a connection to the app from `from` (another loopback address stands for another
/// client) and sends `bytes`, then nothing more.
async fn hold_connection(
    app: &crate::helpers::TestApp,
    from: &str,
    bytes: &[u8],
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let server: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Whether the server closed the connection within `within` (what it sent before, if anything,
/// is read and dropped).
async fn closed_by_server(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_connection_that_sends_half_its_headers_or_nothing_is_closed_at_the_header_timeout() {
    let app = spawn_app_with(&[("HTTP_HEADER_TIMEOUT_SECS", "1")]).await;
    let mut partial =
        hold_connection(&app, "127.0.0.1", b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    let mut silent = hold_connection(&app, "127.0.0.1", b"").await;
    for stream in [&mut partial, &mut silent] {
        assert!(
            closed_by_server(stream, std::time::Duration::from_secs(10)).await,
            "still open 10 s after a 1 s header timeout"
        );
    }
    // One that asks in time is answered.
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn idle_connections_at_the_cap_make_room_for_a_client_that_asks() {
    const CAP: usize = 40;
    let app = spawn_app_with(&[("MAX_CONNECTIONS", "40")]).await;
    let mut idle = Vec::new();
    for n in 0..3 * CAP {
        // Half a request from other clients, then nothing (the header timeout is 10 s).
        let from = format!("127.0.0.{}", 2 + n % 50);
        idle.push(hold_connection(&app, &from, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await);
    }
    // The server holds no more than its cap: the oldest idle ones were closed for the newer.
    let mut closed = 0;
    for stream in idle.iter_mut().take(2 * CAP) {
        if closed_by_server(stream, std::time::Duration::from_secs(5)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 2 * CAP, "the oldest idle connections make room");
    let fresh = reqwest::Client::new();
    for _ in 0..5 {
        let health = fresh.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }
}

#[tokio::test]
async fn an_error_answer_stays_a_few_kilobytes_whatever_the_input() {
    let app = spawn_app().await;
    // A big body (under the size cap) whose every item is wrong, and one long wrong string.
    let nul_items = format!("[{}]", vec![r#""\u0000""#; 60_000].join(","));
    let long_string = format!(r#"{{"phone": {}}}"#, json!("7".repeat(500_000)));
    let wrong_type = format!(r#"{{"phone": ["{}"]}}"#, "x".repeat(500_000));
    for body in [nul_items, long_string, wrong_type] {
        let response = app
            .client
            .post(app.url("/api/v1/app/login"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert!(
            (400..500).contains(&status),
            "{status}: {}",
            &text[..text.len().min(300)]
        );
        assert!(
            text.len() < 8 * 1024,
            "a {}-byte body answered {} bytes: {}",
            body.len(),
            text.len(),
            &text[..300]
        );
        let answer: Value = serde_json::from_str(&text).unwrap();
        let details = answer["error"]["details"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(details.len() <= 21, "{} field errors listed", details.len());
        if details.len() == 21 {
            assert!(
                details[20]["message"]
                    .as_str()
                    .unwrap()
                    .contains("more field errors")
            );
        }
    }
}

#[tokio::test]
async fn two_hundred_simultaneous_guesses_get_exactly_five_password_checks() {
    // Each guess from its own address (behind Fly's proxy), so only the account's limit counts.
    let app = spawn_app_with(&[("TRUSTED_PROXY", "fly")]).await;
    let tenant = app.tenant("race-org").await;
    app.user(&tenant, "liya@race.example", PASSWORD).await;
    let csrf = login_form(&app).await;
    let guesses = (0..200).map(|n| {
        let (app, csrf) = (&app, csrf.clone());
        async move {
            app.client
                .post(app.url("/panel/login"))
                .header(
                    "fly-client-ip",
                    format!("198.51.{}.{}", n / 250, n % 250 + 1),
                )
                .form(&[
                    ("organisation", "race-org"),
                    ("email", "liya@race.example"),
                    ("password", "wrong password"),
                    ("csrf_token", csrf.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (5, 195), "{statuses:?}");
}

#[tokio::test]
async fn every_panel_form_refuses_text_no_field_can_hold_with_a_page_that_says_so() {
    use crate::panel::csrf_in;
    let app = spawn_app().await;
    let tenant = app.tenant("nul-org").await;
    app.user(&tenant, "liya@nul.example", PASSWORD).await;
    let csrf = login_form(&app).await;
    assert_eq!(
        sign_in(&app, "nul-org", "liya@nul.example", PASSWORD, &csrf)
            .await
            .status(),
        303
    );
    let dashboard = app
        .client
        .get(app.url("/panel"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_in(&dashboard);
    let id = Uuid::now_v7();
    // Every form the panel posts (a made-up id: the form is read before the record is).
    let forms = [
        "complaints/{id}/respond",
        "complaints/{id}/action",
        "complaints/{id}/change",
        "complaints/{id}/status",
        "feedback/{id}/status",
        "feedback/{id}/respond",
        "patients/{id}/erase",
        "trips/{id}/dispatch",
        "trips/{id}/cancel",
        "trips/{id}/recall",
        "trips/{id}/message",
        "visits",
        "visits/{id}/correct",
        "visits/{id}/cancel",
        "assignments",
        "assignments/{id}/cancel",
        "assignments/{id}/change",
        "assignments/{id}/reassign",
        "visit-exceptions/{id}/resolve",
        "work-orders",
        "work-orders/{id}/assign",
        "work-orders/{id}/hold",
        "work-orders/{id}/resume",
        "work-orders/{id}/cancel",
        "work-orders/{id}/comment",
        "work-orders/{id}/message",
        "alerts/{id}/resolve",
    ];
    for form in forms {
        let path = format!("/panel/{}", form.replace("{id}", &id.to_string()));
        let response = app
            .client
            .post(app.url(&path))
            .form(&[("csrf_token", csrf.as_str()), ("text", "hello\0world")])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let page = response.text().await.unwrap();
        assert_eq!(status, 422, "{path}: {page}");
        assert!(page.contains("NUL"), "{path}: {page}");
    }
}

#[tokio::test]
async fn a_clients_request_id_is_kept_only_in_a_safe_shape_and_never_as_a_jobs_origin() {
    let app = spawn_app().await;
    let tenant = app.tenant("rid-org").await;
    for (sent, kept) in [
        (
            "job:route-inbound:01J00000000000000000000000".to_owned(),
            false,
        ),
        ("x".repeat(5_018), false),
        ("<script>".to_owned(), false),
        ("lb-7f3a.request_42".to_owned(), true),
    ] {
        let response = app
            .client
            .post(app.url("/api/v1/sites"))
            .bearer_auth(&tenant.token)
            .header("x-request-id", &sent)
            .json(&json!({ "kind": "building", "name": format!("Block {}", sent.len()) }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let site: Value = response.json().await.unwrap();
        fieldline::audit::seal(&app.pool).await.unwrap();
        let stored: String = sqlx::query_scalar(
            "SELECT request_id FROM audit_log WHERE action = 'sites.insert' AND entity_id = $1::uuid",
        )
        .bind(site["id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(stored, echoed);
        if kept {
            assert_eq!(stored, sent);
        } else {
            assert_ne!(stored, sent);
            assert!(
                stored.len() <= 64 && !stored.starts_with("job:"),
                "{stored}"
            );
        }
    }
}

#[tokio::test]
async fn app_sign_in_answers_a_strangers_number_exactly_as_a_caregivers() {
    let app = spawn_messaging_app(&[]).await;
    add_worker(&app, CAREGIVER, json!(["caregiver"])).await;
    let mut answers = Vec::new();
    for phone in [CAREGIVER, "+251911999998"] {
        let mut seen = Vec::new();
        // Ask for a code four times (three are allowed in ten minutes), then guess six times.
        for _ in 0..4 {
            seen.push(post_json(&app.app, "/api/v1/app/login", &json!({ "phone": phone })).await);
        }
        for _ in 0..6 {
            seen.push(
                post_json(
                    &app.app,
                    "/api/v1/app/verify",
                    &json!({ "phone": phone, "code": "000000" }),
                )
                .await,
            );
        }
        answers.push(seen);
    }
    let statuses: Vec<u16> = answers[0].iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [202, 202, 202, 429, 401, 401, 401, 401, 429, 429]);
    assert_eq!(answers[0], answers[1], "a caregiver's number is told apart");
}

#[tokio::test]
async fn holidays_are_bounded_to_what_a_calendar_can_hold() {
    let app = spawn_messaging_app(&[]).await;
    let (_, settings) = json(app.app.get(&app.tenant, "/api/v1/settings/feedback").await).await;
    let today = chrono::Utc::now().date_naive();
    let days = |count: u64, from: chrono::NaiveDate| -> Vec<String> {
        (0..count)
            .map(|n| (from + chrono::Days::new(n)).to_string())
            .collect()
    };
    let put = |holidays: Vec<String>| {
        let mut settings = settings.clone();
        settings["holidays"] = json!(holidays);
        let app = &app;
        async move {
            json(
                app.app
                    .put(&app.tenant, "/api/v1/settings/feedback", &settings)
                    .await,
            )
            .await
        }
    };
    for refused in [
        days(45_000, today),
        days(367, today),
        days(1, today + chrono::Days::new(365 * 10)),
        days(1, today - chrono::Days::new(800)),
    ] {
        let (status, body) = put(refused).await;
        assert_eq!(
            (status, error_fields(&body)),
            (422, vec!["holidays".to_owned()]),
            "{body}"
        );
    }
    let (status, body) = put(days(366, today)).await;
    assert_eq!(status, 200, "{body}");
}
