//! Times for people: a Unix-millisecond instant as an RFC 3339 UTC date and as a
//! distance from now ("in 2 h 59 min", "3 min ago"), for `uid2ctl info`.

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC, whole seconds) of `ms` since the Unix epoch;
/// instants before 1970 too.
pub(super) fn rfc3339(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date of `days` since 1970-01-01: Howard Hinnant's
/// `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// How far `at` is from `now` (both Unix ms), in the two largest units: `in 45 s`,
/// `in 2 h 59 min`, `3 min ago`, `in 4 d 2 h`, `now` within a second. Truncated, not
/// rounded: a token valid for 2 h 59 min 59 s is not "in 3 h".
pub(super) fn relative(at: i64, now: i64) -> String {
    let distance = at.abs_diff(now) / 1000;
    if distance == 0 {
        return "now".to_owned();
    }
    let (days, hours, minutes) = (
        distance / 86_400,
        distance % 86_400 / 3600,
        distance % 3600 / 60,
    );
    let span = if days > 0 {
        pair(days, "d", hours, "h")
    } else if hours > 0 {
        pair(hours, "h", minutes, "min")
    } else if minutes > 0 {
        format!("{minutes} min")
    } else {
        format!("{distance} s")
    };
    if at > now {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

fn pair(major: u64, major_unit: &str, minor: u64, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major} {major_unit}")
    } else {
        format!("{major} {major_unit} {minor} {minor_unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_rfc3339() {
        for (ms, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (1_796_902_994_772, "2026-12-10T11:43:14Z"),
            (951_782_400_000, "2000-02-29T00:00:00Z"),
            (4_102_444_800_000, "2100-01-01T00:00:00Z"),
            (-1000, "1969-12-31T23:59:59Z"),
            (-1, "1969-12-31T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(ms), text, "{ms}");
        }
        // Every day of four years (a leap year and a century rule between) is one day on.
        let mut previous = rfc3339(946_684_800_000 - 86_400_000);
        for day in 0..4 * 366 {
            let next = rfc3339(946_684_800_000 + day * 86_400_000);
            assert!(next > previous, "{previous} then {next}");
            assert!(next.ends_with("T00:00:00Z"));
            previous = next;
        }
        // Nothing panics at the ends of the range.
        rfc3339(i64::MAX);
        rfc3339(i64::MIN);
    }

    #[test]
    fn distances_in_two_units() {
        let now = 1_700_000_000_000;
        let s = 1000;
        for (offset, text) in [
            (0, "now"),
            (999, "now"),
            (45 * s, "in 45 s"),
            (-45 * s, "45 s ago"),
            (3 * 60 * s, "in 3 min"),
            (-(3 * 60 + 59) * s, "3 min ago"),
            ((2 * 3600 + 59 * 60 + 59) * s, "in 2 h 59 min"),
            (3 * 3600 * s, "in 3 h"),
            ((4 * 86_400 + 2 * 3600 + 5) * s, "in 4 d 2 h"),
            (-30 * 86_400 * s, "30 d ago"),
        ] {
            assert_eq!(relative(now + offset, now), text, "{offset}");
        }
        assert!(relative(i64::MIN, i64::MAX).starts_with("213503982334 d "));
    }
}
