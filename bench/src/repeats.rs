//! Combining repeated runs of a scenario into one result: this box is
//! shared and noisy (back-to-back runs of one binary have differed 4× in
//! p99), so each figure is the median over the repeats, while occurrence
//! counts add up so that a single missing or doubled one still shows.

use serde_json::{Map, Value};

/// Counts summed over repeats rather than taken at the median.
const SUMMED: &[&str] = &["expected", "missing", "doubled"];

/// One result shaped like each of `runs`: numbers are the median over the
/// runs (the counts in `SUMMED` their sum); anything else is the first run's.
pub fn combine(runs: &[Value]) -> Value {
    if let [one] = runs {
        return one.clone();
    }
    combine_field(None, runs)
}

fn combine_field(key: Option<&str>, runs: &[Value]) -> Value {
    let Some(first) = runs.first() else {
        return Value::Null;
    };
    match first {
        Value::Object(fields) => {
            let mut out = Map::new();
            for name in fields.keys() {
                let values: Vec<Value> = runs
                    .iter()
                    .filter_map(|run| run.get(name).cloned())
                    .collect();
                out.insert(name.clone(), combine_field(Some(name), &values));
            }
            Value::Object(out)
        }
        Value::Number(_) => {
            let mut numbers: Vec<f64> = runs.iter().filter_map(Value::as_f64).collect();
            if key.is_some_and(|k| SUMMED.contains(&k)) {
                return Value::from(numbers.iter().sum::<f64>() as u64);
            }
            numbers.sort_by(f64::total_cmp);
            Value::from(median(&numbers))
        }
        _ => first.clone(),
    }
}

/// The middle of sorted numbers; the mean of the two middle ones for an
/// even count.
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn medians_figures_and_sums_counts() {
        let runs = [
            json!({"deliveries_per_s": 100.0, "lateness": {"p99_ms": 9.0},
                   "exactness": {"expected": 10, "missing": 0, "doubled": 0}, "plan": "Index Scan"}),
            json!({"deliveries_per_s": 300.0, "lateness": {"p99_ms": 3.0},
                   "exactness": {"expected": 10, "missing": 1, "doubled": 0}, "plan": "other"}),
            json!({"deliveries_per_s": 200.0, "lateness": {"p99_ms": 5.0},
                   "exactness": {"expected": 10, "missing": 0, "doubled": 2}, "plan": "other"}),
        ];
        assert_eq!(
            combine(&runs),
            json!({"deliveries_per_s": 200.0, "lateness": {"p99_ms": 5.0},
                   "exactness": {"expected": 30, "missing": 1, "doubled": 2}, "plan": "Index Scan"})
        );
    }

    #[test]
    fn one_run_is_itself_and_even_counts_average_the_middle() {
        let one = json!({"a": 1.5, "exactness": {"missing": 0}});
        assert_eq!(combine(std::slice::from_ref(&one)), one);
        assert_eq!(
            combine(&[json!(1.0), json!(4.0), json!(2.0), json!(3.0)]),
            json!(2.5)
        );
    }
}
