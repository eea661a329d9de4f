//! Reading `/proc`: `/proc/<pid>/stat` to tell whether a recorded pid is still the process we
//! started, and the escapes of `/proc/self/mountinfo`.

use std::fs;

/// State letter and start time (clock ticks since boot) of a process, if it exists.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 was the state; starttime is field 22.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some((state, start_time))
}

/// The start time of a live or zombie process, which together with the pid identifies it across
/// pid reuse.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// Whether `pid` is still the process that started at `start_time` and has not exited.
///
/// A zombie counts as gone: a machine's init is re-parented to the host's init, which may be slow
/// (or fail) to reap it, and a zombie runs nothing.
pub(crate) fn is_running(pid: u32, start_time: u64) -> bool {
    matches!(stat(pid), Some((state, start)) if start == start_time && state != 'Z' && state != 'X')
}

/// Mount points in mountinfo escape space, tab, newline and backslash as octal.
pub(crate) fn unescape_mountinfo(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_itself_and_not_a_wrong_start_time() {
        let me = std::process::id();
        let start = start_time(me).unwrap();
        assert!(is_running(me, start));
        assert!(!is_running(me, start + 1));
        // Above the largest possible pid_max (2^22).
        assert!(start_time(4_194_305).is_none());
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(
            unescape_mountinfo("/srv/my\\040data\\134x"),
            "/srv/my data\\x"
        );
    }
}
