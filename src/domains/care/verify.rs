//! Electronic visit verification rules, as pure functions: is the reading where the patient
//! lives, at the time the visit was due, and could the caregiver have got there.

use chrono::{DateTime, TimeDelta, Utc};

use crate::types::Coordinates;

/// The thresholds, with their reasons.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// A reading less precise than this proves little (phones indoors report 5-50 m, a cell
    /// fix without GPS 500 m and more).
    pub accuracy_limit_m: f64,
    /// How far from the scheduled start a check-in may be without questions.
    pub start_tolerance: TimeDelta,
    /// Faster than this between two readings is not a journey by road in a city.
    pub max_speed_kmh: f64,
    /// A phone that read the position offline sends it later; further apart than this, the
    /// device clock or the reading is suspect.
    pub device_time_tolerance: TimeDelta,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            accuracy_limit_m: 200.0,
            start_tolerance: TimeDelta::minutes(15),
            max_speed_kmh: 150.0,
            device_time_tolerance: TimeDelta::minutes(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    OutsideGeofence,
    PoorAccuracy,
    NoPosition,
    EarlyCheckIn,
    LateCheckIn,
    WrongCaregiver,
    ImpossibleJourney,
    DeviceTimeSkew,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutsideGeofence => "outside_geofence",
            Self::PoorAccuracy => "poor_accuracy",
            Self::NoPosition => "no_position",
            Self::EarlyCheckIn => "early_check_in",
            Self::LateCheckIn => "late_check_in",
            Self::WrongCaregiver => "wrong_caregiver",
            Self::ImpossibleJourney => "impossible_journey",
            Self::DeviceTimeSkew => "device_time_skew",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exception {
    pub code: Code,
    pub detail: String,
}

fn exception(code: Code, detail: String) -> Exception {
    Exception { code, detail }
}

/// Where the reading puts the caregiver relative to the patient's home.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub distance_m: Option<f64>,
    pub verified: bool,
    pub exceptions: Vec<Exception>,
}

/// Verified when the reading's circle (its accuracy) reaches into the geofence and the accuracy
/// is within the limit. No reading, or no location for the patient, is never verified.
pub fn position(
    reading: Option<Coordinates>,
    accuracy_m: Option<f64>,
    home: Option<Coordinates>,
    radius_m: f64,
    rules: &Rules,
) -> Position {
    let Some(reading) = reading else {
        return Position {
            distance_m: None,
            verified: false,
            exceptions: vec![exception(
                Code::NoPosition,
                "no position was sent: recorded as unverified".into(),
            )],
        };
    };
    let Some(home) = home else {
        return Position {
            distance_m: None,
            verified: false,
            exceptions: vec![exception(
                Code::NoPosition,
                "the patient has no location on record to compare with".into(),
            )],
        };
    };
    let distance = reading.metres_to(home);
    // A reading without an accuracy is taken at its word but not given any benefit of the doubt.
    let accuracy = accuracy_m.unwrap_or(0.0);
    let mut exceptions = Vec::new();
    let precise = accuracy <= rules.accuracy_limit_m;
    if !precise {
        exceptions.push(exception(
            Code::PoorAccuracy,
            format!(
                "reading accurate to {accuracy:.0} m, worse than the {:.0} m limit",
                rules.accuracy_limit_m
            ),
        ));
    }
    let inside = distance - accuracy <= radius_m;
    if !inside {
        exceptions.push(exception(
            Code::OutsideGeofence,
            format!(
                "{distance:.0} m from the patient's home (geofence {radius_m:.0} m, accuracy {accuracy:.0} m)"
            ),
        ));
    }
    Position {
        distance_m: Some(distance),
        verified: precise && inside,
        exceptions,
    }
}

/// The time the event happened: the device's reading time when it is plausible (an offline
/// reading sent late is still when the caregiver was there), else the arrival time.
pub fn event_time(
    device_time: Option<DateTime<Utc>>,
    received: DateTime<Utc>,
    rules: &Rules,
) -> (DateTime<Utc>, Option<Exception>) {
    let Some(device) = device_time else {
        return (received, None);
    };
    let skew = received - device;
    if skew.abs() <= rules.device_time_tolerance {
        return (device, None);
    }
    let detail = if skew < TimeDelta::zero() {
        format!(
            "the device's time is {} min ahead of the server's: the arrival time was used",
            -skew.num_minutes()
        )
    } else {
        format!(
            "the reading was taken {} min before it arrived",
            skew.num_minutes()
        )
    };
    // A reading from the future is not believed; an old one is, but flagged.
    let at = if skew < TimeDelta::zero() {
        received
    } else {
        device
    };
    (at, Some(exception(Code::DeviceTimeSkew, detail)))
}

/// Early or late against the scheduled start.
pub fn check_in_timing(
    at: DateTime<Utc>,
    scheduled_start: DateTime<Utc>,
    rules: &Rules,
) -> Option<Exception> {
    let off = at - scheduled_start;
    if off < -rules.start_tolerance {
        Some(exception(
            Code::EarlyCheckIn,
            format!(
                "checked in {} min before the scheduled start",
                -off.num_minutes()
            ),
        ))
    } else if off > rules.start_tolerance {
        Some(exception(
            Code::LateCheckIn,
            format!(
                "checked in {} min after the scheduled start",
                off.num_minutes()
            ),
        ))
    } else {
        None
    }
}

