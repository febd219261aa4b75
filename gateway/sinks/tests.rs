use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::*;
use crate::message::{Channel, MessageId, timestamp};

const XML: &[u8] = b"<?xml version=\"1.0\"?>\n<Message><Body>hello</Body></Message>\n";

fn info(id: &MessageId, size: u64) -> MessageInfo {
    let signer = crate::keyring::trust::TrustedSigner {
        agency: "tax-office".into(),
        fingerprint_sha256: "ab".repeat(32),
        subject: "CN=Tax office".into(),
        not_after: "Dec 31 23:59:59 2030 GMT".into(),
    };
    MessageInfo {
        gateway_message_id: id.clone(),
        validated: crate::envelope::Envelope {
            agency: "tax-office".into(),
            state: crate::envelope::Validated {
                signers: vec![signer],
                schema_id: "tax-v1".into(),
                root: "Message".into(),
                agency_message_id: Some("M-1".into()),
                sha256: "cd".repeat(32),
                size,
                encoding: "UTF-8".to_owned(),
            },
        },
        transcoded: None,
        channel: Channel::Folder,
        received_at: timestamp::parse("2024-05-01T10:00:00Z").unwrap(),
        request_id: None,
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Deterministic, incompressible-looking test data spanning several age chunks.
fn big_payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn open_creates_private_tmp_new_and_cur() {
    let dir = tempfile::tempdir().unwrap();
    let sink = OutboxSink::open(dir.path().join("outbox/hub")).unwrap();
    assert_eq!(sink.queue(), "outbox/hub");
    assert!(!sink.encrypts_to_hub());
    assert_eq!(names(&dir.path().join("outbox/hub")), ["cur", "new", "tmp"]);
    assert!(names(&dir.path().join("outbox/hub/tmp")).is_empty());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for d in ["tmp", "new", "cur"] {
            let mode = fs::metadata(dir.path().join("outbox/hub").join(d))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700, "{d}");
        }
    }
}

#[test]
fn staged_then_published_payload_appears_in_new_with_its_metadata_and_tmp_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let sink = OutboxSink::open(dir.path().join("hub")).unwrap();
    let id = MessageId::new();
    let mut staged = sink.stage(&id).unwrap();
    assert_eq!(names(&dir.path().join("hub/tmp")), [format!("{id}.xml")]);
    // Written in pieces, as a validator streaming through would.
    for chunk in XML.chunks(7) {
        staged.write_all(chunk).unwrap();
    }
    assert_eq!(staged.bytes_written(), XML.len() as u64);
    let published = staged.publish(&info(&id, XML.len() as u64)).unwrap();

    let new = dir.path().join("hub/new");
    assert_eq!(names(&new), [format!("{id}.json"), format!("{id}.xml")]);
    assert!(names(&dir.path().join("hub/tmp")).is_empty());
    assert_eq!(published.payload_path, new.join(format!("{id}.xml")));
    assert_eq!(published.metadata_path, new.join(format!("{id}.json")));
    assert_eq!(fs::read(&published.payload_path).unwrap(), XML);

    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(&published.metadata_path).unwrap()).unwrap();
    assert_eq!(json["gateway_message_id"], id.as_str());
    assert_eq!(json["agency"], "tax-office");
    assert_eq!(json["agency_message_id"], "M-1");
    assert_eq!(json["schema_id"], "tax-v1");
    assert_eq!(json["signer_fingerprint_sha256"], "ab".repeat(32));
    assert_eq!(
        json["signer_fingerprints_sha256"],
        serde_json::json!(["ab".repeat(32)])
    );
    assert_eq!(json["sha256"], "cd".repeat(32));
    assert_eq!(json["size"], XML.len() as u64);
    assert_eq!(json["channel"], "folder");
    assert_eq!(json["received_at"], "2024-05-01T10:00:00.000000Z");
    assert!(json["forwarded_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(json["payload_file"], format!("{id}.xml"));
    assert_eq!(json["encrypted_to_hub"], false);
    assert_eq!(json["encoding"], "UTF-8");
    assert_eq!(json.as_object().unwrap().len(), 14);

    let meta: Metadata = serde_json::from_value(json).unwrap();
    assert_eq!(meta, published.metadata);
    let r = &published.receipt;
    assert_eq!(r.gateway_message_id, id);
    assert_eq!(r.queue, "outbox/hub");
    assert_eq!(r.forwarded_at, meta.forwarded_at);
    assert_eq!(r.schema_id, "tax-v1");
    let receipt_json = serde_json::to_value(r).unwrap();
    assert_eq!(serde_json::from_value::<Receipt>(receipt_json).unwrap(), *r);
}

#[test]
fn discard_removes_the_staged_payload() {
    let dir = tempfile::tempdir().unwrap();
    let sink = OutboxSink::open(dir.path().join("hub")).unwrap();
    let mut staged = sink.stage(&MessageId::new()).unwrap();
    staged.write_all(b"<secret/>").unwrap();
    staged.discard();
    assert!(names(&dir.path().join("hub/tmp")).is_empty());
    assert!(names(&dir.path().join("hub/new")).is_empty());
}

#[test]
fn dropping_an_unpublished_stage_removes_the_payload() {
    let dir = tempfile::tempdir().unwrap();
    let sink = OutboxSink::open(dir.path().join("hub")).unwrap();
    {
        let mut staged = sink.stage(&MessageId::new()).unwrap();
        staged.write_all(b"<secret/>").unwrap();
        staged.flush().unwrap();
        assert_eq!(names(&dir.path().join("hub/tmp")).len(), 1);
    }
    assert!(names(&dir.path().join("hub/tmp")).is_empty());
}

#[test]
fn publish_refuses_a_mismatched_size_or_id_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let sink = OutboxSink::open(dir.path().join("hub")).unwrap();
    let id = MessageId::new();
    let mut staged = sink.stage(&id).unwrap();
    staged.write_all(XML).unwrap();
    let err = staged.publish(&info(&id, 1)).unwrap_err();
    assert!(matches!(err, SinkError::Mismatch(_)), "{err}");

    let mut staged = sink.stage(&id).unwrap();
    staged.write_all(XML).unwrap();
    let err = staged
        .publish(&info(&MessageId::new(), XML.len() as u64))
        .unwrap_err();
    assert!(matches!(err, SinkError::Mismatch(_)), "{err}");
    assert!(names(&dir.path().join("hub/tmp")).is_empty());
    assert!(names(&dir.path().join("hub/new")).is_empty());
}

