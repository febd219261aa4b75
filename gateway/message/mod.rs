//! What a message is, as every stage names it: its id, the channel it came by, the agency
//! that sent it, and the receipt it earns. A leaf module: it depends on no other part of
//! the gateway, so the ledger, the queue, the channels and the metrics can all share these
//! types without depending on one another.

mod agency;
pub mod timestamp;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use agency::{AgencyName, BadName, is_safe_name};

/// The gateway's own identifier of a message: a UUID v7 in canonical text form.
///
/// It is safe to use as a file name component: it can only be created by
/// [`MessageId::new`] or by parsing a canonical lowercase hyphenated UUID.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageId(String);

impl MessageId {
    /// A fresh, time-ordered id (UUID v7).
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        MessageId(uuid::Uuid::now_v7().hyphenated().to_string())
    }

    /// Parses a canonical (lowercase, hyphenated) UUID.
    pub fn parse(s: &str) -> Result<Self, InvalidMessageId> {
        match uuid::Uuid::try_parse(s) {
            Ok(u) if u.hyphenated().to_string() == s => Ok(MessageId(s.to_owned())),
            _ => Err(InvalidMessageId(s.chars().take(64).collect())),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for MessageId {
    type Err = InvalidMessageId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageId::parse(s)
    }
}

impl TryFrom<String> for MessageId {
    type Error = InvalidMessageId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        MessageId::parse(&s)
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> String {
        id.0
    }
}

/// A string that is not a canonical message id.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid message id {0:?}")]
pub struct InvalidMessageId(pub String);

/// How a message reached the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Submitted with the command-line tool.
    Cli,
    /// Uploaded over HTTPS.
    Https,
    /// Dropped into a watched folder.
    Folder,
    /// Imported in bulk.
    Import,
    /// Uploaded by a person on the upload page.
    Web,
    /// Attached to a mail in the hub's mailbox.
    Mail,
}

impl Channel {
    /// The lowercase name (`"cli"`, `"https"`, `"folder"`, `"import"`, `"web"`, `"mail"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Cli => "cli",
            Channel::Https => "https",
            Channel::Folder => "folder",
            Channel::Import => "import",
            Channel::Web => "web",
            Channel::Mail => "mail",
        }
    }
}

impl FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "cli" => Channel::Cli,
            "https" => Channel::Https,
            "folder" => Channel::Folder,
            "import" => Channel::Import,
            "web" => Channel::Web,
            "mail" => Channel::Mail,
            other => return Err(format!("unknown channel {other:?}")),
        })
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Proof of forwarding, returned to the agency (signed elsewhere).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The gateway's id.
    pub gateway_message_id: MessageId,
    /// The sending agency.
    pub agency: String,
    /// The agency's own message id, if any.
    pub agency_message_id: Option<String>,
    /// SHA-256 (lowercase hex) of the XML.
    pub sha256: String,
    /// The schema the XML was validated against.
    pub schema_id: String,
    /// When it was published (RFC 3339, UTC).
    #[serde(with = "timestamp::rfc3339")]
    pub forwarded_at: OffsetDateTime,
    /// The queue, e.g. `outbox/hub`.
    pub queue: String,
}
