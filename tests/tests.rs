//! The root integration test binary: one module per area, run with `cargo test --test tests`.

mod admin_cli;
mod agency_pipeline;
mod agency_samples;
mod agent;
mod audit;
mod check_codes;
mod cli_inputs;
mod cms;
mod crash;
mod encodings;
mod envelope_roundtrip;
mod folders;
mod forwarding;
mod https;
mod https_security;
mod import;
mod ledger_failure;
mod quarantine;
mod rotation;
mod send;
mod support;
mod validate_cli;
mod violation_values;
mod web;
