//! Plain types and pure rules: no I/O, no clock.

pub mod auth;
pub mod backfill;
pub mod error;
pub mod event;
pub mod fair_share;
pub mod flow;
pub mod idempotency;
pub mod instant;
pub mod job;
pub mod json;
pub mod lease;
pub mod lifecycle;
pub mod misfire;
pub mod network_policy;
pub mod overlap;
pub mod quota;
pub mod retry;
pub mod run;
pub mod run_limit;
pub mod sealing;
pub mod signing;
pub mod subscription;
pub mod target;
pub mod template;
pub mod trigger;
