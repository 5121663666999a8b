//! Time helpers: the wall clock in Unix milliseconds, UTC civil dates, and
//! RFC 3339 formatting with millisecond precision and a `Z` suffix.
//!
//! The civil-date conversion is Howard Hinnant's `civil_from_days`, exact for
//! every `i64` day count we can meet; no time-zone database is involved.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds in an hour, the width of an hourly partition.
pub const HOUR_MS: i64 = 3_600_000;

/// The wall clock in Unix epoch milliseconds.
pub fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// A UTC date and time split into fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

/// Splits Unix epoch milliseconds into UTC fields.
pub fn civil(ms: i64) -> Civil {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: (rem / HOUR_MS) as u32,
        minute: (rem / 60_000 % 60) as u32,
        second: (rem / 1000 % 60) as u32,
        millis: (rem % 1000) as u32,
    }
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Appends `ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn write_rfc3339_ms(ms: i64, out: &mut Vec<u8>) {
    let c = civil(ms);
    let mut buf = [0u8; 24];
    write_digits(&mut buf[0..4], c.year.clamp(0, 9999) as u32);
    buf[4] = b'-';
    write_digits(&mut buf[5..7], c.month);
    buf[7] = b'-';
    write_digits(&mut buf[8..10], c.day);
    buf[10] = b'T';
    write_digits(&mut buf[11..13], c.hour);
    buf[13] = b':';
    write_digits(&mut buf[14..16], c.minute);
    buf[16] = b':';
    write_digits(&mut buf[17..19], c.second);
    buf[19] = b'.';
    write_digits(&mut buf[20..23], c.millis);
    buf[23] = b'Z';
    out.extend_from_slice(&buf);
}

/// Writes `v` as zero-padded decimal filling `dst`.
fn write_digits(dst: &mut [u8], mut v: u32) {
    for b in dst.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(ms: i64) -> String {
        let mut v = Vec::new();
        write_rfc3339_ms(ms, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn known_instants() {
        assert_eq!(fmt(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(fmt(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(fmt(1_764_057_600_123), "2025-11-25T08:00:00.123Z");
        assert_eq!(fmt(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
        assert_eq!(fmt(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn civil_matches_day_by_day_walk() {
        // Walk every day from 1970 to 2100 and compare with a counter.
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for day in 0..47_482i64 {
            let c = civil(day * 86_400_000 + 13 * HOUR_MS);
            assert_eq!((c.year, c.month, c.day, c.hour), (y, m, d, 13), "day {day}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            d += 1;
            if d > len[(m - 1) as usize] {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }
}
