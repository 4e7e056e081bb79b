//! Ambulance trips in the panel: the board (open trips by state with age and unit, the fleet with
//! each vehicle's last position and its age, response times), a trip's page (timeline with every
//! step, intervals, the ranked units, dispatch and cancel). Every query is the coordinator's
//! tenant's; another tenant's trip is a 404.

use axum::{
    Router,
    extract::{Path, State},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::{Coordinator, CsrfForm, map, not_found, views::layout, views::when};
use crate::{
    domains::ambulance::{
        response_times,
        trips::{self, By, Intervals, TripError},
    },
    http::AppState,
    http::error::AppError,
    http::extract::Query,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/trips", get(board))
        .route("/trips/{id}", get(detail))
        .route("/trips/{id}/dispatch", post(dispatch))
        .route("/trips/{id}/cancel", post(cancel))
        .route("/trips/{id}/recall", post(recall))
        .route("/trips/{id}/message", post(message))
}

#[derive(Debug, Default, Deserialize)]
pub struct Notice {
    #[serde(default)]
    done: String,
    #[serde(default)]
    error: String,
}

fn age(since: DateTime<Utc>) -> String {
    let minutes = (Utc::now() - since).num_minutes();
    match minutes {
        m if m < 60 => format!("{m} min"),
        m => format!("{} h {} min", m / 60, m % 60),
    }
}

/// Pickup and the ranked units as a plain positional drawing (SVG, north up, to scale): no tiles
/// to load, readable through each point's title.
fn picture(pickup: (f64, f64), units: &[trips::Suggestion]) -> Markup {
    let points: Vec<(f64, f64)> = std::iter::once(pickup)
        .chain(units.iter().map(|u| (u.latitude, u.longitude)))
        .collect();
    let (min_lat, max_lat) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    let (min_lon, max_lon) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    // Degrees of longitude shrink with latitude: scale them so distances look right.
    let shrink = pickup.0.to_radians().cos().max(0.1);
    let span = ((max_lat - min_lat).max((max_lon - min_lon) * shrink)).max(0.002);
    let (size, pad) = (300.0, 30.0);
    let xy = |(lat, lon): (f64, f64)| {
        (
            pad + (lon - min_lon) * shrink / span * size,
            pad + (max_lat - lat) / span * size,
        )
    };
    let (px, py) = xy(pickup);
    html! {
        svg.chart role="img" viewBox=(format!("0 0 {} {}", size + 2.0 * pad + 60.0, size + 2.0 * pad))
            width="100%" aria-label="Pickup and the units ranked for it, to scale, north up" {
            rect x="0" y="0" width="100%" height="100%" fill="#f6f8fa" {}
            @for u in units {
                @let (x, y) = xy((u.latitude, u.longitude));
                line x1=(px) y1=(py) x2=(x) y2=(y) stroke="#b8c4d0" stroke-dasharray="3" {}
                circle cx=(x) cy=(y) r="6" fill="#3a7fb8" { title { (u.registration_number) ": " (u.why) } }
                text x=(x + 9.0) y=(y + 4.0) font-size="11" { (u.registration_number) }
            }
            path d=(format!("M{} {}l8 8m0 -8l-8 8", px - 4.0, py - 4.0)) stroke="#b3261e" stroke-width="3" { title { "Pickup" } }
            text x=(px + 9.0) y=(py - 6.0) font-size="11" fill="#b3261e" { "pickup" }
        }
    }
}

/// Mean response per priority against the target, as bars: the line is the target.
fn response_chart(report: &[response_times::ResponseTimes]) -> Markup {
    let longest = report
        .iter()
        .flat_map(|r| {
            [
                r.response_mean_s.unwrap_or(0.0),
                r.response_p90_s.unwrap_or(0.0),
                f64::from(r.response_target_s),
            ]
        })
        .fold(60.0_f64, f64::max);
    let (label_w, bar_w, row_h) = (70.0, 400.0, 26.0);
    let height = row_h * report.len() as f64 + 10.0;
    html! {
        svg.chart role="img" viewBox=(format!("0 0 560 {height}")) width="100%"
            aria-label="Mean and 90th percentile response time per priority, against the target" {
            @for (i, r) in report.iter().enumerate() {
                @let y = 5.0 + i as f64 * row_h;
                text x="0" y=(y + 13.0) font-size="12" { (r.priority) }
                @if let Some(p90) = r.response_p90_s {
                    rect x=(label_w) y=(y) width=(bar_w * p90 / longest) height="16" fill="#c9d9ea" { title { "90th percentile " (seconds(Some(p90))) } }
                }
                @if let Some(mean) = r.response_mean_s {
                    rect x=(label_w) y=(y + 4.0) width=(bar_w * mean / longest) height="8" fill="#3a7fb8" { title { "mean " (seconds(Some(mean))) } }
                }
                @let target = label_w + bar_w * f64::from(r.response_target_s) / longest;
                line x1=(target) y1=(y - 2.0) x2=(target) y2=(y + 18.0) stroke="#b3261e" stroke-width="2" { title { "target " (seconds(Some(f64::from(r.response_target_s)))) } }
            }
        }
    }
}

fn seconds(value: Option<f64>) -> String {
    value.map_or("—".into(), |s| {
        if s < 120.0 {
            format!("{s:.0} s")
        } else {
            format!("{:.1} min", s / 60.0)
        }
    })
}

#[derive(sqlx::FromRow)]
struct Vehicle {
    registration_number: String,
    ambulance_type: String,
    status: String,
    current_latitude: Option<f64>,
    current_longitude: Option<f64>,
    position_reported_at: Option<DateTime<Utc>>,
}

async fn board(
    State(state): State<AppState>,
    coordinator: Coordinator,
) -> Result<Html<String>, AppError> {
    let mut conn = state.pool.acquire().await?;
    let trips = trips::list(&mut conn, coordinator.tenant_id).await?;
    let fleet: Vec<Vehicle> = sqlx::query_as(
        "SELECT registration_number, ambulance_type, status, current_latitude::float8 AS current_latitude,
                current_longitude::float8 AS current_longitude, position_reported_at
         FROM ambulances WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY status, registration_number",
    )
    .bind(coordinator.tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    let since = Utc::now() - chrono::TimeDelta::days(30);
    let report = response_times::report(&mut conn, coordinator.tenant_id, since).await?;
    let open = |t: &&trips::Trip| !matches!(t.status.as_str(), "completed" | "cancelled");
    let points: Vec<map::Point> = trips
        .iter()
        .filter(open)
        .filter_map(|t| {
            Some(map::Point {
                lat: t.pickup_latitude?,
                lon: t.pickup_longitude?,
                label: format!("{} · pickup · {}", t.reference, t.pickup_address),
                kind: if t.registration_number.is_none() {
                    map::Kind::Attention
                } else {
                    map::Kind::Place
                },
                accuracy_m: None,
                href: Some(format!("/panel/trips/{}", t.id)),
            })
        })
        .chain(fleet.iter().filter_map(|v| {
            Some(map::Point {
                lat: v.current_latitude?,
                lon: v.current_longitude?,
                label: format!("{} · {}", v.registration_number, v.status.replace('_', " ")),
                kind: map::Kind::Reading,
                accuracy_m: None,
                href: None,
            })
        }))
        .collect();
    let body = html! {
        h1 { "Trips" }
        (map::map(state.config.map_tiles.as_ref(), "Open pickups (red: no unit yet) and the fleet's last positions", &points, &[]))
        @if trips.is_empty() { p.muted { "No open trips." } }
        @else {
            table.stacked {
                thead { tr { th { "Trip" } th { "State" } th { "Priority" } th { "Age" } th { "Unit" } th { "Pickup" } } }
                tbody {
                    @for t in &trips {
                        tr {
                            td data-label="Trip" { a href=(format!("/panel/trips/{}", t.id)) { (t.reference) } }
                            td data-label="State" { span class=(format!("badge state-{}", t.status.as_str().replace('_', "-"))) { (t.status.as_str().replace('_', " ")) } }
                            td data-label="Priority" { (t.priority) }
                            td data-label="Age" { (age(t.created_at)) }
                            td data-label="Unit" { (t.registration_number.as_deref().unwrap_or("—")) }
                            td data-label="Pickup" { (t.pickup_address) }
                        }
                    }
                }
            }
        }
        h2 { "Fleet" }
        table.stacked {
            thead { tr { th { "Vehicle" } th { "Type" } th { "Status" } th { "Last position" } } }
            tbody {
                @for v in &fleet {
                    tr {
                        td data-label="Vehicle" { (v.registration_number) }
                        td data-label="Type" { (v.ambulance_type.replace('_', " ")) }
                        td data-label="Status" { (v.status.replace('_', " ")) }
                        td data-label="Last position" {
                            @match (v.current_latitude.zip(v.current_longitude), v.position_reported_at) {
                                (Some((lat, lon)), Some(at)) => {
                                    a href=(format!("https://www.openstreetmap.org/?mlat={lat:.5}&mlon={lon:.5}#map=16/{lat:.5}/{lon:.5}")) { (format!("{lat:.4}, {lon:.4}")) }
                                    " · " (age(at)) " ago"
                                }
                                _ => { "none reported" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Response times, last 30 days" }
        @if report.is_empty() { p.muted { "No trips dispatched yet." } }
        @else {
            (response_chart(&report))
            table.stacked {
                thead { tr { th { "Priority" } th { "Trips" } th { "Turnout (mean / 90th)" } th { "Response (mean / 90th)" } th { "Within target" } } }
                tbody {
                    @for r in &report {
                        tr {
                            td data-label="Priority" { (r.priority) }
                            td data-label="Trips" { (r.trips) }
                            td data-label="Turnout" { (seconds(r.turnout_mean_s)) " / " (seconds(r.turnout_p90_s)) }
                            td data-label="Response" { (seconds(r.response_mean_s)) " / " (seconds(r.response_p90_s)) }
                            td data-label="Within target" {
                                "turnout " (r.turnout_within_target_pct.map_or("—".into(), |p| format!("{p}%")))
                                ", response " (r.response_within_target_pct.map_or("—".into(), |p| format!("{p}%")))
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Html(
        layout("Trips", Some(&coordinator), body).into_string(),
    ))
}

async fn detail(
    State(state): State<AppState>,
    coordinator: Coordinator,
    Path(id): Path<Uuid>,
    Query(notice): Query<Notice>,
) -> Result<Response, AppError> {
    let mut conn = state.pool.acquire().await?;
    let trip = match trips::get(&mut conn, coordinator.tenant_id, id).await {
        Ok(trip) => trip,
        Err(TripError::NotFound(_)) => return Ok(not_found(&coordinator, "trip")),
        Err(other) => return Err(other.into()),
    };
    let events = trips::events(&mut conn, coordinator.tenant_id, id).await?;
    let suggestions = if trip.status == trips::TripStatus::Pending {
        trips::suggestions(&mut conn, coordinator.tenant_id, id)
            .await
            .ok()
    } else {
        None
    };
    let intervals = Intervals::of(&trip);
    let csrf = &coordinator.csrf_token;
    let interval =
        |s: Option<i64>| s.map_or("not recorded".to_owned(), |s| seconds(Some(s as f64)));
    let body = html! {
        h1 { "Trip " (trip.reference) }
        @if !notice.done.is_empty() { p.notice role="status" { (notice.done) } }
        @if !notice.error.is_empty() { p.alert role="alert" { (notice.error) } }
        dl.facts {
            dt { "State" } dd { (trip.status.as_str().replace('_', " ")) }
            dt { "Request" } dd { (trip.request_type) " · " (trip.priority) }
            dt { "Pickup" } dd { (trip.pickup_address) }
            dt { "To" } dd { (trip.dropoff_address) }
            dt { "Unit" } dd { (trip.registration_number.as_deref().unwrap_or("none yet")) }
            @if let Some(name) = &trip.contact_name { dt { "Contact" } dd { (name) } }
            @if let Some(notes) = &trip.special_instructions { dt { "Instructions" } dd { (notes) } }
        }
        h2 { "Intervals" }
        dl.facts {
            dt { "Turnout" } dd { (interval(intervals.turnout_s)) }
            dt { "Response" } dd { (interval(intervals.response_s)) }
            dt { "On scene" } dd { (interval(intervals.on_scene_s)) }
            dt { "Transport" } dd { (interval(intervals.transport_s)) }
            dt { "Handover" } dd { (interval(intervals.handover_s)) }
            dt { "On task" } dd { (interval(intervals.on_task_s)) }
        }
        h2 { "Timeline" }
        ol.timeline {
            @for e in &events {
                li {
                    time { (when(&coordinator, e.at)) } " · " strong { (e.to_status.replace('_', " ")) }
                    @if let Some(element) = &e.nemsis_element { " (" (element) ")" }
                    " · " (e.actor_name.as_deref().unwrap_or(&e.actor_kind)) " by " (e.channel)
                    @if let (Some(lat), Some(lon)) = (e.latitude, e.longitude) { " · at " (format!("{lat:.4}, {lon:.4}")) }
                }
            }
        }
        @if let Some(s) = &suggestions {
            h2 { "Units" }
            @if s.ranked.is_empty() { p.muted { "No unit is available for this trip." } }
            @if let (Some(lat), Some(lon)) = (trip.pickup_latitude, trip.pickup_longitude) {
                (picture((lat, lon), &s.ranked))
            }
            form.stack method="post" action=(format!("/panel/trips/{id}/dispatch")) {
                input type="hidden" name="csrf_token" value=(csrf);
                @for (i, u) in s.ranked.iter().enumerate() {
                    label.choice {
                        input type="radio" name="ambulance_id" value=(u.ambulance_id) checked[i == 0];
                        " " (u.registration_number) " · " (format!("{:.1} min", u.eta_minutes)) " · " (u.why)
                    }
                }
                @if !s.ranked.is_empty() { button type="submit" { "Dispatch" } }
            }
            @if !s.left_out.is_empty() {
                p.muted { "Left out: "
                    @for (i, l) in s.left_out.iter().enumerate() {
                        @if i > 0 { "; " }
                        (l.registration_number) " (" (l.reason) ")"
                    }
                }
            }
        }
        @if trip.status.is_active() {
            h2 { "Message the crew" }
            form.stack method="post" action=(format!("/panel/trips/{id}/message")) {
                input type="hidden" name="csrf_token" value=(csrf);
                label { "Message" textarea name="text" required maxlength="900" {} }
                button type="submit" { "Send" }
            }
        }
        @if matches!(trip.status, trips::TripStatus::Assigned | trips::TripStatus::EnRouteToPickup | trips::TripStatus::AtPickup) {
            h2 { "Give it to another unit" }
            form.stack method="post" action=(format!("/panel/trips/{id}/recall")) {
                input type="hidden" name="csrf_token" value=(csrf);
                p.muted { "The crew is told not to go; the trip is pending again, with the units ranked." }
                button type="submit" { "Take it back" }
            }
        }
        @if !matches!(trip.status, trips::TripStatus::Completed | trips::TripStatus::Cancelled) {
            h2 { "Cancel" }
            form.stack method="post" action=(format!("/panel/trips/{id}/cancel")) {
                input type="hidden" name="csrf_token" value=(csrf);
                label { "Why" input type="text" name="reason"; }
                label.choice { input type="checkbox" name="confirm" value="yes" required; " Yes, cancel it (the crew is told not to go)" }
                button type="submit" { "Cancel the trip" }
            }
        }
    };
    Ok(Html(layout(&trip.reference, Some(&coordinator), body).into_string()).into_response())
}

#[derive(Deserialize)]
struct DispatchInput {
    #[serde(default)]
    ambulance_id: String,
}

async fn dispatch(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<DispatchInput>,
) -> Result<Response, AppError> {
    super::change_then_back(
        &state,
        &coordinator,
        &format!("/panel/trips/{id}"),
        "Dispatched: the crew has the trip.",
        async |tx| {
            let ambulance = match input.ambulance_id.trim() {
                "" => None,
                raw => Some(
                    raw.parse::<Uuid>()
                        .map_err(|_| AppError::field("ambulance_id", "choose a unit"))?,
                ),
            };
            trips::dispatch(
                tx,
                &state.messaging.templates,
                coordinator.tenant_id,
                id,
                ambulance,
                &By::coordinator(coordinator.user_id),
            )
            .await?;
            Ok(())
        },
    )
    .await
}

#[derive(Deserialize)]
struct CancelInput {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: String,
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<CancelInput>,
) -> Result<Response, AppError> {
    super::change_then_back(
        &state,
        &coordinator,
        &format!("/panel/trips/{id}"),
        "Cancelled.",
        async |tx| {
            if input.confirm != "yes" {
                return Err(AppError::field(
                    "confirm",
                    "tick \"Yes, cancel it\" to cancel",
                ));
            }
            let reason = Some(input.reason.trim()).filter(|r| !r.is_empty());
            trips::cancel(
                tx,
                &state.messaging.templates,
                coordinator.tenant_id,
                id,
                reason,
                &By::coordinator(coordinator.user_id),
            )
            .await?;
            Ok(())
        },
    )
    .await
}

async fn recall(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, .. }: CsrfForm<super::session::NoFields>,
) -> Result<Response, AppError> {
    super::change_then_back(
        &state,
        &coordinator,
        &format!("/panel/trips/{id}"),
        "Taken back: choose another unit.",
        async |tx| {
            trips::recall(
                tx,
                &state.messaging.templates,
                coordinator.tenant_id,
                id,
                &By::coordinator(coordinator.user_id),
            )
            .await?;
            Ok(())
        },
    )
    .await
}

#[derive(Deserialize)]
struct MessageInput {
    #[serde(default)]
    text: String,
}

async fn message(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<MessageInput>,
) -> Result<Response, AppError> {
    super::change_then_back(
        &state,
        &coordinator,
        &format!("/panel/trips/{id}"),
        "Sent to the crew.",
        async |tx| {
            trips::message_crew(
                tx,
                &state.messaging.templates,
                coordinator.tenant_id,
                id,
                &input.text,
            )
            .await?;
            Ok(())
        },
    )
    .await
}
