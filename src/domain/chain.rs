//! Chains (DESIGN.md §11.8): when a run of a job ends as an edge says,
//! the job it names gets exactly one run, `delay_s` later. A job's edges
//! are written with it as `chain: {on_success, on_failure, on_complete}`
//! (the top-level `on_complete` is §11.3's `keep | delete`); they must
//! name jobs of the same tenant and make no cycle.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::alert::seconds_at;
use crate::domain::error::FieldError;
use crate::domain::job::JobId;
use crate::domain::run::RunStatus;

/// The most edges one job has.
pub const MAX_EDGES: usize = 32;

/// Which end of a parent's run starts the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum End {
    Success,
    Failure,
    /// Either.
    Complete,
}

impl End {
    pub const ALL: [End; 3] = [End::Success, End::Failure, End::Complete];

    pub fn as_str(self) -> &'static str {
        match self {
            End::Success => "success",
            End::Failure => "failure",
            End::Complete => "complete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Whether a run that ended as `status` starts this edge's child: a
    /// run that succeeded or failed; not one missed, skipped or cancelled.
    pub fn fires(self, status: RunStatus) -> bool {
        matches!(
            (self, status),
            (End::Success | End::Complete, RunStatus::Succeeded)
                | (End::Failure | End::Complete, RunStatus::Failed)
        )
    }
}

/// One edge as a client writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeInput {
    /// A job of the same tenant.
    #[schema(example = "load-warehouse")]
    pub job: String,
    /// Seconds after the parent's end (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 2678400)]
    pub delay_s: Option<i64>,
}

/// `chain` as a client writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Chain)]
pub struct ChainInput {
    /// Jobs that get a run when a run of this job succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Vec<EdgeInput>>,
    /// Jobs that get a run when a run of this job fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Vec<EdgeInput>>,
    /// Jobs that get a run when a run of this job succeeds or fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_complete: Option<Vec<EdgeInput>>,
}

/// One validated edge from the job that has it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub on: End,
    pub child: JobId,
    pub delay_s: u32,
}

/// A job's validated edges, in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    pub edges: Vec<Edge>,
}

impl ChainInput {
    /// The edges; each refusal names its place (`chain.on_success[0].job`).
    pub fn parse(self, field: &str) -> Result<Chain, FieldError> {
        let mut edges = Vec::new();
        let lists = [
            (End::Success, "on_success", self.on_success),
            (End::Failure, "on_failure", self.on_failure),
            (End::Complete, "on_complete", self.on_complete),
        ];
        for (on, name, list) in lists {
            for (i, edge) in list.unwrap_or_default().into_iter().enumerate() {
                let at = |part: &str| format!("{field}.{name}[{i}].{part}");
                let child = JobId::parse(&edge.job).map_err(|m| FieldError::new(at("job"), m))?;
                let delay_s = seconds_at(edge.delay_s, 0, at("delay_s"))?.unwrap_or(0);
                if edges.iter().any(|e: &Edge| e.on == on && e.child == child) {
                    return Err(FieldError::new(
                        at("job"),
                        format!("names job {:?} twice in {name}", child.as_str()),
                    ));
                }
                edges.push(Edge { on, child, delay_s });
            }
        }
        if edges.len() > MAX_EDGES {
            return Err(FieldError::new(
                field,
                format!("has {} edges; at most {MAX_EDGES}", edges.len()),
            ));
        }
        Ok(Chain { edges })
    }
}

impl Chain {
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    pub fn to_input(&self) -> ChainInput {
        let list = |on: End| {
            let edges: Vec<EdgeInput> = self
                .edges
                .iter()
                .filter(|e| e.on == on)
                .map(|e| EdgeInput {
                    job: e.child.to_string(),
                    delay_s: Some(e.delay_s.into()),
                })
                .collect();
            (!edges.is_empty()).then_some(edges)
        };
        ChainInput {
            on_success: list(End::Success),
            on_failure: list(End::Failure),
            on_complete: list(End::Complete),
        }
    }

    /// The field of edge `child` (the first that names it), for a refusal.
    pub fn field_of(&self, child: &str) -> String {
        let Some(edge) = self.edges.iter().find(|e| e.child.as_str() == child) else {
            return "chain".into();
        };
        let i = self
            .edges
            .iter()
            .filter(|e| e.on == edge.on)
            .position(|e| e.child.as_str() == child)
            .unwrap_or(0);
        format!("chain.on_{}[{i}].job", edge.on.as_str())
    }
}

