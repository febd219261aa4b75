//! Feeds arbitrary bytes to the streaming CMS SignedData reader: header, content, trailer
//! and signature verification.
//!
//! Invariants: never panics; the content handed out never exceeds the input's size (the
//! reader cannot invent bytes); a verdict is always reached.
#![no_main]

use std::io::Read;

use gateway::envelope::cms::SignedDataReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = SignedDataReader::new(data) else {
        return;
    };
    let mut content = Vec::new();
    if reader.read_to_end(&mut content).is_err() {
        return;
    }
    assert!(content.len() <= data.len());
    if let Ok(trailer) = reader.finish() {
        let _ = trailer.verify_signature();
    }
});
