//! The reference servers a benchmark compares with: their versions, and
//! installing Debian's packages when they are missing.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

/// First non-empty line of `bin <flag>` (`--version`; VictoriaMetrics takes
/// `-version`); for a binary without version output (Debian's
/// victoria-metrics), its package's version; else what went wrong, in
/// parentheses.
pub fn version_line(bin: &Path, flag: &str) -> String {
    let out = match Command::new(bin).arg(flag).stdin(Stdio::null()).output() {
        Ok(o) => {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        }
        Err(e) => return format!("({e})"),
    };
    out.or_else(|| dpkg_version(bin))
        .unwrap_or_else(|| "(no version output)".into())
}

/// `<package> <version> (dpkg)` of the Debian package owning `bin`.
pub fn dpkg_version(bin: &Path) -> Option<String> {
    let bin = fs::canonicalize(bin).ok()?;
    let o = Command::new("dpkg-query")
        .arg("-S")
        .arg(&bin)
        .output()
        .ok()?;
    let owner = String::from_utf8_lossy(&o.stdout);
    let pkg = owner.lines().next()?.split(':').next()?.trim().to_string();
    let o = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", &pkg])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !v.is_empty()).then(|| format!("{pkg} {v} (dpkg)"))
}

/// Makes sure `bin` exists: as root, installs Debian's `package` with
/// apt-get when it is missing; otherwise says which command would.
pub fn ensure(bin: &Path, package: &str) -> Result<(), String> {
    if bin.exists() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Err(format!(
            "{} is missing: sudo apt-get install -y {package}",
            bin.display()
        ));
    }
    println!("  installing {package} (apt-get)");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok && bin.exists() {
        Ok(())
    } else {
        Err(format!(
            "installing {package} did not provide {}",
            bin.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_present_and_absent_binaries() {
        // `sh` has no --version; whatever it prints, the answer is one line.
        let v = version_line(Path::new("/bin/sh"), "--version");
        assert!(!v.contains('\n'));
        assert!(version_line(Path::new("/nonexistent/bin"), "--version").starts_with('('));
        assert!(ensure(Path::new("/bin/sh"), "dash").is_ok());
    }
}
