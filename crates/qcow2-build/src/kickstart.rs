//! The Fedora Atomic cloud kickstart dialect: what an image build needs of
//! it, parsed with pykickstart's rules for quoting and options.
//!
//! Commands that only make sense on a real installer (network, firewall,
//! reboot…) are accepted and logged; a malformed line is [`BadInput`]
//! naming the file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use releng_manifest::BadInput;

mod words;
use words::{opts, split};

/// `ostreesetup`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OstreeSetup {
    /// `--osname`.
    pub osname: String,
    /// `--remote` (defaults to the osname).
    pub remote: String,
    /// `--url`.
    pub url: String,
    /// `--ref`.
    pub ref_: String,
    /// `--nogpg`.
    pub nogpg: bool,
}

/// One `part` or `logvol`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Part {
    /// Mount point (`/`, `/boot`, `/boot/efi`, `biosboot`, `pv.01`…).
    pub mountpoint: String,
    /// `--size` in MiB.
    pub size_mib: Option<u64>,
    /// `--grow`.
    pub grow: bool,
    /// `--fstype`.
    pub fstype: Option<String>,
    /// `--label`.
    pub label: Option<String>,
    /// True for a `logvol`.
    pub logical: bool,
}

/// A `%post` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostScript {
    /// `--interpreter` (default /bin/sh).
    pub interpreter: String,
    /// `--erroronfail`.
    pub error_on_fail: bool,
    /// `--nochroot`.
    pub nochroot: bool,
    /// The script.
    pub body: String,
    /// Where it starts, for messages.
    pub origin: String,
}

/// What an image build takes from a kickstart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kickstart {
    /// `ostreesetup`.
    pub ostreesetup: Option<OstreeSetup>,
    /// `bootloader --append`.
    pub bootloader_append: Option<String>,
    /// `bootloader --timeout`.
    pub bootloader_timeout: Option<u32>,
    /// `part` and `logvol` in file order.
    pub parts: Vec<Part>,
    /// `volgroup` name → physical volumes.
    pub volgroups: BTreeMap<String, Vec<String>>,
    /// `rootpw --lock`.
    pub rootpw_lock: bool,
    /// `services --enabled`.
    pub services_enabled: Vec<String>,
    /// `services --disabled`.
    pub services_disabled: Vec<String>,
    /// `timezone`.
    pub timezone: Option<String>,
    /// `lang`.
    pub lang: Option<String>,
    /// `keyboard` (its `--vckeymap`, or the layout).
    pub keyboard: Option<String>,
    /// `network --hostname`.
    pub hostname: Option<String>,
    /// `user --name` entries.
    pub users: Vec<String>,
    /// `%post` sections in order.
    pub post: Vec<PostScript>,
    /// Every file read (the kickstart and its `%include`s).
    pub files: Vec<PathBuf>,
}

/// Reads `path` and its `%include`s.
pub fn load(path: &Path) -> anyhow::Result<Kickstart> {
    let mut ks = Kickstart::default();
    read_file(path, &mut ks, 0)?;
    Ok(ks)
}

/// Commands that describe an installer session, not an image: accepted.
const INSTALLER_ONLY: &[&str] = &[
    "text",
    "graphical",
    "cmdline",
    "skipx",
    "reboot",
    "poweroff",
    "shutdown",
    "halt",
    "firstboot",
    "eula",
    "install",
    "url",
    "firewall",
    "selinux",
    "zerombr",
    "clearpart",
    "ignoredisk",
    "authconfig",
    "auth",
    "authselect",
    "logging",
    "repo",
    "sshkey",
    "sshpw",
    "liveimg",
    "rescue",
    "vnc",
    "zfcp",
];