#[test]
fn staging_the_same_id_twice_at_once_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sink = OutboxSink::open(dir.path().join("hub")).unwrap();
    let id = MessageId::new();
    let _first = sink.stage(&id).unwrap();
    assert!(matches!(sink.stage(&id), Err(SinkError::Io(_))));
}

fn encrypted_sink(dir: &Path) -> (OutboxSink, age::x25519::Identity) {
    let identity = age::x25519::Identity::generate();
    let sink = OutboxSink::open(dir.join("hub"))
        .unwrap()
        .with_hub_recipients(vec![identity.to_public()]);
    (sink, identity)
}

fn publish_encrypted(sink: &OutboxSink, payload: &[u8]) -> Published {
    let id = MessageId::new();
    let mut staged = sink.stage(&id).unwrap();
    assert_eq!(staged.payload_file(), format!("{id}.xml.age"));
    for chunk in payload.chunks(10_000) {
        staged.write_all(chunk).unwrap();
    }
    staged.publish(&info(&id, payload.len() as u64)).unwrap()
}

#[test]
fn with_a_hub_recipient_the_published_payload_decrypts_to_the_original_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, identity) = encrypted_sink(dir.path());
    assert!(sink.encrypts_to_hub());
    let payload = big_payload(300_000); // several 64 KiB age chunks
    let published = publish_encrypted(&sink, &payload);
    let id = &published.metadata.gateway_message_id;

    assert_eq!(
        names(&dir.path().join("hub/new")),
        [format!("{id}.json"), format!("{id}.xml.age")]
    );
    assert!(names(&dir.path().join("hub/tmp")).is_empty());
    assert!(published.metadata.encrypted_to_hub);
    assert_eq!(published.metadata.payload_file, format!("{id}.xml.age"));

    let sealed = fs::read(&published.payload_path).unwrap();
    assert!(sealed.starts_with(b"age-encryption.org/v1\n"));
    assert!(!sealed.windows(64).any(|w| w == &payload[..64]));

    assert_eq!(decrypt(&sealed, &identity), payload);

    // A different identity cannot read it.
    let other = age::x25519::Identity::generate();
    let decryptor = age::Decryptor::new(&sealed[..]).unwrap();
    assert!(
        decryptor
            .decrypt(std::iter::once(&other as &dyn age::Identity))
            .is_err()
    );
}

