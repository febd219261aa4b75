//! The root integration test binary: one module per area, run with `cargo test --test tests`.

mod validate_cli;
