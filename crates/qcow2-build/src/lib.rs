//! `qcow2-build`: a bootable disk image from a kickstart's `ostreesetup`,
//! built the way ImageFactory + Anaconda would, but directly: deploy into
//! a staging sysroot, filesystems from directories, a GPT written into
//! the image file, qemu-img to convert. No loop devices, mounts or VM.

mod boot;
mod deploy;
mod disk;
pub mod kickstart;
mod plan;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use releng_manifest::cli::Common;
use releng_manifest::progress::Progress;
use releng_manifest::{BadInput, ComposeEntry, ImageEntry, ImagePartition};

const EXAMPLES: &str = "\
Examples:
  # After a compose, in a pipeline (repo and ref come from the manifest):
  repo-init --repo R | rpm-compose --treefile host.json | summary-gen \\
    | qcow2-build --kickstart fedora-cloud-atomic.ks --output-dir images/

  # Alone, pulling ostreesetup --url, qcow2 and raw.xz:
  qcow2-build --kickstart atomic.ks --format qcow2 --format raw.xz --disk-size 6G < /dev/null
";

/// Build a bootable disk image from a kickstart's ostreesetup and append
/// it to the manifest's `images` list.
#[derive(Parser, Debug)]
#[command(name = "qcow2-build", version, after_help = EXAMPLES)]
pub struct Args {
    /// The kickstart (`ostreesetup`, `part`, `bootloader`, `%post`…).
    #[arg(long, value_name = "FILE")]
    pub kickstart: PathBuf,

    /// Local ostree repository to deploy from [default: the manifest's
    /// last compose; else `ostreesetup --url` is pulled].
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,

    /// Ref to deploy [default: the manifest's last compose, else
    /// `ostreesetup --ref`].
    #[arg(long = "ref", value_name = "REF")]
    pub ref_: Option<String>,

    /// Where the images go.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub output_dir: PathBuf,

    /// Image file name without extension [default: the kickstart's name].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// URL of the remote written into the image, replacing `ostreesetup
    /// --url` (the nightly repo, as build-cloud-images rewrote it). The
    /// tree still comes from `--repo` when there is one.
    #[arg(long, value_name = "URL")]
    pub ostree_url: Option<String>,

    /// Output formats (repeatable).
    #[arg(long = "format", value_name = "FORMAT", default_values_t = vec!["qcow2".to_string()], value_parser = ["qcow2", "raw", "raw.xz"])]
    pub formats: Vec<String>,

    /// Compress the qcow2 clusters (smaller, slower).
    #[arg(long)]
    pub compress: bool,

    /// Virtual disk size; the root partition grows into it when the
    /// kickstart says --grow.
    #[arg(long, value_name = "SIZE", default_value = "6G", value_parser = disk::parse_size)]
    pub disk_size: u64,

    #[command(flatten)]
    pub common: Common,
}

releng_manifest::impl_tool!(Args);

