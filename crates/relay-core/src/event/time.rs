//! Bitbucket timestamps to epoch milliseconds, without a date library.
//!
//! Cloud sends RFC 3339 (`2018-07-02T21:51:39.492248+00:00`); Server sends epoch
//! milliseconds as a number, or on some versions an ISO string with a colon-less offset
//! (`2018-07-05T19:30:48+0000`). Only ordering matters to the planner, so a small strict
//! parser is enough and keeps the crate free of clock-aware dependencies.

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM|±HHMM|±HH)` into epoch milliseconds.
/// A space is accepted instead of `T`. Returns `None` for anything else.
pub(crate) fn parse_timestamp_ms(raw: &str) -> Option<i64> {
    let b = raw.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // 60 admits a leap second; it only shifts ordering by a second at worst.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0i64;
    if let Some((&b'.', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        // Keep milliseconds; finer digits cannot change the order at the precision we store.
        for i in 0..3 {
            millis = millis * 10
                + frac
                    .get(i)
                    .filter(|_| i < n)
                    .map_or(0, |d| i64::from(d - b'0'));
        }
        rest = &frac[n..];
    }
    let offset_minutes = parse_offset(rest)?;
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

fn parse_offset(b: &[u8]) -> Option<i64> {
    match b {
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest.len() {
                2 => (digits(rest, 0, 2)?, 0),
                4 => (digits(rest, 0, 2)?, digits(rest, 2, 2)?),
                5 if rest[2] == b':' => (digits(rest, 0, 2)?, digits(rest, 3, 2)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let total = h * 60 + m;
            Some(if *sign == b'-' { -total } else { total })
        }
        _ => None,
    }
}

fn digits(b: &[u8], start: usize, len: usize) -> Option<i64> {
    let slice = b.get(start..start + len)?;
    slice.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
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
    use super::parse_timestamp_ms as p;

    #[test]
    fn known_instants() {
        assert_eq!(p("1970-01-01T00:00:00Z"), Some(0));
        // The Server fixture pairs: the ISO form and the epoch form of the same instant.
        assert_eq!(p("2018-07-05T19:30:48+0000"), Some(1_530_819_048_000));
        assert_eq!(p("2018-07-05T19:21:30+0000"), Some(1_530_818_490_000));
        assert_eq!(
            p("2018-07-02T21:51:39.532546+00:00"),
            Some(1_530_568_299_532)
        );
        assert_eq!(p("2023-05-30T15:40:47-0400"), p("2023-05-30T19:40:47Z"));
        assert_eq!(p("2000-02-29T12:00:00.5+01"), Some(951_822_000_500));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2018-07-05",
            "2018-07-05T19:30:48",
            "2018-13-05T19:30:48Z",
            "2019-02-29T00:00:00Z",
            "2018-07-05T24:00:00Z",
            "2018-07-05T19:30:48.Z",
            "2018-07-05T19:30:48+1",
            "2018-07-05T19:30:48+00:0",
            "2018-07-05T19:30:48Zjunk",
            "２018-07-05T19:30:48Z",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
