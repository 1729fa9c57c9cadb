//! Deploying the commit into a staging sysroot as Anaconda does for
//! `ostreesetup`, then applying the kickstart's settings and `%post`.
//!
//! Everything goes through the ostree CLI (libostree) into a plain
//! directory: no mounts, no loop devices.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context};
use releng_manifest::BadInput;

use crate::kickstart::{Kickstart, OstreeSetup};

/// Where the commit comes from.
pub enum Source {
    /// A local repository (the compose just made).
    Local(PathBuf),
    /// `ostreesetup --url` (http, https or file).
    Url,
}

/// A deployed sysroot in a staging directory.
pub struct Deployed {
    /// The sysroot.
    pub sysroot: PathBuf,
    /// The deployment's root (`ostree/deploy/OS/deploy/<commit>.0`).
    pub deployment: PathBuf,
    /// The deployed commit.
    pub commit: String,
    /// The kernel command line written into the boot entry.
    pub kernel_args: String,
}

/// Runs an ostree command; failures carry its stderr.
pub fn ostree(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ostree")
        .args(args)
        .output()
        .map_err(|e| anyhow!("cannot run ostree (install it): {e}"))?;
    if !out.status.success() {
        bail!(
            "ostree {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Deploys `setup.ref_` from `source` into `sysroot` (an empty directory).
pub fn deploy(
    sysroot: &Path,
    setup: &OstreeSetup,
    source: &Source,
    append: Option<&str>,
) -> anyhow::Result<Deployed> {
    let s = sysroot
        .to_str()
        .ok_or_else(|| anyhow!("staging path is not UTF-8"))?;
    let repo = format!("--repo={s}/ostree/repo");
    let os = setup.osname.as_str();
    ostree(&["admin", "init-fs", s])?;
    ostree(&["admin", "os-init", &format!("--sysroot={s}"), os])?;
    let mut add = vec!["remote", "add", repo.as_str()];
    if setup.nogpg {
        add.push("--no-gpg-verify");
    }
    add.extend([setup.remote.as_str(), setup.url.as_str()]);
    ostree(&add)?;
    let refspec = format!("{}:{}", setup.remote, setup.ref_);
    let pulled = match source {
        Source::Local(path) => {
            let p = path
                .to_str()
                .ok_or_else(|| anyhow!("repository path is not UTF-8"))?;
            ostree(&[
                "pull-local",
                &repo,
                &format!("--remote={}", setup.remote),
                p,
                &setup.ref_,
            ])
        }
        Source::Url => ostree(&["pull", &repo, &setup.remote, &setup.ref_]),
    };
    pulled.map_err(|e| {
        let from = match source {
            Source::Local(p) => p.display().to_string(),
            Source::Url => setup.url.clone(),
        };
        anyhow!("ref {} is not available from {from}: {e}", setup.ref_)
    })?;
    let commit = ostree(&["rev-parse", &repo, &refspec])?.trim().to_string();
    check_tree(&repo, &commit)?;

    let mut kargs = vec!["root=LABEL=root".to_string(), "rw".to_string()];
    let appended: Vec<String> = append
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut args = vec![
        "admin".to_string(),
        "deploy".into(),
        format!("--sysroot={s}"),
        format!("--os={os}"),
        "--karg-none".into(),
    ];
    args.extend(kargs.iter().map(|k| format!("--karg={k}")));
    // Appended, not set: `console=` may rightly appear more than once.
    args.extend(appended.iter().map(|k| format!("--karg-append={k}")));
    kargs.extend(appended);
    args.push(refspec);
    ostree(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let deployment = sysroot
        .join("ostree/deploy")
        .join(os)
        .join("deploy")
        .join(format!("{commit}.0"));
    if !deployment.is_dir() {
        bail!(
            "ostree admin deploy did not create {}",
            deployment.display()
        );
    }
    // ostree assumes a /boot of its own: say so, as Anaconda does.
    ostree(&["config", &repo, "set", "sysroot.readonly", "true"])?;
    ostree(&["config", &repo, "set", "sysroot.bootloader", "none"])?;
    Ok(Deployed {
        sysroot: sysroot.to_path_buf(),
        deployment,
        commit,
        kernel_args: kargs.join(" "),
    })
}

/// Refuses trees that cannot boot, before deploy says so less clearly.
fn check_tree(repo: &str, commit: &str) -> anyhow::Result<()> {
    let release = ostree(&["cat", repo, commit, "/usr/lib/os-release"])
        .map_err(|_| BadInput::err(format!("commit {commit} has no /usr/lib/os-release")))?;
    for key in ["ID=", "PRETTY_NAME="] {
        if !release.lines().any(|l| l.starts_with(key)) {
            return Err(BadInput::err(format!(
                "commit {commit}: /usr/lib/os-release has no {}",
                key.trim_end_matches('=')
            )));
        }
    }
    let modules = ostree(&["ls", repo, commit, "/usr/lib/modules"]).unwrap_or_default();
    let kver = modules
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .find(|p| p.starts_with("/usr/lib/modules/"));
    let Some(kdir) = kver else {
        return Err(BadInput::err(format!(
            "commit {commit} has no kernel under /usr/lib/modules"
        )));
    };
    for f in ["vmlinuz", "initramfs.img"] {
        if ostree(&["ls", repo, commit, &format!("{kdir}/{f}")]).is_err() {
            return Err(BadInput::err(format!("commit {commit} has no {kdir}/{f}")));
        }
    }
    Ok(())
}

/// Applies the kickstart's system settings to the deployment's /etc.
pub fn configure(d: &Deployed, ks: &Kickstart) -> anyhow::Result<()> {
    let etc = d.deployment.join("etc");
    if let Some(tz) = &ks.timezone {
        let link = etc.join("localtime");
        let _ = fs::remove_file(&link);
        symlink(format!("../usr/share/zoneinfo/{tz}"), &link)?;
    }
    if let Some(lang) = &ks.lang {
        fs::write(etc.join("locale.conf"), format!("LANG=\"{lang}\"\n"))?;
    }
    if let Some(map) = &ks.keyboard {
        fs::write(etc.join("vconsole.conf"), format!("KEYMAP=\"{map}\"\n"))?;
    }
    if let Some(h) = &ks.hostname {
        fs::write(etc.join("hostname"), format!("{h}\n"))?;
    }
    if ks.rootpw_lock {
        lock_root(&etc.join("shadow"))?;
    }
    let units = etc.join("systemd/system");
    for svc in &ks.services_enabled {
        let unit = unit_name(svc);
        if !d
            .deployment
            .join("usr/lib/systemd/system")
            .join(&unit)
            .exists()
        {
            log::warn!("services --enabled: {unit} is not in the tree; enabling it anyway");
        }
        let wants = units.join("multi-user.target.wants");
        fs::create_dir_all(&wants)?;
        let _ = fs::remove_file(wants.join(&unit));
        symlink(format!("/usr/lib/systemd/system/{unit}"), wants.join(&unit))?;
    }
    for svc in &ks.services_disabled {
        let unit = unit_name(svc);
        if let Ok(dirs) = fs::read_dir(&units) {
            for d in dirs.flatten() {
                let _ = fs::remove_file(d.path().join(&unit));
            }
        }
    }
    Ok(())
}

fn unit_name(s: &str) -> String {
    if s.contains('.') {
        s.to_string()
    } else {
        format!("{s}.service")
    }
}

fn lock_root(shadow: &Path) -> anyhow::Result<()> {
    let Ok(text) = fs::read_to_string(shadow) else {
        log::warn!("rootpw --lock: the tree has no /etc/shadow");
        return Ok(());
    };
    let out: Vec<String> = text
        .lines()
        .map(|l| match l.split_once(':') {
            Some(("root", rest)) => {
                let (pw, tail) = rest.split_once(':').unwrap_or((rest, ""));
                let pw = if pw.starts_with('!') {
                    pw.to_string()
                } else {
                    format!("!{pw}")
                };
                format!("root:{pw}:{tail}")
            }
            _ => l.to_string(),
        })
        .collect();
    let mode = fs::metadata(shadow)?.permissions();
    fs::write(shadow, out.join("\n") + "\n")?;
    fs::set_permissions(shadow, mode)?;
    Ok(())
}

/// Runs the kickstart's `%post` sections inside the deployment, as
/// Anaconda runs them in the installed system: /etc and /var writable,
/// /usr read-only, no network.
pub fn run_post(d: &Deployed, ks: &Kickstart, osname: &str) -> anyhow::Result<()> {
    let var = d.sysroot.join("ostree/deploy").join(osname).join("var");
    for post in &ks.post {
        if post.nochroot {
            return Err(BadInput::err(format!(
                "{}: %post --nochroot is not supported by image builds",
                post.origin
            )));
        }
        let script = tempfile::Builder::new().prefix("ks-post-").tempfile()?;
        fs::write(script.path(), &post.body)?;
        let out = Command::new("bwrap")
            .arg("--bind")
            .arg(&d.deployment)
            .arg("/")
            .arg("--ro-bind")
            .arg(d.deployment.join("usr"))
            .arg("/usr")
            .arg("--bind")
            .arg(&var)
            .arg("/var")
            // In a deployment /tmp is a link into /sysroot: give it a tmpfs there.
            .args([
                "--dev",
                "/dev",
                "--proc",
                "/proc",
                "--tmpfs",
                "/sysroot",
                "--dir",
                "/sysroot/tmp",
                "--tmpfs",
                "/run",
            ])
            .args([
                "--unshare-net",
                "--unshare-ipc",
                "--unshare-pid",
                "--die-with-parent",
                "--chdir",
                "/",
            ])
            .args([
                "--clearenv",
                "--setenv",
                "PATH",
                "/usr/sbin:/usr/bin:/sbin:/bin",
            ])
            .arg("--ro-bind")
            .arg(script.path())
            .arg("/run/ks-post")
            .arg(&post.interpreter)
            .arg("/run/ks-post")
            .output()
            .map_err(|e| anyhow!("cannot run bwrap (install bubblewrap): {e}"))?;
        if !out.status.success() {
            let msg = format!(
                "%post at {} failed ({}):\n{}{}",
                post.origin,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if post.error_on_fail {
                bail!(msg);
            }
            log::warn!("{msg}");
        }
    }
    Ok(())
}

/// Removes a staging sysroot: ostree marks deployments immutable, which
/// even root cannot delete until the flag is cleared.
pub fn remove_sysroot(sysroot: &Path) {
    let deploy_root = sysroot.join("ostree/deploy");
    if let Ok(oses) = fs::read_dir(&deploy_root) {
        for os in oses.flatten() {
            if let Ok(deps) = fs::read_dir(os.path().join("deploy")) {
                for dep in deps.flatten() {
                    let _ = set_immutable(&dep.path(), false);
                }
            }
        }
    }
    let _ = fs::remove_dir_all(sysroot);
}

/// Sets or clears the immutable flag (FS_IMMUTABLE_FL) of `path`.
pub fn set_immutable(path: &Path, on: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
    const FS_IOC_SETFLAGS: libc::c_ulong = 0x4008_6602;
    const FS_IMMUTABLE_FL: libc::c_long = 0x10;
    let f = fs::File::open(path)?;
    let mut flags: libc::c_long = 0;
    // SAFETY: the ioctls read/write one long through a valid pointer.
    unsafe {
        if libc::ioctl(f.as_raw_fd(), FS_IOC_GETFLAGS, &mut flags) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        flags = if on {
            flags | FS_IMMUTABLE_FL
        } else {
            flags & !FS_IMMUTABLE_FL
        };
        if libc::ioctl(f.as_raw_fd(), FS_IOC_SETFLAGS, &flags) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The path of the deployment relative to the sysroot, as it appears in
/// the root filesystem.
pub fn relative(d: &Deployed) -> anyhow::Result<String> {
    Ok(format!(
        "/{}",
        d.deployment
            .strip_prefix(&d.sysroot)
            .context("deployment inside sysroot")?
            .display()
    ))
}
