//! Issue 12: XML as agencies really write it. The police sample in UTF-16LE (byte order mark
//! and declaration), UTF-16BE (byte order mark, no declaration), ISO-8859-1 and windows-1252,
//! with non-ASCII names, validates, and sealed with stock `openssl cms` + `age` it is accepted
//! over HTTPS with the exact signed bytes queued; broken encodings are refused with the place.

use std::path::{Path, PathBuf};

use crate::support::{Home, curl, sample};

/// The police sample with non-ASCII names, its declaration naming `declared` (none: removed).
fn police_text(declared: Option<&str>, names: (&str, &str)) -> String {
    let xml = std::fs::read_to_string(sample("police", "valid-single-incident.xml")).unwrap();
    let xml = xml
        .replace("Examplesson", names.0)
        .replace("Niche RMS", names.1);
    match declared {
        Some(enc) => xml.replace("encoding=\"UTF-8\"", &format!("encoding=\"{enc}\"")),
        None => xml
            .split_once("?>\n")
            .map(|(_, rest)| rest.to_owned())
            .unwrap(),
    }
}

fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
    let mut out = if big_endian {
        vec![0xFE, 0xFF]
    } else {
        vec![0xFF, 0xFE]
    };
    for unit in text.encode_utf16() {
        out.extend_from_slice(&if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        });
    }
    out
}

/// Latin-1, with windows-1252's € and curly quotes.
fn single_byte(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '€' => 0x80,
            '“' => 0x93,
            '”' => 0x94,
            c => u8::try_from(u32::from(c)).expect("a Latin-1 character"),
        })
        .collect()
}

/// The four encodings, each as (file name, bytes).
fn variants() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "utf16le.xml",
            utf16(
                &police_text(Some("UTF-16"), ("Żółwiński-Łukasz", "Nïche “RMS” €")),
                false,
            ),
        ),
        (
            "utf16be.xml",
            utf16(&police_text(None, ("Öberg-é", "Niche “RMS”")), true),
        ),
        (
            "latin1.xml",
            single_byte(&police_text(
                Some("ISO-8859-1"),
                ("Müller-Dubé", "Système Ö"),
            )),
        ),
        (
            "cp1252.xml",
            single_byte(&police_text(
                Some("windows-1252"),
                ("Dubé-Öz", "“Niche” € RMS"),
            )),
        ),
    ]
}

fn schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/police/IncidentBatch.xsd")
}

fn validate(home: &Home, file: &Path) -> std::process::Output {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("gateway"))
        .current_dir(home.path())
        .args(["validate", "--schema"])
        .arg(schema())
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn the_police_sample_in_utf16_and_legacy_encodings_is_valid() {
    let home = Home::new("");
    for (name, bytes) in variants() {
        let file = home.file(name);
        std::fs::write(&file, &bytes).unwrap();
        let out = validate(&home, &file);
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn broken_encodings_are_refused_with_their_place() {
    let home = Home::new("");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown.xml",
            police_text(Some("klingon-7"), ("A", "B")).into_bytes(),
            "not an encoding name",
        ),
        (
            "lying-bom.xml",
            utf16(&police_text(Some("ISO-8859-1"), ("A", "B")), false),
            "byte order mark",
        ),
        (
            "bad-utf16.xml",
            {
                let mut b = utf16(&police_text(Some("UTF-16"), ("A", "B")), false);
                // A lone high surrogate in the middle of the document.
                let at = (b.len() / 2) & !1;
                b[at] = 0x00;
                b[at + 1] = 0xD8;
                b
            },
            "byte offset",
        ),
        (
            "bad-sjis.xml",
            {
                let mut b = police_text(Some("Shift_JIS"), ("A", "B")).into_bytes();
                let at = b.len() / 2;
                b[at] = 0x81;
                b[at + 1] = 0x20;
                b
            },
            "not valid Shift_JIS",
        ),
        (
            "utf32.xml",
            b"\x00\x00\xFE\xFF\x00\x00\x00<".to_vec(),
            "UTF-32",
        ),
    ];
    for (name, bytes, needle) in cases {
        let file = home.file(name);
        std::fs::write(&file, &bytes).unwrap();
        let out = validate(&home, &file);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {text}");
        assert!(text.contains("xml_malformed"), "{name}: {text}");
        assert!(text.contains(needle), "{name}: {text}");
        // file:line:column
        assert!(
            text.contains(&format!("{name}:")),
            "{name}: located: {text}"
        );
    }
}

