//! `gateway seal`: sign an XML document as CMS SignedData and encrypt it with age, as an
//! agency would (the same result as `openssl cms -sign ... | age -r ...`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use openssl::pkey::PKey;
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
        crate::agent::seal::seal_file(input, &out, &cert, &key, &recipients)?;
        if args.inputs.len() == 1 {
            eprintln!("sealed {} -> {}", input.display(), out.display());
        }
    }
    if args.inputs.len() > 1 {
        eprintln!("sealed {} files", args.inputs.len());
    }
    Ok(exit::OK)
}
