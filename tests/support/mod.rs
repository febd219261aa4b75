//! A gateway home in a temporary folder (config, dev keys, outbox, state) and the stock
//! tools (`openssl cms`, `age`) to make payloads for it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use assert_cmd::cargo::CommandCargoExt;

/// The repository's `schemas/`.
pub fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

/// A sample message of a seed agency.
pub fn sample(agency: &str, name: &str) -> PathBuf {
    schemas_dir().join(agency).join("samples").join(name)
}

/// Runs a stock tool and insists it succeeds.
pub fn tool(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed (`.ci/run` installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a shell pipeline and insists it succeeds.
pub fn sh(script: &str) {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One gateway installation in a temporary folder.
pub struct Home {
    pub dir: tempfile::TempDir,
}

/// The result of `gateway check --json`.
pub struct Checked {
    pub code: i32,
    pub json: serde_json::Value,
    pub stdout: String,
    pub stderr: String,
}

impl Checked {
    /// The single file's result.
    pub fn result(&self) -> &serde_json::Value {
        &self.json["results"][0]
    }

    /// The single file's rejection code, or "" when accepted.
    pub fn code_of_first(&self) -> String {
        self.result()["rejection"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Home {
    /// A new home with `gateway.toml` (plus `extra` TOML) and a development key set.
    pub fn new(extra: &str) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "[paths]\nschemas = {:?}\n{extra}",
            schemas_dir().display().to_string()
        );
        std::fs::write(dir.path().join("gateway.toml"), config).unwrap();
        let home = Home { dir };
        let out = home.gateway(&["keys", "init"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        home
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.path().join("gateway.toml")
    }

    /// Runs `gateway ARGS --config <home>/gateway.toml`.
    pub fn gateway(&self, args: &[&str]) -> Output {
        Command::cargo_bin("gateway")
            .unwrap()
            .args(args)
            .arg("--config")
            .arg(self.config())
            .env_remove("GATEWAY_CONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The recipient agencies seal to.
    pub fn recipient(&self) -> String {
        let out = self.gateway(&["keys", "list", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["identities"][0]["recipient"].as_str().unwrap().to_owned()
    }

    /// The development signing key and certificate of a seed agency.
    pub fn signer(&self, agency: &str) -> (PathBuf, PathBuf) {
        let d = self.path().join("keys/dev/agencies");
        (
            d.join(format!("{agency}.key")),
            d.join(format!("{agency}.crt")),
        )
    }

    /// A scratch file path in the home.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// Signs `xml` with `openssl cms` (extra flags e.g. `-stream`) and encrypts it with `age`.
    pub fn seal_stock(
        &self,
        xml: &Path,
        key: &Path,
        cert: &Path,
        cms_flags: &str,
        out: &str,
    ) -> PathBuf {
        let out = self.file(out);
        sh(&format!(
            "openssl cms -sign -binary -nodetach -outform DER -md sha256 {cms_flags} -in '{}' -signer '{}' -inkey '{}' | age -r '{}' > '{}'",
            xml.display(),
            cert.display(),
            key.display(),
            self.recipient(),
            out.display()
        ));
        out
    }

    /// Seals with a seed agency's development key and the stock tools.
    pub fn seal_as(&self, agency: &str, xml: &Path, out: &str) -> PathBuf {
        let (key, cert) = self.signer(agency);
        self.seal_stock(xml, &key, &cert, "", out)
    }

    /// `gateway check --json --agency AGENCY FILES... EXTRA...`
    pub fn check(&self, agency: &str, files: &[&Path], extra: &[&str]) -> Checked {
        let mut args = vec!["check", "--json", "--agency", agency];
        args.extend_from_slice(extra);
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        args.extend(files.iter().map(String::as_str));
        let out = self.gateway(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));
        Checked {
            code: out.status.code().unwrap_or(-1),
            json,
            stdout,
            stderr,
        }
    }
}
