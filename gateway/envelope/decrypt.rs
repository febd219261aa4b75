//! age decryption with every active gateway identity (current and grace) in one call.

use std::io::{BufReader, Read};

use age::armor::ArmoredReader;

use crate::keyring::Identities;
use crate::rejection::Rejection;

/// The decrypted stream. Each chunk is authenticated as it is read, but the stream as a whole
/// only once it has been read to the end: nothing may be released before that.
pub type Plaintext<R> = age::stream::StreamReader<ArmoredReader<BufReader<R>>>;

/// Reads the age header and unwraps the file key with one of `identities`.
pub fn decrypt<R: Read>(input: R, identities: &Identities) -> Result<Plaintext<R>, Rejection> {
    // ArmoredReader passes binary age files through and also accepts `age -a` output.
    let armored = ArmoredReader::new(input);
    let decryptor = age::Decryptor::new(armored).map_err(header_error)?;
    if decryptor.is_scrypt() {
        return Err(Rejection::new(
            "no_matching_key",
            "the file is encrypted with a passphrase, not to the gateway's recipient",
        ));
    }
    decryptor
        .decrypt(identities.active().iter().map(|i| i as &dyn age::Identity))
        .map_err(header_error)
}

fn header_error(e: age::DecryptError) -> Rejection {
    use age::DecryptError as E;
    match e {
        E::NoMatchingKeys => Rejection::new(
            "no_matching_key",
            "the file is not encrypted to any of the gateway's current or grace identities",
        ),
        E::InvalidHeader | E::UnknownFormat => Rejection::new(
            "not_age_encrypted",
            format!("the file is not an age-encrypted file ({e})"),
        ),
        E::Io(io) => Rejection::new(
            "not_age_encrypted",
            format!("the file is not an age-encrypted file: its header cannot be read ({io})"),
        ),
        other => Rejection::new(
            "decrypt_failed",
            format!("the age header does not authenticate: {other}"),
        ),
    }
}
