//! Caregiver visits: phone sign-in, check-in and check-out from the app and by message, and the
//! verification rules, through the real server and the fake providers.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{helpers::json, providers::*};

const CAREGIVER: &str = "+251911000401";
const OTHER_CAREGIVER: &str = "+251911000402";
/// Hana's home.
const HOME: (f64, f64) = (9.0300, 38.7500);

struct Care {
    app: MessagingApp,
    caregiver: String,
    other: String,
    patient: String,
}

async fn care() -> Care {
    let app = spawn_messaging_app(&[]).await;
    let mut ids = Vec::new();
    for (name, phone) in [("Selam", CAREGIVER), ("Tigist", OTHER_CAREGIVER)] {
        let (status, worker) = json(
            app.app
                .post(
                    &app.tenant,
                    "/api/v1/workers",
                    &json!({ "first_name": name, "last_name": "Bekele", "phone": phone,
                             "whatsapp_enabled": false, "kinds": ["caregiver"] }),
                )
                .await,
        )
        .await;
        assert_eq!(status, 201, "{worker}");
        ids.push(worker["id"].as_str().unwrap().to_owned());
    }
    let patient: Uuid = sqlx::query_scalar(
        "UPDATE patients SET latitude = $1, longitude = $2, address_line = 'Kebele 05, house 12' RETURNING id",
    )
    .bind(HOME.0)
    .bind(HOME.1)
    .fetch_one(&app.app.pool)
    .await
    .unwrap();
    Care {
        app,
        caregiver: ids[0].clone(),
        other: ids[1].clone(),
        patient: patient.to_string(),
    }
}

