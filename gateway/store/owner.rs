//! Which process owns an `in_progress` record: its pid and start time (so a recycled pid is
//! not mistaken for the owner). A record whose owner is gone was cut off by a crash and can be
//! settled at once instead of waiting for the stale-after period.

/// This process, as `<pid>:<start time in clock ticks since boot>`.
pub fn token() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", start_time(pid).unwrap_or(0))
}

/// Whether the process named by `token` is still running.
pub fn alive(token: &str) -> bool {
    let Some((pid, start)) = token.split_once(':') else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    start_time(pid) == Some(start)
}

/// Field 22 of `/proc/<pid>/stat`; `None` when there is no such process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_is_alive_and_a_finished_one_is_not() {
        assert!(super::alive(&super::token()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let token = format!("{pid}:{}", super::start_time(pid).unwrap_or(1));
        child.wait().unwrap();
        assert!(!super::alive(&token));
        assert!(!super::alive("garbage"));
    }
}
