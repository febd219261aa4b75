//! The lines of a refused document around its violations, read back from the sealed payload
//! for the person who sent it (the upload page shows them under each violation).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use super::{Envelope, Opened, cms, stream_failure};
use crate::rejection::Rejection;

/// Longest line shown, in bytes (the rest is cut).
const LINE_MAX: usize = 300;
/// Content read at most to find the lines: a violation deeper in a huge document is shown
/// without its lines rather than cost a read of gigabytes.
const READ_MAX: u64 = 256 << 20;

impl<R: Read> Envelope<Opened<R>> {
    /// The lines numbered in `wanted` of the signed content, each cut to 300 bytes. Lines are
    /// counted by `\n` bytes, which is right for UTF-8 and the other ASCII-compatible
    /// encodings; a UTF-16 document (it starts with a byte order mark) gets none. The signature
    /// is not checked here: this only reads back what the pipeline already refused.
    pub fn lines(self, wanted: &BTreeSet<u64>) -> Result<BTreeMap<u64, String>, Rejection> {
        let mut found = BTreeMap::new();
        let Some(&last) = wanted.last() else {
            return Ok(found);
        };
        let mut content = cms::SignedDataReader::new(self.state.plaintext)
            .map_err(|e| Rejection::new(e.code(), e.to_string()))?
            .take(READ_MAX);
        let mut buf = vec![0u8; 64 * 1024];
        let (mut line, mut current, mut first) = (1u64, Vec::new(), true);
        loop {
            let n = content.read(&mut buf).map_err(stream_failure)?;
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            if first {
                first = false;
                if chunk.starts_with(&[0xFF, 0xFE]) || chunk.starts_with(&[0xFE, 0xFF]) {
                    return Ok(found);
                }
            }
            for &b in chunk {
                if b == b'\n' {
                    if wanted.contains(&line) {
                        found.insert(line, shown(&current));
                    }
                    current.clear();
                    line += 1;
                    if line > last {
                        return Ok(found);
                    }
                } else if wanted.contains(&line) && current.len() < LINE_MAX {
                    current.push(b);
                }
            }
        }
        if wanted.contains(&line) && !current.is_empty() {
            found.insert(line, shown(&current));
        }
        Ok(found)
    }
}

fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.trim_end_matches('\r').to_owned()
}
