//! Cron schedules as CronJobs accept them: robfig/cron v3's standard parser (five fields: minute,
//! hour, day of month, month, day of week; `*`, `?`, lists, ranges, steps, `N/step`, month and
//! weekday names; the `@yearly`/`@annually`/`@monthly`/`@weekly`/`@daily`/`@midnight`/`@hourly`
//! descriptors and `@every <duration>`), evaluated in an IANA time zone. `TZ=` and `CRON_TZ=`
//! prefixes are refused like the Kubernetes API does (the `timeZone` field replaces them).

use std::time::Duration;

use k8s_openapi::jiff::civil::{Date, DateTime, Time};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{Timestamp, ToSpan};

/// A schedule that could not be parsed, with robfig/cron's wording.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct CronError(pub String);

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Field bit sets.
    Spec {
        /// Minutes 0-59.
        minute: u64,
        /// Hours 0-23.
        hour: u64,
        /// Days of month 1-31.
        dom: u64,
        /// Months 1-12.
        month: u64,
        /// Days of week 0-6 (Sunday is 0).
        dow: u64,
        /// Whether the day of month field was `*` or `?`.
        dom_star: bool,
        /// Whether the day of week field was `*` or `?`.
        dow_star: bool,
    },
    /// `@every <duration>`.
    Every(Duration),
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
    name_base: u32,
}

const MINUTE: Bounds = Bounds { min: 0, max: 59, names: &[], name_base: 0 };
const HOUR: Bounds = Bounds { min: 0, max: 23, names: &[], name_base: 0 };
const DOM: Bounds = Bounds { min: 1, max: 31, names: &[], name_base: 0 };
const MONTH: Bounds = Bounds { min: 1, max: 12, names: &MONTHS, name_base: 1 };
const DOW: Bounds = Bounds { min: 0, max: 6, names: &DAYS, name_base: 0 };

fn parse_int(s: &str) -> Result<u32, CronError> {
    let n: i64 = s
        .parse()
        .map_err(|_| CronError(format!("failed to parse int from {s}: strconv.Atoi: parsing {s:?}: invalid syntax")))?;
    if n < 0 {
        return Err(CronError(format!("negative number ({n}) not allowed: {s}")));
    }
    u32::try_from(n).map_err(|_| CronError(format!("failed to parse int from {s}: value out of range")))
}

fn int_or_name(s: &str, b: &Bounds) -> Result<u32, CronError> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = b.names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + b.name_base);
    }
    parse_int(s)
}

/// One comma-separated part of a field: returns (bits, star).
fn range(expr: &str, b: &Bounds) -> Result<(u64, bool), CronError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_high.len() == 1;
    let (start, mut end, mut star);
    if low_high[0] == "*" || low_high[0] == "?" {
        start = b.min;
        end = b.max;
        star = true;
    } else {
        start = int_or_name(low_high[0], b)?;
        star = false;
        end = match low_high.len() {
            1 => start,
            2 => int_or_name(low_high[1], b)?,
            _ => return Err(CronError(format!("too many hyphens: {expr}"))),
        };
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_int(range_and_step[1])?;
            if single {
                end = b.max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(CronError(format!("too many slashes: {expr}"))),
    };
    if start < b.min {
        return Err(CronError(format!("beginning of range ({start}) below minimum ({}): {expr}", b.min)));
    }
    if end > b.max {
        return Err(CronError(format!("end of range ({end}) above maximum ({}): {expr}", b.max)));
    }
    if start > end {
        return Err(CronError(format!("beginning of range ({start}) beyond end of range ({end}): {expr}")));
    }
    if step == 0 {
        return Err(CronError(format!("step of range should be a positive number: {expr}")));
    }
    let mut bits = 0u64;
    let mut i = start;
    while i <= end {
        bits |= 1 << i;
        i += step;
    }
    Ok((bits, star))
}

fn field(f: &str, b: &Bounds) -> Result<(u64, bool), CronError> {
    let mut bits = 0;
    let mut star = false;
    for part in f.split(',') {
        let (p, s) = range(part, b)?;
        bits |= p;
        star |= s;
    }
    Ok((bits, star))
}

