//! Parsers of configuration values: durations, sizes, booleans, address lists.

use std::str::FromStr;
use std::time::Duration;

/// A comma-separated list of addresses (empty is allowed: no recipient).
pub(super) fn parse_addresses(s: &str) -> Option<Vec<String>> {
    s.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| a.parse::<lettre::Address>().ok().map(|_| a.to_owned()))
        .collect()
}

pub(super) fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub(super) const DURATION: &str = "a positive duration such as `500ms`, `60s`, `5m` or `1h`";

pub(super) fn parse_duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s).ok().filter(|d| !d.is_zero())
}

/// Parses `65536`, `64KiB`, `1MiB`, `1GiB` (also `KB`/`MB`/`GB` as powers of 1000).
pub(super) fn parse_size(s: &str) -> Option<usize> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let number: usize = digits.parse().ok()?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// A whole number from `min` to `max`.
pub(super) fn whole<T: FromStr + PartialOrd>(s: &str, min: T, max: T) -> Option<T> {
    s.parse::<T>().ok().filter(|n| (min..=max).contains(n))
}

/// A size (see [`parse_size`]) from `min` to `max` bytes.
pub(super) fn size_between(s: &str, min: usize, max: usize) -> Option<usize> {
    parse_size(s).filter(|n| (min..=max).contains(n))
}

/// A duration from `min` to `max`.
pub(super) fn duration_between(s: &str, min: Duration, max: Duration) -> Option<Duration> {
    humantime::parse_duration(s).ok().filter(|d| (min..=max).contains(d))
}
