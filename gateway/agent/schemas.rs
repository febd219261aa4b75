//! The hub's schemas, kept by the agent: fetched from `GET /v1/schemas` (signed by the hub's
//! receipt key, checked against the pinned certificate), written under
//! `<state>/schemas/<version>/` and compiled, so that every extract is validated at the source
//! with the hub's own rules and words before it is sealed. Fetched again every ten minutes;
//! recompiled only when the version moves.

use std::path::{Component, Path};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;

use crate::validation::Catalog;

/// How often the agent asks the hub whether its schemas changed.
const REFRESH: Duration = Duration::from_secs(600);

/// The schemas in use.
pub struct Local {
    /// The bundle's version.
    pub version: String,
    /// The agency they are for.
    pub agency: String,
    /// Compiled.
    pub catalog: Catalog,
    fetched: Instant,
}

impl Local {
    /// Whether it is time to ask the hub again.
    pub fn stale(&self) -> bool {
        self.fetched.elapsed() >= REFRESH
    }
}

/// A path of the bundle, refused unless it is plainly inside the folder.
fn confined(rel: &str) -> anyhow::Result<&Path> {
    let p = Path::new(rel);
    if rel.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!("the schema bundle names {rel:?}, which is not a plain relative path");
    }
    Ok(p)
}

/// Writes `bundle` under `state/schemas/<version>/` (unless there already) and compiles it.
pub fn install(state: &Path, bundle: &serde_json::Value) -> anyhow::Result<Local> {
    let version = bundle["version"]
        .as_str()
        .context("the bundle has no version")?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("the bundle's version {version:?} is not hex");
    }
    let agency = bundle["agency"]
        .as_str()
        .context("the bundle names no agency")?;
    let dir = state.join("schemas").join(version);
    if !dir.join("catalog.toml").exists() {
        let tmp = state.join("schemas").join(format!(".{version}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        crate::fsio::create_private_dir(&tmp)?;
        let files = bundle["files"]
            .as_object()
            .context("the bundle has no files")?;
        for (rel, b64) in files {
            let path = tmp.join(confined(rel)?);
            if let Some(parent) = path.parent() {
                crate::fsio::create_private_dir(parent)?;
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.as_str().unwrap_or_default())
                .with_context(|| format!("{rel} is not base64"))?;
            std::fs::write(&path, bytes)?;
        }
        let catalog = bundle["catalog"]
            .as_str()
            .context("the bundle has no catalog")?;
        std::fs::write(tmp.join("catalog.toml"), catalog)?;
        crate::fsio::rename_durable(&tmp, &dir)?;
    }
    let catalog = Catalog::load(&dir).map_err(|e| anyhow::anyhow!("the hub's schemas: {e}"))?;
    Ok(Local {
        version: version.to_owned(),
        agency: agency.to_owned(),
        catalog,
        fetched: Instant::now(),
    })
}