/// The runs a parent's end makes: each child (once, with the shortest
/// delay when two edges name it) whose edge fires on `status`.
pub fn children_of(edges: &[Edge], status: RunStatus) -> Vec<(JobId, u32)> {
    let mut children: BTreeMap<&JobId, u32> = BTreeMap::new();
    for edge in edges.iter().filter(|e| e.on.fires(status)) {
        let delay = children.entry(&edge.child).or_insert(edge.delay_s);
        *delay = (*delay).min(edge.delay_s);
    }
    children
        .into_iter()
        .map(|(child, delay)| (child.clone(), delay))
        .collect()
}

/// A cycle `job`'s new children would close, through the tenant's other
/// edges (`(parent, child)`, the job's own old ones left out), as the path
/// from `job` back to it (`["a", "b", "a"]`).
pub fn cycle(job: &str, children: &[&str], others: &[(String, String)]) -> Option<Vec<String>> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (parent, child) in others.iter().filter(|(p, _)| p != job) {
        graph.entry(parent).or_default().insert(child);
    }
    graph
        .entry(job)
        .or_default()
        .extend(children.iter().copied());
    // Depth first from `job`, keeping the path: one that reaches `job`
    // again is the cycle.
    let mut path = vec![job];
    let mut seen = BTreeSet::new();
    fn walk<'a>(
        at: &'a str,
        job: &str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        seen: &mut BTreeSet<&'a str>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if *next == job {
                path.push(next);
                return true;
            }
            if seen.insert(next) {
                path.push(next);
                if walk(next, job, graph, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    walk(job, job, &graph, &mut path, &mut seen)
        .then(|| path.into_iter().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<Chain, FieldError> {
        serde_json::from_value::<ChainInput>(v)
            .unwrap()
            .parse("chain")
    }

    fn id(s: &str) -> JobId {
        JobId::parse(s).unwrap()
    }

    #[test]
    fn edges_read_back_as_written_and_refusals_name_their_place() {
        let chain = parse(
            json!({"on_success": [{"job": "b"}, {"job": "c", "delay_s": 60}],
                                 "on_failure": [{"job": "alert"}]}),
        )
        .unwrap();
        assert_eq!(chain.edges.len(), 3);
        assert_eq!(
            parse(serde_json::to_value(chain.to_input()).unwrap()).unwrap(),
            chain
        );
        assert_eq!(chain.field_of("c"), "chain.on_success[1].job");
        let e = parse(json!({"on_success": [{"job": "b"}, {"job": "b"}]})).unwrap_err();
        assert_eq!(e.field, "chain.on_success[1].job");
        let e = parse(json!({"on_failure": [{"job": "no spaces"}]})).unwrap_err();
        assert_eq!(e.field, "chain.on_failure[0].job");
        let e = parse(json!({"on_complete": [{"job": "b", "delay_s": -1}]})).unwrap_err();
        assert_eq!(e.field, "chain.on_complete[0].delay_s");
        let many: Vec<_> = (0..33).map(|n| json!({"job": format!("j{n}")})).collect();
        assert_eq!(
            parse(json!({"on_success": many})).unwrap_err().field,
            "chain"
        );
    }

    #[test]
    fn each_end_starts_the_children_it_names_once() {
        let chain = parse(json!({"on_success": [{"job": "b", "delay_s": 30}],
                                 "on_failure": [{"job": "page"}],
                                 "on_complete": [{"job": "b"}, {"job": "log"}]}))
        .unwrap();
        assert_eq!(
            children_of(&chain.edges, RunStatus::Succeeded),
            vec![(id("b"), 0), (id("log"), 0)]
        );
        assert_eq!(
            children_of(&chain.edges, RunStatus::Failed),
            vec![(id("b"), 0), (id("log"), 0), (id("page"), 0)]
        );
        for status in [RunStatus::Cancelled, RunStatus::Missed, RunStatus::Skipped] {
            assert!(children_of(&chain.edges, status).is_empty(), "{status:?}");
        }
    }

    #[test]
    fn a_cycle_is_found_with_its_path_and_a_dag_is_not_one() {
        let others = vec![
            ("b".to_string(), "c".to_string()),
            ("c".to_string(), "a".to_string()),
            ("x".to_string(), "b".to_string()),
        ];
        assert_eq!(
            cycle("a", &["b"], &others),
            Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
        assert_eq!(cycle("a", &["a"], &[]), Some(vec!["a".into(), "a".into()]));
        assert_eq!(cycle("a", &["x"], &others[..1]), None);
        // Its own old edges do not count: they are being replaced.
        let own = vec![
            ("a".to_string(), "b".to_string()),
            ("b".to_string(), "a".to_string()),
        ];
        assert_eq!(cycle("a", &[], &own), None);
        assert_eq!(cycle("c", &["d"], &others), None);
    }
}
