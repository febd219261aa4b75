//! gateway: a secure file-exchange gateway for hubs that integrate data from many agencies.
//!
//! Agencies send sealed payloads (CMS-signed XML, age-encrypted); the gateway opens each one,
//! verifies the signature against the agency's registered certificates, validates the XML
//! against the agency's schemas and forwards it durably to the hub's integration queue.
//! See `docs/` and the product contract for the whole picture.
//!
//! # Layout
//! - [`cli`]: one module per subcommand; `main.rs` only parses arguments and dispatches.
//! - [`pipeline`]: one sealed file in, one outcome out ([`pipeline::Gateway::process_file`]).
//! - [`sources`]: the channels payloads arrive through (watched folders today).
//! - XML Schema validation is the workspace crate `xsd` (`crates/xsd`), which the pipeline's
//!   validation stage and `gateway validate` use.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod cli;
pub mod config;
pub mod envelope;
pub mod fsio;
pub mod group;
pub mod health;
pub mod http;
pub mod keyring;
pub mod message;
pub mod metrics;
pub mod pipeline;
pub mod quarantine;
pub mod receipts;
pub mod rejection;
pub mod reload;
pub mod sinks;
pub mod sources;
pub mod store;
pub mod validation;