/// Parses a Go duration (`1h30m`, `90s`, `500ms`).
fn parse_go_duration(s: &str) -> Result<Duration, CronError> {
    let bad = || CronError(format!("failed to parse duration @every {s}: time: invalid duration {s:?}"));
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * secs;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

impl Schedule {
    /// Parses a schedule like robfig/cron's ParseStandard, refusing TZ prefixes.
    pub fn parse(spec: &str) -> Result<Schedule, CronError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(CronError("empty spec string".into()));
        }
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            return Err(CronError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into()));
        }
        if let Some(d) = spec.strip_prefix('@') {
            let fields = match d {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                _ => {
                    if let Some(every) = d.strip_prefix("every ") {
                        let dur = parse_go_duration(every.trim())?;
                        // robfig: at least one second, whole seconds.
                        return Ok(Schedule::Every(Duration::from_secs(dur.as_secs().max(1))));
                    }
                    return Err(CronError(format!("unrecognized descriptor: {spec}")));
                }
            };
            return Schedule::parse(fields);
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError(format!("expected exactly 5 fields, found {}: {}", fields.len(), fields.join(" "))));
        }
        let (minute, _) = field(fields[0], &MINUTE)?;
        let (hour, _) = field(fields[1], &HOUR)?;
        let (dom, dom_star) = field(fields[2], &DOM)?;
        let (month, _) = field(fields[3], &MONTH)?;
        let (dow, dow_star) = field(fields[4], &DOW)?;
        Ok(Schedule::Spec { minute, hour, dom, month, dow, dom_star, dow_star })
    }

    /// The first activation strictly after `after`, in `tz` (None when there is none within five
    /// years, as robfig gives up).
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let (minute, hour, dom, month, dow, dom_star, dow_star) = match self {
            Schedule::Every(d) => {
                let secs = after.as_second() + d.as_secs() as i64;
                return Timestamp::from_second(secs).ok();
            }
            Schedule::Spec { minute, hour, dom, month, dow, dom_star, dow_star } => {
                (*minute, *hour, *dom, *month, *dow, *dom_star, *dow_star)
            }
        };
        let has = |bits: u64, v: i64| (0..64).contains(&v) && bits & (1u64 << v) != 0;
        let local = after.to_zoned(tz.clone()).datetime();
        // Start at the next whole minute.
        let mut dt = DateTime::from_parts(local.date(), Time::new(local.hour(), local.minute(), 0, 0).ok()?);
        dt = dt.checked_add(1.minute()).ok()?;
        let limit = dt.year() + 5;
        loop {
            if dt.year() > limit {
                return None;
            }
            if !has(month, i64::from(dt.month())) {
                let (y, m) = if dt.month() == 12 { (dt.year() + 1, 1) } else { (dt.year(), dt.month() + 1) };
                dt = DateTime::from_parts(Date::new(y, m, 1).ok()?, Time::midnight());
                continue;
            }
            let dom_match = has(dom, i64::from(dt.day()));
            let dow_match = has(dow, i64::from(dt.weekday().to_sunday_zero_offset()));
            let day_ok = if dom_star || dow_star { dom_match && dow_match } else { dom_match || dow_match };
            if !day_ok {
                dt = DateTime::from_parts(dt.date().tomorrow().ok()?, Time::midnight());
                continue;
            }
            if !has(hour, i64::from(dt.hour())) {
                dt = DateTime::from_parts(dt.date(), Time::new(dt.hour(), 0, 0, 0).ok()?).checked_add(1.hour()).ok()?;
                continue;
            }
            if !has(minute, i64::from(dt.minute())) {
                dt = dt.checked_add(1.minute()).ok()?;
                continue;
            }
            let ts = tz.to_ambiguous_zoned(dt).compatible().ok()?.timestamp();
            if ts <= after {
                dt = dt.checked_add(1.minute()).ok()?;
                continue;
            }
            return Some(ts);
        }
    }
}

