//! gateway: a secure file-exchange gateway for hubs that integrate data from many agencies.
//!
//! Agencies send sealed payloads (CMS-signed XML, age-encrypted); the gateway opens each one,
//! verifies the signature against the agency's registered certificates, validates the XML
//! against the agency's schemas and forwards it durably to the hub's integration queue.
//! See `docs/` and the product contract for the whole picture.
//!
//! # Layout
//!
//! A message's way, in module order (`docs/architecture.md` has the picture):
//! - [`sources`] and [`http`]: the channels (watched folders, batch import, HTTPS); each
//!   authenticates the agency and hands a [`pipeline::Payload`] to the pipeline.
//! - [`pipeline`]: one payload in, one [`pipeline::Outcome`] out, in named steps (open, check,
//!   register, publish) over the parts below.
//! - [`envelope`]: the type-states of a payload (received, opened, validated): age decryption
//!   and streaming CMS verification, with [`validation`] (the schema catalog) and the `xsd`
//!   crate (`crates/xsd`) validating the XML in the same pass.
//! - [`store`] (the ledger, [`store::Store`]), [`sinks`] (the hub's queue, [`sinks::Sink`]),
//!   [`quarantine`] (refused payloads), [`receipts`] (signed receipts), [`audit`] (the
//!   hash-chained log): where an outcome is kept.
//! - [`message`] and [`rejection`]: the leaf types every stage shares (ids, channels, agency
//!   names, receipts; the stable codes with their status and advice).
//!
//! Around it: [`config`] (one typed `gateway.toml`), [`keyring`] (identities, agencies, trust,
//! tokens), [`reload`] (keys and TLS reloaded while serving), [`health`] and [`metrics`]
//! (readiness and Prometheus), [`fsio`] (fsync-careful file operations), [`group`] (group
//! commit), and [`cli`] (one module per subcommand; `main.rs` only parses and dispatches).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accounts;
pub mod admin;
pub mod agent;
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
pub mod requests;
pub mod sinks;
pub mod sources;
pub mod store;
pub mod validation;
pub mod web;