fn read_file(path: &Path, ks: &mut Kickstart, depth: usize) -> anyhow::Result<()> {
    let name = path.display().to_string();
    if depth > 8 {
        return Err(BadInput::err(format!(
            "{name}: %include nests too deep (a cycle?)"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput::err(format!("kickstart {name}: cannot read: {e}")))?;
    ks.files.push(path.to_path_buf());
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut lines = text.lines().enumerate();
    while let Some((n, raw)) = lines.next() {
        let at = |msg: String| BadInput::err(format!("{name}:{}: {msg}", n + 1));
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words = split(line).map_err(at)?;
        let Some(cmd) = words.first() else { continue };
        let rest = &words[1..];
        if let Some(section) = cmd.strip_prefix('%') {
            match section {
                "include" | "ksappend" => {
                    let inc = rest
                        .first()
                        .ok_or_else(|| at("%include needs a file".into()))?;
                    read_file(&dir.join(inc), ks, depth + 1)?;
                }
                "post" | "pre" | "packages" | "pre-install" | "onerror" | "traceback" | "addon"
                | "anaconda" => {
                    let mut body = String::new();
                    let mut closed = false;
                    for (_, l) in lines.by_ref() {
                        if l.trim() == "%end" {
                            closed = true;
                            break;
                        }
                        body.push_str(l);
                        body.push('\n');
                    }
                    if !closed {
                        return Err(at(format!("%{section} has no %end")));
                    }
                    if section == "post" {
                        let o = opts(
                            rest,
                            &[
                                ("erroronfail", false),
                                ("interpreter", true),
                                ("nochroot", false),
                                ("log", true),
                            ],
                        )
                        .map_err(at)?;
                        ks.post.push(PostScript {
                            interpreter: o.value("interpreter").unwrap_or_else(|| "/bin/sh".into()),
                            error_on_fail: o.has("erroronfail"),
                            nochroot: o.has("nochroot"),
                            body,
                            origin: format!("{name}:{}", n + 1),
                        });
                    } else {
                        log::info!("{name}:{}: %{section} section does not apply to an image build; skipped", n + 1);
                    }
                }
                "end" => return Err(at("%end without a section".into())),
                other => return Err(at(format!("unknown section %{other}"))),
            }
            continue;
        }
        command(cmd, rest, ks).map_err(|e| at(format!("{cmd}: {e}")))?;
    }
    Ok(())
}

fn size(v: Option<String>, what: &str) -> Result<Option<u64>, String> {
    v.map(|s| {
        s.parse::<u64>()
            .map_err(|_| format!("{what} `{s}` is not a number of MiB"))
    })
    .transpose()
}

fn command(cmd: &str, rest: &[String], ks: &mut Kickstart) -> Result<(), String> {
    match cmd {
        "ostreesetup" => {
            let o = opts(
                rest,
                &[
                    ("osname", true),
                    ("remote", true),
                    ("url", true),
                    ("ref", true),
                    ("nogpg", false),
                ],
            )?;
            let need = |k: &str| o.value(k).ok_or_else(|| format!("--{k} is required"));
            let osname = need("osname")?;
            ks.ostreesetup = Some(OstreeSetup {
                remote: o.value("remote").unwrap_or_else(|| osname.clone()),
                url: need("url")?,
                ref_: need("ref")?,
                nogpg: o.has("nogpg"),
                osname,
            });
        }
        "bootloader" => {
            let o = opts(
                rest,
                &[
                    ("append", true),
                    ("timeout", true),
                    ("location", true),
                    ("boot-drive", true),
                    ("driveorder", true),
                    ("password", true),
                    ("iscrypted", false),
                    ("leavebootorder", false),
                    ("disabled", false),
                    ("extlinux", false),
                ],
            )?;
            ks.bootloader_append = o.value("append");
            ks.bootloader_timeout = o
                .value("timeout")
                .map(|t| {
                    t.parse()
                        .map_err(|_| format!("--timeout `{t}` is not a number"))
                })
                .transpose()?;
        }
        "part" | "partition" | "logvol" => {
            let mut spec = vec![
                ("size", true),
                ("grow", false),
                ("fstype", true),
                ("label", true),
                ("maxsize", true),
                ("asprimary", false),
                ("ondisk", true),
                ("ondrive", true),
                ("fsoptions", true),
                ("noformat", false),
                ("onpart", true),
            ];
            if cmd == "logvol" {
                spec.extend([
                    ("name", true),
                    ("vgname", true),
                    ("percent", true),
                    ("thinpool", false),
                    ("thin", false),
                    ("poolname", true),
                ]);
            }
            let o = opts(rest, &spec)?;
            let mountpoint = o.args.first().cloned().ok_or("needs a mount point")?;
            if o.args.len() > 1 {
                return Err(format!("unexpected argument `{}`", o.args[1]));
            }
            if cmd == "logvol" && (o.value("name").is_none() || o.value("vgname").is_none()) {
                return Err("--name and --vgname are required".into());
            }
            ks.parts.push(Part {
                mountpoint,
                size_mib: size(o.value("size"), "--size")?,
                grow: o.has("grow"),
                fstype: o.value("fstype"),
                label: o.value("label"),
                logical: cmd == "logvol",
            });
        }
        "volgroup" => {
            let o = opts(
                rest,
                &[
                    ("pesize", true),
                    ("useexisting", false),
                    ("noformat", false),
                    ("reserved-space", true),
                    ("reserved-percent", true),
                ],
            )?;
            let (name, pvs) = o.args.split_first().ok_or("needs a name")?;
            ks.volgroups.insert(name.clone(), pvs.to_vec());
        }
        "rootpw" => {
            let o = opts(
                rest,
                &[
                    ("lock", false),
                    ("iscrypted", false),
                    ("plaintext", false),
                    ("allow-ssh", false),
                ],
            )?;
            ks.rootpw_lock = o.has("lock");
        }
        "user" => {
            let o = opts(
                rest,
                &[
                    ("name", true),
                    ("groups", true),
                    ("password", true),
                    ("iscrypted", false),
                    ("plaintext", false),
                    ("uid", true),
                    ("gid", true),
                    ("gecos", true),
                    ("homedir", true),
                    ("shell", true),
                    ("lock", false),
                ],
            )?;
            ks.users.push(o.value("name").ok_or("--name is required")?);
        }
        "services" => {
            let o = opts(rest, &[("enabled", true), ("disabled", true)])?;
            let list = |v: Option<String>| -> Vec<String> {
                v.map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
            };
            ks.services_enabled.extend(list(o.value("enabled")));
            ks.services_disabled.extend(list(o.value("disabled")));
        }
        "timezone" => {
            let o = opts(
                rest,
                &[
                    ("utc", false),
                    ("isUtc", false),
                    ("nontp", false),
                    ("ntpservers", true),
                ],
            )?;
            ks.timezone = o.args.first().cloned();
        }
        "lang" => {
            let o = opts(rest, &[("addsupport", true)])?;
            ks.lang = Some(o.args.first().cloned().ok_or("needs a language")?);
        }
        "keyboard" => {
            let o = opts(
                rest,
                &[("vckeymap", true), ("xlayouts", true), ("switch", true)],
            )?;
            ks.keyboard = o.value("vckeymap").or_else(|| o.args.first().cloned());
        }
        "network" => {
            let o = opts(
                rest,
                &[
                    ("bootproto", true),
                    ("device", true),
                    ("onboot", true),
                    ("activate", false),
                    ("no-activate", false),
                    ("hostname", true),
                    ("noipv4", false),
                    ("noipv6", false),
                    ("ip", true),
                    ("netmask", true),
                    ("gateway", true),
                    ("nameserver", true),
                    ("ipv6", true),
                    ("mtu", true),
                    ("dhcpclass", true),
                    ("ethtool", true),
                    ("essid", true),
                    ("wepkey", true),
                    ("wpakey", true),
                    ("nodefroute", false),
                    ("nodns", false),
                    ("bindto", true),
                ],
            )?;
            if let Some(h) = o.value("hostname") {
                ks.hostname = Some(h);
            }
        }
        c if INSTALLER_ONLY.contains(&c) => {
            log::debug!("`{c}` applies to an installer session, not an image; noted")
        }
        other => log::warn!("kickstart command `{other}` is not used by image builds; ignored"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_atomic_cloud_kickstart() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("parts.ks"), "part /boot --size=300 --fstype=ext4\npart pv.01 --grow\nvolgroup atomicos pv.01\nlogvol / --size=3000 --fstype=xfs --name=root --vgname=atomicos\n").unwrap();
        let p = d.path().join("a.ks");
        std::fs::write(&p, "text\nlang en_US.UTF-8\nkeyboard us\ntimezone --utc Etc/UTC\nrootpw --lock --iscrypted locked\n\
            bootloader --timeout=1 --append=\"console=ttyS0,115200n8 no_timer_check\"\nnetwork --bootproto=dhcp --device=link --activate\n\
            services --enabled=sshd,docker --disabled=network\nzerombr\nclearpart --all\n%include parts.ks\n\
            ostreesetup --nogpg --osname=fedora-atomic --remote=fedora-atomic --url=http://x/atomic/ --ref=fedora-atomic/rawhide/x86_64/docker-host\n\
            reboot\n%post --erroronfail\necho hi\n%end\n").unwrap();
        let ks = load(&p).unwrap();
        let o = ks.ostreesetup.unwrap();
        assert_eq!(
            (o.osname.as_str(), o.remote.as_str(), o.nogpg),
            ("fedora-atomic", "fedora-atomic", true)
        );
        assert_eq!(
            ks.bootloader_append.as_deref(),
            Some("console=ttyS0,115200n8 no_timer_check")
        );
        assert_eq!(ks.parts.len(), 3);
        assert!(ks.parts[2].logical && ks.parts[2].size_mib == Some(3000));
        assert_eq!(ks.services_enabled, ["sshd", "docker"]);
        assert_eq!(ks.post.len(), 1);
        assert!(ks.post[0].error_on_fail);
        assert_eq!(ks.files.len(), 2);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        for (text, needle) in [
            (
                "ostreesetup --osname=a --url=b\n",
                ":1: ostreesetup: --ref is required",
            ),
            ("\npart /boot --size=big\n", ":2: part: --size `big`"),
            ("bootloader --bogus\n", "unknown option --bogus"),
            ("%post\necho\n", "%post has no %end"),
        ] {
            let p = d.path().join("x.ks");
            std::fs::write(&p, text).unwrap();
            let e = load(&p).unwrap_err();
            assert_eq!(releng_manifest::exit_code(&e), 2);
            assert!(format!("{e}").contains(needle), "{text:?}: {e}");
        }
    }
}
