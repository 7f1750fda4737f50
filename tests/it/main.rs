//! Every end-to-end suite in one test binary (as svix and zero2prod do):
//! one link instead of twenty, and one `support` for the helpers they
//! share (instants, deadlines, temporary databases, job bodies, a real
//! receiver, processes). Each module is one suite; `store_tests!` runs a
//! suite's tests once on PostgreSQL and once on SQLite.

#[macro_use]
mod support;

mod alerts;
mod api_jobs;
mod api_runs;
mod api_triggers;
mod apply;
mod attack;
mod audit;
mod auth;
mod backfills;
mod binary;
mod bulk;
mod calendar_oracle;
mod calendars;
mod callbacks;
mod chains;
mod cli;
mod contract;
mod cron_oracle;
mod dashboard;
mod delivery;
mod events;
mod exposed;
mod failover;
mod flows;
mod gates;
mod limits;
mod migration;
mod monitors;
mod openapi;
mod overlap;
mod python_client;
mod readme;
mod receivers;
mod run_limits;
mod scheduler;
mod secrets;
mod store_contract;
mod structure;
mod success_rules;
mod templates;
