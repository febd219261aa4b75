//! age decryption with every active gateway identity (current and grace) in one call.

use std::io::{BufReader, Read};
use std::sync::{Arc, Mutex};

use age::armor::ArmoredReader;
use time::OffsetDateTime;

use crate::keyring::Identities;
use crate::rejection::{Code, Rejection};

/// The decrypted stream. Each chunk is authenticated as it is read, but the stream as a whole
/// only once it has been read to the end: nothing may be released before that.
pub type Plaintext<R> = age::stream::StreamReader<ArmoredReader<BufReader<HeaderTee<R>>>>;

/// How much of the start of a payload is kept to explain a `no_matching_key`: age headers
/// are a few hundred bytes; an armored one with many recipients still fits.
const HEADER_KEEP: usize = 64 * 1024;

/// Passes a payload through, keeping a copy of its first bytes (the age header) so a payload
/// that no active identity opens can be matched against retired ones for a precise message.
///
/// Until the header is parsed (`header_read`), it delivers at most `HEADER_KEEP` bytes: the
/// age parser reads a header line until its newline, and a hostile "header" that never ends
/// would otherwise be read whole into memory.
pub struct HeaderTee<R> {
    inner: R,
    /// The first [`HEADER_KEEP`] bytes delivered.
    kept: Arc<Mutex<Vec<u8>>>,
    delivered: usize,
    header_read: Arc<std::sync::atomic::AtomicBool>,
}

impl<R: Read> Read for HeaderTee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let room = HEADER_KEEP.saturating_sub(self.delivered);
        let buf = if self.header_read.load(std::sync::atomic::Ordering::Relaxed) {
            buf
        } else if room == 0 {
            return Ok(0);
        } else {
            let len = buf.len().min(room);
            buf.get_mut(..len).unwrap_or_default()
        };
        let n = self.inner.read(buf)?;
        if room > 0
            && let Ok(mut kept) = self.kept.lock()
        {
            kept.extend_from_slice(buf.get(..n.min(room)).unwrap_or_default());
        }
        self.delivered = self.delivered.saturating_add(n);
        Ok(n)
    }
}

/// An identity that remembers whether it was the one that unwrapped the file key: the age
/// crate does not say which of several identities matched, and admins need to know who still
/// seals to a recipient in grace before retiring it.
struct Tracked<'a> {
    inner: &'a age::x25519::Identity,
    index: usize,
    hit: &'a std::sync::atomic::AtomicUsize,
}

impl age::Identity for Tracked<'_> {
    fn unwrap_stanza(
        &self,
        stanza: &age_core::format::Stanza,
    ) -> Option<Result<age_core::format::FileKey, age::DecryptError>> {
        let r = self.inner.unwrap_stanza(stanza);
        if matches!(r, Some(Ok(_))) {
            self.hit
                .store(self.index, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }
}

/// Reads the age header and unwraps the file key with one of `identities`; also returns the
/// id of the identity that matched.
pub fn decrypt<R: Read>(
    input: R,
    identities: &Identities,
) -> Result<(Plaintext<R>, String), Rejection> {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let header_read = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tee = HeaderTee {
        inner: input,
        kept: kept.clone(),
        delivered: 0,
        header_read: header_read.clone(),
    };
    // ArmoredReader passes binary age files through and also accepts `age -a` output.
    let armored = ArmoredReader::new(tee);
    // The buffered constructor: `Decryptor::new` re-parses the header from its start after
    // every byte it asks for, quadratic in the length of a header line (a 300 KB one took
    // 18 s of CPU; ~0.5M instructions for an ordinary header).
    let decryptor = match age::Decryptor::new_buffered(armored) {
        Ok(d) => d,
        Err(age::DecryptError::Io(_))
            if kept.lock().map(|k| k.len() >= HEADER_KEEP).unwrap_or(false) =>
        {
            return Err(Rejection::new(
                Code::NotAgeEncrypted,
                format!(
                    "the file is not an age-encrypted file: no complete age header in its first {} KiB",
                    HEADER_KEEP / 1024
                ),
            ));
        }
        Err(e) => return Err(header_error(e)),
    };
    header_read.store(true, std::sync::atomic::Ordering::Relaxed);
    if decryptor.is_scrypt() {
        return Err(Rejection::new(
            Code::NoMatchingKey,
            "the file is encrypted with a passphrase, not to the gateway's recipient",
        ));
    }
    let now = OffsetDateTime::now_utc();
    let usable = identities.usable_with_ids(now);
    let hit = std::sync::atomic::AtomicUsize::new(usize::MAX);
    let tracked: Vec<Tracked<'_>> = usable
        .iter()
        .enumerate()
        .map(|(index, (_, inner))| Tracked {
            inner,
            index,
            hit: &hit,
        })
        .collect();
    match decryptor.decrypt(tracked.iter().map(|t| t as &dyn age::Identity)) {
        Ok(plain) => {
            let which = usable
                .get(hit.load(std::sync::atomic::Ordering::Relaxed))
                .map(|(id, _)| (*id).to_owned())
                .unwrap_or_default();
            Ok((plain, which))
        }
        Err(age::DecryptError::NoMatchingKeys) => {
            let header = kept.lock().map(|k| k.clone()).unwrap_or_default();
            Err(no_matching_key(&header, identities, now))
        }
        Err(e) => Err(header_error(e)),
    }
}

/// `no_matching_key`, saying which recipient to use now — and, when the payload was sealed to
/// a retired identity, which one and since when.
fn no_matching_key(header: &[u8], identities: &Identities, now: OffsetDateTime) -> Rejection {
    let current = identities.current_recipient().unwrap_or("(none)");
    for (info, identity) in identities.retired_at(now) {
        let Ok(d) = age::Decryptor::new_buffered(ArmoredReader::new(header)) else {
            break;
        };
        // Unwrapping the file key proves which recipient the sender used; the payload itself
        // is never decrypted with a retired key.
        if d.decrypt(std::iter::once(identity as &dyn age::Identity))
            .is_ok()
        {
            let when = info.retired_when(now).unwrap_or_default();
            return Rejection::new(
                Code::NoMatchingKey,
                format!(
                    "the file is sealed to the gateway recipient {} (identity {}), which was retired at {when}: seal to the current recipient {current} (`gateway recipient --url ...` or GET /v1/recipient fetches it)",
                    info.recipient, info.id
                ),
            );
        }
    }
    Rejection::new(
        Code::NoMatchingKey,
        format!(
            "the file is not encrypted to any of the gateway's current or grace identities: seal to the current recipient {current}"
        ),
    )
}

fn header_error(e: age::DecryptError) -> Rejection {
    use age::DecryptError as E;
    match e {
        E::NoMatchingKeys => Rejection::new(
            Code::NoMatchingKey,
            "the file is not encrypted to any of the gateway's current or grace identities",
        ),
        E::InvalidHeader | E::UnknownFormat => Rejection::new(
            Code::NotAgeEncrypted,
            format!("the file is not an age-encrypted file ({e})"),
        ),
        E::Io(io) => Rejection::new(
            Code::NotAgeEncrypted,
            format!("the file is not an age-encrypted file: its header cannot be read ({io})"),
        ),
        other => Rejection::new(
            Code::DecryptFailed,
            format!("the age header does not authenticate: {other}"),
        ),
    }
}