#[test]
fn the_stock_age_cli_decrypts_the_published_payload() {
    use age::secrecy::ExposeSecret;
    let age_bin = Path::new("/usr/bin/age");
    if !age_bin.exists() {
        panic!("this test needs the age CLI at /usr/bin/age");
    }
    let dir = tempfile::tempdir().unwrap();
    let (sink, identity) = encrypted_sink(dir.path());
    let published = publish_encrypted(&sink, XML);
    let identity_file = dir.path().join("identity.txt");
    fs::write(
        &identity_file,
        format!("{}\n", identity.to_string().expose_secret()),
    )
    .unwrap();
    let out = std::process::Command::new(age_bin)
        .arg("-d")
        .arg("-i")
        .arg(&identity_file)
        .arg(&published.payload_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "age -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, XML);
}

#[test]
fn dropping_an_unpublished_encrypted_stage_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, _identity) = encrypted_sink(dir.path());
    let mut staged = sink.stage(&MessageId::new()).unwrap();
    staged.write_all(&big_payload(100_000)).unwrap();
    drop(staged);
    assert!(names(&dir.path().join("hub/tmp")).is_empty());
}

#[test]
fn open_removes_stale_tmp_files_but_keeps_fresh_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("hub");
    drop(OutboxSink::open(&root).unwrap());
    let tmp = root.join("tmp");
    let stale = tmp.join("0190f0a0-0000-7000-8000-000000000000.xml");
    let fresh = tmp.join("0190f0a0-0000-7000-8000-000000000001.xml");
    fs::write(&stale, b"left over").unwrap();
    fs::write(&fresh, b"being written").unwrap();
    fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - STALE_TMP_AFTER - Duration::from_secs(60))
        .unwrap();
    let sink = OutboxSink::open(&root).unwrap();
    assert!(!stale.exists());
    assert!(fresh.exists());
    assert_eq!(sink.cleanup_tmp(Duration::ZERO).unwrap(), 1);
    assert!(!fresh.exists());
}

/// Stage, copy and publish through the trait object, as the pipeline does.
fn deliver(
    sink: &dyn Sink,
    payload: &mut dyn Read,
    info: &MessageInfo,
) -> Result<Receipt, SinkError> {
    let mut staging = sink.begin_staging(&info.gateway_message_id)?;
    std::io::copy(payload, &mut staging)?;
    staging.publish(info)
}

#[test]
fn the_sink_trait_delivers_from_a_reader_and_discards_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let sink: Box<dyn Sink> = Box::new(OutboxSink::open(dir.path().join("hub")).unwrap());
    let id = MessageId::new();
    let receipt = deliver(&*sink, &mut &XML[..], &info(&id, XML.len() as u64)).unwrap();
    assert_eq!(receipt.queue, "outbox/hub");
    assert_eq!(
        fs::read(dir.path().join(format!("hub/new/{id}.xml"))).unwrap(),
        XML
    );

    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("connection reset"));
            }
            self.0 -= 1;
            buf[0] = b'x';
            Ok(1)
        }
    }
    let id2 = MessageId::new();
    assert!(deliver(&*sink, &mut Failing(5), &info(&id2, 5)).is_err());
    let mut staging = sink.begin_staging(&MessageId::new()).unwrap();
    staging.write_all(b"x").unwrap();
    staging.discard();
    assert!(names(&dir.path().join("hub/tmp")).is_empty());
    assert_eq!(names(&dir.path().join("hub/new")).len(), 2);
}

#[test]
fn publish_after_runs_its_barrier_before_anything_is_visible_and_a_failed_barrier_publishes_nothing()
 {
    let dir = tempfile::tempdir().unwrap();
    let sink = OutboxSink::open(dir.path().join("hub")).unwrap();
    let new = dir.path().join("hub/new");

    let id = MessageId::new();
    let mut staged = sink.stage(&id).unwrap();
    staged.write_all(XML).unwrap();
    let mut seen_in_new = None;
    staged
        .publish_after(&info(&id, XML.len() as u64), || {
            seen_in_new = Some(names(&new));
            Ok(())
        })
        .unwrap();
    assert_eq!(
        seen_in_new,
        Some(Vec::new()),
        "the barrier ran after a rename"
    );
    assert_eq!(names(&new), [format!("{id}.json"), format!("{id}.xml")]);

    let id = MessageId::new();
    let mut staged = sink.stage(&id).unwrap();
    staged.write_all(XML).unwrap();
    let err = staged
        .publish_after(&info(&id, XML.len() as u64), || {
            Err(SinkError::Io(std::io::Error::other("ledger: disk full")))
        })
        .unwrap_err();
    assert!(err.to_string().contains("ledger: disk full"), "{err}");
    assert_eq!(names(&new).len(), 2, "only the first message is in new/");
    assert!(
        names(&dir.path().join("hub/tmp")).is_empty(),
        "the failed one is cleaned up"
    );
}

