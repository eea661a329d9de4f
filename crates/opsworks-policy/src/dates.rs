//! Dates as IAM's date operators read them: epoch seconds, or the lenient ISO 8601 its legacy
//! parser accepts (`2026-12-07T12:00:00Z`, `2026-12-07`, `2026`, `2016-12-13t2:00:00.5+23`, …).
//!
//! Values are kept as nanoseconds since the epoch in an `i128`, so years far outside the usual
//! range (IAM takes −292275054 to 292278993) still compare correctly.

/// Nanoseconds since 1970-01-01T00:00:00Z.
pub(crate) type Instant = i128;

pub(crate) const NANOS: i128 = 1_000_000_000;

/// Parses a date condition value; `None` when IAM's parser would refuse it.
pub(crate) fn parse(s: &str) -> Option<Instant> {
    let s = s.trim().to_ascii_lowercase();
    if s.is_empty() {
        return None;
    }
    if !s.contains('t') && !s.contains('-') {
        // Epoch seconds, 0 to i64::MAX.
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let secs: i64 = s.parse().ok()?;
        return Some(i128::from(secs) * NANOS);
    }
    let (date, time) = match s.split_once('t') {
        Some((d, t)) => (d, t),
        None => (s.as_str(), ""),
    };
    let (negative, date) = match date.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, date),
    };
    let mut parts = date.split('-');
    let mut year = number(parts.next()?)?;
    if negative {
        year = -year;
    }
    if !(-292_275_054..=292_278_993).contains(&year) {
        return None;
    }
    let month = parts.next().map(number).unwrap_or(Some(1))?;
    let day = parts.next().map(number).unwrap_or(Some(1))?;
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let (seconds, nanos, offset) = parse_time(time)?;
    Some((i128::from(days) * 86_400 + i128::from(seconds - offset)) * NANOS + i128::from(nanos))
}

/// `hh[:mm[:ss[.fraction]]]` with an optional `z`, `+hh[:mm]` or `-hh[:mm]` after the seconds:
/// (seconds of the day, nanoseconds, offset in seconds).
fn parse_time(time: &str) -> Option<(i64, i64, i64)> {
    if time.is_empty() {
        return Some((0, 0, 0));
    }
    let mut parts = time.splitn(3, ':');
    let hours = number(parts.next()?)?;
    let minutes = parts.next().map(number).unwrap_or(Some(0))?;
    if !(0..=23).contains(&hours) || !(0..=59).contains(&minutes) {
        return None;
    }
    let (seconds, nanos, offset) = match parts.next() {
        None => (0, 0, 0),
        Some(rest) => {
            let (secs, zone) = match rest.find(['z', '+', '-']) {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let offset = parse_zone(zone)?;
            let (whole, fraction) = match secs.split_once('.') {
                Some((w, f)) => (w, Some(f)),
                None => (secs, None),
            };
            let whole = number(whole)?;
            if !(0..=59).contains(&whole) {
                return None;
            }
            let nanos = match fraction {
                None => 0,
                Some(f) => {
                    let n = number(f)?;
                    if !(0..=999_999_999).contains(&n) || f.len() > 9 {
                        return None;
                    }
                    n * 10_i64.pow(9 - f.len() as u32)
                }
            };
            (whole, nanos, offset)
        }
    };
    Some((hours * 3600 + minutes * 60 + seconds, nanos, offset))
}

/// `z`, `+hh`, `+hh:mm`, `-hh`, `-hh:mm` or nothing: the offset east of UTC in seconds.
fn parse_zone(zone: &str) -> Option<i64> {
    if zone.is_empty() || zone == "z" {
        return Some(0);
    }
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let rest = &zone[1..];
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, Some(m)),
        None => (rest, None),
    };
    if h.len() != 2 || m.is_some_and(|m| m.len() != 2) {
        return None;
    }
    let h = number(h)?;
    let m = m.map(number).unwrap_or(Some(0))?;
    if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

/// A run of ASCII digits (at least one) as a number.
fn number(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's algorithm); a day
/// past the month's end rolls over, as IAM's parser allows 1 to 31 in every month.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Option<i128> {
        parse(s).map(|n| n / NANOS)
    }

    #[test]
    fn forms_iam_accepts() {
        assert_eq!(secs("2026-12-07T12:00:00Z"), Some(1_796_644_800));
        assert_eq!(secs("2026-12-07t12:00:00z"), Some(1_796_644_800));
        assert_eq!(secs("2026-12-07T13:00:00+01:00"), Some(1_796_644_800));
        assert_eq!(secs("2026-12-07T07:00:00-05:00"), Some(1_796_644_800));
        assert_eq!(secs("2026-12-07T12:00:00"), Some(1_796_644_800));
        assert_eq!(secs("2026-12-07T12:00"), Some(1_796_644_800));
        assert_eq!(secs("2026-12-07T12"), Some(1_796_644_800));
        assert_eq!(secs("2026-12-07"), Some(1_796_601_600));
        assert_eq!(secs("1970-01-01"), Some(0));
        assert_eq!(secs("1796644800"), Some(1_796_644_800));
        assert_eq!(secs("01T"), Some(-62_135_596_800));
        assert_eq!(parse("1970-01-01T00:00:00.5Z"), Some(NANOS / 2));
        assert!(parse("2016-12-13t2:00:00.593194+23").is_some());
        assert!(parse("-292275054").is_some());
        assert_eq!(secs("1969-12-31T23:59:59Z"), Some(-1));
        assert_eq!(secs("2024-02-29"), Some(1_709_164_800));
    }

    #[test]
    fn forms_iam_refuses() {
        for bad in [
            "",
            "sdfdsf",
            "234-13",
            "2016-12-13t2:00:00.593194+1",
            "2016-12-13t2:00:00.1999999999+10:59",
            "9223372036854775808",
            "2026-12-07T24:00:00Z",
            "2026-12-07T12:60:00Z",
            "2026-12-07T12:00:60Z",
            "2026-00-07",
            "2026-12-32",
            "2026-12-07-01",
            "2026-12-07 12:00:00Z",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
