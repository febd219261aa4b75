//! Feeds arbitrary bytes to the streaming XML reader until `Eof` or an error.
//!
//! Invariants: never panics, and terminates: every call to `next()` either consumes input or
//! ends the document, so more than `2 * len + 8` events means the reader is looping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xsd::xml::{Event, Limits, XmlReader};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_depth: 64,
        max_attributes: 32,
        max_name_len: 256,
        max_text_len: 64 * 1024,
        max_namespaces: 32,
        max_token_bytes: 256 * 1024,
        ..Limits::default()
    };
    let mut reader = XmlReader::new(std::io::Cursor::new(data), limits);
    let bound = 2 * data.len() + 8;
    let mut events = 0usize;
    loop {
        events += 1;
        assert!(
            events <= bound,
            "xml reader did not terminate: more than {bound} events for {} input bytes",
            data.len()
        );
        match reader.next() {
            Ok(Event::Eof) | Err(_) => break,
            Ok(Event::Start(_) | Event::End | Event::Text(_)) => {}
        }
    }
});
