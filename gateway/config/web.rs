//! `[web]`: the upload page and the console, on the HTTPS listener.

use serde::Deserialize;

use super::{ConfigError, bounded};

/// `[web]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    /// Serve the upload page (`/`) and the console (`/console`).
    pub enabled: Option<bool>,
    /// Minutes without a request after which a session ends.
    pub session_idle_minutes: Option<u64>,
    /// Hours after sign-in after which a session ends, however busy.
    pub session_max_hours: Option<u64>,
    /// Failed sign-ins in a row that lock an account.
    pub max_failures: Option<u64>,
    /// Minutes an account stays locked.
    pub lockout_minutes: Option<u64>,
    /// Sign-in attempts one client address may make per minute (on this instance).
    pub sign_ins_per_minute: Option<u64>,
}

/// `[web]`, checked.
#[derive(Debug, Clone)]
pub struct Web {
    /// Serve the pages.
    pub enabled: bool,
    /// Idle time that ends a session (seconds).
    pub session_idle_secs: i64,
    /// Age that ends a session (seconds).
    pub session_max_secs: i64,
    /// Failures in a row that lock an account.
    pub max_failures: u32,
    /// How long a lock lasts (seconds).
    pub lockout_secs: i64,
    /// Sign-in attempts per client address per minute.
    pub sign_ins_per_minute: u32,
}

/// Sizes that fit the types above: every bound is far below `i64`/`u32` limits.
fn small(key: &str, v: Option<u64>, default: u64, min: u64, max: u64) -> Result<i64, ConfigError> {
    bounded(key, v, default, min, max).map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

pub(super) fn check_web(w: RawWeb) -> Result<Web, ConfigError> {
    Ok(Web {
        enabled: w.enabled.unwrap_or(true),
        session_idle_secs: small(
            "web.session_idle_minutes",
            w.session_idle_minutes,
            30,
            1,
            1440,
        )? * 60,
        session_max_secs: small("web.session_max_hours", w.session_max_hours, 8, 1, 168)? * 3600,
        max_failures: u32::try_from(bounded("web.max_failures", w.max_failures, 5, 2, 100)?)
            .unwrap_or(5),
        lockout_secs: small("web.lockout_minutes", w.lockout_minutes, 15, 1, 1440)? * 60,
        sign_ins_per_minute: u32::try_from(bounded(
            "web.sign_ins_per_minute",
            w.sign_ins_per_minute,
            10,
            1,
            10_000,
        )?)
        .unwrap_or(10),
    })
}
