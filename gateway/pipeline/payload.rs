//! A sealed payload as a channel hands it over.

use std::io::Read;
use std::path::Path;

/// A sealed payload as received: a file (watched folders, import, large uploads) or, for
/// small HTTPS uploads, the bytes in memory — creating and deleting a file per small message
/// costs more than everything else on some filesystems (ext4 without a journal scans
/// recently deleted inodes on every create).
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// A file on disk.
    File(&'a Path),
    /// Bytes received, with the name to record for them.
    Bytes {
        /// The sealed payload.
        bytes: &'a [u8],
        /// A name for messages and the quarantine record.
        name: &'a str,
    },
}

impl<'a> Payload<'a> {
    /// A reader from its start, and its size. Only regular files are opened: a FIFO would
    /// block and a device (`/dev/zero`) never end, whatever the channel passed in.
    pub(crate) fn open(&self) -> Result<(Box<dyn Read + Send + 'a>, u64), crate::fsio::InputError> {
        match *self {
            Payload::File(path) => {
                let (f, size) = crate::fsio::open_regular(path)?;
                Ok((Box::new(f), size))
            }
            Payload::Bytes { bytes, .. } => Ok((Box::new(bytes), bytes.len() as u64)),
        }
    }

    pub(super) fn name(&self) -> Option<String> {
        match *self {
            Payload::File(path) => path.file_name().map(|n| n.to_string_lossy().into_owned()),
            Payload::Bytes { name, .. } => Some(name.to_owned()),
        }
    }
}
