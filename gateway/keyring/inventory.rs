//! Every key and certificate under `keys/`, with its state and time left: what `gateway keys
//! list` prints, what the expiry metrics and warnings are computed from.

use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::x509::X509;
use serde::Serialize;
use time::OffsetDateTime;

use super::agencies;
use super::identities::{Identities, Status};

/// One key or certificate.
#[derive(Debug, Clone, Serialize)]
pub struct KeyEntry {
    /// `identity`, `tls`, `receipt`, `agency-signing` or `agency-anchor`.
    pub kind: &'static str,
    /// `gateway` or the agency's name.
    pub owner: String,
    /// Identity id, or the certificate's SHA-256 fingerprint.
    pub id: String,
    /// The age recipient, or the certificate subject.
    pub subject: String,
    /// `current`, `grace`, `retired`, `valid`, `scheduled`, `not-yet-valid`, `expired`,
    /// `revoked` or `unreadable`.
    pub state: String,
    /// Start of validity (RFC 3339 for identities, OpenSSL's form for certificates).
    pub from: Option<String>,
    /// End of validity or of the grace period.
    pub until: Option<String>,
    /// Whole days left until `until` (negative once past), when it has an end.
    pub days_left: Option<i64>,
    /// The file it lives in.
    pub file: PathBuf,
}

impl KeyEntry {
    /// Whether it is (or will be) in use, so its expiry matters.
    pub fn still_in_use(&self) -> bool {
        matches!(
            self.state.as_str(),
            "current" | "grace" | "valid" | "scheduled" | "not-yet-valid"
        )
    }
}

fn pem_certs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "pem" || x == "crt"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Days from `now` to the certificate's notAfter (negative when past).
pub fn days_until(cert: &X509, now: OffsetDateTime) -> Option<i64> {
    let now = Asn1Time::from_unix(now.unix_timestamp()).ok()?;
    let d = now.diff(cert.not_after()).ok()?;
    Some(i64::from(d.days) + if d.secs < 0 { -1 } else { 0 })
}

fn cert_entry(
    kind: &'static str,
    owner: &str,
    file: PathBuf,
    now: OffsetDateTime,
    revoked: &[String],
    scheduled: Option<OffsetDateTime>,
) -> KeyEntry {
    let unreadable = |file: PathBuf| KeyEntry {
        kind,
        owner: owner.to_owned(),
        id: String::new(),
        subject: String::new(),
        state: "unreadable".into(),
        from: None,
        until: None,
        days_left: None,
        file,
    };
    let Ok(pem) = std::fs::read(&file) else {
        return unreadable(file);
    };
    let Ok(cert) = X509::from_pem(&pem) else {
        return unreadable(file);
    };
    let fp = super::x509gen::fingerprint(&cert).unwrap_or_default();
    let days_left = days_until(&cert, now);
    let started = Asn1Time::from_unix(now.unix_timestamp())
        .ok()
        .and_then(|n| n.diff(cert.not_before()).ok())
        .is_some_and(|d| d.days <= 0 && (d.days < 0 || d.secs <= 0));
    let state = if revoked.contains(&fp) {
        "revoked"
    } else if days_left.is_some_and(|d| d < 0) {
        "expired"
    } else if !started {
        "not-yet-valid"
    } else if scheduled.is_some_and(|s| s > now) {
        "scheduled"
    } else {
        "valid"
    };
    let from = match scheduled {
        Some(s) if s > now => s
            .format(&time::format_description::well_known::Rfc3339)
            .ok(),
        _ => Some(cert.not_before().to_string()),
    };
    KeyEntry {
        kind,
        owner: owner.to_owned(),
        id: fp,
        subject: super::trust::one_line(cert.subject_name()),
        state: state.into(),
        from,
        until: Some(cert.not_after().to_string()),
        days_left,
        file,
    }
}

/// Everything under `keys/` at `now`.
pub fn inventory(keys: &Path, now: OffsetDateTime) -> Vec<KeyEntry> {
    let mut out = Vec::new();
    if let Ok(ids) = Identities::records(keys) {
        for i in &ids.info {
            let state = i.status_at(now);
            let until = match state {
                Status::Grace => i.grace_until.clone(),
                Status::Retired => i.retired_when(now),
                Status::Current => None,
            };
            let days_left = match state {
                Status::Grace => i.grace_end().map(|e| (e - now).whole_days()),
                _ => None,
            };
            out.push(KeyEntry {
                kind: "identity",
                owner: "gateway".into(),
                id: i.id.clone(),
                subject: i.recipient.clone(),
                state: state.as_str().into(),
                from: Some(i.created.clone()),
                until,
                days_left,
                file: super::identities::key_path(keys, &i.id),
            });
        }
    }
    for (kind, file) in [
        ("tls", keys.join("tls/server.crt")),
        ("receipt", keys.join("receipt/receipt.crt")),
    ] {
        if file.exists() {
            out.push(cert_entry(kind, "gateway", file, now, &[], None));
        }
    }
    for a in agencies::list(keys).unwrap_or_default() {
        let dir = agencies::agency_dir(keys, &a.name);
        let revoked: Vec<String> = std::fs::read_to_string(dir.join("revoked.txt"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        for file in pem_certs(&dir.join("certs")) {
            let scheduled = std::fs::read_to_string(file.with_extension("from"))
                .ok()
                .and_then(|t| {
                    OffsetDateTime::parse(t.trim(), &time::format_description::well_known::Rfc3339)
                        .ok()
                });
            out.push(cert_entry(
                "agency-signing",
                &a.name,
                file,
                now,
                &revoked,
                scheduled,
            ));
        }
        for file in pem_certs(&dir.join("anchors")) {
            out.push(cert_entry(
                "agency-anchor",
                &a.name,
                file,
                now,
                &revoked,
                None,
            ));
        }
    }
    out
}

/// The warning thresholds, in days before expiry.
pub const WARN_DAYS: [i64; 3] = [30, 7, 1];

/// The tightest threshold `days_left` is within, if any (`Some(1)` also once expired).
pub fn warning_threshold(days_left: i64) -> Option<i64> {
    if days_left < 0 {
        return Some(0);
    }
    WARN_DAYS.iter().rev().copied().find(|t| days_left <= *t)
}

#[cfg(test)]
mod tests {
    #[test]
    fn thresholds_are_30_7_and_1_days() {
        let t = super::warning_threshold;
        assert_eq!(t(31), None);
        assert_eq!(t(30), Some(30));
        assert_eq!(t(8), Some(30));
        assert_eq!(t(7), Some(7));
        assert_eq!(t(2), Some(7));
        assert_eq!(t(1), Some(1));
        assert_eq!(t(0), Some(1));
        assert_eq!(t(-1), Some(0));
    }
}
