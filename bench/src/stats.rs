//! Percentiles of lateness samples.

use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Nearest-rank percentile of sorted samples, `q` in [0, 1].
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn summarize(mut samples_ms: Vec<f64>) -> Summary {
    samples_ms.sort_by(f64::total_cmp);
    Summary {
        count: samples_ms.len(),
        p50_ms: percentile(&samples_ms, 0.50),
        p90_ms: percentile(&samples_ms, 0.90),
        p99_ms: percentile(&samples_ms, 0.99),
        max_ms: samples_ms.last().copied().unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 0.5), 50.0);
        assert_eq!(percentile(&s, 0.99), 99.0);
        assert_eq!(percentile(&s, 1.0), 100.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
        let sum = summarize(vec![3.0, 1.0, 2.0]);
        assert_eq!((sum.count, sum.p50_ms, sum.max_ms), (3, 2.0, 3.0));
    }
}
