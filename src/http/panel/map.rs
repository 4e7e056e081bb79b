//! The panel's map: a plain positional drawing (SVG, north up, to scale) rendered on the server,
//! which `static/map.js` turns into a Leaflet map over the operator's tiles once the first tile
//! has loaded. Without script, without tiles or offline, the drawing is what shows.

use maud::{Markup, html};
use serde::Serialize;

use crate::config::MapTiles;

/// What a point is, for its colour and the legend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A patient's home, a site, a pickup: where something should happen.
    Place,
    /// A reported position (a check-in, a vehicle, a worker).
    Reading,
    /// A reading that did not verify, or a late or urgent item.
    Attention,
}

impl Kind {
    fn colour(self) -> &'static str {
        match self {
            Self::Place => "#0b6e4f",
            Self::Reading => "#3a7fb8",
            Self::Attention => "#b3261e",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
    pub label: String,
    pub kind: Kind,
    /// The reported accuracy, drawn as a halo.
    pub accuracy_m: Option<f64>,
    /// Where clicking the point leads.
    pub href: Option<String>,
}

/// A circle on the ground: a geofence.
#[derive(Clone, Debug, Serialize)]
pub struct Area {
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
    pub label: String,
}

#[derive(Serialize)]
struct Spec<'a> {
    tiles: Option<&'a str>,
    attribution: Option<&'a str>,
    points: &'a [Point],
    areas: &'a [Area],
}

const METRES_PER_DEGREE: f64 = 111_320.0;

/// The map of `points` and `areas`, titled `title`; nothing when there is nothing to place.
pub fn map(tiles: Option<&MapTiles>, title: &str, points: &[Point], areas: &[Area]) -> Markup {
    if points.is_empty() && areas.is_empty() {
        return html! {};
    }
    let spec = Spec {
        tiles: tiles.map(|t| t.url.as_str()),
        attribution: tiles.map(|t| t.attribution.as_str()),
        points,
        areas,
    };
    let spec = serde_json::to_string(&spec).unwrap_or_else(|_| "{}".into());
    html! {
        link rel="stylesheet" href="/panel/static/leaflet.css";
        script src="/panel/static/leaflet.js" defer {}
        script src="/panel/static/map.js" defer {}
        figure.map data-map=(spec) {
            (drawing(title, points, areas))
            figcaption {
                (title) " "
                span.legend { span.key.place { "●" } " place " span.key.reading { "●" } " reported position " span.key.attention { "●" } " needs attention" }
            }
        }
    }
}

/// Every point and area to scale on a plain background.
fn drawing(title: &str, points: &[Point], areas: &[Area]) -> Markup {
    // The bounding box of everything, areas with their radius, in degrees.
    let mut lats: Vec<f64> = points.iter().map(|p| p.lat).collect();
    let mut lons: Vec<f64> = points.iter().map(|p| p.lon).collect();
    for a in areas {
        let dlat = a.radius_m / METRES_PER_DEGREE;
        let dlon = dlat / a.lat.to_radians().cos().max(0.1);
        lats.extend([a.lat - dlat, a.lat + dlat]);
        lons.extend([a.lon - dlon, a.lon + dlon]);
    }
    let fold = |v: &[f64]| {
        v.iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)))
    };
    let (min_lat, max_lat) = fold(&lats);
    let (min_lon, max_lon) = fold(&lons);
    // Degrees of longitude shrink with latitude: scale them so distances look right.
    let shrink = ((min_lat + max_lat) / 2.0).to_radians().cos().max(0.1);
    let span = ((max_lat - min_lat).max((max_lon - min_lon) * shrink)).max(0.0005);
    let (size, pad) = (320.0, 24.0);
    let xy = |lat: f64, lon: f64| {
        (
            pad + (lon - min_lon) * shrink / span * size,
            pad + (max_lat - lat) / span * size,
        )
    };
    let px_per_metre = size / (span * METRES_PER_DEGREE);
    let scale_m = nice_scale(span * METRES_PER_DEGREE / 4.0);
    let width = size + 2.0 * pad + 120.0;
    let height = size + 2.0 * pad;
    html! {
        svg.drawing role="img" viewBox=(format!("0 0 {width:.0} {height:.0}")) width="100%"
            aria-label=(format!("{title}: a drawing to scale, north up")) {
            rect x="0" y="0" width=(format!("{width:.0}")) height=(format!("{height:.0}")) fill="#f6f8fa" {}
            @for a in areas {
                @let (x, y) = xy(a.lat, a.lon);
                circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r=(format!("{:.1}", (a.radius_m * px_per_metre).max(2.0)))
                    fill="#0b6e4f" fill-opacity="0.08" stroke="#0b6e4f" stroke-dasharray="4" { title { (a.label) } }
            }
            @for p in points {
                @let (x, y) = xy(p.lat, p.lon);
                @if let Some(accuracy) = p.accuracy_m.filter(|a| *a > 0.0) {
                    circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r=(format!("{:.1}", (accuracy * px_per_metre).max(3.0)))
                        fill=(p.kind.colour()) fill-opacity="0.12" {}
                }
                @let dot = html! {
                    circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="6" fill=(p.kind.colour()) { title { (p.label) } }
                    text x=(format!("{:.1}", x + 9.0)) y=(format!("{:.1}", y + 4.0)) font-size="11" { (short(&p.label)) }
                };
                @if let Some(href) = &p.href { a href=(href) { (dot) } } @else { (dot) }
            }
            @let bar = scale_m * px_per_metre;
            line x1=(pad) y1=(height - 8.0) x2=(format!("{:.1}", pad + bar)) y2=(height - 8.0) stroke="#1d2430" stroke-width="2" {}
            text x=(format!("{:.1}", pad + bar + 6.0)) y=(height - 4.0) font-size="11" {
                @if scale_m >= 1000.0 { (format!("{} km", scale_m / 1000.0)) } @else { (format!("{scale_m} m")) }
            }
        }
    }
}

/// A round length near `m` for the scale bar: 1, 2 or 5 times a power of ten.
fn nice_scale(m: f64) -> f64 {
    let power = 10f64.powf(m.max(1.0).log10().floor());
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|k| k * power)
        .find(|v| *v <= m)
        .unwrap_or(power)
}

fn short(label: &str) -> String {
    let first = label.split(" · ").next().unwrap_or(label);
    if first.chars().count() > 24 {
        format!("{}…", first.chars().take(23).collect::<String>())
    } else {
        first.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_bar_is_a_round_length() {
        assert_eq!(nice_scale(730.0), 500.0);
        assert_eq!(nice_scale(180.0), 100.0);
        assert_eq!(nice_scale(2600.0), 2000.0);
    }

    #[test]
    fn a_point_and_its_geofence_are_drawn_with_their_labels() {
        let points = [Point {
            lat: 9.0301,
            lon: 38.7601,
            label: "Check-in · 40 m".into(),
            kind: Kind::Reading,
            accuracy_m: Some(15.0),
            href: None,
        }];
        let areas = [Area {
            lat: 9.03,
            lon: 38.76,
            radius_m: 150.0,
            label: "Home, 150 m".into(),
        }];
        let html = map(None, "Visit", &points, &areas).into_string();
        assert!(html.contains("data-map="));
        assert!(html.contains("<title>Home, 150 m</title>"), "{html}");
        assert!(html.contains("Check-in"));
        assert!(map(None, "Nothing", &[], &[]).into_string().is_empty());
    }
}
