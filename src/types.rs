//! Parse, don't validate: values that are known to be well-formed once they exist.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A phone number in E.164 form (`+251911234567`), checked against the numbering plan.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct PhoneNumber(String);

impl TryFrom<String> for PhoneNumber {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl PhoneNumber {
    /// Accepts international forms with spaces, dashes or dots (`+251 91 123 4567`, `00251...`).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        let international = match trimmed.strip_prefix("00") {
            Some(rest) => format!("+{rest}"),
            None => trimmed.to_owned(),
        };
        if !international.starts_with('+') {
            return Err(format!(
                "{raw:?} is not an international number: write it as +<country code><number>, e.g. +251911234567"
            ));
        }
        let parsed = phonenumber::parse(None, &international)
            .map_err(|e| format!("{raw:?} is not a phone number ({e})"))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(format!("{raw:?} is not a valid number for its country"));
        }
        Ok(Self(
            parsed.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A WGS84 position.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coordinates {
    pub latitude: f64,
    pub longitude: f64,
}

impl Coordinates {
    pub fn new(latitude: f64, longitude: f64) -> Result<Self, (&'static str, String)> {
        if !latitude.is_finite() || !(-90.0..=90.0).contains(&latitude) {
            return Err((
                "latitude",
                format!("{latitude} is not a latitude: it must be between -90 and 90"),
            ));
        }
        if !longitude.is_finite() || !(-180.0..=180.0).contains(&longitude) {
            return Err((
                "longitude",
                format!("{longitude} is not a longitude: it must be between -180 and 180"),
            ));
        }
        Ok(Self {
            latitude,
            longitude,
        })
    }

    /// Great-circle distance in metres (haversine, mean Earth radius): plenty for "is the
    /// phone near the place" at the scale of a city.
    pub fn metres_to(self, other: Self) -> f64 {
        use geo::{Distance, Haversine, Point};
        Haversine.distance(
            Point::new(self.longitude, self.latitude),
            Point::new(other.longitude, other.latitude),
        )
    }

    /// Both or neither: a lone latitude is a mistake worth reporting.
    pub fn from_optional(
        latitude: Option<f64>,
        longitude: Option<f64>,
    ) -> Result<Option<Self>, (&'static str, String)> {
        match (latitude, longitude) {
            (None, None) => Ok(None),
            (Some(lat), Some(lon)) => Self::new(lat, lon).map(Some),
            (Some(_), None) => Err(("longitude", "give longitude together with latitude".into())),
            (None, Some(_)) => Err(("latitude", "give latitude together with longitude".into())),
        }
    }
}

/// A tenant's short name in URLs and commands: lowercase letters, digits and single dashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = !raw.is_empty()
            && raw.len() <= 63
            && raw.split('-').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            });
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "{raw:?} is not a slug: use lowercase letters, digits and single dashes, e.g. addis-care"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, lowercased. Deliberately lenient: one `@` with text on both sides and a dot after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        let valid = match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            }
            None => false,
        } && !email.chars().any(char::is_whitespace);
        if valid {
            Ok(Self(email))
        } else {
            Err(format!("{raw:?} is not an email address"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A language tag the message templates are keyed by: `en`, `am`, `en-GB`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locale(String);

impl Locale {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (lang, region) = match raw.split_once(['-', '_']) {
            Some((l, r)) => (l, Some(r)),
            None => (raw, None),
        };
        let lang_ok =
            (2..=3).contains(&lang.len()) && lang.chars().all(|c| c.is_ascii_alphabetic());
        let region_ok =
            region.is_none_or(|r| r.len() == 2 && r.chars().all(|c| c.is_ascii_alphabetic()));
        if lang_ok && region_ok {
            let mut tag = lang.to_ascii_lowercase();
            if let Some(r) = region {
                tag.push('-');
                tag.push_str(&r.to_ascii_uppercase());
            }
            Ok(Self(tag))
        } else {
            Err(format!(
                "{raw:?} is not a language tag such as en, am or en-GB"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IANA time zone name, such as `Africa/Addis_Ababa`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeZone(chrono_tz::Tz);

impl TimeZone {
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.parse::<chrono_tz::Tz>().map(Self).map_err(|_| {
            format!("{raw:?} is not an IANA time zone such as Africa/Addis_Ababa or Europe/London")
        })
    }
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The zone a stored organisation has: validated when it was saved, so a name that no longer
    /// parses (a zone removed from the tz database) falls back to UTC rather than failing.
    pub fn stored(name: &str) -> chrono_tz::Tz {
        Self::parse(name).map_or(chrono_tz::UTC, |z| z.0)
    }
}

/// Text that must not be blank; surrounding spaces are dropped.
pub fn required_text(raw: &str, max_len: usize) -> Result<String, String> {
    let text = raw.trim();
    if text.is_empty() {
        Err("must not be empty".into())
    } else if text.chars().count() > max_len {
        Err(format!("must be at most {max_len} characters"))
    } else {
        Ok(text.to_owned())
    }
}

/// Optional text: blank becomes absent.
pub fn optional_text(raw: Option<&str>, max_len: usize) -> Result<Option<String>, String> {
    match raw.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => required_text(text, max_len).map(Some),
    }
}

/// The years a date may fall in. Outside them a value is a typo or an attack, and date
/// arithmetic (chrono's, or PostgreSQL's range) would fail on it.
pub const YEARS: std::ops::RangeInclusive<i32> = 1900..=2199;

/// Refuses a date outside [`YEARS`], with what to fix.
pub fn check_year(year: i32) -> Result<(), String> {
    if YEARS.contains(&year) {
        Ok(())
    } else {
        Err(format!(
            "the year must be between {} and {}",
            YEARS.start(),
            YEARS.end()
        ))
    }
}

/// For text that arrives untyped (a JSON string, a query value): if the whole text is a date or
/// a date and time, its year must be within [`YEARS`]. Other text passes.
pub fn check_date_text(text: &str) -> Result<(), String> {
    use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime};
    let text = text.trim();
    // Every date form starts with a digit or a sign and is short: skip the parse for prose.
    if text.len() > 40 || !text.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-') {
        return Ok(());
    }
    let year = text
        .parse::<DateTime<FixedOffset>>()
        .map(|d| d.year())
        .or_else(|_| text.parse::<NaiveDateTime>().map(|d| d.year()))
        .or_else(|_| text.parse::<NaiveDate>().map(|d| d.year()))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").map(|d| d.year()));
    match year {
        Ok(year) => check_year(year),
        Err(_) => Ok(()),
    }
}

/// An enum stored as text: the CHECK constraint and readable rows stay, and Rust sees a type.
/// Gives `as_str`, `FromStr` (naming the allowed values), `Display`, serde, OpenAPI
/// and sqlx as text. A row holding anything else is a decode error (a fault), never a 4xx.
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// An optional input field: absent is `default`; anything else must be a value,
            /// else the field is recorded as wrong, naming the values allowed.
            #[allow(dead_code)]
            pub fn field(
                raw: Option<&str>,
                default: Self,
                field: &str,
                errors: &mut $crate::error::FieldErrors,
            ) -> Self {
                match raw.map(str::parse::<Self>) {
                    None => default,
                    Some(Ok(value)) => value,
                    Some(Err(_)) => {
                        errors.add(
                            field,
                            format!("must be one of: {}", [$($text),+].join(", ")),
                        );
                        default
                    }
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!(
                        "{other:?} is not one of: {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        // By hand: utoipa's derive does not see a variant's `serde(rename)` when it comes from a
        // macro, and would document the Rust names instead of the stored ones.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        $crate::text_sql!($name);
    };
}

/// sqlx as text for a type with `as_str` and `FromStr` (its error naming what is allowed).
#[macro_export]
macro_rules! text_sql {
    ($name:ty) => {
        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Ok(text.parse()?)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_normalise_to_e164() {
        assert_eq!(
            PhoneNumber::parse("+251 91 123 4567").unwrap().as_str(),
            "+251911234567"
        );
        assert_eq!(
            PhoneNumber::parse("00251911234567").unwrap().as_str(),
            "+251911234567"
        );
        assert!(
            PhoneNumber::parse("0911234567")
                .unwrap_err()
                .contains("international")
        );
        assert!(PhoneNumber::parse("+2519").is_err());
        assert!(PhoneNumber::parse("hello").is_err());
    }

    #[test]
    fn coordinates_are_range_checked_and_paired() {
        assert!(Coordinates::new(9.03, 38.74).is_ok());
        assert_eq!(Coordinates::new(91.0, 0.0).unwrap_err().0, "latitude");
        assert_eq!(Coordinates::new(0.0, -180.5).unwrap_err().0, "longitude");
        assert_eq!(Coordinates::new(f64::NAN, 0.0).unwrap_err().0, "latitude");
        assert_eq!(
            Coordinates::from_optional(Some(1.0), None).unwrap_err().0,
            "longitude"
        );
        assert_eq!(Coordinates::from_optional(None, None).unwrap(), None);
    }

    #[test]
    fn slugs_emails_locales_and_zones() {
        assert!(Slug::parse("addis-care").is_ok());
        for bad in ["Addis", "-a", "a--b", "a b", ""] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Email::parse(" Ada@Example.ORG ").unwrap().as_str(),
            "ada@example.org"
        );
        assert!(Email::parse("ada@localhost").is_err());
        assert_eq!(Locale::parse("en_gb").unwrap().as_str(), "en-GB");
        assert!(Locale::parse("english").is_err());
        assert_eq!(
            TimeZone::parse("Africa/Addis_Ababa").unwrap().name(),
            "Africa/Addis_Ababa"
        );
        assert!(TimeZone::parse("Mars/Olympus").is_err());
    }

    #[test]
    fn measures_metres_between_places() {
        // Bole Gardens to St. Gabriel hospital in Addis Ababa: about 2.7 km.
        let a = Coordinates::new(8.9936, 38.7866).unwrap();
        let b = Coordinates::new(9.0155, 38.8017).unwrap();
        let metres = a.metres_to(b);
        assert!((2_800.0..3_000.0).contains(&metres), "{metres}");
        assert_eq!(a.metres_to(a), 0.0);
    }

    #[test]
    fn dates_far_outside_any_real_range_are_refused() {
        for bad in [
            "+262142-12-31",
            "-262143-01-01",
            "-9999-01-01T00:00:00Z",
            "0001-01-01",
            "2500-06-01T10:00:00+03:00",
            "9999-12-31T23:59",
        ] {
            assert!(check_date_text(bad).is_err(), "{bad}");
        }
        for good in [
            "2026-11-30",
            "2026-11-30T08:00:00Z",
            "1985-02-01T10:00:00.123+03:00",
            "2026-11-30T08:00",
            "fix the tap",
            "-12",
            "+251911000201",
        ] {
            assert!(check_date_text(good).is_ok(), "{good}");
        }
    }
}
