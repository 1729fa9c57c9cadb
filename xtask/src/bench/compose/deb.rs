//! One Debian package as an RPM: the package list of the corpus, a .deb's
//! control fields, the RPM spec that repackages its unpacked tree, and the
//! `%files` list of that tree.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

use crate::run;

/// The corpus: Debian 12 (bookworm) amd64 packages, a minimal system plus
/// gcc-12, perl and python3.11 for size (about 400 MB unpacked). The list
/// is closed under Depends and Pre-Depends (first alternative, with
/// `usr-is-merged` for `usrmerge | usr-is-merged`), so every package's
/// Requires lands inside it and the solver has a real graph to walk. The
/// packages are all co-installable, hence free of file conflicts. Names
/// are separated by whitespace: see [`packages`].
pub const PACKAGES: &str = "
adduser apt base-files base-passwd bash binutils binutils-common
binutils-x86-64-linux-gnu bsdutils ca-certificates coreutils cpio cpp-12 dash debconf
debian-archive-keyring debianutils diffutils dmsetup dpkg e2fsprogs findutils gcc-12 gcc-12-base
gpgv grep gzip hostname init-system-helpers iproute2 less libacl1 libapparmor1 libapt-pkg6.0
libargon2-1 libasan8 libatomic1 libattr1 libaudit-common libaudit1 libbinutils libblkid1 libbpf1
libbsd0 libbz2-1.0 libc-bin libc6 libcap-ng0 libcap2 libcap2-bin libcc1-0 libcom-err2 libcrypt1
libcryptsetup12 libctf-nobfd0 libctf0 libdb5.3 libdebconfclient0 libdevmapper1.02.1 libelf1
libexpat1 libext2fs2 libfdisk1 libffi8 libgcc-12-dev libgcc-s1 libgcrypt20 libgdbm-compat4
libgdbm6 libgmp10 libgnutls30 libgomp1 libgpg-error0 libgprofng0 libgssapi-krb5-2 libhogweed6
libidn2-0 libip4tc2 libisl23 libitm1 libjansson4 libjson-c5 libk5crypto3 libkeyutils1 libkmod2
libkrb5-3 libkrb5support0 liblsan0 liblz4-1 liblzma5 libmd0 libmnl0 libmount1 libmpc3 libmpfr6
libncursesw6 libnettle8 libnsl2 libp11-kit0 libpam-modules libpam-modules-bin libpam-runtime
libpam0g libpcre2-8-0 libperl5.36 libproc2-0 libpython3.11-minimal libpython3.11-stdlib
libquadmath0 libreadline8 libseccomp2 libselinux1 libsemanage-common libsemanage2 libsepol2
libsmartcols1 libsqlite3-0 libss2 libssl3 libstdc++6 libsystemd-shared libsystemd0 libtasn1-6
libtinfo6 libtirpc-common libtirpc3 libtsan2 libubsan1 libudev1 libunistring2 libuuid1
libxtables12 libxxhash0 libzstd1 login logsave mawk media-types mount ncurses-base ncurses-bin
netbase openssl passwd perl perl-base perl-modules-5.36 procps python3.11 python3.11-minimal
readline-common sed sensible-utils systemd systemd-sysv sysvinit-utils tar tzdata usr-is-merged
util-linux util-linux-extra vim-common zlib1g
";

/// The names in [`PACKAGES`], in order.
pub fn packages() -> Vec<&'static str> {
    PACKAGES.split_whitespace().collect()
}

/// The fields of a .deb's control file that the RPM is made from.
pub struct Control {
    /// `Package`.
    pub name: String,
    /// `Version`, as Debian writes it (`[epoch:]upstream[-revision]`).
    pub version: String,
    /// `Architecture`.
    pub arch: String,
    /// `Pre-Depends` then `Depends`: one entry per comma-separated group,
    /// holding the package names of its alternatives.
    pub depends: Vec<Vec<String>>,
}