fn decrypt(sealed: &[u8], identity: &age::x25519::Identity) -> Vec<u8> {
    let decryptor = age::Decryptor::new(sealed).unwrap();
    let mut reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .unwrap();
    let mut plain = Vec::new();
    reader.read_to_end(&mut plain).unwrap();
    plain
}

#[test]
fn a_payload_staged_in_memory_within_its_limit_never_touches_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let sink = OutboxSink::open(dir.path().join("hub")).unwrap();
    let tmp = dir.path().join("hub/tmp");
    let id = MessageId::new();
    let mut staged = sink.stage_in_memory(&id, XML.len()).unwrap();
    for chunk in XML.chunks(7) {
        staged.write_all(chunk).unwrap();
    }
    assert!(names(&tmp).is_empty(), "staged in memory");
    let finished = staged.finish(&info(&id, XML.len() as u64), false).unwrap();
    assert_eq!(finished.body(), Some(XML));
    assert_eq!(finished.size().unwrap(), XML.len() as u64);
    assert_eq!(finished.metadata().gateway_message_id, id);
    assert!(names(&tmp).is_empty());
    drop(finished);
    assert!(names(&tmp).is_empty());
}

#[test]
fn a_payload_staged_in_memory_spills_to_tmp_past_its_limit_and_is_removed_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let sink = OutboxSink::open(dir.path().join("hub")).unwrap();
    let tmp = dir.path().join("hub/tmp");
    let payload = big_payload(200_000);

    // Past the limit while being written: the bytes so far and the rest go to the file.
    let id = MessageId::new();
    let mut staged = sink.stage_in_memory(&id, 50_000).unwrap();
    for chunk in payload.chunks(30_000) {
        staged.write_all(chunk).unwrap();
    }
    assert_eq!(names(&tmp), [format!("{id}.xml")]);
    let finished = staged
        .finish(&info(&id, payload.len() as u64), false)
        .unwrap();
    assert_eq!(finished.body(), None);
    assert_eq!(fs::read(finished.path()).unwrap(), payload);
    assert_eq!(finished.size().unwrap(), payload.len() as u64);
    drop(finished);
    assert!(names(&tmp).is_empty(), "the spilled file is removed");

    // Within the limit, but asked to be durable: written to the file.
    let id = MessageId::new();
    let mut staged = sink.stage_in_memory(&id, 1 << 20).unwrap();
    staged.write_all(&payload).unwrap();
    assert!(names(&tmp).is_empty());
    let finished = staged
        .finish(&info(&id, payload.len() as u64), true)
        .unwrap();
    assert_eq!(finished.body(), None);
    assert_eq!(fs::read(finished.path()).unwrap(), payload);
    drop(finished);
    assert!(names(&tmp).is_empty());

    // Spilled, then discarded unfinished (a rejection): nothing is left.
    let mut staged = sink.stage_in_memory(&MessageId::new(), 10).unwrap();
    staged.write_all(XML).unwrap();
    assert_eq!(names(&tmp).len(), 1);
    staged.discard();
    assert!(names(&tmp).is_empty());
}

#[test]
fn a_payload_staged_in_memory_for_a_hub_recipient_is_its_age_encryption() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, identity) = encrypted_sink(dir.path());
    let payload = big_payload(100_000); // two 64 KiB age chunks
    let id = MessageId::new();
    let mut staged = sink.stage_in_memory(&id, 1 << 20).unwrap();
    staged.write_all(&payload).unwrap();
    let finished = staged
        .finish(&info(&id, payload.len() as u64), false)
        .unwrap();
    assert!(names(&dir.path().join("hub/tmp")).is_empty());
    let sealed = finished.body().unwrap();
    assert!(sealed.starts_with(b"age-encryption.org/v1\n"));
    assert_eq!(finished.size().unwrap(), sealed.len() as u64);
    assert_eq!(decrypt(sealed, &identity), payload);
    assert!(finished.metadata().encrypted_to_hub);
}