impl Care {
    async fn visit(&self, caregiver: &str, start_in_minutes: i64) -> String {
        let start = Utc::now() + TimeDelta::minutes(start_in_minutes);
        let (status, visit) = json(
            self.app
                .app
                .post(
                    &self.app.tenant,
                    "/api/v1/visits",
                    &json!({ "caregiver_id": caregiver, "patient_id": self.patient, "service_type": "personal_care",
                             "scheduled_start": start, "scheduled_end": start + TimeDelta::hours(1) }),
                )
                .await,
        )
        .await;
        assert_eq!(status, 201, "{visit}");
        visit["id"].as_str().unwrap().to_owned()
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self.app.app.client.post(self.app.app.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let response = self
            .app
            .app
            .client
            .get(self.app.app.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The code in the n-th sign-in SMS to `phone`, once it has been sent.
    async fn code_sent(&self, phone: &str, n: usize) -> String {
        let started = std::time::Instant::now();
        loop {
            let codes: Vec<String> = self
                .app
                .fake
                .sends()
                .iter()
                .filter(|r| r.field("To").as_deref() == Some(phone))
                .filter_map(|r| r.field("Body"))
                .filter(|b| b.contains("sign-in code"))
                .map(|b| {
                    b.split(|c: char| !c.is_ascii_digit())
                        .find(|t| t.len() == 6)
                        .expect("six digits in the message")
                        .to_owned()
                })
                .collect();
            if let Some(code) = codes.get(n - 1) {
                return code.clone();
            }
            assert!(
                started.elapsed().as_secs() < 15,
                "sign-in code {n} never reached {phone}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    async fn sign_in(&self, phone: &str) -> String {
        let (status, _) = self
            .post("/api/v1/app/login", None, &json!({ "phone": phone }))
            .await;
        assert_eq!(status, 202);
        let code = self.code_sent(phone, 1).await;
        let (status, session) = self
            .post(
                "/api/v1/app/verify",
                None,
                &json!({ "phone": phone, "code": code }),
            )
            .await;
        assert_eq!(status, 200, "{session}");
        session["token"].as_str().unwrap().to_owned()
    }
}

fn reading(lat: f64, lon: f64, accuracy: f64, at: DateTime<Utc>, id: &str) -> Value {
    json!({ "latitude": lat, "longitude": lon, "accuracy_m": accuracy, "device_time": at, "client_event_id": id })
}

async fn sms_count(c: &Care, phone: &str) -> usize {
    c.app
        .fake
        .sends()
        .iter()
        .filter(|r| r.field("To").as_deref() == Some(phone))
        .count()
}

#[tokio::test]
async fn caregivers_sign_in_by_phone_code_and_coordinators_can_sign_them_out() {
    let c = care().await;
    // Unknown numbers get the same answer and no message; malformed ones are told what to fix.
    let (status, body) = c
        .post(
            "/api/v1/app/login",
            None,
            &json!({ "phone": "+251911999999" }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = c
        .post("/api/v1/app/login", None, &json!({ "phone": "0911" }))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["details"][0]["field"], "phone");

    let (status, _) = c
        .post("/api/v1/app/login", None, &json!({ "phone": CAREGIVER }))
        .await;
    assert_eq!(status, 202);
    let code = c.code_sent(CAREGIVER, 1).await;
    assert_eq!(sms_count(&c, "+251911999999").await, 0);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, body) = c
        .post(
            "/api/v1/app/verify",
            None,
            &json!({ "phone": CAREGIVER, "code": wrong }),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["message"], "wrong code: 4 attempts left");
    let (status, session) = c
        .post(
            "/api/v1/app/verify",
            None,
            &json!({ "phone": CAREGIVER, "code": code }),
        )
        .await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["worker_id"], c.caregiver.as_str());
    let token = session["token"].as_str().unwrap().to_owned();
    // Used once: the same code does not sign in twice.
    let (status, _) = c
        .post(
            "/api/v1/app/verify",
            None,
            &json!({ "phone": CAREGIVER, "code": code }),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        c.app
            .count("SELECT count(*) FROM app_tokens WHERE token_hash IS NOT NULL AND length(token_hash) = 32")
            .await,
        1,
        "only the hash is kept"
    );

    // The token shows Selam's visits, with the patient's name, address and position.
    let visit = c.visit(&c.caregiver, 5).await;
    c.visit(&c.other, 5).await;
    let (status, mine) = c.get("/api/v1/app/visits", &token).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine[0]["id"], visit.as_str());
    assert_eq!(mine[0]["patient_name"], "Hana Tesfaye");
    assert_eq!(mine[0]["address"], "Kebele 05, house 12");
    assert_eq!(mine[0]["latitude"], HOME.0);

    // Five wrong codes and the code is dead, even the right one.
    let (status, _) = c
        .post("/api/v1/app/login", None, &json!({ "phone": CAREGIVER }))
        .await;
    assert_eq!(status, 202);
    let second = c.code_sent(CAREGIVER, 2).await;
    let wrong = if second == "000000" {
        "111111"
    } else {
        "000000"
    };
    for left in (0..5).rev() {
        let (status, body) = c
            .post(
                "/api/v1/app/verify",
                None,
                &json!({ "phone": CAREGIVER, "code": wrong }),
            )
            .await;
        if left > 0 {
            assert_eq!(
                (status, body["error"]["message"].as_str().unwrap()),
                (401, format!("wrong code: {left} attempts left").as_str())
            );
        } else {
            assert_eq!(status, 429, "{body}");
        }
    }
    let (status, _) = c
        .post(
            "/api/v1/app/verify",
            None,
            &json!({ "phone": CAREGIVER, "code": second }),
        )
        .await;
    assert_eq!(status, 429);

    // An expired code is refused.
    let (status, _) = c
        .post("/api/v1/app/login", None, &json!({ "phone": CAREGIVER }))
        .await;
    assert_eq!(status, 202);
    let third = c.code_sent(CAREGIVER, 3).await;
    sqlx::query("UPDATE app_login_codes SET expires_at = now() - interval '1 second' WHERE consumed_at IS NULL")
        .execute(&c.app.app.pool)
        .await
        .unwrap();
    let (status, body) = c
        .post(
            "/api/v1/app/verify",
            None,
            &json!({ "phone": CAREGIVER, "code": third }),
        )
        .await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    // A fourth code within ten minutes is refused.
    let (status, body) = c
        .post("/api/v1/app/login", None, &json!({ "phone": CAREGIVER }))
        .await;
    assert_eq!(status, 429, "{body}");

    // A coordinator signs Selam's phone out; the token stops working, and another tenant cannot.
    let other_tenant = c.app.app.tenant("other-care").await;
    let (status, _) = json(
        c.app
            .app
            .post(
                &other_tenant,
                &format!("/api/v1/workers/{}/app-tokens/revoke", c.caregiver),
                &json!({}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(c.get("/api/v1/app/visits", &token).await.0, 200);
    let (status, revoked) = json(
        c.app
            .app
            .post(
                &c.app.tenant,
                &format!("/api/v1/workers/{}/app-tokens/revoke", c.caregiver),
                &json!({}),
            )
            .await,
    )
    .await;
    assert_eq!((status, revoked["revoked"].as_u64()), (200, Some(1)));
    let (status, body) = c.get("/api/v1/app/visits", &token).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    // Guessing numbers from one address is cut off too, known numbers or not.
    let mut refused = None;
    for n in 0..25 {
        let (status, body) = c
            .post(
                "/api/v1/app/login",
                None,
                &json!({ "phone": format!("+2519119990{n:02}") }),
            )
            .await;
        if status == 429 {
            refused = Some((n, body));
            break;
        }
    }
    let (n, body) = refused.expect("the address is rate-limited");
    assert!(n < 20, "20 requests in ten minutes at most: refused at {n}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("from this address"),
        "{body}"
    );
    // The coordinators' API token is not an app token, and the reverse.
    assert_eq!(
        c.get("/api/v1/app/visits", &c.app.tenant.token).await.0,
        401
    );
}

#[tokio::test]
async fn check_in_and_out_from_the_app_with_retries_and_refusals() {
    let c = care().await;
    let token = c.sign_in(CAREGIVER).await;
    let visit = c.visit(&c.caregiver, 5).await;
    let now = Utc::now();
    let path = format!("/api/v1/app/visits/{visit}/check-in");

    // About 110 m from the door, 15 m accuracy: verified.
    let first = reading(9.0310, HOME.1, 15.0, now, "ev-1");
    let (status, result) = c.post(&path, Some(&token), &first).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["verified"], true);
    assert_eq!(result["exceptions"], json!([]));
    assert_eq!(result["patient_name"], "Hana Tesfaye");
    let distance = result["distance_m"].as_f64().unwrap();
    assert!((100.0..120.0).contains(&distance), "{distance}");
    // The phone retries: same answer, nothing new.
    let (status, again) = c.post(&path, Some(&token), &first).await;
    assert_eq!((status, &again), (200, &result));
    assert_eq!(c.app.count("SELECT count(*) FROM visit_events").await, 1);
    // A second, different check-in is refused.
    let (status, body) = c
        .post(
            &path,
            Some(&token),
            &reading(9.0310, HOME.1, 15.0, now, "ev-2"),
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already checked in")
    );

    // Check-out: implausible vitals are refused field by field; then notes and vitals are kept.
    let out = format!("/api/v1/app/visits/{visit}/check-out");
    let mut body = reading(9.0301, HOME.1, 10.0, now + TimeDelta::seconds(5), "ev-3");
    body["notes"] = json!("Bathed, lunch, meds taken");
    body["vitals"] =
        json!({ "systolic_mmhg": 120, "diastolic_mmhg": 80, "pulse_bpm": 400, "spo2_percent": 97 });
    let (status, refused) = c.post(&out, Some(&token), &body).await;
    assert_eq!(status, 422);
    assert_eq!(refused["error"]["details"][0]["field"], "vitals.pulse_bpm");
    body["vitals"]["pulse_bpm"] = json!(72);
    body["vitals"]["temperature_c"] = json!(36.8);
    let (status, done) = c.post(&out, Some(&token), &body).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        (done["status"].as_str(), done["verified"].as_bool()),
        (Some("completed"), Some(true))
    );
    let (notes, pulse): (String, i32) =
        sqlx::query_as("SELECT notes, (vitals->>'pulse_bpm')::int FROM visits WHERE id = $1::uuid")
            .bind(&visit)
            .fetch_one(&c.app.app.pool)
            .await
            .unwrap();
    assert_eq!((notes.as_str(), pulse), ("Bathed, lunch, meds taken", 72));
    let (status, _) = c
        .post(
            &out,
            Some(&token),
            &reading(9.0301, HOME.1, 10.0, now, "ev-4"),
        )
        .await;
    assert_eq!(status, 409, "a second check-out");

    // Check-out before check-in; a cancelled visit; another caregiver's visit; a bad position.
    let later = c.visit(&c.caregiver, 120).await;
    let (status, body) = c
        .post(
            &format!("/api/v1/app/visits/{later}/check-out"),
            Some(&token),
            &reading(HOME.0, HOME.1, 10.0, now, "ev-5"),
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("check in first")
    );
    sqlx::query("UPDATE visits SET status = 'cancelled' WHERE id = $1::uuid")
        .bind(&later)
        .execute(&c.app.app.pool)
        .await
        .unwrap();
    let (status, body) = c
        .post(
            &format!("/api/v1/app/visits/{later}/check-in"),
            Some(&token),
            &reading(HOME.0, HOME.1, 10.0, now, "ev-6"),
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cancelled")
    );
    let theirs = c.visit(&c.other, 5).await;
    let theirs_path = format!("/api/v1/app/visits/{theirs}/check-in");
    let (status, body) = c
        .post(
            &theirs_path,
            Some(&token),
            &reading(HOME.0, HOME.1, 10.0, now, "ev-7"),
        )
        .await;
    assert_eq!(status, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another caregiver")
    );
    let (status, body) = c
        .post(
            &theirs_path,
            Some(&token),
            &reading(91.0, HOME.1, 10.0, now, "ev-8"),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["details"][0]["field"], "latitude");
    // Standing in is only for caregivers the organisation allows to.
    let mut covering = reading(HOME.0, HOME.1, 10.0, now, "ev-9");
    covering["covering"] = json!(true);
    let (status, body) = c.post(&theirs_path, Some(&token), &covering).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not set up to stand in")
    );
    let (status, allowed) = json(
        c.app
            .app
            .patch(
                &c.app.tenant,
                &format!("/api/v1/workers/{}", c.caregiver),
                &json!({ "may_cover": true }),
            )
            .await,
    )
    .await;
    assert_eq!((status, &allowed["may_cover"]), (200, &json!(true)));
    // Then it is possible, and is an exception for the coordinators.
    let (status, result) = c.post(&theirs_path, Some(&token), &covering).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["exceptions"], json!(["wrong_caregiver"]));
    assert_eq!(result["verified"], true);
    // Another organisation's visit does not exist for this caregiver.
    let (status, _) = c
        .post(
            &format!("/api/v1/app/visits/{}/check-in", Uuid::now_v7()),
            Some(&token),
            &reading(HOME.0, HOME.1, 10.0, now, "ev-10"),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_client_event_id_counts_once_per_visit_not_across_visits() {
    let c = care().await;
    let token = c.sign_in(CAREGIVER).await;
    let now = Utc::now();
    let first = c.visit(&c.caregiver, 5).await;
    let second = c.visit(&c.caregiver, 90).await;
    let check_in = |visit: &str| format!("/api/v1/app/visits/{visit}/check-in");
    let (status, one) = c
        .post(
            &check_in(&first),
            Some(&token),
            &reading(HOME.0, HOME.1, 10.0, now, "same-id"),
        )
        .await;
    assert_eq!(status, 200, "{one}");
    // The phone reuses its event id on another visit: that is a new check-in, not a replay.
    let (status, two) = c
        .post(
            &check_in(&second),
            Some(&token),
            &reading(HOME.0, HOME.1, 10.0, now, "same-id"),
        )
        .await;
    assert_eq!(status, 200, "{two}");
    assert_ne!(one["visit_id"], two["visit_id"], "{one} {two}");
    let checked_in: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM visits WHERE status = 'in_progress' AND id IN ($1::uuid, $2::uuid)",
    )
    .bind(&first)
    .bind(&second)
    .fetch_one(&c.app.app.pool)
    .await
    .unwrap();
    assert_eq!(checked_in, 2);
    // A retry on the same visit is still the first answer.
    let (status, again) = c
        .post(
            &check_in(&first),
            Some(&token),
            &reading(HOME.0, HOME.1, 10.0, now, "same-id"),
        )
        .await;
    assert_eq!((status, &again), (200, &one));
}

#[tokio::test]
async fn readings_that_break_the_rules_raise_exceptions() {
    let c = care().await;
    let token = c.sign_in(CAREGIVER).await;
    let now = Utc::now();
    let check_in = async |visit: &str, body: Value| {
        let (status, result) = c
            .post(
                &format!("/api/v1/app/visits/{visit}/check-in"),
                Some(&token),
                &body,
            )
            .await;
        assert_eq!(status, 200, "{result}");
        result
    };
    let codes = |r: &Value| -> Vec<String> {
        r["exceptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_owned())
            .collect()
    };

    // Outside the geofence: about 2.2 km away. Readings are hours apart: no journey question.
    let v = c.visit(&c.caregiver, 0).await;
    let r = check_in(
        &v,
        reading(9.0500, HOME.1, 20.0, now - TimeDelta::hours(6), "far"),
    )
    .await;
    // The device time is six hours old: the reading is kept at that time and flagged.
    assert_eq!(
        codes(&r),
        ["device_time_skew", "outside_geofence", "early_check_in"]
    );
    assert_eq!(r["verified"], false);
    assert!((2_100.0..2_300.0).contains(&r["distance_m"].as_f64().unwrap()));

    // Poor accuracy at the door.
    let v = c.visit(&c.caregiver, 0).await;
    let r = check_in(
        &v,
        reading(HOME.0, HOME.1, 800.0, now - TimeDelta::hours(3), "vague"),
    )
    .await;
    assert!(codes(&r).contains(&"poor_accuracy".to_owned()), "{r}");
    assert_eq!(r["verified"], false);

    // Read 90 minutes ago for a visit 40 minutes ahead: early (and a late-sent reading); 40
    // minutes after the start: late.
    let v = c.visit(&c.caregiver, 40).await;
    let r = check_in(
        &v,
        reading(HOME.0, HOME.1, 10.0, now - TimeDelta::minutes(90), "early"),
    )
    .await;
    assert_eq!(codes(&r), ["device_time_skew", "early_check_in"]);
    let v = c.visit(&c.caregiver, -40).await;
    let r = check_in(&v, reading(HOME.0, HOME.1, 10.0, now, "late")).await;
    assert_eq!(codes(&r), ["late_check_in"]);
    assert_eq!(r["verified"], true);

    // An offline reading sent four minutes late keeps its own time, with no exception.
    let v = c.visit(&c.caregiver, -4).await;
    let taken = now - TimeDelta::minutes(4);
    let r = check_in(&v, reading(HOME.0, HOME.1, 10.0, taken, "offline")).await;
    assert_eq!(codes(&r), Vec::<String>::new());
    let at: DateTime<Utc> = serde_json::from_value(r["at"].clone()).unwrap();
    assert!((at - taken).num_milliseconds().abs() < 5, "{at} vs {taken}");

    // Then 11 km away one minute later: no car does that.
    let v = c.visit(&c.caregiver, -3).await;
    let r = check_in(
        &v,
        reading(9.1300, HOME.1, 10.0, taken + TimeDelta::minutes(1), "jump"),
    )
    .await;
    assert!(codes(&r).contains(&"impossible_journey".to_owned()), "{r}");

    // Every exception is stored with its detail, for the coordinators.
    assert!(
        c.app
            .count("SELECT count(*) FROM visit_exceptions WHERE code = 'impossible_journey' AND detail LIKE '%km/h%'")
            .await
            == 1
    );
    let early = c
        .app
        .count("SELECT count(*) FROM visit_exceptions WHERE code = 'early_check_in'")
        .await;
    assert_eq!(early, 3);
}

#[tokio::test]
async fn caregivers_check_in_by_whatsapp_location_and_out_by_sms_words() {
    let c = care().await;
    // Selam's "in" with no visit coming up.
    let sms = |n: u32, text: &str| {
        fixture("twilio/sms_text.form")
            .replace("%2B251911000101", &urlencode(CAREGIVER))
            .replace("On+my+way%21", &urlencode(text))
            .replace("SM10000000000000000000000000000001", &format!("SM3{n:031}"))
    };
    c.app
        .twilio("/webhooks/twilio/messages", &sms(1, "in"))
        .await;
    let none = c
        .app
        .fake
        .wait_for("no visit", |r| {
            r.field("To").as_deref() == Some(CAREGIVER)
                && r.field("Body").is_some_and(|b| b.contains("no visit"))
        })
        .await;
    assert!(none.field("Body").unwrap().starts_with("You have no visit"));

    let visit = c.visit(&c.caregiver, 5).await;
    // A shared WhatsApp location at the door checks in.
    let location = fixture("meta/location.json")
        .replace("251911000101", &CAREGIVER[1..])
        .replace("9.0108", &HOME.0.to_string())
        .replace("38.7613", &HOME.1.to_string());
    assert_eq!(c.app.meta(&location).await.status(), 200);
    assert!(
        c.app
            .eventually(&format!("SELECT status = 'in_progress' AND check_in_verified AND check_in_method = 'whatsapp' FROM visits WHERE id = '{visit}'"))
            .await
    );
    let confirmed: String = sqlx::query_scalar(
        "SELECT body FROM messages WHERE template_key = 'visit_checked_in_verified'",
    )
    .fetch_one(&c.app.app.pool)
    .await
    .unwrap();
    assert!(
        confirmed.starts_with("Checked in at Hana Tesfaye's at "),
        "{confirmed}"
    );
    // The message and the reply are on the visit's record (so is the reminder, when its timer
    // ran before the check-in: that race is not what this test is about).
    let filed: Vec<String> = sqlx::query_scalar(
        "SELECT direction || ':' || COALESCE(template_key, kind) FROM messages
         WHERE related_entity_type = 'visit' AND related_entity_id = $1::uuid
           AND template_key IS DISTINCT FROM 'visit_reminder'",
    )
    .bind(&visit)
    .fetch_all(&c.app.app.pool)
    .await
    .unwrap();
    let mut filed = filed;
    filed.sort();
    assert_eq!(
        filed,
        ["inbound:location", "outbound:visit_checked_in_verified",]
    );

    // "out" by SMS: checked out, unverified (no position), and said so.
    c.app
        .twilio("/webhooks/twilio/messages", &sms(2, "Out"))
        .await;
    assert!(
        c.app
            .eventually(&format!("SELECT status = 'completed' AND NOT check_out_verified AND check_out_method = 'sms' FROM visits WHERE id = '{visit}'"))
            .await
    );
    c.app
        .fake
        .wait_for("the check-out reply", |r| {
            r.field("To").as_deref() == Some(CAREGIVER)
                && r.field("Body")
                    .is_some_and(|b| b.contains("Position NOT verified"))
        })
        .await;
    assert_eq!(
        c.app
            .count(&format!("SELECT count(*) FROM visit_exceptions WHERE visit_id = '{visit}' AND code = 'no_position'"))
            .await,
        1
    );
    // The same webhook again changes nothing: dropped at the door, with no routing job that
    // could act later.
    let routing_jobs = "SELECT count(*) FROM apalis.jobs WHERE job_type = 'route-inbound'";
    let before = c.app.count(routing_jobs).await;
    c.app
        .twilio("/webhooks/twilio/messages", &sms(2, "Out"))
        .await;
    assert_eq!(c.app.count(routing_jobs).await, before);
    assert_eq!(c.app.count("SELECT count(*) FROM visit_events").await, 2);

    // The next visit: "out" before "in" is refused in words the caregiver can act on (not the
    // API's, and the routing job does not fail over it); "in" by SMS checks in, unverified; a
    // second "in" is refused; the Amharic word checks out.
    let next = c.visit(&c.caregiver, 10).await;
    c.app
        .twilio("/webhooks/twilio/messages", &sms(5, "out"))
        .await;
    c.app
        .fake
        .wait_for("the refusal", |r| {
            r.field("Body")
                .is_some_and(|b| b.contains("not checked in to this visit yet. Reply IN"))
        })
        .await;
    c.app
        .twilio("/webhooks/twilio/messages", &sms(3, "In"))
        .await;
    assert!(
        c.app
            .eventually(&format!("SELECT status = 'in_progress' AND NOT check_in_verified AND check_in_method = 'sms' FROM visits WHERE id = '{next}'"))
            .await
    );
    c.app
        .twilio("/webhooks/twilio/messages", &sms(6, "in"))
        .await;
    c.app
        .fake
        .wait_for("the second refusal", |r| {
            r.field("Body")
                .is_some_and(|b| b.contains("already checked in to this visit. Reply OUT"))
        })
        .await;
    assert!(
        c.app
            .eventually("SELECT count(*) = 0 FROM apalis.jobs WHERE job_type = 'route-inbound' AND status <> 'Done'")
            .await,
        "no routing job failed over a refusal"
    );
    c.app
        .twilio("/webhooks/twilio/messages", &sms(4, "ወጥቻለሁ"))
        .await;
    assert!(
        c.app
            .eventually(&format!(
                "SELECT status = 'completed' FROM visits WHERE id = '{next}'"
            ))
            .await
    );
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn recurring_visits_are_generated_ahead_across_daylight_saving_without_duplicates() {
    let c = care().await;
    sqlx::query("UPDATE tenants SET time_zone = 'Europe/London'")
        .execute(&c.app.app.pool)
        .await
        .unwrap();
    // Every day at 08:00 London time, over the night the clocks go forward (28 March 2027).
    let (status, assignment) = json(
        c.app
            .app
            .post(
                &c.app.tenant,
                "/api/v1/assignments",
                &json!({ "caregiver_id": c.caregiver, "patient_id": c.patient, "service_type": "personal_care",
                         "starts_on": "2027-03-25", "ends_on": "2027-04-01", "shift_start": "08:00", "shift_end": "09:00",
                         "days_of_week": [1, 2, 3, 4, 5, 6, 7] }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{assignment}");
    let starts: Vec<DateTime<Utc>> =
        sqlx::query_scalar("SELECT scheduled_start FROM visits ORDER BY scheduled_start")
            .fetch_all(&c.app.app.pool)
            .await
            .unwrap();
    assert_eq!(starts.len(), 8);
    assert_eq!(starts[2].to_rfc3339(), "2027-03-27T08:00:00+00:00", "GMT");
    assert_eq!(
        starts[3].to_rfc3339(),
        "2027-03-28T07:00:00+00:00",
        "BST: still 08:00 in London"
    );
    let (_, day) = json(
        c.app
            .app
            .get(&c.app.tenant, "/api/v1/visits?date=2027-03-28")
            .await,
    )
    .await;
    assert_eq!(day.as_array().unwrap().len(), 1, "{day}");

    // The recurring sweep runs at start and books its next run an hour on; that run is pulled
    // forward. Each run commits its visits together with the booking of the next, so a third
    // booking means the second run is done: and it made nothing twice.
    let booked_ahead = "SELECT count(*) = 1 FROM apalis.jobs WHERE job_type = 'visit-schedule'
                          AND status = 'Pending' AND run_at > now() + interval '30 minutes'";
    assert!(c.app.eventually(booked_ahead).await);
    sqlx::query("UPDATE apalis.jobs SET run_at = now() - interval '1 second' WHERE job_type = 'visit-schedule' AND status = 'Pending'")
        .execute(&c.app.app.pool)
        .await
        .unwrap();
    assert!(
        c.app
            .eventually("SELECT count(*) = 3 FROM apalis.jobs WHERE job_type = 'visit-schedule'")
            .await
    );
    assert_eq!(c.app.count("SELECT count(*) FROM visits").await, 8);

    // Refused with what to fix.
    let (status, body) = json(
        c.app
            .app
            .post(
                &c.app.tenant,
                "/api/v1/assignments",
                &json!({ "caregiver_id": c.caregiver, "patient_id": c.patient, "service_type": "nursing",
                         "starts_on": "2027-03-25", "shift_start": "8am", "shift_end": "09:00", "days_of_week": [] }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["shift_start", "days_of_week"]);

    // Weekends only: the weekday visits go (Selam is told of each); Saturday and Sunday stay.
    let id = assignment["id"].as_str().unwrap();
    let change = async |body: Value| {
        json(
            c.app
                .app
                .post(
                    &c.app.tenant,
                    &format!("/api/v1/assignments/{id}/change"),
                    &body,
                )
                .await,
        )
        .await
    };
    let (status, changed) = change(json!({ "days_of_week": [6, 7] })).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(c.app.count("SELECT count(*) FROM visits").await, 2);
    assert_eq!(
        c.app
            .count("SELECT count(*) FROM messages WHERE template_key = 'visit_cancelled'")
            .await,
        6
    );
    // An hour later: the two move, in local time on both sides of the change.
    let (status, _) = change(json!({ "shift_start": "09:00", "shift_end": "10:00" })).await;
    assert_eq!(status, 200);
    let starts: Vec<DateTime<Utc>> =
        sqlx::query_scalar("SELECT scheduled_start FROM visits ORDER BY scheduled_start")
            .fetch_all(&c.app.app.pool)
            .await
            .unwrap();
    let starts: Vec<String> = starts.iter().map(|s| s.to_rfc3339()).collect();
    assert_eq!(
        starts,
        ["2027-03-27T09:00:00+00:00", "2027-03-28T08:00:00+00:00"]
    );
    assert_eq!(
        c.app
            .count("SELECT count(*) FROM messages WHERE template_key = 'visit_assigned_to_you'")
            .await,
        2
    );
    let (status, body) = change(json!({ "days_of_week": [8] })).await;
    assert_eq!(
        (status, body["error"]["details"][0]["field"].as_str()),
        (422, Some("days_of_week"))
    );

    // Reassigned to Tigist: every visit to come moves and both caregivers hear; then cancelled.
    let (status, moved) = json(
        c.app
            .app
            .post(
                &c.app.tenant,
                &format!("/api/v1/assignments/{id}/reassign"),
                &json!({ "caregiver_id": c.other }),
            )
            .await,
    )
    .await;
    assert_eq!((status, moved["visits"].as_u64()), (200, Some(2)));
    assert_eq!(
        c.app
            .count(&format!(
                "SELECT count(*) FROM visits WHERE caregiver_id = '{}'",
                c.other
            ))
            .await,
        2
    );
    assert_eq!(
        c.app
            .count("SELECT count(*) FROM messages WHERE template_key = 'visit_reassigned_away'")
            .await,
        2
    );
    assert_eq!(
        c.app
            .count("SELECT count(*) FROM messages WHERE template_key = 'visit_assigned_to_you'")
            .await,
        4
    );
    let (status, cancelled) = json(
        c.app
            .app
            .post(
                &c.app.tenant,
                &format!("/api/v1/assignments/{id}/cancel"),
                &json!({ "reason": "moved to a care home" }),
            )
            .await,
    )
    .await;
    assert_eq!((status, cancelled["visits"].as_u64()), (200, Some(2)));
    assert_eq!(c.app.count("SELECT count(*) FROM visits WHERE status = 'cancelled' AND cancelled_reason = 'moved to a care home'").await, 2);
    c.app
        .fake
        .wait_for("Tigist told of a cancellation", |r| {
            r.field("To").as_deref() == Some(OTHER_CAREGIVER)
                && r.field("Body").is_some_and(|b| {
                    b.starts_with("Cancelled: your visit to Hana Tesfaye on Sun 28 Mar 09:00")
                })
        })
        .await;
    // A cancelled assignment makes nothing more and cannot change.
    assert_eq!(c.app.count("SELECT count(*) FROM visits").await, 2);
    let (status, _) = change(json!({ "days_of_week": [1] })).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn timers_remind_nudge_mark_late_and_missed_and_ask_for_the_check_out() {
    let c = care().await;
    c.app
        .app
        .user(&c.app.tenant, "liya@care.example", "correct horse battery")
        .await;
    sqlx::query("UPDATE users SET phone = '+251911000900'")
        .execute(&c.app.app.pool)
        .await
        .unwrap();
    let token = c.sign_in(CAREGIVER).await;
    // Tigist has opted out of SMS: she is not nudged, but coordinators still hear she is late.
    let stop =
        fixture("twilio/sms_stop.form").replace("%2B251911000201", &urlencode(OTHER_CAREGIVER));
    c.app.twilio("/webhooks/twilio/messages", &stop).await;
    assert!(
        c.app
            .eventually(&format!("SELECT count(*) = 1 FROM opt_outs o JOIN contacts c ON c.id = o.contact_id WHERE c.phone = '{OTHER_CAREGIVER}'"))
            .await
    );

    let now = Utc::now();
    let visit = async |caregiver: &str, start: DateTime<Utc>, end: DateTime<Utc>| -> String {
        let (status, v) = json(
            c.app
                .app
                .post(
                    &c.app.tenant,
                    "/api/v1/visits",
                    &json!({ "caregiver_id": caregiver, "patient_id": c.patient, "service_type": "personal_care",
                             "scheduled_start": start, "scheduled_end": end }),
                )
                .await,
        )
        .await;
        assert_eq!(status, 201, "{v}");
        v["id"].as_str().unwrap().to_owned()
    };
    // Starts in an hour and three seconds: reminded in three seconds.
    let soon = visit(
        &c.caregiver,
        now + TimeDelta::minutes(60) + TimeDelta::seconds(3),
        now + TimeDelta::minutes(120),
    )
    .await;
    // Started nearly half an hour ago, nobody came: nudged now, late in 3 s, missed at its end in 8 s.
    let start = now - TimeDelta::minutes(30) + TimeDelta::seconds(3);
    let absent = visit(&c.caregiver, start, now + TimeDelta::seconds(8)).await;
    let tigist = visit(&c.other, start, now + TimeDelta::seconds(8)).await;
    // Checked in 20 minutes after its start; then its end is moved to nearly fifteen minutes ago
    // and its timers wound forward (rather than waited for): asked to check out.
    let overrun = visit(
        &c.caregiver,
        now - TimeDelta::minutes(20),
        now + TimeDelta::hours(1),
    )
    .await;
    let (status, _) = c
        .post(
            &format!("/api/v1/app/visits/{overrun}/check-in"),
            Some(&token),
            &reading(HOME.0, HOME.1, 10.0, now, "in-1"),
        )
        .await;
    assert_eq!(status, 200);
    sqlx::query("UPDATE visits SET scheduled_end = now() - interval '15 minutes' + interval '3 seconds' WHERE id = $1::uuid")
        .bind(&overrun)
        .execute(&c.app.app.pool)
        .await
        .unwrap();
    // Every pending visit timer runs now; those not yet due wait again for their own time.
    sqlx::query("UPDATE apalis.jobs SET run_at = now() - interval '1 second' WHERE job_type = 'visit-timers' AND status = 'Pending'")
        .execute(&c.app.app.pool)
        .await
        .unwrap();

    let sent_to = async |visit: &str, key: &str| -> i64 {
        c.app
            .count(&format!("SELECT count(*) FROM messages WHERE related_entity_id = '{visit}' AND template_key = '{key}'"))
            .await
    };
    assert!(c.app.eventually(&format!("SELECT count(*) = 1 FROM messages WHERE related_entity_id = '{soon}' AND template_key = 'visit_reminder'")).await);
    assert!(
        c.app
            .eventually(&format!(
                "SELECT late_at IS NOT NULL FROM visits WHERE id = '{absent}'"
            ))
            .await
    );
    assert_eq!(sent_to(&absent, "visit_nudge").await, 1);
    assert!(c.app.eventually(&format!("SELECT count(*) = 1 FROM coordinator_alerts WHERE kind = 'visit_late' AND visit_id = '{absent}'")).await);
    c.app
        .fake
        .wait_for("the coordinator hears", |r| {
            r.field("To").as_deref() == Some("+251911000900")
                && r.field("Body").is_some_and(|b| {
                    b.contains("Selam Bekele has not checked in at Hana Tesfaye's")
                })
        })
        .await;
    assert!(
        c.app
            .eventually(&format!(
                "SELECT status = 'missed' FROM visits WHERE id = '{absent}'"
            ))
            .await
    );
    assert!(
        c.app
            .eventually(&format!(
                "SELECT status = 'missed' AND late_at IS NOT NULL FROM visits WHERE id = '{tigist}'"
            ))
            .await
    );
    assert_eq!(
        sent_to(&tigist, "visit_nudge").await,
        0,
        "opted out: not nudged"
    );
    assert!(
        c.app
            .eventually(&format!(
                "SELECT count(*) = 1 FROM coordinator_alerts WHERE visit_id = '{tigist}'"
            ))
            .await
    );
    assert!(c.app.eventually(&format!("SELECT count(*) = 1 FROM messages WHERE related_entity_id = '{overrun}' AND template_key = 'visit_check_out_reminder'")).await);
    let codes: Vec<(String, String)> = sqlx::query_as(
        "SELECT v.id::text, e.code FROM visit_exceptions e JOIN visits v ON v.id = e.visit_id ORDER BY e.created_at, e.code",
    )
    .fetch_all(&c.app.app.pool)
    .await
    .unwrap();
    let of = |id: &str| -> Vec<&str> {
        codes
            .iter()
            .filter(|(v, _)| v == id)
            .map(|(_, code)| code.as_str())
            .collect()
    };
    assert_eq!(of(&absent), ["late", "missed"]);
    assert_eq!(of(&overrun), ["late_check_in", "no_check_out"]);
    assert_eq!(of(&soon), Vec::<&str>::new());
    // The reminded visit did not get nudged: its start has not come.
    assert_eq!(sent_to(&soon, "visit_nudge").await, 0);
}

#[tokio::test]
async fn exceptions_are_resolved_times_corrected_with_their_originals_and_visits_exported() {
    let c = care().await;
    let token = c.sign_in(CAREGIVER).await;
    let now = Utc::now();
    // A check-in 2 km away: an exception to resolve.
    let visit = c.visit(&c.caregiver, 5).await;
    let (status, _) = c
        .post(
            &format!("/api/v1/app/visits/{visit}/check-in"),
            Some(&token),
            &reading(9.0500, HOME.1, 20.0, now, "far-in"),
        )
        .await;
    assert_eq!(status, 200);
    let (status, queue) = json(
        c.app
            .app
            .get(&c.app.tenant, "/api/v1/visit-exceptions")
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(queue.as_array().unwrap().len(), 1, "{queue}");
    assert_eq!(queue[0]["code"], "outside_geofence");
    assert_eq!(queue[0]["caregiver_name"], "Selam Bekele");
    let exception = queue[0]["id"].as_str().unwrap().to_owned();
    let resolve = format!("/api/v1/visit-exceptions/{exception}/resolve");
    let (status, body) = json(
        c.app
            .app
            .post(
                &c.app.tenant,
                &resolve,
                &json!({ "resolution_code": "because", "note": "" }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["resolution_code", "note"]);
    // Another organisation cannot see or resolve it.
    let other = c.app.app.tenant("other-care").await;
    let (_, theirs) = json(c.app.app.get(&other, "/api/v1/visit-exceptions").await).await;
    assert_eq!(theirs, json!([]));
    let refused = c
        .app
        .app
        .post(
            &other,
            &resolve,
            &json!({ "resolution_code": "gps_problem", "note": "x" }),
        )
        .await;
    assert_eq!(refused.status(), 404);
    let done = c
        .app
        .app
        .post(&c.app.tenant, &resolve, &json!({ "resolution_code": "confirmed_with_patient", "note": "Hana confirms Selam came at 10:05" }))
        .await;
    assert_eq!(done.status(), 204);
    let (_, open) = json(
        c.app
            .app
            .get(&c.app.tenant, "/api/v1/visit-exceptions")
            .await,
    )
    .await;
    assert_eq!(open, json!([]));
    let again = c
        .app
        .app
        .post(
            &c.app.tenant,
            &resolve,
            &json!({ "resolution_code": "other", "note": "twice" }),
        )
        .await;
    assert_eq!(again.status(), 409);

    // The check-out was forgotten: a coordinator sets both times by hand, with a reason.
    let check_in = now - TimeDelta::minutes(50);
    let check_out = now - TimeDelta::minutes(5);
    let (status, corrected) = json(
        c.app
            .app
            .post(
                &c.app.tenant,
                &format!("/api/v1/visits/{visit}/correct"),
                &json!({ "check_in_at": check_in, "check_out_at": check_out, "reason": "Selam's phone died; times from the patient's log" }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{corrected}");
    assert_eq!(corrected["status"], "completed");
    assert_eq!(corrected["manually_edited"], true);
    let (before, after, actor): (Value, Value, String) = sqlx::query_as(
        "SELECT before, after || jsonb_build_object('reason', reason), actor_kind FROM audit_log WHERE action = 'visits.update' AND reason IS NOT NULL AND entity_id = $1::uuid",
    )
    .bind(&visit)
    .fetch_one(&c.app.app.pool)
    .await
    .unwrap();
    assert_eq!(actor, "api_token");
    assert_eq!(before["status"], "in_progress");
    assert_eq!(before["check_out_at"], Value::Null);
    assert!(
        before["check_in_at"].is_string(),
        "the original time is kept: {before}"
    );
    assert_eq!(after["check_in_method"], "manual");
    assert_eq!(
        after["reason"],
        "Selam's phone died; times from the patient's log"
    );
    let (status, body) = json(
        c.app
            .app
            .post(
                &c.app.tenant,
                &format!("/api/v1/visits/{visit}/correct"),
                &json!({ "check_out_at": check_in - TimeDelta::minutes(1), "reason": "x" }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "check_out_at");
    // A check-in given too does not let a check-out in the future through.
    let (status, body) = json(
        c.app
            .app
            .post(
                &c.app.tenant,
                &format!("/api/v1/visits/{visit}/correct"),
                &json!({ "check_in_at": check_in, "check_out_at": now + TimeDelta::hours(2), "reason": "x" }),
            )
            .await,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(crate::helpers::error_fields(&body), ["check_out_at"]);

    // The export: one row per visit with the six elements, the verdict, the codes, the flag.
    let today = (now).date_naive();
    let path = format!(
        "/api/v1/visits/export?from={}&to={}",
        today - TimeDelta::days(1),
        today + TimeDelta::days(1)
    );
    let (status, rows) = json(
        c.app
            .app
            .get(&c.app.tenant, &format!("{path}&format=json"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(rows.as_array().unwrap().len(), 1);
    let row = &rows[0];
    assert_eq!(row["service_type"], "personal_care");
    assert_eq!(row["patient_name"], "Hana Tesfaye");
    assert_eq!(row["caregiver_name"], "Selam Bekele");
    assert_eq!(row["address"], "Kebele 05, house 12");
    assert_eq!(row["exception_codes"], "outside_geofence");
    assert_eq!(row["verified"], false);
    assert_eq!(row["manually_edited"], true);
    assert_eq!(row["check_in_method"], "manual");
    let csv = c.app.app.get(&c.app.tenant, &path).await;
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with(
        "visit_id,service_type,patient_id,patient_name,caregiver_id,caregiver_name,date,address"
    ));
    let line = lines.next().unwrap();
    assert!(
        line.contains("Hana Tesfaye")
            && line.contains("\"Kebele 05, house 12\"")
            && line.ends_with(",outside_geofence,true"),
        "{line}"
    );
    assert!(lines.next().is_none());
    // Another organisation exports nothing of it; bad ranges are explained.
    let (_, none) = json(c.app.app.get(&other, &format!("{path}&format=json")).await).await;
    assert_eq!(none, json!([]));
    let (status, body) = json(
        c.app
            .app
            .get(
                &c.app.tenant,
                "/api/v1/visits/export?from=2026-12-01&to=2026-11-01",
            )
            .await,
    )
    .await;
    assert_eq!(
        (status, body["error"]["details"][0]["field"].as_str()),
        (422, Some("to"))
    );
    let (status, body) = json(
        c.app
            .app
            .get(&c.app.tenant, &format!("{path}&format=xml"))
            .await,
    )
    .await;
    assert_eq!(
        (status, body["error"]["details"][0]["field"].as_str()),
        (422, Some("format"))
    );
}

#[tokio::test]
async fn coordinators_see_the_days_visits_and_work_the_exception_queue_in_the_panel() {
    use crate::panel::{PASSWORD, csrf_in, login_form, sign_in};
    use chrono::Timelike;
    let c = care().await;
    let token = c.sign_in(CAREGIVER).await;
    let now = Utc::now();
    // The board shows one local day: the organisation is put where it is about midday now, so
    // visits from now to two hours ahead fall on the same day whenever the test runs (in Addis
    // Ababa, from 22:00 the last one fell on tomorrow's board).
    let east = 12 - now.hour() as i32;
    let zone = if east >= 0 {
        format!("Etc/GMT-{east}")
    } else {
        format!("Etc/GMT+{}", -east)
    };
    sqlx::query("UPDATE tenants SET time_zone = $1")
        .bind(&zone)
        .execute(&c.app.app.pool)
        .await
        .unwrap();
    let done = c.visit(&c.caregiver, 5).await;
    c.post(
        &format!("/api/v1/app/visits/{done}/check-in"),
        Some(&token),
        &reading(9.0310, HOME.1, 15.0, now, "a"),
    )
    .await;
    let far = c.visit(&c.other, 10).await;
    let tigist = c.sign_in(OTHER_CAREGIVER).await;
    c.post(
        &format!("/api/v1/app/visits/{far}/check-in"),
        Some(&tigist),
        &reading(9.0500, HOME.1, 20.0, now, "b"),
    )
    .await;
    c.visit(&c.caregiver, 120).await;

    c.app
        .app
        .user(&c.app.tenant, "liya@care.example", PASSWORD)
        .await;
    let csrf = login_form(&c.app.app).await;
    assert_eq!(
        sign_in(&c.app.app, "msg-org", "liya@care.example", PASSWORD, &csrf)
            .await
            .status(),
        303
    );
    let page = async |path: &str| -> (u16, String) {
        let r = c
            .app
            .app
            .client
            .get(c.app.app.url(path))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    let csrf = csrf_in(&page("/panel").await.1);

    let (status, board) = page("/panel/visits").await;
    assert_eq!(status, 200);
    assert!(
        board.contains("Where the day&#39;s visits are")
            || board.contains("Where the day's visits are"),
        "the board maps the day's visits: {board}"
    );
    assert!(
        board.contains("Selam Bekele") && board.contains("Tigist Bekele"),
        "{board}"
    );
    assert!(
        board.contains("<h2>in progress</h2><div class=\"figure\">2</div>"),
        "{board}"
    );
    assert!(
        board.contains("<h2>scheduled</h2><div class=\"figure\">1</div>"),
        "{board}"
    );
    assert!(
        board.contains("outside geofence") && board.contains(" m ✓"),
        "{board}"
    );

    let (status, queue) = page("/panel/visit-exceptions").await;
    assert_eq!(status, 200);
    assert!(
        queue.contains("Exception queue (1)") && queue.contains("Tigist Bekele"),
        "{queue}"
    );
    let exception: Uuid = sqlx::query_scalar("SELECT id FROM visit_exceptions")
        .fetch_one(&c.app.app.pool)
        .await
        .unwrap();
    let post = async |path: String, form: &[(&str, &str)]| {
        c.app
            .app
            .client
            .post(c.app.app.url(&path))
            .form(form)
            .send()
            .await
            .unwrap()
    };
    let refused = post(
        format!("/panel/visit-exceptions/{exception}/resolve"),
        &[
            ("csrf_token", &csrf),
            ("resolution_code", "gps_problem"),
            ("note", ""),
            ("back", "queue"),
        ],
    )
    .await;
    assert_eq!(refused.status(), 422);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("note: must not be empty")
    );
    let resolved = post(
        format!("/panel/visit-exceptions/{exception}/resolve"),
        &[
            ("csrf_token", &csrf),
            ("resolution_code", "gps_problem"),
            ("note", "phone GPS was off"),
            ("back", "queue"),
        ],
    )
    .await;
    assert_eq!(resolved.status(), 303);
    assert_eq!(resolved.headers()["location"], "/panel/visit-exceptions");
    let (_, queue) = page("/panel/visit-exceptions").await;
    assert!(queue.contains("Exception queue (0)"), "{queue}");
    assert_eq!(
        c.app.count("SELECT count(*) FROM visit_exceptions e JOIN users u ON u.id = e.resolved_by WHERE u.email = 'liya@care.example'").await,
        1
    );

    // The visit's page, and a correction in local time.
    let (status, detail) = page(&format!("/panel/visits/{far}")).await;
    assert_eq!(status, 200);
    assert!(
        detail.contains("resolved: gps problem")
            && detail.contains("check in</strong> by Tigist Bekele via app"),
        "{detail}"
    );
    // The map: the server's drawing of the home, its geofence and the far reading (not verified),
    // with the tile server for the browser, and Leaflet from the panel itself.
    assert!(
        detail.contains("<figure class=\"map\" data-map="),
        "{detail}"
    );
    assert!(detail.contains("Counts as at home: within"), "{detail}");
    assert!(detail.contains("tile.openstreetmap.org"), "{detail}");
    assert!(detail.contains("src=\"/panel/static/leaflet.js\""));
    let local = (now - TimeDelta::minutes(3))
        .with_timezone(&chrono::FixedOffset::east_opt(east * 3600).unwrap())
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let corrected = post(
        format!("/panel/visits/{far}/correct"),
        &[
            ("csrf_token", &csrf),
            ("check_in_at", &local),
            ("check_out_at", ""),
            ("reason", "checked in at the door, GPS lagged"),
        ],
    )
    .await;
    assert_eq!(corrected.status(), 303);
    assert_eq!(c.app.count(&format!("SELECT count(*) FROM visits WHERE id = '{far}' AND manually_edited AND check_in_method = 'manual'")).await, 1);
    assert_eq!(c.app.count("SELECT count(*) FROM audit_log WHERE action = 'visits.update' AND reason IS NOT NULL AND actor_kind = 'user'").await, 1);
    let forged = post(
        format!("/panel/visits/{far}/correct"),
        &[
            ("csrf_token", "forged"),
            ("check_in_at", &local),
            ("reason", "x"),
        ],
    )
    .await;
    assert_eq!(forged.status(), 403);

    // One visit from the board's form, in local time.
    let tomorrow = (now + TimeDelta::days(1)).date_naive().to_string();
    let refused = post(
        "/panel/visits".into(),
        &[
            ("csrf_token", &csrf),
            ("caregiver_id", &c.caregiver),
            ("patient_id", &c.patient),
            ("service_type", "nursing"),
            ("date", &tomorrow),
            ("from", "11:00"),
            ("to", "10:00"),
        ],
    )
    .await;
    assert_eq!(refused.status(), 422);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("scheduled_end: must be after scheduled_start")
    );
    let one = post(
        "/panel/visits".into(),
        &[
            ("csrf_token", &csrf),
            ("caregiver_id", &c.caregiver),
            ("patient_id", &c.patient),
            ("service_type", "nursing"),
            ("date", &tomorrow),
            ("from", "11:00"),
            ("to", "12:00"),
        ],
    )
    .await;
    assert_eq!(one.status(), 303);
    assert_eq!(
        c.app.count(&format!("SELECT count(*) FROM visits v JOIN tenants t ON t.id = v.tenant_id WHERE v.service_type = 'nursing' AND v.scheduled_start AT TIME ZONE t.time_zone = '{tomorrow} 11:00:00'")).await,
        1
    );

    // Recurring assignments from the panel: refused without days, then made with two.
    let (status, page_html) = page("/panel/assignments").await;
    assert_eq!(status, 200);
    assert!(
        page_html.contains("Selam Bekele") && page_html.contains("Hana Tesfaye"),
        "{page_html}"
    );
    let first_day = (now + TimeDelta::days(1)).date_naive().to_string();
    let refused = post(
        "/panel/assignments".into(),
        &[
            ("csrf_token", &csrf),
            ("caregiver_id", &c.caregiver),
            ("patient_id", &c.patient),
            ("service_type", "personal_care"),
            ("shift_start", "09:00"),
            ("shift_end", "10:00"),
            ("starts_on", &first_day),
        ],
    )
    .await;
    assert_eq!(refused.status(), 422);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("days_of_week: give at least one day")
    );
    let before = c.app.count("SELECT count(*) FROM visits").await;
    let made = post(
        "/panel/assignments".into(),
        &[
            ("csrf_token", &csrf),
            ("caregiver_id", &c.caregiver),
            ("patient_id", &c.patient),
            ("service_type", "personal_care"),
            ("shift_start", "09:00"),
            ("shift_end", "10:00"),
            ("starts_on", &first_day),
            ("day", "1"),
            ("day", "4"),
        ],
    )
    .await;
    assert_eq!(made.status(), 303);
    let (_, page_html) = page("/panel/assignments").await;
    assert!(
        page_html.contains("Mon Thu") && page_html.contains("09:00–10:00"),
        "{page_html}"
    );
    let generated = c.app.count("SELECT count(*) FROM visits").await - before;
    assert!(
        (4..=5).contains(&generated),
        "two weekdays over 15 days: {generated}"
    );
    // Changed to Thursdays only, then given to Tigist, from the same page.
    let assignment: Uuid = sqlx::query_scalar("SELECT id FROM caregiver_assignments")
        .fetch_one(&c.app.app.pool)
        .await
        .unwrap();
    let changed = post(
        format!("/panel/assignments/{assignment}/change"),
        &[
            ("csrf_token", &csrf),
            ("day", "4"),
            ("shift_start", "09:00"),
            ("shift_end", "10:00"),
            ("ends_on", ""),
        ],
    )
    .await;
    assert_eq!(changed.status(), 303);
    // Thursday where the organisation is (its zone is set to about midday now, above).
    assert_eq!(
        c.app.count("SELECT count(*) FROM visits v JOIN tenants t ON t.id = v.tenant_id WHERE v.assignment_id IS NOT NULL AND extract(isodow FROM v.scheduled_start AT TIME ZONE t.time_zone) <> 4").await,
        0
    );
    let reassigned = post(
        format!("/panel/assignments/{assignment}/reassign"),
        &[("csrf_token", &csrf), ("caregiver_id", &c.other)],
    )
    .await;
    assert_eq!(reassigned.status(), 303);
    assert_eq!(
        c.app.count(&format!("SELECT count(*) FROM visits WHERE assignment_id IS NOT NULL AND caregiver_id <> '{}'", c.other)).await,
        0
    );
    // A visit to come is cancelled from its page; the caregiver hears.
    let later: Uuid = sqlx::query_scalar(
        "SELECT id FROM visits WHERE assignment_id IS NOT NULL ORDER BY scheduled_start LIMIT 1",
    )
    .fetch_one(&c.app.app.pool)
    .await
    .unwrap();
    let cancelled = post(
        format!("/panel/visits/{later}/cancel"),
        &[("csrf_token", &csrf), ("reason", "patient in hospital")],
    )
    .await;
    assert_eq!(cancelled.status(), 303);
    assert_eq!(
        c.app
            .count(&format!(
                "SELECT count(*) FROM visits WHERE id = '{later}' AND status = 'cancelled'"
            ))
            .await,
        1
    );
    assert_eq!(c.app.count(&format!("SELECT count(*) FROM messages WHERE related_entity_id = '{later}' AND template_key = 'visit_cancelled'")).await, 1);

    // Ended from the list, with a reason: its visits to come are cancelled.
    let ended = post(
        format!("/panel/assignments/{assignment}/cancel"),
        &[("csrf_token", &csrf), ("reason", "family moved")],
    )
    .await;
    assert_eq!(ended.status(), 303);
    assert_eq!(
        c.app.count(&format!("SELECT count(*) FROM caregiver_assignments WHERE id = '{assignment}' AND status = 'cancelled'")).await,
        1
    );
    assert_eq!(
        c.app.count(&format!("SELECT count(*) FROM visits WHERE assignment_id = '{assignment}' AND status <> 'cancelled'")).await,
        0
    );
    // Another organisation's coordinator sees none of it.
    let other = c.app.app.tenant("other-care").await;
    c.app.app.user(&other, "eve@other.example", PASSWORD).await;
    post("/panel/logout".into(), &[("csrf_token", &csrf)]).await;
    let csrf = login_form(&c.app.app).await;
    assert_eq!(
        sign_in(
            &c.app.app,
            "other-care",
            "eve@other.example",
            PASSWORD,
            &csrf
        )
        .await
        .status(),
        303
    );
    let csrf = csrf_in(&page("/panel").await.1);
    let (_, board) = page("/panel/visits").await;
    assert!(!board.contains("Hana Tesfaye"), "{board}");
    assert_eq!(page(&format!("/panel/visits/{far}")).await.0, 404);
    let refused = post(
        format!("/panel/visits/{far}/correct"),
        &[
            ("csrf_token", &csrf),
            ("check_in_at", &local),
            ("reason", "sneaky"),
        ],
    )
    .await;
    assert_eq!(refused.status(), 404);
    assert_eq!(
        c.app
            .count("SELECT count(*) FROM audit_log WHERE action = 'visits.update' AND reason IS NOT NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn a_job_that_panics_is_recorded_as_killed_not_left_running() {
    let c = care().await;
    // A visit ending at the edge of what dates can hold (written past the API, which refuses
    // such years): computing its check-out reminder overflows and panics.
    let visit: Uuid = sqlx::query_scalar(
        "INSERT INTO visits (tenant_id, caregiver_id, patient_id, service_type, scheduled_start, scheduled_end)
         VALUES ($1, $2::uuid, $3::uuid, 'personal_care', now() - interval '1 hour', '262142-12-31 23:55:00+00')
         RETURNING id",
    )
    .bind(c.app.tenant.id)
    .bind(&c.caregiver)
    .bind(&c.patient)
    .fetch_one(&c.app.app.pool)
    .await
    .unwrap();
    let mut conn = c.app.app.pool.acquire().await.unwrap();
    fieldline::jobs::enqueue(
        &mut conn,
        &fieldline::domains::care::timers::VisitTimer {
            tenant_id: c.app.tenant.id,
            visit_id: visit,
            stage: fieldline::domains::care::timers::Stage::CheckOutReminder,
        },
        std::time::Duration::ZERO,
    )
    .await
    .unwrap();
    let sql = format!(
        "SELECT status = 'Killed' FROM apalis.jobs WHERE job_type = 'visit-timers' AND convert_from(job, 'UTF8')::jsonb->>'visit_id' = '{visit}'"
    );
    let ended = c.app.eventually(&sql).await;
    let (status, attempts, result): (String, i32, Option<serde_json::Value>) = sqlx::query_as(
        "SELECT status, attempts, last_result FROM apalis.jobs WHERE job_type = 'visit-timers' AND convert_from(job, 'UTF8')::jsonb->>'visit_id' = $1",
    )
    .bind(visit.to_string())
    .fetch_one(&c.app.app.pool)
    .await
    .unwrap();
    assert!(
        ended,
        "the panicking job ended as Killed, not {status} after {attempts} attempts: {result:?}"
    );
}
