//! Subcommands of the `gateway` binary. Each returns the process exit code of the product
//! contract: 0 success/valid, 1 rejected/invalid, 2 usage, configuration or I/O error,
//! 3 a schema that cannot be compiled.

pub mod agency;
pub mod agent;
pub mod audit;
pub mod check;
pub mod check_config;
pub mod import;
pub mod keys;
pub mod recipient;
pub mod request;
pub mod seal;
pub mod send;
pub mod serve;
pub mod user;
pub mod validate;

/// Exit codes shared by every subcommand.
pub mod exit {
    /// Success, accepted, valid.
    pub const OK: u8 = 0;
    /// Rejected or invalid.
    pub const INVALID: u8 = 1;
    /// Usage, configuration or I/O error.
    pub const USAGE: u8 = 2;
    /// A schema that cannot be compiled.
    pub const SCHEMA: u8 = 3;
}