/// From the caregiver's previous reading to this one: faster than a car in town is impossible.
pub fn journey(
    previous: Option<(Coordinates, DateTime<Utc>)>,
    this: (Coordinates, DateTime<Utc>),
    rules: &Rules,
) -> Option<Exception> {
    let (from, then) = previous?;
    let metres = from.metres_to(this.0);
    // Readings a second apart still count as a second: no division by zero.
    let seconds = ((this.1 - then).num_milliseconds().abs() as f64 / 1000.0).max(1.0);
    let kmh = metres / seconds * 3.6;
    (kmh > rules.max_speed_kmh && metres > 1_000.0).then(|| {
        exception(
            Code::ImpossibleJourney,
            format!(
                "{:.1} km from the previous reading in {:.0} min: {kmh:.0} km/h",
                metres / 1000.0,
                seconds / 60.0
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lat: f64, lon: f64) -> Coordinates {
        Coordinates::new(lat, lon).unwrap()
    }

    const HOME: (f64, f64) = (9.0300, 38.7500);

    #[test]
    fn inside_the_geofence_with_good_accuracy_is_verified() {
        let rules = Rules::default();
        let home = at(HOME.0, HOME.1);
        // About 111 m north.
        let p = position(
            Some(at(9.0310, 38.7500)),
            Some(15.0),
            Some(home),
            250.0,
            &rules,
        );
        assert!(p.verified && p.exceptions.is_empty(), "{p:?}");
        assert!((100.0..120.0).contains(&p.distance_m.unwrap()));
    }

    #[test]
    fn accuracy_is_allowed_for_but_capped() {
        let rules = Rules::default();
        let home = Some(at(HOME.0, HOME.1));
        // About 333 m away: outside 250 m, but a 100 m circle reaches in.
        let near = Some(at(9.0330, 38.7500));
        assert!(position(near, Some(100.0), home, 250.0, &rules).verified);
        let p = position(near, Some(20.0), home, 250.0, &rules);
        assert_eq!(p.exceptions[0].code, Code::OutsideGeofence);
        // Right at the door with a 500 m cell fix: not verified.
        let p = position(Some(at(HOME.0, HOME.1)), Some(500.0), home, 250.0, &rules);
        assert!(!p.verified);
        assert_eq!(p.exceptions[0].code, Code::PoorAccuracy);
    }

    #[test]
    fn without_a_position_nothing_is_verified() {
        let p = position(
            None,
            None,
            Some(at(HOME.0, HOME.1)),
            250.0,
            &Rules::default(),
        );
        assert_eq!(
            (p.verified, p.exceptions[0].code),
            (false, Code::NoPosition)
        );
        let p = position(
            Some(at(HOME.0, HOME.1)),
            Some(5.0),
            None,
            250.0,
            &Rules::default(),
        );
        assert_eq!(
            (p.verified, p.exceptions[0].code),
            (false, Code::NoPosition)
        );
    }

    #[test]
    fn offline_readings_keep_their_time_and_far_ones_are_flagged() {
        let rules = Rules::default();
        let now = Utc::now();
        let (t, e) = event_time(Some(now - TimeDelta::minutes(4)), now, &rules);
        assert_eq!((t, e), (now - TimeDelta::minutes(4), None));
        let (t, e) = event_time(Some(now - TimeDelta::minutes(40)), now, &rules);
        assert_eq!(t, now - TimeDelta::minutes(40));
        assert_eq!(e.unwrap().code, Code::DeviceTimeSkew);
        let (t, e) = event_time(Some(now + TimeDelta::hours(2)), now, &rules);
        assert_eq!(t, now, "a time from the future is not believed");
        assert_eq!(e.unwrap().code, Code::DeviceTimeSkew);
    }

    #[test]
    fn early_and_late_are_beyond_fifteen_minutes() {
        let rules = Rules::default();
        let start = Utc::now();
        assert!(check_in_timing(start - TimeDelta::minutes(14), start, &rules).is_none());
        assert!(check_in_timing(start + TimeDelta::minutes(15), start, &rules).is_none());
        assert_eq!(
            check_in_timing(start - TimeDelta::minutes(20), start, &rules)
                .unwrap()
                .code,
            Code::EarlyCheckIn
        );
        assert_eq!(
            check_in_timing(start + TimeDelta::minutes(31), start, &rules)
                .unwrap()
                .code,
            Code::LateCheckIn
        );
    }

    #[test]
    fn a_journey_faster_than_a_car_is_impossible() {
        let rules = Rules::default();
        let now = Utc::now();
        let home = at(HOME.0, HOME.1);
        // About 11 km in 3 minutes: 220 km/h.
        let far = at(9.1300, 38.7500);
        let e = journey(
            Some((far, now - TimeDelta::minutes(3))),
            (home, now),
            &rules,
        );
        assert_eq!(e.unwrap().code, Code::ImpossibleJourney);
        // The same 11 km in 20 minutes: 33 km/h.
        assert!(
            journey(
                Some((far, now - TimeDelta::minutes(20))),
                (home, now),
                &rules
            )
            .is_none()
        );
        // GPS jitter of a few hundred metres between two quick readings is not a journey.
        let jitter = at(9.0320, 38.7500);
        assert!(
            journey(
                Some((jitter, now - TimeDelta::seconds(5))),
                (home, now),
                &rules
            )
            .is_none()
        );
        assert!(journey(None, (home, now), &rules).is_none());
    }
}
