//! Cronhook: a scheduling service that delivers cron, interval and date
//! jobs as signed webhooks.

pub mod aborts;
pub mod access;
pub mod acting;
pub mod api;
pub mod app;
pub mod cancels;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod domain;
pub mod flow_pass;
pub mod instance;
pub mod keyfile;
pub mod metrics;
pub mod ops;
pub mod ping_limits;
pub mod retention;
pub mod scheduler;
pub mod server;
pub mod state;
pub mod store;
pub mod streams;
pub mod telemetry;
pub mod ui;
pub mod wakeup;
pub mod watchdog;
