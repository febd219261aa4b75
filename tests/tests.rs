//! The root integration test binary: one module per area, run with `cargo test --test tests`.

mod agency_samples;
mod check_codes;
mod cms;
mod support;
mod validate_cli;
