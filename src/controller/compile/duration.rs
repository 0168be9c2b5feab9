//! Duration strings of WebSocketRoute timeouts: `500ms`, `10s`, `5m`, `1h`, `1h30m`.
//!
//! A duration is one or more `<whole number><unit>` pairs with units `ms`, `s`, `m` and `h`, written
//! without spaces (the shape Gateway API uses for its timeouts). The total must be greater than zero.
//! [`format_duration`] writes a `Duration` back in the same notation, largest unit first.

use std::time::Duration;

/// Why a duration string was rejected; the `Display` text completes "`<value>` is not a valid duration: …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("it is empty")]
    Empty,
    #[error("it is negative")]
    Negative,
    #[error("it must be greater than zero")]
    Zero,
    #[error("{0:?} has no unit (use ms, s, m or h)")]
    MissingUnit(String),
    #[error("unit {0:?} is not one of ms, s, m, h")]
    UnknownUnit(String),
    #[error("a number must come before {0:?}")]
    MissingNumber(String),
    #[error("unexpected character {0:?} (write whole numbers, e.g. 1500ms rather than 1.5s)")]
    UnexpectedCharacter(char),
    #[error("it is too large")]
    Overflow,
}

/// Parses a duration such as `1h30m`; see the module documentation for the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        let unit_end = after.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        if digits.is_empty() {
            return match (unit.is_empty(), after.chars().next()) {
                (false, _) => Err(DurationError::MissingNumber(unit.to_string())),
                (true, Some(c)) => Err(DurationError::UnexpectedCharacter(c)),
                (true, None) => Err(DurationError::Empty),
            };
        }
        if unit.is_empty() {
            return match after.chars().next() {
                Some(c) => Err(DurationError::UnexpectedCharacter(c)),
                None => Err(DurationError::MissingUnit(digits.to_string())),
            };
        }
        let factor: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            other => return Err(DurationError::UnknownUnit(other.to_string())),
        };
        let number: u64 = digits.parse().map_err(|_| DurationError::Overflow)?;
        let part = number.checked_mul(factor).ok_or(DurationError::Overflow)?;
        total_ms = total_ms.checked_add(part).ok_or(DurationError::Overflow)?;
        rest = after;
    }
    if total_ms == 0 {
        return Err(DurationError::Zero);
    }
    Ok(Duration::from_millis(total_ms))
}

/// Writes a duration in the notation [`parse_duration`] reads, e.g. `1h30m` or `1s500ms` (`0s` for zero).
/// Precision below a millisecond is dropped.
pub fn format_duration(duration: Duration) -> String {
    let mut ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        let count = ms / size;
        if count > 0 {
            out.push_str(&format!("{count}{unit}"));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_unit_and_combinations() {
        let cases = [
            ("500ms", 500),
            ("10s", 10_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("1h30m", 5_400_000),
            ("1m1s1ms", 61_001),
            ("0h10s", 10_000),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(ms)), "{text}");
        }
    }

    #[test]
    fn rejects_each_invalid_form() {
        let cases = [
            ("", DurationError::Empty),
            ("-5s", DurationError::Negative),
            ("0s", DurationError::Zero),
            ("0ms0h", DurationError::Zero),
            ("10", DurationError::MissingUnit("10".into())),
            ("10d", DurationError::UnknownUnit("d".into())),
            ("10 s", DurationError::UnexpectedCharacter(' ')),
            ("1.5s", DurationError::UnexpectedCharacter('.')),
            ("s", DurationError::MissingNumber("s".into())),
            ("h1", DurationError::MissingNumber("h".into())),
            ("1hm", DurationError::UnknownUnit("hm".into())),
            ("99999999999999999999s", DurationError::Overflow),
            ("18446744073709551615h", DurationError::Overflow),
        ];
        for (text, error) in cases {
            assert_eq!(parse_duration(text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn formats_what_it_parses() {
        for text in ["500ms", "10s", "5m", "1h", "1h30m", "1s500ms", "2h1m3s4ms"] {
            let parsed = parse_duration(text).expect("valid duration");
            assert_eq!(format_duration(parsed), text);
        }
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
    }
}