/// Loads an IANA time zone from the system database (`/usr/share/zoneinfo`); `None` means the
/// server's local zone.
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, CronError> {
    match name {
        None => Ok(TimeZone::system()),
        Some(n) => TimeZone::get(n).map_err(|e| CronError(format!("unknown time zone {n}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(spec: &str, after: &str) -> String {
        Schedule::parse(spec).unwrap().next(ts(after), &TimeZone::UTC).unwrap().to_string()
    }

    #[test]
    fn parses_like_robfig() {
        assert_eq!(next("*/1 * * * *", "2024-01-01T10:00:30Z"), "2024-01-01T10:01:00Z");
        assert_eq!(next("*/15 * * * *", "2024-01-01T10:00:00Z"), "2024-01-01T10:15:00Z");
        assert_eq!(next("0 9 * * mon-fri", "2024-01-06T10:00:00Z"), "2024-01-08T09:00:00Z");
        assert_eq!(next("30 6-16/4 * * 1-5", "2024-01-01T07:00:00Z"), "2024-01-01T10:30:00Z");
        assert_eq!(next("@hourly", "2024-01-01T10:00:00Z"), "2024-01-01T11:00:00Z");
        assert_eq!(next("@daily", "2024-01-01T10:00:00Z"), "2024-01-02T00:00:00Z");
        assert_eq!(next("@midnight", "2024-01-01T10:00:00Z"), "2024-01-02T00:00:00Z");
        assert_eq!(next("@weekly", "2024-01-01T10:00:00Z"), "2024-01-07T00:00:00Z");
        assert_eq!(next("@monthly", "2024-01-01T10:00:00Z"), "2024-02-01T00:00:00Z");
        assert_eq!(next("@yearly", "2024-01-01T10:00:00Z"), "2025-01-01T00:00:00Z");
        assert_eq!(next("@annually", "2024-01-01T10:00:00Z"), "2025-01-01T00:00:00Z");
        assert_eq!(next("0 0 29 feb *", "2024-03-01T00:00:00Z"), "2028-02-29T00:00:00Z");
        // Both day fields restricted: either matches (the 13th, or a Friday).
        assert_eq!(next("0 0 13 * 5", "2024-01-01T00:00:00Z"), "2024-01-05T00:00:00Z");
        // One of them `*`: both must match.
        assert_eq!(next("0 0 13 * *", "2024-01-01T00:00:00Z"), "2024-01-13T00:00:00Z");
        // `N/step` means N-max/step.
        assert_eq!(next("50/5 * * * *", "2024-01-01T10:56:00Z"), "2024-01-01T11:50:00Z");
        assert_eq!(next("@every 90s", "2024-01-01T10:00:00Z"), "2024-01-01T10:01:30Z");
    }

    #[test]
    fn refuses_bad_schedules() {
        let err = |s: &str| Schedule::parse(s).unwrap_err().0;
        assert_eq!(err("* * * *"), "expected exactly 5 fields, found 4: * * * *");
        assert_eq!(err("60 * * * *"), "end of range (60) above maximum (59): 60");
        assert_eq!(err("* * 0 * *"), "beginning of range (0) below minimum (1): 0");
        assert_eq!(err("* * * * 7"), "end of range (7) above maximum (6): 7");
        assert_eq!(err("5-1 * * * *"), "beginning of range (5) beyond end of range (1): 5-1");
        assert_eq!(err("*/0 * * * *"), "step of range should be a positive number: */0");
        assert_eq!(err("TZ=UTC * * * * *"), "cannot use TZ or CRON_TZ in schedule, use timeZone field instead");
        assert_eq!(err("CRON_TZ=UTC * * * * *"), "cannot use TZ or CRON_TZ in schedule, use timeZone field instead");
        assert_eq!(err("@fortnightly"), "unrecognized descriptor: @fortnightly");
        assert!(err("x * * * *").starts_with("failed to parse int from x"));
        assert!(err("-1 * * * *").starts_with("failed to parse int from"));
    }

    #[test]
    fn time_zones_shift_the_schedule() {
        let Ok(tz) = time_zone(Some("Europe/Berlin")) else {
            panic!("the system time zone database (/usr/share/zoneinfo) is missing Europe/Berlin");
        };
        // 09:00 in Berlin (UTC+1 in January) is 08:00 UTC.
        let n = Schedule::parse("0 9 * * *").unwrap().next(ts("2024-01-01T00:00:00Z"), &tz).unwrap();
        assert_eq!(n.to_string(), "2024-01-01T08:00:00Z");
        assert!(time_zone(Some("Mars/Olympus")).is_err());
    }
}
