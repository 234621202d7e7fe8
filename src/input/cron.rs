//! Cron schedules in the dialect the Kubernetes CronJob controller parses: robfig/cron v3's
//! standard parser (five fields `minute hour day-of-month month day-of-week`, `*` and `?`,
//! ranges `a-b`, steps `/n`, lists `,`, month and weekday names, and the descriptors `@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly` and `@every <duration>`),
//! plus the API server's own rule: no `TZ`/`CRON_TZ` in the schedule.

struct Bounds {
    min: u64,
    max: u64,
    names: &'static [(&'static str, u64)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

const DESCRIPTORS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// Checks a schedule; the error says why, in the words of the rule that failed.
pub fn check(spec: &str) -> Result<(), String> {
    if spec.is_empty() {
        return Err("it is empty".into());
    }
    if spec.contains("TZ") {
        return Err(
            "`TZ`/`CRON_TZ` is not allowed in a CronJob schedule (CronJobs here run in UTC)".into(),
        );
    }
    if spec.starts_with('@') {
        if DESCRIPTORS.contains(&spec) {
            return Ok(());
        }
        if let Some(d) = spec.strip_prefix("@every ") {
            return go_duration(d).map(|_| ()).map_err(|e| {
                format!("`@every` needs a Go duration such as `5m` or `1h30m` ({e})")
            });
        }
        return Err(format!(
            "unknown descriptor `{spec}`: use one of {}, or `@every <duration>`",
            DESCRIPTORS.join(", ")
        ));
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected exactly 5 fields, found {}", fields.len()));
    }
    for (field, (name, bounds)) in fields.iter().zip([
        ("minute", &MINUTES),
        ("hour", &HOURS),
        ("day-of-month", &DOM),
        ("month", &MONTHS),
        ("day-of-week", &DOW),
    ]) {
        for range in field.split(',').filter(|r| !r.is_empty()) {
            check_range(range, bounds).map_err(|e| format!("{name} field: {e}"))?;
        }
    }
    Ok(())
}

fn check_range(expr: &str, r: &Bounds) -> Result<(), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_high.len() == 1;
    let (start, mut end) = if low_high[0] == "*" || low_high[0] == "?" {
        (r.min, r.max)
    } else {
        let start = int_or_name(low_high[0], r)?;
        let end = match low_high.len() {
            1 => start,
            2 => int_or_name(low_high[1], r)?,
            _ => return Err(format!("too many hyphens in `{expr}`")),
        };
        (start, end)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = int(range_and_step[1])?;
            if single {
                end = r.max;
            }
            step
        }
        _ => return Err(format!("too many slashes in `{expr}`")),
    };
    if start < r.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}) in `{expr}`",
            r.min
        ));
    }
    if end > r.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}) in `{expr}`",
            r.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}) in `{expr}`"
        ));
    }
    if step == 0 {
        return Err(format!("step must be a positive number in `{expr}`"));
    }
    Ok(())
}

fn int_or_name(s: &str, r: &Bounds) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    match r.names.iter().find(|(n, _)| *n == lower) {
        Some((_, v)) => Ok(*v),
        None => int(s),
    }
}