impl Control {
    /// Reads the control fields of `deb` with `dpkg-deb -f`.
    pub fn read(deb: &Path) -> anyhow::Result<Control> {
        let text = run::output(Command::new("dpkg-deb").arg("-f").arg(deb))?;
        Control::parse(&String::from_utf8_lossy(&text))
            .with_context(|| format!("{}: control file", deb.display()))
    }

    fn parse(text: &str) -> anyhow::Result<Control> {
        // RFC 822 style: a line starting with a blank continues the field.
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = fields.last_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let get = |k: &str| {
            fields
                .iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let mut depends = Vec::new();
        for field in ["Pre-Depends", "Depends"] {
            for group in get(field).unwrap_or_default().split(',') {
                // `name:any (>= 1.0) [amd64] <!nocheck>`: the name is what
                // precedes the first blank, parenthesis, colon or bracket.
                let alts: Vec<String> = group
                    .split('|')
                    .filter_map(|a| a.trim().split([' ', '(', ':', '[']).next())
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect();
                if !alts.is_empty() {
                    depends.push(alts);
                }
            }
        }
        Ok(Control {
            name: get("Package").context("no Package field")?,
            version: get("Version").context("no Version field")?,
            arch: get("Architecture").context("no Architecture field")?,
            depends,
        })
    }

    /// RPM Requires: for each dependency group, the first alternative that
    /// is in `set` (other names have no RPM to satisfy them), without its
    /// version, since the corpus holds one version of everything.
    pub fn requires(&self, set: &BTreeSet<&str>) -> Vec<String> {
        let mut out = BTreeSet::new();
        for group in &self.depends {
            if let Some(n) = group.iter().find(|n| set.contains(n.as_str())) {
                if *n != self.name {
                    out.insert(rpm_name(n));
                }
            }
        }
        out.into_iter().collect()
    }
}

/// A Debian package name as an RPM name. Debian allows `[a-z0-9+.-]`, all
/// valid in RPM; anything else becomes `_`.
pub fn rpm_name(deb: &str) -> String {
    deb.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+.-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Epoch, Version and Release of a Debian version: the epoch precedes the
/// first `:`, the revision follows the last `-` (a native package has
/// none and gets Release 0). RPM forbids `-` in Version and Release.
pub fn evr(deb: &str) -> (Option<String>, String, String) {
    let (epoch, rest) = match deb.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (Some(e.to_string()), r)
        }
        _ => (None, deb),
    };
    let (version, release) = rest.rsplit_once('-').unwrap_or((rest, "0"));
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._+~^".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    (epoch, clean(version), clean(release))
}

/// The RPM architecture of a Debian one.
pub fn rpm_arch(deb: &str) -> anyhow::Result<&'static str> {
    Ok(match deb {
        "all" => "noarch",
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "i386" => "i686",
        other => bail!("no RPM architecture for Debian's `{other}`"),
    })
}

/// The `%files` list of an unpacked tree.
pub struct Listing {
    /// `%files` lines: `%dir "/d"` for directories, `"/f"` for the rest.
    pub lines: Vec<String>,
    /// Bytes of the regular files and symlink targets kept.
    pub installed_bytes: u64,
    /// Paths removed from the tree because `%files` cannot name them.
    pub skipped: Vec<String>,
}

/// Lists the tree at `root` for `%files`, in name order. Entries whose name
/// `%files` cannot spell (see [`spell`]; and bytes that are not UTF-8) and
/// entries that are neither file, directory nor symlink are removed from
/// the tree, so that rpmbuild finds no unpackaged files.
pub fn list_tree(root: &Path) -> anyhow::Result<Listing> {
    let mut listing = Listing {
        lines: Vec::new(),
        installed_bytes: 0,
        skipped: Vec::new(),
    };
    walk(root, "", "", &mut listing)?;
    Ok(listing)
}

