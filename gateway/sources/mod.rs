//! Sources: the channels through which sealed payloads arrive. Each one establishes which
//! agency is sending (a token, a client certificate, the folder a file was dropped in) and hands
//! every payload to [`crate::pipeline::Gateway::process_file`]; what differs is only how a
//! payload is received and how its outcome is reported back.
//!
//! - [`folder`]: watched folders, `inbox/<agency>/`.
//! - [`import`]: a folder of sealed files imported in one go (`gateway import`).
//! - [`mail`]: sealed attachments mailed to the hub's mailbox (IMAP in, SMTP answers); the
//!   agency is the one whose certificate signed the attachment.

pub mod folder;
pub mod import;
pub mod mail;