/// Go's `strconv.Atoi`, then no negative numbers.
fn int(s: &str) -> Result<u64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{s}` is not a number"));
    }
    let n: i64 = s.parse().map_err(|_| format!("`{s}` is out of range"))?;
    u64::try_from(n).map_err(|_| format!("negative number ({n}) not allowed"))
}

/// Go's `time.ParseDuration` grammar: `[-+]?([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+` or `0`.
fn go_duration(s: &str) -> Result<u128, String> {
    let invalid = || format!("invalid duration `{s}`");
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body == "0" {
        return Ok(0);
    }
    if body.is_empty() {
        return Err(invalid());
    }
    let mut rest = body;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("missing unit in duration `{s}`")),
            _ => return Err(format!("unknown unit `{unit}` in duration `{s}`")),
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        nanos = nanos.saturating_add(whole.saturating_mul(scale));
        if nanos > i64::MAX as u128 {
            return Err(invalid());
        }
        rest = after;
    }
    Ok(nanos)
}

/// The shortest time between two runs of a valid schedule, in seconds, where it is plain: the
/// descriptors up to a week, `@every`, and five fields whose days are every day (`*`); `None`
/// otherwise.
pub fn shortest_interval(spec: &str) -> Option<u64> {
    match spec {
        "@hourly" => return Some(3600),
        "@daily" | "@midnight" => return Some(86_400),
        "@weekly" => return Some(7 * 86_400),
        _ => {}
    }
    if let Some(d) = spec.strip_prefix("@every ") {
        let nanos = go_duration(d).ok()?;
        return u64::try_from(nanos / 1_000_000_000).ok().filter(|s| *s > 0);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 || !fields[2..].iter().all(|f| *f == "*" || *f == "?") {
        return None;
    }
    let minutes = expand(fields[0], &MINUTES)?;
    let hours = expand(fields[1], &HOURS)?;
    let mut times: Vec<u64> = hours
        .iter()
        .flat_map(|h| minutes.iter().map(move |m| h * 60 + m))
        .collect();
    times.sort_unstable();
    times.dedup();
    let first = *times.first()?;
    let wrap = first + 1440 - times.last()?;
    let gap = times.windows(2).map(|w| w[1] - w[0]).fold(wrap, u64::min);
    Some(gap * 60)
}

/// The values of a valid field.
fn expand(field: &str, r: &Bounds) -> Option<Vec<u64>> {
    let mut values = Vec::new();
    for expr in field.split(',').filter(|e| !e.is_empty()) {
        let (range, step) = match expr.split_once('/') {
            Some((range, step)) => (range, int(step).ok()?),
            None => (expr, 1),
        };
        let (start, end) = match range.split_once('-') {
            _ if range == "*" || range == "?" => (r.min, r.max),
            Some((a, b)) => (int_or_name(a, r).ok()?, int_or_name(b, r).ok()?),
            None if expr.contains('/') => (int_or_name(range, r).ok()?, r.max),
            None => {
                let v = int_or_name(range, r).ok()?;
                (v, v)
            }
        };
        values.extend((start..=end).step_by(usize::try_from(step).ok()?.max(1)));
    }
    Some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_intervals() {
        for (spec, secs) in [
            ("*/5 * * * *", Some(300)),
            ("0,50 * * * *", Some(600)),
            ("0 3 * * *", Some(86_400)),
            ("0 9-17/4 * * *", Some(4 * 3600)),
            ("@hourly", Some(3600)),
            ("@every 90s", Some(90)),
            ("0 3 * * 1-5", None),
            ("@monthly", None),
        ] {
            assert_eq!(shortest_interval(spec), secs, "{spec}");
        }
    }

    /// Expressions and whether robfig/cron v3's `ParseStandard` (the CronJob controller's
    /// parser) accepts them.
    const TABLE: &[(&str, bool)] = &[
        ("* * * * *", true),
        ("*/15 * * * *", true),
        ("0 3 * * 1-5", true),
        ("0 0 1 JAN *", true),
        ("0 0 1 jan-mar sun", true),
        ("0 0 ? * MON", true),
        ("5/10 * * * *", true),
        ("0-59/7 0-23 1-31 1-12 0-6", true),
        ("1,2,,3 * * * *", true),
        ("*-5 * * * *", true),
        ("+5 * * * *", true),
        ("05 * * * *", true),
        ("0\t3  *\t* *", true),
        ("@yearly", true),
        ("@annually", true),
        ("@monthly", true),
        ("@weekly", true),
        ("@daily", true),
        ("@midnight", true),
        ("@hourly", true),
        ("@every 5m", true),
        ("@every 1h30m", true),
        ("@every 1.5h", true),
        ("@every 0", true),
        ("", false),
        ("* * * *", false),
        ("* * * * * *", false),
        ("0 0 * * * 2024", false),
        ("60 * * * *", false),
        ("* 24 * * *", false),
        ("* * 0 * *", false),
        ("* * 32 * *", false),
        ("* * * 13 *", false),
        ("* * * * 7", false),
        ("0 0 L * *", false),
        ("0 0 * * 1#2", false),
        ("0 0 15W * *", false),
        ("-1 * * * *", false),
        ("5-1 * * * *", false),
        ("1-2-3 * * * *", false),
        ("*/0 * * * *", false),
        ("1/2/3 * * * *", false),
        ("x * * * *", false),
        ("0 0 * * MONDAY", false),
        ("@every", false),
        ("@every 5", false),
        ("@every 5x", false),
        ("@every 5m ", false),
        ("@reboot", false),
        ("@Daily", false),
        ("TZ=UTC 0 0 * * *", false),
        ("CRON_TZ=Europe/Paris 0 0 * * *", false),
    ];

    #[test]
    fn robfig_standard_dialect() {
        for (spec, ok) in TABLE {
            assert_eq!(check(spec).is_ok(), *ok, "{spec:?}: {:?}", check(spec));
        }
    }
}
