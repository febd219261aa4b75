//! Validates arbitrary bytes as an instance of a fixed, feature-rich schema
//! (`fuzz/schema/fuzz.xsd`), compiled once.
//!
//! Invariant: validation never panics, whatever the input; the report is well formed.
#![no_main]

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn schema() -> &'static xsd::Schema {
    static SCHEMA: OnceLock<xsd::Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
        match xsd::Schema::compile(&[dir.join("fuzz.xsd")], &dir) {
            Ok(s) => s,
            Err(e) => panic!("fuzz/schema/fuzz.xsd does not compile: {e:?}"),
        }
    })
}

fn options() -> xsd::Options {
    xsd::Options {
        limits: xsd::Limits {
            max_depth: 64,
            max_attributes: 32,
            max_name_len: 256,
            max_text_len: 64 * 1024,
            max_namespaces: 32,
            max_token_bytes: 256 * 1024,
            ..xsd::Limits::default()
        },
        max_errors: 50,
        max_table_entries: 10_000,
        ..xsd::Options::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let report = schema().validate(Cursor::new(data), &options());
    assert!(report.violations.len() <= 50 + 1, "max_errors not honoured");
    for v in &report.violations {
        assert!(!v.code.is_empty());
    }
});