/// Runs the tool.
pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut manifest = args.common.read_manifest()?;
    let ks = kickstart::load(&args.kickstart)?;
    let mut setup = ks.ostreesetup.clone().ok_or_else(|| {
        BadInput::err(format!(
            "kickstart {}: no ostreesetup command",
            args.kickstart.display()
        ))
    })?;
    let last: Option<ComposeEntry> = manifest
        .raw("composes")
        .and_then(|v| v.as_array().and_then(|a| a.last().cloned()))
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| BadInput::err(format!("manifest section `composes`: {e}")))?;
    if let Some(r) = args
        .ref_
        .clone()
        .or_else(|| last.as_ref().map(|c| c.ref_.clone()))
    {
        setup.ref_ = r;
    }
    if let Some(url) = &args.ostree_url {
        setup.url = remote_url(url)?;
    }
    let source = match args
        .repo
        .clone()
        .or_else(|| last.as_ref().map(|c| PathBuf::from(&c.repo)))
    {
        Some(p) => deploy::Source::Local(p),
        None => deploy::Source::Url,
    };
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("qcow2-build needs root: ostree admin deploy sets file owners and flags");
    }
    std::fs::create_dir_all(&args.output_dir)?;
    let out_dir = std::fs::canonicalize(&args.output_dir)?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.kickstart
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into())
    });
    let plan = plan::Plan::from_kickstart(&ks, args.disk_size)?;
    let staging = Staging::new(&out_dir)?;
    let sysroot = staging.path().join("sysroot");
    std::fs::create_dir(&sysroot)?;

    let progress = Progress::spinner("").with_prefix(&format!("building {name}"));
    progress.message("deploying");
    let d = deploy::deploy(&sysroot, &setup, &source, ks.bootloader_append.as_deref())?;
    log::debug!("deployed {}: {:?}", d.commit, started.elapsed());
    progress.message("configuring");
    deploy::configure(&d, &ks)?;
    deploy::run_post(&d, &ks, &setup.osname)?;
    boot::grub_config(&sysroot, ks.bootloader_timeout)?;
    log::debug!("configured: {:?}", started.elapsed());
    progress.message("assembling the disk");
    let built = plan.build(staging.path(), &d)?;
    log::debug!("raw disk assembled: {:?}", started.elapsed());

    let mut entries = Vec::new();
    for format in &args.formats {
        let ext = format.as_str();
        let final_path = out_dir.join(format!("{name}.{ext}"));
        // In the staging directory (same filesystem): whatever fails, its
        // cleanup takes the half-written image too.
        let tmp = staging.path().join(format!("{name}.{ext}"));
        progress.message(format!("writing {ext}"));
        disk::convert(&built.raw, &tmp, format, args.compress)?;
        let virtual_size = if format == "qcow2" {
            disk::check_qcow2(&tmp)?
        } else {
            args.disk_size
        };
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &final_path)?;
        log::debug!("{format} written: {:?}", started.elapsed());
        let file = file_details::FileDetails::of_path(&final_path)
            .with_context(|| format!("reading {}", final_path.display()))?;
        log::info!(
            "{}: {} bytes ({} virtual)",
            final_path.display(),
            file.size,
            virtual_size
        );
        entries.push(ImageEntry {
            path: final_path.display().to_string(),
            format: format.clone(),
            file,
            virtual_size,
            osname: setup.osname.clone(),
            ref_: setup.ref_.clone(),
            commit: d.commit.clone(),
            partitions: built.partitions.clone(),
            firmware: "uefi".into(),
            bootloader: "grub2".into(),
            kernel_args: d.kernel_args.clone(),
            duration_s: started.elapsed().as_secs_f64(),
        });
    }
    drop(staging);
    for e in &entries {
        manifest.push("images", e)?;
    }
    args.common.write_manifest(&manifest)
}

/// The working directory beside the output: removed on every exit path,
/// immutable deployment flags included.
struct Staging(Option<tempfile::TempDir>);

impl Staging {
    fn new(out_dir: &Path) -> anyhow::Result<Staging> {
        let t = tempfile::Builder::new()
            .prefix(".qcow2-build-")
            .tempdir_in(out_dir)
            .with_context(|| format!("{}: cannot create a staging directory", out_dir.display()))?;
        Ok(Staging(Some(t)))
    }

    fn path(&self) -> &Path {
        self.0.as_ref().expect("alive").path()
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            let p = t.keep();
            deploy::remove_sysroot(&p.join("sysroot"));
            let _ = std::fs::remove_dir_all(&p);
        }
    }
}

/// What [`plan::Plan::build`] made.
pub struct Built {
    /// The raw disk.
    pub raw: PathBuf,
    /// The partitions.
    pub partitions: Vec<ImagePartition>,
}

/// Checks a remote URL given on the command line: ostree takes http, https
/// and file, and a space or control character would corrupt the repo config.
fn remote_url(url: &str) -> anyhow::Result<String> {
    let scheme_ok = ["http://", "https://", "file:///"]
        .iter()
        .any(|s| url.starts_with(s) && url.len() > s.len());
    if !scheme_ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(BadInput::err(format!(
            "--ostree-url {url:?}: want an http://, https:// or file:/// URL without spaces"
        )));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::remote_url;

    #[test]
    fn remote_urls_are_checked() {
        assert!(remote_url("https://dl.example.org/atomic/rawhide/").is_ok());
        assert!(remote_url("file:///srv/atomic").is_ok());
        for bad in [
            "ftp://x/",
            "http://",
            "http://a b/",
            "http://a\nb/",
            "atomic/",
        ] {
            assert!(remote_url(bad).is_err(), "{bad}");
        }
    }
}
