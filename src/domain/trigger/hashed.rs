//! `H` in a cron field (DESIGN.md §11.4, Jenkins' meaning): a value hashed
//! from the job, so that many jobs written `H * * * *` spread over the hour
//! instead of all firing at minute 0. Stable: the same tenant and job id
//! always resolve to the same expression.

use sha2::{Digest, Sha256};

use crate::domain::error::Reason;

/// The values `H` picks from, per field (day-of-month stops at 28 so that
/// every month has the day).
const RANGES_5: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 28), (1, 12), (0, 6)];
const RANGES_6: [(u32, u32); 6] = [(0, 59), (0, 59), (0, 23), (1, 28), (1, 12), (0, 6)];

/// True when some field of `expr` holds an `H` item.
pub fn has_hash(expr: &str) -> bool {
    expr.split_whitespace()
        .flat_map(|f| f.split(','))
        .any(|item| item.starts_with('H'))
}

/// `expr` with each `H`, `H/n`, `H(a-b)` and `H(a-b)/n` replaced by values
/// hashed from `seed`; the expression itself when it has none.
pub fn resolve(expr: &str, seed: &str) -> Result<String, Reason> {
    if !has_hash(expr) {
        return Ok(expr.to_string());
    }
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let ranges: &[(u32, u32)] = match fields.len() {
        5 => &RANGES_5,
        6 => &RANGES_6,
        n => return Err(format!("H needs 5 or 6 fields, got {n}").into()),
    };
    let resolved = fields
        .iter()
        .zip(ranges)
        .enumerate()
        .map(|(i, (field, range))| {
            field
                .split(',')
                .map(|item| item_value(item, *range, hash(seed, i)))
                .collect::<Result<Vec<_>, _>>()
                .map(|items| items.join(","))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(resolved.join(" "))
}

fn hash(seed: &str, field: usize) -> u64 {
    let digest = Sha256::digest(format!("{seed}\0{field}").as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

fn item_value(item: &str, (lo, hi): (u32, u32), h: u64) -> Result<String, Reason> {
    let Some(rest) = item.strip_prefix('H') else {
        return Ok(item.to_string());
    };
    let bad = || {
        Reason::new(format!(
            "{item:?}: H takes the forms H, H/n, H(a-b) and H(a-b)/n"
        ))
    };
    let (range, step) = match rest.split_once('/') {
        Some((r, s)) => (r, Some(s.parse::<u32>().map_err(|_| bad())?)),
        None => (rest, None),
    };
    let (lo, hi) = if range.is_empty() {
        (lo, hi)
    } else {
        let inner = range
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(bad)?;
        let (a, b) = inner.split_once('-').ok_or_else(bad)?;
        let (a, b) = (
            a.parse::<u32>().map_err(|_| bad())?,
            b.parse::<u32>().map_err(|_| bad())?,
        );
        if a > b || a < lo || b > hi {
            return Err(
                format!("{item:?}: the range must lie within {lo}-{hi}, low to high").into(),
            );
        }
        (a, b)
    };
    Ok(match step {
        Some(0) => return Err(format!("{item:?}: the step must be at least 1").into()),
        Some(step) => {
            let start = lo + (h % u64::from(step.min(hi - lo + 1))) as u32;
            format!("{start}-{hi}/{step}")
        }
        None => (lo + (h % u64::from(hi - lo + 1)) as u32).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_job_resolves_the_same_and_others_spread() {
        let a = resolve("H H * * *", "t/job-a").unwrap();
        assert_eq!(a, resolve("H H * * *", "t/job-a").unwrap());
        let minutes: std::collections::BTreeSet<String> = (0..50)
            .map(|i| resolve("H * * * *", &format!("t/job-{i}")).unwrap())
            .collect();
        assert!(minutes.len() > 20, "{minutes:?}");
    }

    #[test]
    fn every_form_stays_in_its_range() {
        for i in 0..200 {
            let seed = format!("t/{i}");
            let r = resolve("H/15 H(9-17) H * H(1-5)", &seed).unwrap();
            let f: Vec<&str> = r.split(' ').collect();
            let (start, rest) = f[0].split_once('-').unwrap();
            assert!(start.parse::<u32>().unwrap() < 15 && rest == "59/15", "{r}");
            assert!((9..=17).contains(&f[1].parse::<u32>().unwrap()), "{r}");
            assert!((1..=28).contains(&f[2].parse::<u32>().unwrap()), "{r}");
            assert_eq!(f[3], "*");
            assert!((1..=5).contains(&f[4].parse::<u32>().unwrap()), "{r}");
        }
    }

    #[test]
    fn day_names_are_not_hashes_and_bad_forms_are_refused() {
        assert!(!has_hash("0 9 * * THU"));
        assert_eq!(resolve("0 9 * * THU", "s").unwrap(), "0 9 * * THU");
        assert!(resolve("H(30-10) * * * *", "s").is_err());
        assert!(resolve("H(0-99) * * * *", "s").is_err());
        assert!(resolve("H/0 * * * *", "s").is_err());
        assert!(resolve("Hx * * * *", "s").is_err());
    }
}
