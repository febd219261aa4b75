//! Unit tests of the BER walk on hand-built SignedData structures (no signer needed to test
//! content extraction and structure checks).

use std::io::{self, Read};

use proptest::prelude::*;

use super::ber::{MAX_DEPTH, Parser, tlv};
use super::oid::{ID_DATA, SHA1, SHA256, SIGNED_DATA};
use super::{CmsError, SignedDataReader};

fn indef(tag: u8, parts: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![tag, 0x80];
    for p in parts {
        v.extend_from_slice(p);
    }
    v.extend_from_slice(&[0, 0]);
    v
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// A SignedData with `econtent` (an encoded OCTET STRING) and no signers; `outer_indef` uses
/// the indefinite form for the enclosing structures as `openssl cms -stream` does.
fn signed_data_with(econtent: Vec<u8>, digest_oid: &[u8], outer_indef: bool) -> Vec<u8> {
    let digest_set = tlv(
        0x31,
        &tlv(0x30, &cat(&[tlv(0x06, digest_oid), vec![0x05, 0]])),
    );
    let wrap = |tag: u8, parts: Vec<Vec<u8>>| {
        if outer_indef {
            indef(tag, &parts)
        } else {
            tlv(tag, &cat(&parts))
        }
    };
    let encap = wrap(0x30, vec![tlv(0x06, ID_DATA), wrap(0xa0, vec![econtent])]);
    let sd = wrap(
        0x30,
        vec![tlv(0x02, &[1]), digest_set, encap, tlv(0x31, &[])],
    );
    wrap(0x30, vec![tlv(0x06, SIGNED_DATA), wrap(0xa0, vec![sd])])
}

fn signed_data(econtent: Vec<u8>, outer_indef: bool) -> Vec<u8> {
    signed_data_with(econtent, SHA256, outer_indef)
}

/// Reads the content fully then finishes; the content and the final verdict.
fn run(input: &[u8]) -> Result<Vec<u8>, CmsError> {
    run_reader(input)
}

fn run_reader<R: Read>(input: R) -> Result<Vec<u8>, CmsError> {
    let mut r = SignedDataReader::new(input)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(CmsError::from_io)?;
    let trailer = r.finish()?;
    assert_eq!(trailer.signer_count(), 0);
    Ok(out)
}

fn code(r: Result<Vec<u8>, CmsError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code().as_str(),
    }
}

#[test]
fn definite_primitive_content() {
    let blob = signed_data(tlv(0x04, b"hello"), false);
    assert_eq!(run(&blob).unwrap(), b"hello");
}

#[test]
fn indefinite_with_chunks() {
    let content = indef(0x24, &[tlv(0x04, b"hel"), tlv(0x04, b""), tlv(0x04, b"lo")]);
    let blob = signed_data(content, true);
    assert_eq!(run(&blob).unwrap(), b"hello");
}

#[test]
fn nested_constructed_chunks_definite_and_indefinite() {
    let inner = indef(0x24, &[tlv(0x04, b"b"), tlv(0x24, &tlv(0x04, b"c"))]);
    let content = tlv(0x24, &cat(&[tlv(0x04, b"a"), inner, tlv(0x04, b"d")]));
    let blob = signed_data(content, true);
    assert_eq!(run(&blob).unwrap(), b"abcd");
}

#[test]
fn large_content_streams_in_order() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let blob = signed_data(tlv(0x04, &data), false);
    assert_eq!(run(&blob).unwrap(), data);
}

#[test]
fn every_truncation_is_rejected() {
    let blob = signed_data(indef(0x24, &[tlv(0x04, b"abc"), tlv(0x04, b"def")]), true);
    for cut in 0..blob.len() {
        let r = run(&blob[..cut]);
        assert!(r.is_err(), "truncation at {cut} accepted");
    }
    let r = run(&blob[..blob.len() - 1]).unwrap_err();
    assert_eq!(r.code().as_str(), "signature_invalid");
    assert!(matches!(r, CmsError::Truncated { .. }), "{r:?}");
}

#[test]
fn trailing_garbage_is_rejected() {
    let mut blob = signed_data(tlv(0x04, b"x"), false);
    blob.push(0);
    let e = run(&blob).unwrap_err();
    assert!(matches!(e, CmsError::TrailingData { .. }), "{e:?}");
    assert_eq!(e.code().as_str(), "signature_invalid");
}

