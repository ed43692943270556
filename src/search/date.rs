//! FHIR date, dateTime and instant values as the instant ranges they cover. `2024` covers the
//! whole year, `2024-03` the month, `2024-03-05` the day, a dateTime its second (or its
//! millisecond when given). Ranges are inclusive and written as fixed-width UTC text, which
//! both stores compare correctly as strings.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};

pub const MIN: &str = "0001-01-01T00:00:00.000Z";
pub const MAX: &str = "9999-12-31T23:59:59.999Z";

fn fmt(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn day_start(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
}

/// The inclusive range `[low, high]` a FHIR date/dateTime/instant covers, or None when the
/// text is not one.
pub fn range(text: &str) -> Option<(String, String)> {
    let text = text.trim();
    let ms = Duration::milliseconds(1);
    match text.len() {
        4 => {
            let year: i32 = text.parse().ok()?;
            let start = NaiveDate::from_ymd_opt(year, 1, 1)?;
            let next = NaiveDate::from_ymd_opt(year + 1, 1, 1)?;
            Some((fmt(day_start(start)), fmt(day_start(next) - ms)))
        }
        7 => {
            let start = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").ok()?;
            let next = if start.month() == 12 {
                NaiveDate::from_ymd_opt(start.year() + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(start.year(), start.month() + 1, 1)?
            };
            Some((fmt(day_start(start)), fmt(day_start(next) - ms)))
        }
        10 => {
            let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
            Some((fmt(day_start(day)), fmt(day_start(day) + Duration::days(1) - ms)))
        }
        _ => {
            let has_fraction = text.contains('.');
            let instant = DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| {
                    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|t| Utc.from_utc_datetime(&t))
                })
                .ok()?;
            let high = if has_fraction {
                instant
            } else {
                instant + Duration::seconds(1) - ms
            };
            Some((fmt(instant), fmt(high)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn precision_sets_the_range() {
        assert_eq!(
            range("2024").unwrap(),
            ("2024-01-01T00:00:00.000Z".into(), "2024-12-31T23:59:59.999Z".into())
        );
        assert_eq!(range("2024-02").unwrap().1, "2024-02-29T23:59:59.999Z");
        assert_eq!(range("2024-12").unwrap().1, "2024-12-31T23:59:59.999Z");
        assert_eq!(range("2024-03-05").unwrap().0, "2024-03-05T00:00:00.000Z");
        assert_eq!(
            range("2024-03-05T10:00:00+02:00").unwrap(),
            ("2024-03-05T08:00:00.000Z".into(), "2024-03-05T08:00:00.999Z".into())
        );
        assert!(range("2024-13").is_none());
        assert!(range("yesterday").is_none());
    }
}
