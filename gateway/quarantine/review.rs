//! What operators do with the quarantine from the console: list it, open one entry, and take
//! an entry out, discarded with a reason or re-run after a fix, audited under their name.

use std::path::PathBuf;
use std::sync::PoisonError;

use super::{Quarantine, QuarantineError, QuarantineRecord, check_agency, remove_if_present};
use crate::fsio;
use crate::message::{MessageId, is_safe_name};

impl Quarantine {
    /// Every record, newest first (an unreadable one is logged and left out).
    pub fn list(&self) -> Result<Vec<QuarantineRecord>, QuarantineError> {
        let mut out = Vec::new();
        let agencies = match std::fs::read_dir(&self.root) {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for a in agencies.flatten() {
            let agency = a.file_name().to_string_lossy().into_owned();
            if !is_safe_name(&agency) || !a.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            for f in std::fs::read_dir(a.path())?.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !name.ends_with(".json") {
                    continue;
                }
                match std::fs::read(f.path())
                    .map_err(QuarantineError::from)
                    .and_then(|b| Ok(serde_json::from_slice::<QuarantineRecord>(&b)?))
                {
                    Ok(r) => out.push(r),
                    Err(e) => {
                        tracing::warn!(agency, file = %name, error = %e, "unreadable quarantine record")
                    }
                }
            }
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.quarantined_at));
        Ok(out)
    }

    /// The record of message `id` from `agency`, and the path of its payload.
    pub fn entry(
        &self,
        agency: &str,
        id: &MessageId,
    ) -> Result<Option<(QuarantineRecord, PathBuf)>, QuarantineError> {
        check_agency(agency)?;
        let dir = self.root.join(agency);
        let bytes = match std::fs::read(dir.join(format!("{id}.json"))) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let record: QuarantineRecord = serde_json::from_slice(&bytes)?;
        fsio::check_file_name(&record.sealed_file)?;
        let payload = dir.join(&record.sealed_file);
        Ok(Some((record, payload)))
    }

    /// Takes the entry of message `id` out of the quarantine (its payload too, unless another
    /// record uses it), recording in the audit log that `person` did `action` (`quarantine
    /// discard`, `quarantine re-run`) with `details`. False when there is no such entry.
    pub fn take_out(
        &self,
        agency: &str,
        id: &MessageId,
        person: &str,
        action: &str,
        details: serde_json::Value,
    ) -> Result<bool, QuarantineError> {
        check_agency(agency)?;
        let _lock = self.lock()?;
        let mut guard = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(self.load_index()?);
        }
        let Some(index) = guard.as_mut() else {
            return Ok(false);
        };
        let key = index
            .entries
            .iter()
            .find(|(k, e)| k.1 == id.as_str() && e.agency == agency)
            .map(|(k, _)| k.clone());
        let dir = self.root.join(agency);
        let record = dir.join(format!("{id}.json"));
        let Some(key) = key else {
            // Written by another process since the index was read: count it afresh next sweep.
            if !record.exists() {
                return Ok(false);
            }
            remove_if_present(&record)?;
            fsio::sync_dir(&dir)?;
            self.audit_take_out(agency, id, person, action, details);
            return Ok(true);
        };
        remove_if_present(&record)?;
        if let Some((e, true)) = index.remove(&key) {
            remove_if_present(&dir.join(&e.payload))?;
        }
        fsio::sync_dir(&dir)?;
        self.audit_take_out(agency, id, person, action, details);
        Ok(true)
    }

    fn audit_take_out(
        &self,
        agency: &str,
        id: &MessageId,
        person: &str,
        action: &str,
        mut details: serde_json::Value,
    ) {
        tracing::info!(%id, agency, person, action, "quarantine entry taken out");
        details["agency"] = serde_json::json!(agency);
        if let Some(audit) = &self.audit
            && let Err(e) = audit.append("web", person, action, id.as_str(), details)
        {
            tracing::error!(%id, error = %e, "the audit log could not record a quarantine action");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quarantine::Rejection;

    fn rejection() -> Rejection {
        Rejection {
            code: "schema_invalid".into(),
            detail: "1 violation".into(),
            violations: None,
            received_at: crate::message::timestamp::now(),
            original_name: None,
        }
    }

    #[test]
    fn an_entry_is_listed_opened_and_taken_out_with_its_payload() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::open(dir.path()).unwrap();
        let id = MessageId::new();
        q.keep(&id, "police", &b"sealed bytes"[..], &rejection())
            .unwrap();
        let listed = q.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].gateway_message_id, id);
        let (record, payload) = q.entry("police", &id).unwrap().unwrap();
        assert_eq!(std::fs::read(&payload).unwrap(), b"sealed bytes");
        assert_eq!(record.agency, "police");
        assert!(
            q.entry("../x", &id).is_err(),
            "hostile agency names are refused"
        );
        assert!(
            q.take_out(
                "police",
                &id,
                "op",
                "quarantine discard",
                serde_json::json!({})
            )
            .unwrap()
        );
        assert!(!payload.exists(), "the payload went with its last record");
        assert!(q.list().unwrap().is_empty());
        assert!(
            !q.take_out(
                "police",
                &id,
                "op",
                "quarantine discard",
                serde_json::json!({})
            )
            .unwrap()
        );
    }
}