/// Lists `dir`, whose path in the package is `real` and in `%files` is
/// `spelled`.
fn walk(dir: &Path, real: &str, spelled: &str, out: &mut Listing) -> anyhow::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| dir.display().to_string())?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    let names: Vec<String> = entries
        .iter()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for (e, name) in entries.iter().zip(&names) {
        let path = e.path();
        let kind = fs::symlink_metadata(&path)?.file_type();
        let utf8 = e.file_name().to_str().is_some();
        let spelled_name = spell(name, &names).filter(|_| utf8);
        let (Some(spelled_name), true) = (
            spelled_name,
            kind.is_dir() || kind.is_file() || kind.is_symlink(),
        ) else {
            out.skipped.push(format!("{real}/{name}"));
            if kind.is_dir() {
                fs::remove_dir_all(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
            continue;
        };
        let (real, spelled) = (
            format!("{real}/{name}"),
            format!("{spelled}/{spelled_name}"),
        );
        if kind.is_dir() {
            out.lines.push(format!("%dir \"{spelled}\""));
            walk(&path, &real, &spelled, out)?;
        } else {
            out.installed_bytes += fs::symlink_metadata(&path)?.len();
            out.lines.push(format!("\"{spelled}\""));
        }
    }
    Ok(())
}

/// How `name` is written in `%files`, inside double quotes. rpm expands
/// macros there (a `%` is `%%`) and globs a path holding `*?[`, so those
/// are bracketed (`[[]` matches a `[`). A backslash, brace or double quote
/// cannot be escaped at all (braces expand before brackets), so it becomes
/// `?`, kept only when no sibling in `names` matches the pattern too.
/// Control characters: `None`.
fn spell(name: &str, names: &[String]) -> Option<String> {
    const WILD: &str = "\\{}\"";
    let mut out = String::new();
    for c in name.chars() {
        match c {
            '%' => out.push_str("%%"),
            '[' | '*' | '?' => out.extend(['[', c, ']']),
            c if WILD.contains(c) => out.push('?'),
            c if c.is_control() => return None,
            c => out.push(c),
        }
    }
    let same = |other: &str| {
        other.chars().count() == name.chars().count()
            && other
                .chars()
                .zip(name.chars())
                .all(|(o, n)| o == n || WILD.contains(n))
    };
    let ambiguous =
        name.contains(|c| WILD.contains(c)) && names.iter().any(|o| o != name && same(o));
    (!ambiguous).then_some(out)
}

/// What a spec is made from.
pub struct SpecInput<'a> {
    /// The package's control fields.
    pub control: &'a Control,
    /// Appended to the Release (the one-package-changed variant).
    pub release_suffix: &'a str,
    /// RPM Requires.
    pub requires: &'a [String],
    /// The unpacked tree that `%install` copies.
    pub staging: &'a Path,
    /// Its `%files` list.
    pub listing: &'a Listing,
}

/// The spec text: no sources, no scriptlets, no automatic dependencies
/// (Debian's libraries are not executable, so rpm's ELF scanner would
/// require sonames that nothing provides); `%install` copies the tree.
pub fn spec(input: &SpecInput) -> anyhow::Result<String> {
    let c = input.control;
    let name = rpm_name(&c.name);
    let (epoch, version, release) = evr(&c.version);
    let mut s = format!("Name: {name}\n");
    if let Some(e) = epoch {
        s += &format!("Epoch: {e}\n");
    }
    s += &format!(
        "Version: {version}\nRelease: {release}{}\n",
        input.release_suffix
    );
    s += &format!(
        "Summary: Debian's {name}, repackaged for cargo xtask bench compose\n\
         License: Distributable\nBuildArch: {}\nAutoReqProv: no\n",
        rpm_arch(&c.arch)?
    );
    for r in input.requires {
        s += &format!("Requires: {r}\n");
    }
    s += &format!(
        "\n%description\nThe files of Debian's {} {} ({}), unchanged.\n",
        c.name, c.version, c.arch
    );
    let staging = input
        .staging
        .to_str()
        .context("staging path is not UTF-8")?;
    s += &format!("\n%install\ncp -a '{staging}/.' '%{{buildroot}}/'\n");
    s += "\n%files\n%defattr(-,root,root,-)\n";
    for line in &input.listing.lines {
        s += line;
        s.push('\n');
    }
    Ok(s)
}
