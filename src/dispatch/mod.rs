//! Delivery: signed webhook requests.

pub mod signing;
