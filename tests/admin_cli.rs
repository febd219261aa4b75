//! `gateway keys`, `gateway agency` and `gateway check-config`.

use std::os::unix::fs::PermissionsExt;

use crate::support::{Home, sample};

#[test]
fn keys_init_makes_private_files_0600_and_is_idempotent() {
    let home = Home::new("");
    let keys = home.path().join("keys");
    let mut private = 0;
    for entry in walk(&keys) {
        if entry.extension().is_some_and(|e| e == "key") {
            let mode = std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", entry.display());
            private += 1;
        }
    }
    // identity + receipt + tls + eight agency signers
    assert_eq!(private, 11);
    let again = home.gateway(&["keys", "init", "--json"]);
    assert!(again.status.success());
    let v: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["created"].as_array().unwrap().len(), 0);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn identity_readable_by_others_is_refused_with_the_fix() {
    let home = Home::new("");
    let ids = home.path().join("keys/identities");
    let key = walk(&ids)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "key"))
        .unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = home.gateway(&[
        "check",
        "--agency",
        "police",
        sample("police", "valid-single-incident.xml")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn agency_add_list_and_cert_add_register_a_new_agency() {
    let home = Home::new("");
    let out = home.gateway(&[
        "agency",
        "add",
        "probation",
        "--display-name",
        "Probation service",
    ]);
    assert!(out.status.success());
    let (_, cert) = home.signer("police");
    let out = home.gateway(&["agency", "cert", "add", "probation", cert.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = home.gateway(&["agency", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v["agencies"].as_array().unwrap();
    assert_eq!(list.len(), 9);
    let p = list.iter().find(|a| a["name"] == "probation").unwrap();
    assert_eq!(p["pinned_certificates"], 1);
    let bad = home.gateway(&["agency", "add", "../etc"]);
    assert_eq!(bad.status.code(), Some(2));
    let missing = home.gateway(&["agency", "cert", "add", "nobody", cert.to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("gateway agency add nobody"));
}

#[test]
fn check_config_passes_on_a_complete_home_and_names_the_key_of_a_mistake() {
    let home = Home::new("");
    let out = home.gateway(&["check-config", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    let cfg = home.config();
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}\n[limits]\nmax_depth = 2\n")).unwrap();
    let out = home.gateway(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`limits.max_depth`"), "{err}");
}

#[test]
fn check_config_explains_an_unreachable_ledger_and_queue() {
    // Keys first (an admin command, audited), then the shared backends.
    let home = Home::new("");
    let text = std::fs::read_to_string(home.config()).unwrap();
    std::fs::write(
        home.config(),
        format!(
            "{text}\n[ledger]\nbackend = \"postgres\"\nurl_env = \"TEST_PG_URL\"\n\
             [queue]\nbackend = \"rabbitmq\"\nurl_env = \"TEST_AMQP_URL\"\n"
        ),
    )
    .unwrap();
    // Nothing listens on port 1; the variables are not set at first.
    let out = home.gateway(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ERROR ledger") && text.contains("TEST_PG_URL"),
        "{text}"
    );
    assert!(
        text.contains("ERROR queue") && text.contains("TEST_AMQP_URL"),
        "{text}"
    );
    let out = assert_cmd::Command::cargo_bin("gateway")
        .unwrap()
        .args(["check-config", "--config"])
        .arg(home.config())
        .env("TEST_PG_URL", "postgres://gateway@127.0.0.1:1/gateway")
        .env("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ERROR ledger") && text.contains("Connection refused"),
        "{text}"
    );
    assert!(
        text.contains("ERROR queue") && text.contains("is the broker running"),
        "{text}"
    );
}

#[test]
fn check_config_reports_missing_keys_with_the_command_that_fixes_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gateway.toml"),
        format!(
            "[paths]\nschemas = {:?}\n",
            crate::support::schemas_dir().display().to_string()
        ),
    )
    .unwrap();
    let out = assert_cmd::Command::cargo_bin("gateway")
        .unwrap()
        .args(["check-config", "--config"])
        .arg(dir.path().join("gateway.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("gateway keys init"), "{text}");
}

#[test]
fn check_of_an_unregistered_agency_is_a_usage_error() {
    let home = Home::new("");
    let out = home.gateway(&["check", "--agency", "nobody", "x.sealed"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not registered"));
}

/// A self-signed certificate valid from `from` to `until` (Unix seconds), written as PEM.
fn cert_valid_between(home: &Home, name: &str, from: i64, until: i64) -> std::path::PathBuf {
    use openssl::asn1::Asn1Time;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::{X509, X509NameBuilder};
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut subject = X509NameBuilder::new().unwrap();
    subject.append_entry_by_text("CN", name).unwrap();
    let subject = subject.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&subject).unwrap();
    b.set_issuer_name(&subject).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(from).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(until).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let path = home.file(&format!("{name}.crt"));
    std::fs::write(&path, b.build().to_pem().unwrap()).unwrap();
    path
}

fn pinned_count(home: &Home, agency: &str) -> usize {
    let dir = home.path().join("keys/agencies").join(agency).join("certs");
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "pem"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn agency_cert_add_refuses_an_expired_or_not_yet_valid_certificate_without_force() {
    let home = Home::new("");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let day = 86_400;
    let before = pinned_count(&home, "police");
    let expired = cert_valid_between(&home, "expired", now - 30 * day, now - day);
    let future = cert_valid_between(&home, "future", now + 10 * day, now + 400 * day);
    for (cert, needle) in [
        (&expired, "the certificate expired on"),
        (&future, "the certificate is not valid yet"),
    ] {
        let out = home.gateway(&["agency", "cert", "add", "police", cert.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(
            err.contains("Not pinned") && err.contains("--force"),
            "{err}"
        );
    }
    assert_eq!(pinned_count(&home, "police"), before, "nothing was pinned");
    // Registered ahead of its switch-over, from a time it is valid at: fine.
    let from = time::OffsetDateTime::from_unix_timestamp(now + 20 * day).unwrap();
    let from = from
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = home.gateway(&[
        "agency",
        "cert",
        "add",
        "police",
        future.to_str().unwrap(),
        "--not-before",
        &from,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
}

#[test]
fn agency_cert_add_with_force_pins_an_expired_certificate_with_a_warning() {
    let home = Home::new("");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let before = pinned_count(&home, "police");
    let expired = cert_valid_between(&home, "expired", now - 30 * 86_400, now - 86_400);
    let out = home.gateway(&[
        "agency",
        "cert",
        "add",
        "police",
        expired.to_str().unwrap(),
        "--force",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning:") && err.contains("the certificate expired on"),
        "{err}"
    );
    assert!(err.contains("pinned anyway (--force)"), "{err}");
    assert_eq!(pinned_count(&home, "police"), before + 1);
}