#[test]
fn oversized_length_is_rejected() {
    // A 9-octet length, and an 8-octet length far beyond the input.
    let nine = cat(&[vec![0x04, 0x89], vec![1; 9], b"abc".to_vec()]);
    let e = run(&signed_data(nine, true)).unwrap_err();
    assert_eq!(e.code().as_str(), "signature_invalid");
    assert!(e.to_string().contains("too large"), "{e}");
    let huge = cat(&[vec![0x04, 0x88], vec![0x7f; 8], b"abc".to_vec()]);
    assert_eq!(code(run(&signed_data(huge, true))), "signature_invalid");
    // Longer than its (definite) parent.
    let blob = signed_data(tlv(0x04, b"abc"), false);
    let pos = blob
        .windows(5)
        .position(|w| w == [0x04, 0x03, b'a', b'b', b'c'])
        .unwrap();
    let mut bad = blob.clone();
    bad[pos + 1] = 0x7f;
    assert_eq!(code(run(&bad)), "signature_invalid");
}

#[test]
fn excessive_nesting_is_rejected() {
    let mut content = tlv(0x04, b"x");
    for _ in 0..=MAX_DEPTH {
        content = indef(0x24, &[content]);
    }
    let e = run(&signed_data(content, true)).unwrap_err();
    assert!(e.to_string().contains("too deep"), "{e}");
    // Just below the limit is fine.
    let mut content = tlv(0x04, b"x");
    for _ in 0..MAX_DEPTH - 1 {
        content = indef(0x24, &[content]);
    }
    assert_eq!(run(&signed_data(content, true)).unwrap(), b"x");
}

#[test]
fn parser_bounds_indefinite_nesting() {
    let mut v = tlv(0x04, b"x");
    for _ in 0..100 {
        v = indef(0x30, &[v]);
    }
    let mut p = Parser::new(&v, 0);
    assert!(p.next().is_err());
}

#[test]
fn wrong_chunk_type_is_rejected() {
    let content = indef(0x24, &[tlv(0x04, b"a"), tlv(0x0c, b"b")]);
    assert_eq!(code(run(&signed_data(content, true))), "signature_invalid");
}

#[test]
fn not_signed_inputs() {
    for input in [
        &b""[..],
        b"<?xml version=\"1.0\"?><a/>",
        &[0x30, 0x03, 0x02, 0x01, 0x01],
        &[0x30, 0x80],
        &[0x30],
    ] {
        let e = SignedDataReader::new(input).unwrap_err();
        assert_eq!(e.code().as_str(), "not_signed", "{input:?}: {e}");
    }
    // envelopedData instead of signedData
    let mut env = SIGNED_DATA.to_vec();
    *env.last_mut().unwrap() = 3;
    let blob = tlv(0x30, &cat(&[tlv(0x06, &env), tlv(0xa0, &tlv(0x30, &[]))]));
    let e = SignedDataReader::new(&blob[..]).unwrap_err();
    assert_eq!(e.code().as_str(), "not_signed");
    assert!(e.to_string().contains("1.2.840.113549.1.7.3"), "{e}");
}

#[test]
fn detached_is_not_signed() {
    let digest_set = tlv(0x31, &tlv(0x30, &tlv(0x06, SHA256)));
    let encap = tlv(0x30, &tlv(0x06, ID_DATA));
    let sd = tlv(
        0x30,
        &cat(&[tlv(0x02, &[1]), digest_set, encap, tlv(0x31, &[])]),
    );
    let blob = tlv(0x30, &cat(&[tlv(0x06, SIGNED_DATA), tlv(0xa0, &sd)]));
    let e = SignedDataReader::new(&blob[..]).unwrap_err();
    assert_eq!(e.code().as_str(), "not_signed");
    assert!(e.to_string().contains("detached"), "{e}");
}

#[test]
fn weak_digest_is_refused() {
    let blob = signed_data_with(tlv(0x04, b"x"), SHA1, false);
    let e = SignedDataReader::new(&blob[..]).unwrap_err();
    assert!(matches!(e, CmsError::WeakAlgorithm { .. }), "{e:?}");
    assert_eq!(e.code().as_str(), "signature_invalid");
}

#[test]
fn no_signers_fails_verification() {
    let blob = signed_data(tlv(0x04, b"x"), false);
    let mut r = SignedDataReader::new(&blob[..]).unwrap();
    io::copy(&mut r, &mut io::sink()).unwrap();
    let e = r.finish().unwrap().verify_signature().unwrap_err();
    assert!(matches!(e, CmsError::NoSigners));
}