#[test]
fn sealed_with_stock_tools_they_are_forwarded_over_https_byte_for_byte() {
    let home = Home::with_server_config("");
    let token = format!("Authorization: Bearer {}", home.token("police"));
    let mut sealed = Vec::new();
    let expected = ["UTF-16LE", "UTF-16BE", "windows-1252", "windows-1252"];
    for (i, (name, bytes)) in variants().into_iter().enumerate() {
        // A distinct message id each, so none is a resend of another.
        let text_id = format!("3f6c2a1e-8b4d-4c2f-9a7e-1a2b3c4d00{:02}", 20 + i);
        let bytes = replace_bytes(&bytes, crate::support::POLICE_SAMPLE_ID, &text_id, name);
        let xml = home.file(name);
        std::fs::write(&xml, &bytes).unwrap();
        sealed.push((
            home.seal_as("police", &xml, &format!("{name}.sealed")),
            bytes,
            expected[i],
        ));
    }
    let server = home.serve();
    for (file, bytes, encoding) in sealed {
        let r = curl(
            &home,
            &[
                "-X",
                "POST",
                "--data-binary",
                &format!("@{}", file.display()),
                "-H",
                &token,
                &server.url("/v1/messages"),
            ],
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let id = r.json()["gateway_message_id"].as_str().unwrap().to_owned();
        let queued = std::fs::read(
            home.path()
                .join("outbox/integration/new")
                .join(format!("{id}.xml")),
        )
        .unwrap();
        assert_eq!(queued, bytes, "the signed bytes are forwarded unchanged");
        let meta: serde_json::Value = home.queue_metadata(&id);
        assert_eq!(meta["encoding"], encoding);
        assert_eq!(meta["size"], bytes.len() as u64);
        let status = curl(
            &home,
            &["-H", &token, &server.url(&format!("/v1/messages/{id}"))],
        );
        assert_eq!(status.json()["encoding"], encoding);
    }
}

/// Replaces the ASCII `from` by `to` in a document of any of the four encodings.
fn replace_bytes(bytes: &[u8], from: &str, to: &str, name: &str) -> Vec<u8> {
    let widen = |s: &str| -> Vec<u8> {
        if name.starts_with("utf16le") {
            s.bytes().flat_map(|b| [b, 0]).collect()
        } else if name.starts_with("utf16be") {
            s.bytes().flat_map(|b| [0, b]).collect()
        } else {
            s.as_bytes().to_vec()
        }
    };
    let (from, to) = (widen(from), widen(to));
    let at = bytes
        .windows(from.len())
        .position(|w| w == from.as_slice())
        .expect("the message id");
    [&bytes[..at], &to, &bytes[at + from.len()..]].concat()
}

#[test]
fn schema_documents_in_utf16_or_a_legacy_encoding_compile() {
    let home = Home::new("");
    let xsd = |decl: &str| {
        format!(
            r#"<?xml version="1.0" encoding="{decl}"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <!-- Größe: “the size” -->
  <xs:element name="Größe" type="xs:int"/>
</xs:schema>
"#
        )
    };
    let doc = home.file("doc.xml");
    std::fs::write(&doc, "<Größe>42</Größe>").unwrap();
    for (name, bytes) in [
        ("s16.xsd", utf16(&xsd("UTF-16"), false)),
        ("s1252.xsd", single_byte(&xsd("windows-1252"))),
    ] {
        let schema = home.file(name);
        std::fs::write(&schema, bytes).unwrap();
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("gateway"))
            .args(["validate", "--schema"])
            .arg(&schema)
            .arg(&doc)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn files_in_each_encoding_dropped_in_the_inbox_are_forwarded_byte_for_byte() {
    let home = Home::with_server_config("[inbox]\nstable_ms = 200\nrescan_secs = 1\n");
    let _server = home.serve();
    let inbox = home.path().join("inbox/police");
    std::fs::create_dir_all(&inbox).unwrap();
    for (i, (name, bytes)) in variants().into_iter().enumerate() {
        let text_id = format!("3f6c2a1e-8b4d-4c2f-9a7e-1a2b3c4d00{:02}", 40 + i);
        let bytes = replace_bytes(&bytes, crate::support::POLICE_SAMPLE_ID, &text_id, name);
        let xml = home.file(name);
        std::fs::write(&xml, &bytes).unwrap();
        let dropped = format!("{name}.sealed");
        let sealed = home.seal_as("police", &xml, &dropped);
        std::fs::rename(&sealed, inbox.join(&dropped)).unwrap();
        let receipt = inbox.join(format!("accepted/{dropped}.receipt.json"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !receipt.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "{name} not accepted: {:?}",
                std::fs::read_dir(inbox.join("rejected"))
                    .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
        let id = r["gateway_message_id"].as_str().unwrap();
        let queued = std::fs::read(
            home.path()
                .join("outbox/integration/new")
                .join(format!("{id}.xml")),
        )
        .unwrap();
        assert_eq!(queued, bytes, "{name}");
    }
}

#[test]
fn a_hub_that_wants_utf8_gets_it_with_both_hashes_in_the_metadata() {
    let home = Home::with_server_config("[outbox]\ntranscode_to_utf8 = true\n");
    let token = format!("Authorization: Bearer {}", home.token("police"));
    let text = police_text(Some("UTF-16"), ("Żółwiński-Łukasz", "Nïche “RMS” €"));
    let signed = utf16(&text, false);
    let xml = home.file("utf16.xml");
    std::fs::write(&xml, &signed).unwrap();
    let sealed = home.seal_as("police", &xml, "utf16.sealed");
    let server = home.serve();
    let r = curl(
        &home,
        &[
            "-X",
            "POST",
            "--data-binary",
            &format!("@{}", sealed.display()),
            "-H",
            &token,
            &server.url("/v1/messages"),
        ],
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["gateway_message_id"].as_str().unwrap().to_owned();
    let new = home.path().join("outbox/integration/new");
    let forwarded = std::fs::read(new.join(format!("{id}.xml"))).unwrap();
    assert_eq!(
        String::from_utf8(forwarded.clone()).unwrap(),
        text.replace("encoding=\"UTF-16\"", "encoding=\"UTF-8\""),
        "UTF-8, no byte order mark, the declaration rewritten"
    );
    let meta = home.queue_metadata(&id);
    let hex = |b: &[u8]| hex::encode(openssl::sha::sha256(b));
    assert_eq!(meta["encoding"], "UTF-8");
    assert_eq!(meta["signed_encoding"], "UTF-16LE");
    assert_eq!(meta["sha256"], hex(&signed), "what the agency signed");
    assert_eq!(meta["size"], signed.len() as u64);
    assert_eq!(meta["forwarded_sha256"], hex(&forwarded));
    assert_eq!(meta["forwarded_size"], forwarded.len() as u64);
}
