//! Sealing as an agency does: `gateway seal` and the agent.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

/// Signs `input` (CMS SignedData, content attached, the certificate included) and encrypts
/// it with age to `recipients`, into `out` through a temporary file that is fsynced and
/// renamed: a partial sealed file never appears. The document is signed in memory (OpenSSL's
/// CMS API wants the whole content).
pub fn seal_file(
    input: &Path,
    out: &Path,
    cert: &X509,
    key: &PKey<Private>,
    recipients: &[Box<dyn age::Recipient + Send>],
) -> anyhow::Result<()> {
    let data = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let cms = CmsContentInfo::sign(Some(cert), Some(key), None, Some(&data), CMSOptions::BINARY)
        .context("signing")?;
    let der = cms.to_der().context("encoding the signature")?;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let tmp = dir.join(format!(".seal-{}.tmp", uuid::Uuid::now_v7()));
    let result = (|| -> anyhow::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_ref() as _))
            .context("setting up encryption")?;
        let mut w = encryptor.wrap_output(std::io::BufWriter::new(file))?;
        w.write_all(&der)?;
        let buf = w.finish()?;
        let file = buf.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, out)?;
        crate::fsio::sync_dir(&dir)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("writing {}", out.display())));
    }
    Ok(())
}
