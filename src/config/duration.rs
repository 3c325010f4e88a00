//! Durations as srvd.toml writes them: plain seconds (as the Go srvd did) or
//! strings with units, such as "500ms", "2s", "1m30s", read by `humantime`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// The longest duration accepted: a year as `humantime` counts it (365.25
/// days), so `"1y"` is the largest value written with units.
const MAX: Duration = Duration::from_secs(31_557_600);

/// What to write instead, appended to every error.
const HINT: &str =
    "write seconds (30, 0.5) or numbers with units (\"500ms\", \"2s\", \"1m30s\", \"1h\")";

/// Parses a duration: a bare number is seconds, as in the Go srvd ("30",
/// "0.5"); anything else goes to `humantime::parse_duration` ("500ms", "2s",
/// "1m30s", "1.5h"; units ns, us, ms, s, m, h, d, w and their long forms).
///
/// Errors: the text is empty, negative, not finite, more than a year, or
/// not a duration; the message quotes `text`, says what is wrong and what to
/// write instead (the caller adds the key and its line).
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("empty duration: {HINT}"));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return from_secs(secs);
    }
    let d = humantime::parse_duration(s).map_err(|e| explain(s, &e))?;
    if d > MAX {
        return Err(format!("invalid duration {text:?}: more than a year"));
    }
    Ok(d)
}

/// Says what `humantime` found wrong in `text`, in srvd's words: its own
/// messages give byte offsets and list units srvd users rarely need.
fn explain(text: &str, e: &humantime::DurationError) -> String {
    use humantime::DurationError as E;
    let what = match e {
        E::UnknownUnit { unit, value, .. } if unit.is_empty() => {
            format!("a unit must follow {value} (such as {value}s or {value}ms)")
        }
        E::UnknownUnit { unit, .. } => format!("unknown unit {unit:?} (use ms, s, m, h or d)"),
        E::InvalidCharacter(at) | E::NumberExpected(at) => {
            format!("expected a number at {:?}", text.get(*at..).unwrap_or(text))
        }
        E::NumberOverflow => "too large, or finer than a nanosecond".to_owned(),
        E::Empty => "empty".to_owned(),
    };
    format!("invalid duration {text:?}: {what}; {HINT}")
}

fn from_secs(secs: f64) -> Result<Duration, String> {
    if !secs.is_finite() {
        return Err(format!(
            "invalid duration {secs}: not a finite number of seconds; {HINT}"
        ));
    }
    if secs < 0.0 {
        return Err(format!("invalid duration {secs}: must be zero or more"));
    }
    if secs > MAX.as_secs_f64() {
        return Err(format!("invalid duration {secs}s: more than a year"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Formats a duration the way srvd.toml accepts it, for messages and status:
/// to the millisecond ("500ms", "2s", "2m", "1m 30s").
pub fn display(d: Duration) -> String {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// serde helper: `#[serde(deserialize_with = "duration::deserialize")]`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_any(DurationVisitor).map(Some)
}

pub(crate) struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("seconds as a number, or a string such as \"500ms\", \"2s\", \"1m\"")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        if v < 0 {
            return Err(E::custom(format!(
                "invalid duration {v}: must be zero or more"
            )));
        }
        from_secs(v as f64).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        from_secs(v as f64).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        from_secs(v).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_seconds_and_units() {
        assert_eq!(parse("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3600));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for bad in ["", "s", "2x", "-1", "1m30", "ms5", "abc"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse("10000h").is_err());
    }

    #[test]
    fn reads_humantime_units_and_fractions() {
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("1m 30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse(" 2min ").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse("1y").unwrap(), MAX);
        assert!(parse("1y1s").is_err());
        assert!(parse("366d").is_err());
        assert_eq!(parse("31557600").unwrap(), MAX);
        assert!(parse("31557601").is_err());
    }

    #[test]
    fn errors_quote_the_value_say_what_is_wrong_and_what_to_write() {
        let cases = [
            ("2x", "unknown unit \"x\""),
            ("1m30", "a unit must follow 30"),
            ("1m-5s", "expected a number at \"-5s\""),
            ("abc", "expected a number at \"abc\""),
            ("99999999999999999999s", "too large"),
            ("1y1s", "more than a year"),
            ("inf", "not a finite number"),
            ("-1", "must be zero or more"),
        ];
        for (bad, why) in cases {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(e.contains(bad.trim_start_matches('-')), "{bad:?}: {e}");
        }
        assert!(parse("2x").unwrap_err().contains("\"1m30s\""));
        assert!(parse("").unwrap_err().contains("\"500ms\""));
    }

    #[test]
    fn displays_in_the_accepted_syntax() {
        assert_eq!(display(Duration::from_millis(500)), "500ms");
        assert_eq!(display(Duration::from_secs(2)), "2s");
        assert_eq!(display(Duration::from_secs(120)), "2m");
        assert_eq!(display(Duration::ZERO), "0s");
        assert_eq!(display(Duration::from_secs(90)), "1m 30s");
        assert_eq!(display(Duration::from_micros(2_500_700)), "2s 500ms");
        for d in [500u64, 2000, 120_000, 90_000, 3_600_000, 86_400_500] {
            let d = Duration::from_millis(d);
            assert_eq!(parse(&display(d)).unwrap(), d);
        }
    }
}
