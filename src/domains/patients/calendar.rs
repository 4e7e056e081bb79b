//! Time as the organisation keeps it: working days (not Saturdays, Sundays or its holidays) for
//! complaint deadlines, and quiet hours in which no survey goes out.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use sqlx::PgConnection;
use uuid::Uuid;

/// The organisation's zone and days off.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub zone: Tz,
    pub holidays: Vec<NaiveDate>,
}

impl Calendar {
    pub async fn load(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<Self> {
        let zone: String = sqlx::query_scalar("SELECT time_zone FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_one(&mut *conn)
            .await?;
        let holidays = sqlx::query_scalar(
            "SELECT day FROM tenant_holidays WHERE tenant_id = $1 AND day >= current_date - 1 ORDER BY day",
        )
        .bind(tenant_id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Self {
            zone: crate::types::TimeZone::stored(&zone),
            holidays,
        })
    }

    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&day)
    }

    /// `days` working days after `start`, at the same local time: a complaint made on Friday
    /// afternoon with three working days is due on Wednesday afternoon. Started on a day off, the
    /// count starts from the next working day's beginning.
    pub fn add_working_days(&self, start: DateTime<Utc>, days: u32) -> DateTime<Utc> {
        let local = start.with_timezone(&self.zone);
        let mut day = local.date_naive();
        let mut time = local.time();
        if !self.is_working_day(day) {
            time = NaiveTime::MIN;
            while !self.is_working_day(day) {
                day = day.succ_opt().unwrap_or(day);
            }
        }
        let mut left = days;
        while left > 0 {
            day = day.succ_opt().unwrap_or(day);
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        self.at(day, time)
    }

    /// The first moment at or after `at` outside the quiet hours `from`–`until` (local times; a
    /// window that crosses midnight, 20:00–08:00, is read as such).
    pub fn outside_quiet_hours(
        &self,
        at: DateTime<Utc>,
        from: NaiveTime,
        until: NaiveTime,
    ) -> DateTime<Utc> {
        if from == until {
            return at;
        }
        let local = at.with_timezone(&self.zone);
        let (day, time) = (local.date_naive(), local.time());
        let quiet = if from < until {
            time >= from && time < until
        } else {
            time >= from || time < until
        };
        if !quiet {
            return at;
        }
        let wake_day = if from > until && time >= from {
            day.succ_opt().unwrap_or(day)
        } else {
            day
        };
        self.at(wake_day, until)
    }

    /// A local day and time as a moment; a time skipped by a clock change moves an hour on.
    fn at(&self, day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        let naive = day.and_time(time);
        self.zone
            .from_local_datetime(&naive)
            .earliest()
            .or_else(|| {
                self.zone
                    .from_local_datetime(&(naive + TimeDelta::hours(1)))
                    .earliest()
            })
            .map_or_else(|| naive.and_utc(), |t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addis(holidays: &[&str]) -> Calendar {
        Calendar {
            zone: chrono_tz::Africa::Addis_Ababa,
            holidays: holidays.iter().map(|d| d.parse().unwrap()).collect(),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn working_days_skip_weekends_and_holidays() {
        // Friday 2026-12-04 15:00 in Addis (12:00 UTC): three working days is Wednesday.
        let calendar = addis(&[]);
        assert_eq!(
            calendar.add_working_days(utc("2026-12-04T12:00:00Z"), 3),
            utc("2026-12-09T12:00:00Z")
        );
        // A holiday on the Monday pushes it to Thursday.
        let calendar = addis(&["2026-12-07"]);
        assert_eq!(
            calendar.add_working_days(utc("2026-12-04T12:00:00Z"), 3),
            utc("2026-12-10T12:00:00Z")
        );
        // Made on a Saturday, the count starts Monday morning: due at the end of Wednesday.
        let calendar = addis(&[]);
        assert_eq!(
            calendar.add_working_days(utc("2026-12-05T09:00:00Z"), 3),
            utc("2026-12-09T21:00:00Z")
        );
        // Twenty working days are four weeks.
        assert_eq!(
            calendar.add_working_days(utc("2026-12-01T08:00:00Z"), 20),
            utc("2026-12-29T08:00:00Z")
        );
    }

    #[test]
    fn quiet_hours_hold_a_survey_until_morning() {
        let calendar = addis(&[]);
        let (from, until) = (
            NaiveTime::from_hms_opt(20, 0, 0).unwrap(),
            NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        );
        // 22:00 local (19:00 UTC) waits until 08:00 local the next day (05:00 UTC).
        assert_eq!(
            calendar.outside_quiet_hours(utc("2026-12-01T19:00:00Z"), from, until),
            utc("2026-12-02T05:00:00Z")
        );
        // 03:00 local waits until 08:00 the same day.
        assert_eq!(
            calendar.outside_quiet_hours(utc("2026-12-01T00:00:00Z"), from, until),
            utc("2026-12-01T05:00:00Z")
        );
        // 14:00 local goes at once.
        assert_eq!(
            calendar.outside_quiet_hours(utc("2026-12-01T11:00:00Z"), from, until),
            utc("2026-12-01T11:00:00Z")
        );
        // No quiet hours at all.
        assert_eq!(
            calendar.outside_quiet_hours(utc("2026-12-01T19:00:00Z"), from, from),
            utc("2026-12-01T19:00:00Z")
        );
    }
}
