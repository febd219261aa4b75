//! `gateway check` and `gateway validate` on inputs that are not regular files, or not there:
//! a clear message naming the path and exit 2, quickly (a FIFO must not block, a device must
//! not be read). Security review, issue 11, findings 9 and 11.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

use crate::support::{Home, schemas_dir};

/// Well within the limit; a blocked open or an endless read would hit it.
const QUICK: Duration = Duration::from_secs(20);

/// A FIFO with no writer, in a fresh temporary folder.
fn fifo() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipe.sealed");
    let ok = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo failed");
    (dir, path)
}

/// Runs the binary with a deadline; returns (exit code, stdout, stderr).
fn run(args: &[&std::ffi::OsStr], config: Option<&Path>) -> (i32, String, String) {
    let mut cmd = std::process::Command::cargo_bin("gateway").unwrap();
    cmd.args(args)
        .env_remove("GATEWAY_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let started = Instant::now();
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    // Kill it if it hangs, so that a regression fails the test instead of blocking it.
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = tx.send(());
        out
    });
    if rx.recv_timeout(QUICK).is_err() {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        panic!("gateway {args:?} still running after {QUICK:?}");
    }
    let out = waiter.join().unwrap().unwrap();
    assert!(started.elapsed() < QUICK);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check(home: &Home, extra: &[&str], file: &Path) -> (i32, String, String) {
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["check".as_ref(), "--agency".as_ref(), "police".as_ref()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    args.push(file.as_os_str());
    run(&args, Some(&home.config()))
}

fn police_schema() -> PathBuf {
    schemas_dir().join("police/IncidentBatch.xsd")
}

fn validate(schema: &Path, files: &[&Path]) -> (i32, String, String) {
    let root = schemas_dir();
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "validate".as_ref(),
        "--schema".as_ref(),
        schema.as_os_str(),
        "--schema-root".as_ref(),
        root.as_os_str(),
    ];
    args.extend(files.iter().map(|f| f.as_os_str()));
    run(&args, None)
}

#[test]
fn check_refuses_dev_zero_as_a_character_device_with_exit_2_also_when_forwarding() {
    let home = Home::new("");
    let zero = Path::new("/dev/zero");
    for extra in [&[][..], &["--forward"][..]] {
        let (code, _, stderr) = check(&home, extra, zero);
        assert_eq!(code, 2, "{extra:?}: {stderr}");
        assert!(
            stderr.contains("/dev/zero: is a character device, not a regular file"),
            "{stderr}"
        );
    }
}

#[test]
fn check_refuses_a_fifo_without_blocking_with_exit_2() {
    let home = Home::new("");
    let (_dir, pipe) = fifo();
    for extra in [&[][..], &["--forward"][..]] {
        let (code, _, stderr) = check(&home, extra, &pipe);
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains(&format!("{}: is a FIFO (named pipe)", pipe.display())),
            "{stderr}"
        );
    }
}

#[test]
fn check_says_no_such_file_with_exit_2_for_a_missing_file() {
    let home = Home::new("");
    let missing = home.file("no-such-file.sealed");
    let (code, stdout, stderr) = check(&home, &[], &missing);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("{}: no such file", missing.display())),
        "{stderr}"
    );
    assert!(!stdout.contains("queue_unavailable"), "{stdout}");
}

#[test]
fn check_says_a_directory_is_a_directory_with_exit_2() {
    let home = Home::new("");
    let dir = home.file("folder");
    std::fs::create_dir(&dir).unwrap();
    let (code, stdout, stderr) = check(&home, &[], &dir);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("{}: is a directory", dir.display())),
        "{stderr}"
    );
    assert!(!stdout.contains("not_age_encrypted"), "{stdout}");
}

#[test]
fn check_json_lists_an_unreadable_file_as_an_error_and_still_checks_the_others() {
    let home = Home::new("");
    let good = home.seal_as(
        "police",
        &crate::support::sample("police", "valid-single-incident.xml"),
        "good.sealed",
    );
    let missing = home.file("missing.sealed");
    let out = home.gateway(&[
        "check",
        "--json",
        "--agency",
        "police",
        &missing.display().to_string(),
        &good.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["results"][0]["outcome"], "error");
    assert!(
        json["results"][0]["error"]
            .as_str()
            .unwrap()
            .ends_with("missing.sealed: no such file")
    );
    assert_eq!(json["results"][1]["outcome"], "accepted");
}

#[test]
fn validate_refuses_dev_zero_as_schema_with_exit_2_instead_of_reading_it() {
    let (code, _, stderr) = validate(Path::new("/dev/zero"), &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("/dev/zero: schema_io: is a character device, not a regular file"),
        "{stderr}"
    );
}

#[test]
fn validate_refuses_a_fifo_as_schema_without_blocking_with_exit_2() {
    let (_dir, pipe) = fifo();
    let (code, _, stderr) = validate(&pipe, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is a FIFO (named pipe)"), "{stderr}");
    assert!(stderr.contains("pipe.sealed"), "{stderr}");
}

#[test]
fn validate_refuses_dev_zero_and_a_fifo_as_documents_with_exit_2() {
    let (_dir, pipe) = fifo();
    for doc in [Path::new("/dev/zero"), pipe.as_path()] {
        let (code, stdout, stderr) = validate(&police_schema(), &[doc]);
        assert_eq!(code, 2, "{stdout}{stderr}");
        assert!(
            stderr.contains(&format!("{}: is a ", doc.display()))
                && stderr.contains("not a regular file"),
            "{stderr}"
        );
    }
}

#[test]
fn validate_exits_2_for_a_directory_given_as_document() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = validate(&police_schema(), &[dir.path()]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("{}: is a directory", dir.path().display())),
        "{stderr}"
    );
}

#[test]
fn validate_refuses_a_schema_document_over_the_size_limit_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.xsd");
    let f = std::fs::File::create(&big).unwrap();
    // Sparse: the size is what counts, nothing is written.
    f.set_len(xsd::schema::MAX_SCHEMA_DOCUMENT_BYTES + 1)
        .unwrap();
    let (code, _, stderr) = validate(&big, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "a schema document may be at most {} bytes",
            xsd::schema::MAX_SCHEMA_DOCUMENT_BYTES
        )),
        "{stderr}"
    );
}
