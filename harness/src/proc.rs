//! Child processes: spawned with their output in a log file, stopped with
//! SIGTERM then SIGKILL, and their CPU time read from `/proc`.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on
/// Linux everywhere sonde runs).
pub const USER_HZ: f64 = 100.0;

/// Spawns `bin args` in `dir`, appending stdout and stderr to `log`, and
/// prints the command line (benchmark output says what it ran).
pub fn spawn_logged(bin: &Path, args: &[OsString], dir: &Path, log: &Path) -> io::Result<Child> {
    let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    let shown: Vec<String> = args
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    println!("  start: {} {}", bin.display(), shown.join(" "));
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .current_dir(dir)
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("spawning {}: {e}", bin.display())))
}

/// Stops `child`: SIGTERM, then SIGKILL if it has not exited within
/// `timeout`. Returns whether it exited by itself (and successfully).
pub fn stop(child: &mut Child, name: &str, timeout: Duration) -> bool {
    if let Ok(Some(st)) = child.try_wait() {
        return st.success();
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if let Ok(Some(st)) = child.try_wait() {
            return st.success();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("  {name} did not exit {timeout:?} after SIGTERM; sending SIGKILL");
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// A child process that is stopped ([`stop`]) when dropped, so that no
/// benchmark or test leaves a server behind, whatever way it ends.
pub struct Guard {
    /// The process.
    pub child: Child,
    /// Its name in messages.
    pub name: String,
    /// How long it gets to exit after SIGTERM.
    pub stop_timeout: Duration,
}

impl Guard {
    /// Guards `child`.
    pub fn new(child: Child, name: impl Into<String>, stop_timeout: Duration) -> Self {
        Guard {
            child,
            name: name.into(),
            stop_timeout,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it now; returns whether it exited by itself.
    pub fn stop(&mut self) -> bool {
        stop(&mut self.child, &self.name, self.stop_timeout)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// User plus system CPU time of `pid` so far, in seconds (fields 14 and 15
/// of `/proc/<pid>/stat`, counted after the parenthesised command name,
/// which may itself hold spaces and parentheses).
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} /proc/{pid}/stat"),
        )
    };
    let rest = s
        .rfind(')')
        .and_then(|i| s.get(i + 1..))
        .ok_or_else(|| bad("bad"))?;
    // Fields after the comm: state is field 3, utime 14, stime 15.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |field: usize| -> io::Result<f64> {
        f.get(field - 3)
            .ok_or_else(|| bad("short"))?
            .parse::<u64>()
            .map(|v| v as f64)
            .map_err(|_| bad("bad number in"))
    };
    Ok((get(14)? + get(15)?) / USER_HZ)
}

/// The first `n` characters of `s` (log excerpts in error messages).
pub fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A busy child accumulates CPU time; `stop` ends a process that
    /// ignores nothing, and `Guard` stops one on drop.
    #[test]
    fn cpu_time_and_stopping() {
        let mut busy = Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; exec sleep 30",
            ])
            .spawn()
            .expect("sh");
        let pid = busy.id();
        let t0 = Instant::now();
        let mut cpu = 0.0;
        while t0.elapsed() < Duration::from_secs(20) && cpu < 0.05 {
            cpu = cpu_seconds(pid).expect("stat");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(cpu >= 0.05, "no CPU time seen: {cpu}");
        assert!(!stop(&mut busy, "busy", Duration::from_secs(5)));
        assert!(busy.try_wait().expect("wait").is_some());

        let child = Command::new("sleep").arg("30").spawn().expect("sleep");
        let pid = child.id();
        drop(Guard::new(child, "sleep", Duration::from_secs(5)));
        assert!(
            cpu_seconds(pid).is_err(),
            "the guarded child is still there"
        );
        assert_eq!(truncate("héllo", 2), "hé");
    }
}
