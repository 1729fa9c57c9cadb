//! Deploying the commit into a staging sysroot as Anaconda does for
//! `ostreesetup`, then applying the kickstart's settings and `%post`.
//!
//! Everything goes through the ostree CLI (libostree) into a plain
//! directory: no mounts, no loop devices.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context};
use releng_manifest::{treepath, BadInput};

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
///
/// The deployment is the commit's tree, symlinks and all: every path goes
/// through [`treepath`] (an absolute symlink there means the image's root,
/// not this host's) and every file is replaced, never written through.
pub fn configure(d: &Deployed, ks: &Kickstart) -> anyhow::Result<()> {
    let root = d.deployment.as_path();
    let write = |rel: &str, text: String| -> anyhow::Result<()> {
        let at = treepath::entry(root, rel).with_context(|| format!("/{rel}"))?;
        treepath::replace(&at, |tmp| fs::write(tmp, &text)).with_context(|| format!("/{rel}"))
    };
    if let Some(tz) = &ks.timezone {
        let link = treepath::entry(root, "etc/localtime").context("/etc/localtime")?;
        treepath::replace(&link, |tmp| {
            symlink(format!("../usr/share/zoneinfo/{tz}"), tmp)
        })?;
    }
    if let Some(lang) = &ks.lang {
        write("etc/locale.conf", format!("LANG=\"{lang}\"\n"))?;
    }
    if let Some(map) = &ks.keyboard {
        write("etc/vconsole.conf", format!("KEYMAP=\"{map}\"\n"))?;
    }
    if let Some(h) = &ks.hostname {
        write("etc/hostname", format!("{h}\n"))?;
    }
    if ks.rootpw_lock {
        lock_root(&treepath::entry(root, "etc/shadow")?)?;
    }
    for svc in &ks.services_enabled {
        let unit = unit_name(svc)?;
        let shipped = treepath::find(root, &format!("usr/lib/systemd/system/{unit}"))?;
        if !shipped.is_some_and(|p| fs::symlink_metadata(p).is_ok()) {
            log::warn!("services --enabled: {unit} is not in the tree; enabling it anyway");
        }
        let wants = treepath::dir(root, "etc/systemd/system/multi-user.target.wants")?;
        treepath::replace(&wants.join(&unit), |tmp| {
            symlink(format!("/usr/lib/systemd/system/{unit}"), tmp)
        })?;
    }
    if ks.services_disabled.is_empty() {
        return Ok(());
    }
    let units = treepath::resolve(root, Path::new("etc/systemd/system"), None)?;
    for svc in &ks.services_disabled {
        let unit = unit_name(svc)?;
        let Some(units) = &units else { break };
        for d in fs::read_dir(units)?.flatten() {
            if d.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = fs::remove_file(d.path().join(&unit));
            }
        }
    }
    Ok(())
}

/// `svc` as a unit file name: `sshd` is `sshd.service`.
fn unit_name(svc: &str) -> anyhow::Result<String> {
    if !treepath::is_unit_name(svc) {
        return Err(BadInput::err(format!(
            "services: `{svc}` is not a unit name"
        )));
    }
    Ok(if svc.contains('.') {
        svc.to_string()
    } else {
        format!("{svc}.service")
    })
}

fn lock_root(shadow: &Path) -> anyhow::Result<()> {
    // Only the tree's own file: a symlink could lead to this host's.
    let Some(md) = fs::symlink_metadata(shadow).ok().filter(|m| m.is_file()) else {
        log::warn!("rootpw --lock: the tree has no /etc/shadow file");
        return Ok(());
    };
    let text = fs::read_to_string(shadow)?;
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
    treepath::replace(shadow, |tmp| {
        fs::write(tmp, out.join("\n") + "\n")?;
        fs::set_permissions(tmp, md.permissions())?;
        std::os::unix::fs::chown(tmp, Some(md.uid()), Some(md.gid()))
    })?;
    Ok(())
}

/// `dir` when it is a directory and not a symlink: bwrap would follow a
/// symlink on this host.
fn real_dir(dir: &Path) -> anyhow::Result<&Path> {
    if !treepath::is_real_dir(dir) {
        bail!("{}: not a directory of the tree", dir.display());
    }
    Ok(dir)
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
            .arg(real_dir(&d.deployment.join("usr"))?)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit's absolute symlinks name the image's root: settings are
    /// written into the tree, never through them onto this host.
    #[test]
    fn settings_never_follow_the_trees_symlinks_onto_the_host() {
        let d = tempfile::tempdir().unwrap();
        let host = d.path().join("host");
        fs::create_dir(&host).unwrap();
        for f in ["hostname", "shadow"] {
            fs::write(host.join(f), "root:secret:1::::::\n").unwrap();
        }
        let deployment = d.path().join("deploy");
        fs::create_dir_all(deployment.join("etc")).unwrap();
        symlink(host.join("hostname"), deployment.join("etc/hostname")).unwrap();
        symlink(host.join("shadow"), deployment.join("etc/shadow")).unwrap();
        symlink(&host, deployment.join("etc/systemd")).unwrap();
        let deployed = Deployed {
            sysroot: d.path().to_path_buf(),
            deployment: deployment.clone(),
            commit: String::new(),
            kernel_args: String::new(),
        };
        let ks = Kickstart {
            hostname: Some("image".into()),
            rootpw_lock: true,
            ..Kickstart::default()
        };
        configure(&deployed, &ks).unwrap();
        assert_eq!(
            fs::read_to_string(deployment.join("etc/hostname")).unwrap(),
            "image\n"
        );
        for f in ["hostname", "shadow"] {
            assert_eq!(
                fs::read_to_string(host.join(f)).unwrap(),
                "root:secret:1::::::\n",
                "{f} of the host was written"
            );
        }
        // A unit to enable under a symlinked /etc/systemd is refused.
        let ks = Kickstart {
            services_enabled: vec!["sshd".into()],
            ..Kickstart::default()
        };
        let e = configure(&deployed, &ks).unwrap_err();
        assert!(format!("{e:#}").contains("absolute symlink"), "{e:#}");
        assert_eq!(fs::read_dir(&host).unwrap().count(), 2);
        let ks = Kickstart {
            services_enabled: vec!["../x".into()],
            ..Kickstart::default()
        };
        assert!(configure(&deployed, &ks).is_err());
    }
}