#[test]
fn finish_drains_unread_content() {
    let blob = signed_data(indef(0x24, &[tlv(0x04, b"abc"), tlv(0x04, b"def")]), true);
    let mut r = SignedDataReader::new(&blob[..]).unwrap();
    let mut two = [0u8; 2];
    r.read_exact(&mut two).unwrap();
    let t = r.finish().unwrap();
    let expected = openssl::sha::sha256(b"abcdef");
    assert_eq!(t.digests()[0].1, expected);
}

/// A reader that fails like an age decryptor would on a corrupted chunk.
struct FailingReader<'a> {
    data: &'a [u8],
    fail_at: usize,
    pos: usize,
}

impl Read for FailingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.fail_at {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "age: chunk authentication failed",
            ));
        }
        let n = buf
            .len()
            .min(self.fail_at - self.pos)
            .min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn underlying_io_errors_pass_through_unchanged() {
    let blob = signed_data(tlv(0x04, &[7u8; 5000]), false);
    for fail_at in [0, 10, 100, 3000, blob.len() - 3] {
        let r = FailingReader {
            data: &blob,
            fail_at,
            pos: 0,
        };
        let e = match SignedDataReader::new(r) {
            Err(e) => e,
            Ok(mut reader) => {
                let mut sink = Vec::new();
                match reader.read_to_end(&mut sink) {
                    Err(io) => {
                        // The Read impl hands back the original error itself.
                        assert_eq!(io.kind(), io::ErrorKind::InvalidInput);
                        assert_eq!(io.to_string(), "age: chunk authentication failed");
                        // A later call (here `finish`) still reports the I/O failure.
                        assert_eq!(reader.finish().unwrap_err().code().as_str(), "io_error");
                        CmsError::from_io(io)
                    }
                    Ok(_) => reader.finish().unwrap_err(),
                }
            }
        };
        assert_eq!(e.code().as_str(), "io_error", "fail_at {fail_at}: {e:?}");
        let CmsError::Io(io) = e else { unreachable!() };
        assert_eq!(io.kind(), io::ErrorKind::InvalidInput);
    }
}

#[test]
fn cms_errors_round_trip_through_io_error() {
    let blob = signed_data(indef(0x24, &[tlv(0x04, b"a"), tlv(0x0c, b"b")]), true);
    let mut r = SignedDataReader::new(&blob[..]).unwrap();
    let io = r.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(io.kind(), io::ErrorKind::InvalidData);
    let e = CmsError::from_io(io);
    assert!(matches!(e, CmsError::Malformed { .. }), "{e:?}");
}

/// Serves `data` in reads of the given sizes (cycled), as a network or decryptor might.
struct ChunkedReader<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    i: usize,
}

impl Read for ChunkedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.i % self.sizes.len()].max(1);
        self.i += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn encode_chunked(content: &[u8], cuts: &[usize], nested: bool) -> Vec<u8> {
    let mut parts = Vec::new();
    let mut start = 0;
    for &c in cuts {
        let c = c.min(content.len()).max(start);
        parts.push(tlv(0x04, &content[start..c]));
        start = c;
    }
    parts.push(tlv(0x04, &content[start..]));
    if nested && parts.len() > 1 {
        let tail = parts.split_off(parts.len() / 2);
        parts.push(indef(0x24, &tail));
    }
    indef(0x24, &parts)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = run_reader(&bytes[..]);
    }

    #[test]
    fn mutated_valid_blob_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut blob = signed_data(encode_chunked(b"some content here", &[3, 9], true), true);
        for (i, v) in flips {
            let i = i.index(blob.len());
            blob[i] ^= v;
        }
        let cut = cut.index(blob.len() + 1);
        let _ = run_reader(&blob[..cut]);
    }

    #[test]
    fn chunkings_give_identical_content(
        content in proptest::collection::vec(any::<u8>(), 0..3000),
        cuts in proptest::collection::vec(0usize..3000, 0..8),
        nested in any::<bool>(),
        sizes in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        let blob = signed_data(encode_chunked(&content, &cuts, nested), true);
        let whole = run(&blob).unwrap();
        prop_assert_eq!(&whole, &content);
        let chunked = run_reader(ChunkedReader { data: &blob, sizes, i: 0 }).unwrap();
        prop_assert_eq!(chunked, content);
    }
}
