//! Go's `time`: civil dates, `Time.String`, `Duration.String` and layouts.

use super::*;

pub(super) const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
pub(super) const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
/// Go's zero `time.Time` (January 1, year 1, 00:00:00 UTC) in Unix seconds.
pub(super) const ZERO_TIME_SECS: i64 = -62_135_596_800;

pub(super) struct TimeParts {
    pub(super) year: i64,
    pub(super) month: u32,
    pub(super) day: u32,
    pub(super) hour: u32,
    pub(super) min: u32,
    pub(super) sec: u32,
    pub(super) yday: u32,
    pub(super) wday: u32,
}

pub(super) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(super) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub(super) fn time_parts(t: Time) -> TimeParts {
    let days = t.secs.div_euclid(86_400);
    let sod = t.secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    TimeParts {
        year,
        month,
        day,
        hour: sod / 3600,
        min: sod / 60 % 60,
        sec: sod % 60,
        yday: (days - days_from_civil(year, 1, 1) + 1) as u32,
        wday: (days + 4).rem_euclid(7) as u32,
    }
}

/// Go's `Time.String()` for a UTC time.
pub(super) fn time_string(t: Time) -> String {
    go_time_format(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TZ,
    Iso(&'static str),
    Num(&'static str),
    Frac(bool, usize, char),
}

/// Go's `nextStdChunk`: (prefix length, chunk, chunk length).
pub(super) fn next_std_chunk(layout: &str) -> Option<(usize, Std, usize)> {
    let b = layout.as_bytes();
    let starts = |i: usize, p: &str| layout[i..].starts_with(p);
    let lower_at = |i: usize| b.get(i).is_some_and(u8::is_ascii_lowercase);
    for i in 0..b.len() {
        match b[i] {
            b'J' if starts(i, "Jan") => {
                if starts(i, "January") {
                    return Some((i, Std::LongMonth, 7));
                }
                if !lower_at(i + 3) {
                    return Some((i, Std::Month, 3));
                }
            }
            b'M' => {
                if starts(i, "Mon") {
                    if starts(i, "Monday") {
                        return Some((i, Std::LongWeekDay, 6));
                    }
                    if !lower_at(i + 3) {
                        return Some((i, Std::WeekDay, 3));
                    }
                }
                if starts(i, "MST") {
                    return Some((i, Std::TZ, 3));
                }
            }
            b'0' => {
                if let Some(&c) = b.get(i + 1) {
                    let std = match c {
                        b'1' => Some(Std::ZeroMonth),
                        b'2' => Some(Std::ZeroDay),
                        b'3' => Some(Std::ZeroHour12),
                        b'4' => Some(Std::ZeroMinute),
                        b'5' => Some(Std::ZeroSecond),
                        b'6' => Some(Std::Year),
                        _ => None,
                    };
                    if let Some(s) = std {
                        return Some((i, s, 2));
                    }
                }
                if starts(i, "002") {
                    return Some((i, Std::ZeroYearDay, 3));
                }
            }
            b'1' => {
                if b.get(i + 1) == Some(&b'5') {
                    return Some((i, Std::Hour, 2));
                }
                return Some((i, Std::NumMonth, 1));
            }
            b'2' => {
                if starts(i, "2006") {
                    return Some((i, Std::LongYear, 4));
                }
                return Some((i, Std::Day, 1));
            }
            b'_' => {
                if b.get(i + 1) == Some(&b'2') {
                    if starts(i + 1, "2006") {
                        return Some((i + 1, Std::LongYear, 4));
                    }
                    return Some((i, Std::UnderDay, 2));
                }
                if starts(i, "__2") {
                    return Some((i, Std::UnderYearDay, 3));
                }
            }
            b'3' => return Some((i, Std::Hour12, 1)),
            b'4' => return Some((i, Std::Minute, 1)),
            b'5' => return Some((i, Std::Second, 1)),
            b'P' if b.get(i + 1) == Some(&b'M') => return Some((i, Std::PM, 2)),
            b'p' if b.get(i + 1) == Some(&b'm') => return Some((i, Std::Pm, 2)),
            b'-' | b'Z' => {
                let z = b[i] == b'Z';
                for p in ["070000", "07:00:00", "0700", "07:00", "07"] {
                    if starts(i + 1, p) {
                        let std = if z { Std::Iso(p) } else { Std::Num(p) };
                        return Some((i, std, p.len() + 1));
                    }
                }
            }
            b'.' | b',' => {
                if let Some(&ch) = b.get(i + 1).filter(|c| **c == b'0' || **c == b'9') {
                    let mut j = i + 1;
                    while j < b.len() && b[j] == ch {
                        j += 1;
                    }
                    if !b.get(j).is_some_and(u8::is_ascii_digit) {
                        return Some((i, Std::Frac(ch == b'9', j - i - 1, b[i] as char), j - i));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// Go's `Time.Format` for a UTC time.
pub(super) fn go_time_format(t: Time, layout: &str) -> String {
    let p = time_parts(t);
    let mut out = String::new();
    let mut rest = layout;
    while let Some((pre, std, len)) = next_std_chunk(rest) {
        out.push_str(&rest[..pre]);
        rest = &rest[pre + len..];
        let hour12 = if p.hour.is_multiple_of(12) {
            12
        } else {
            p.hour % 12
        };
        let _ = match std {
            Std::LongMonth => write!(out, "{}", MONTHS[(p.month - 1) as usize]),
            Std::Month => write!(out, "{}", &MONTHS[(p.month - 1) as usize][..3]),
            Std::NumMonth => write!(out, "{}", p.month),
            Std::ZeroMonth => write!(out, "{:02}", p.month),
            Std::LongWeekDay => write!(out, "{}", DAYS[p.wday as usize]),
            Std::WeekDay => write!(out, "{}", &DAYS[p.wday as usize][..3]),
            Std::Day => write!(out, "{}", p.day),
            Std::UnderDay => write!(out, "{:>2}", p.day),
            Std::ZeroDay => write!(out, "{:02}", p.day),
            Std::UnderYearDay => write!(out, "{:>3}", p.yday),
            Std::ZeroYearDay => write!(out, "{:03}", p.yday),
            Std::Hour => write!(out, "{:02}", p.hour),
            Std::Hour12 => write!(out, "{hour12}"),
            Std::ZeroHour12 => write!(out, "{hour12:02}"),
            Std::Minute => write!(out, "{}", p.min),
            Std::ZeroMinute => write!(out, "{:02}", p.min),
            Std::Second => write!(out, "{}", p.sec),
            Std::ZeroSecond => write!(out, "{:02}", p.sec),
            Std::LongYear => {
                if p.year < 0 {
                    write!(out, "-{:04}", -p.year)
                } else {
                    write!(out, "{:04}", p.year)
                }
            }
            Std::Year => write!(out, "{:02}", p.year.rem_euclid(100)),
            Std::PM => write!(out, "{}", if p.hour >= 12 { "PM" } else { "AM" }),
            Std::Pm => write!(out, "{}", if p.hour >= 12 { "pm" } else { "am" }),
            Std::TZ => write!(out, "UTC"),
            Std::Iso(_) => write!(out, "Z"),
            Std::Num(f) => write!(
                out,
                "{}",
                match f {
                    "070000" => "+000000",
                    "07:00:00" => "+00:00:00",
                    "0700" => "+0000",
                    "07:00" => "+00:00",
                    _ => "+00",
                }
            ),
            Std::Frac(trim, n, sep) => {
                let digits = format!("{:09}", t.nanos);
                let mut d = &digits[..n.min(9)];
                if trim {
                    d = d.trim_end_matches('0');
                }
                if !d.is_empty() {
                    out.push(sep);
                    out.push_str(d);
                }
                Ok(())
            }
        };
    }
    out.push_str(rest);
    out
}
