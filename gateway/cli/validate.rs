//! `gateway validate`: XML Schema validation only, with the `xsd` engine.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::exit;

/// Arguments of `gateway validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Schema document (entry point); repeat for several.
    #[arg(long = "schema", value_name = "S.xsd", required = true)]
    pub schemas: Vec<PathBuf>,
    /// Confine includes and imports to this directory (default: any local file, relative to
    /// the document that names it, as other validators resolve them; never the network).
    #[arg(long, value_name = "DIR")]
    pub schema_root: Option<PathBuf>,
    /// Documents to validate; with none, only compile the schemas and report whether they are valid.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Machine-readable output (one JSON object on stdout).
    #[arg(long)]
    pub json: bool,
    /// Stop reporting after this many violations per document.
    #[arg(long, default_value_t = 100)]
    pub max_errors: usize,
    /// A field whose values violation messages must not quote (personal data), as in the
    /// catalog's `sensitive`: `Name`, `@attr`, `/Root/Path/Name` or `/Root/Path/@attr`.
    /// Repeat for several.
    #[arg(long = "sensitive", value_name = "FIELD", value_parser = parse_sensitive)]
    pub sensitive: Vec<xsd::SensitiveField>,
}

fn parse_sensitive(s: &str) -> Result<xsd::SensitiveField, String> {
    xsd::SensitiveField::parse(s)
}

#[derive(Serialize)]
struct JsonViolation<'a> {
    code: &'a str,
    message: &'a str,
    line: u64,
    column: u64,
    path: &'a str,
}

#[derive(Serialize)]
struct JsonFile<'a> {
    file: String,
    valid: bool,
    truncated: bool,
    violations: Vec<JsonViolation<'a>>,
}

/// Runs the subcommand and returns the exit code.
pub fn run(args: &Args) -> u8 {
    let schema = match compile(args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    for w in schema.warnings() {
        eprintln!("warning: {w}");
    }
    if args.files.is_empty() {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"schema_valid": true, "diagnostics": []})
            );
        } else {
            println!("schema is valid");
        }
        return exit::OK;
    }
    let (worst, reports) = validate_files(args, &schema);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        write_json(&mut out, &reports);
    } else {
        write_text(&mut out, &reports);
    }
    worst
}

/// Compiles the schemas; when they cannot be, reports why and gives the exit code.
fn compile(args: &Args) -> Result<xsd::Schema, u8> {
    let compiled = match &args.schema_root {
        Some(root) => xsd::Schema::compile(&args.schemas, root),
        None => xsd::Schema::compile_local(&args.schemas),
    };
    compiled.map_err(|e| {
        let code = if e.is_io() { exit::USAGE } else { exit::SCHEMA };
        if args.json {
            let diags: Vec<_> = e
                .diagnostics
                .iter()
                .map(|d| serde_json::json!({"code": d.code(), "file": d.file, "line": d.line, "column": d.column, "message": d.message}))
                .collect();
            println!(
                "{}",
                serde_json::json!({"schema_valid": false, "diagnostics": diags})
            );
        } else {
            eprintln!(
                "the schema cannot be {}:",
                if e.is_io() { "read" } else { "compiled" }
            );
            for d in &e.diagnostics {
                eprintln!("  {d}");
            }
        }
        code
    })
}

/// Validates every file: the worst exit code, and a report per file that could be opened.
fn validate_files(args: &Args, schema: &xsd::Schema) -> (u8, Vec<(String, xsd::Report)>) {
    // The server's default limits: what passes here passes there, and a huge or endless
    // document cannot keep this command busy for ever.
    let opts = xsd::Options {
        max_errors: args.max_errors,
        sensitive: args.sensitive.clone(),
        limits: xsd::Limits {
            max_document_bytes: crate::config::DEFAULT_MAX_PAYLOAD_BYTES,
            ..xsd::Limits::default()
        },
        ..Default::default()
    };
    let mut worst = exit::OK;
    let mut reports = Vec::new();
    for f in &args.files {
        // Regular files only: a folder, a FIFO (which would block) or a device (which never
        // ends) is an input error, exit 2.
        let file = match crate::fsio::open_regular(f) {
            Ok((file, _)) => file,
            Err(e) => {
                eprintln!("error: {e}");
                worst = exit::USAGE;
                continue;
            }
        };
        let report = schema.validate(std::io::BufReader::with_capacity(64 * 1024, file), &opts);
        if !report.is_valid() && worst == exit::OK {
            worst = exit::INVALID;
        }
        reports.push((f.display().to_string(), report));
    }
    (worst, reports)
}

fn write_json(out: &mut impl Write, reports: &[(String, xsd::Report)]) {
    let files: Vec<JsonFile> = reports
        .iter()
        .map(|(name, r)| JsonFile {
            file: name.clone(),
            valid: r.is_valid(),
            truncated: r.truncated,
            violations: r
                .violations
                .iter()
                .map(|v| JsonViolation {
                    code: v.code,
                    message: &v.message,
                    line: v.line,
                    column: v.column,
                    path: &v.path,
                })
                .collect(),
        })
        .collect();
    let _ = writeln!(
        out,
        "{}",
        serde_json::json!({ "schema_valid": true, "files": files })
    );
}

fn write_text(out: &mut impl Write, reports: &[(String, xsd::Report)]) {
    for (name, r) in reports {
        if r.is_valid() {
            let _ = writeln!(out, "{name}: valid");
        } else {
            let _ = writeln!(
                out,
                "{name}: invalid ({} violation{}{})",
                r.violations.len(),
                if r.violations.len() == 1 { "" } else { "s" },
                if r.truncated { ", more not shown" } else { "" }
            );
            for v in &r.violations {
                let _ = writeln!(
                    out,
                    "  {name}:{}:{}: {} at {}: {}",
                    v.line, v.column, v.code, v.path, v.message
                );
            }
        }
    }
}
