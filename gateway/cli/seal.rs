//! `gateway seal`: sign an XML document as CMS SignedData and encrypt it with age, as an
//! agency would (the same result as `openssl cms -sign ... | age -r ...`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use super::exit;

/// Arguments of `gateway seal`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The signer's private key (PEM).
    #[arg(long, value_name = "K.pem")]
    pub key: PathBuf,
    /// The signer's certificate (PEM); included in the signature.
    #[arg(long, value_name = "C.pem")]
    pub cert: PathBuf,
    /// age recipient (`age1...`) to encrypt to; repeat for several.
    #[arg(long = "to", value_name = "RECIPIENT", required = true)]
    pub to: Vec<String>,
    /// The XML documents.
    #[arg(value_name = "IN", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output file (one IN only; default: IN.sealed).
    #[arg(short, long, value_name = "OUT", conflicts_with = "out_dir")]
    pub output: Option<PathBuf>,
    /// Write `<name>.sealed` files into this folder (for many INs).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Seals `args.input`.
///
/// The document is signed in memory (OpenSSL's CMS API wants the whole content); the output is
/// written through a temporary file and renamed, so a partial `.sealed` file never appears.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    if args.output.is_some() && args.inputs.len() > 1 {
        bail!("-o names one output; use --out-dir for several inputs");
    }
    let mut recipients: Vec<Box<dyn age::Recipient + Send>> = Vec::new();
    for r in &args.to {
        match r.parse::<age::x25519::Recipient>() {
            Ok(r) => recipients.push(Box::new(r)),
            Err(e) => bail!("--to {r:?} is not an age X25519 recipient (age1...): {e}"),
        }
    }
    let key =
        std::fs::read(&args.key).with_context(|| format!("reading {}", args.key.display()))?;
    let key = PKey::private_key_from_pem(&key)
        .with_context(|| format!("{} is not a PEM private key", args.key.display()))?;
    let cert =
        std::fs::read(&args.cert).with_context(|| format!("reading {}", args.cert.display()))?;
    let cert = X509::from_pem(&cert)
        .with_context(|| format!("{} is not a PEM certificate", args.cert.display()))?;
    for input in &args.inputs {
        let out = match (&args.output, &args.out_dir) {
            (Some(o), _) => o.clone(),
            (None, Some(dir)) => {
                let mut name = input.file_name().unwrap_or_default().to_owned();
                name.push(".sealed");
                dir.join(name)
            }
            (None, None) => {
                let mut p = input.clone().into_os_string();
                p.push(".sealed");
                PathBuf::from(p)
            }
        };
        seal_one(input, &out, &cert, &key, &recipients)?;
        if args.inputs.len() == 1 {
            eprintln!("sealed {} -> {}", input.display(), out.display());
        }
    }
    if args.inputs.len() > 1 {
        eprintln!("sealed {} files", args.inputs.len());
    }
    Ok(exit::OK)
}

fn seal_one(
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
