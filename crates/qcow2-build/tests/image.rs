//! qcow2-build on a real compose of the fixture tree, checked from the
//! outside: qemu-img, debugfs on the image's own filesystems, pykickstart
//! as the kickstart oracle, and qemu booting the image to the fixture
//! initramfs's marker.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use testkit::{assert_valid_manifest, ostree, qemu, require, require_root, tempdir, tool};

const REF: &str = "fedora-atomic/rawhide/x86_64/docker-host";

fn kickstart() -> PathBuf {
    testkit::source_fixtures().join("kickstarts/fedora-cloud-atomic.ks")
}

/// One compose of the fixture treefile, shared by this file's tests.
struct Compose {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    commit: String,
}

fn compose() -> &'static Compose {
    static C: OnceLock<Compose> = OnceLock::new();
    C.get_or_init(|| {
        let dir = tempdir();
        let repo = dir.path().join("repo");
        ostree(&["init", "--repo", repo.to_str().unwrap(), "--mode=archive"]);
        let tf = fs::read_to_string(
            testkit::source_fixtures().join("treefiles/fedora-atomic-docker-host.json"),
        )
        .unwrap();
        fs::write(dir.path().join("host.json"), tf).unwrap();
        fs::write(
            dir.path().join("f.repo"),
            format!(
                "[fedora-rawhide]\nbaseurl=file://{}\n",
                testkit::fixtures().join("repo").display()
            ),
        )
        .unwrap();
        let out = tool(
            "rpm-compose",
            &[
                "--treefile",
                dir.path().join("host.json").to_str().unwrap(),
                "--repo",
                repo.to_str().unwrap(),
                "--cachedir",
                dir.path().join("cache").to_str().unwrap(),
                "-q",
            ],
            None,
        )
        .ok();
        let commit = out.json()["payload"]["composes"][0]["commit"]
            .as_str()
            .unwrap()
            .to_string();
        // Leaked on purpose: the compose lives as long as the test process.
        Compose {
            _dir: dir,
            repo,
            commit,
        }
    })
}

/// A built image and the raw disk it holds.
struct Image {
    dir: tempfile::TempDir,
    doc: Value,
}

impl Image {
    fn entry(&self) -> &Value {
        &self.doc["payload"]["images"][0]
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(self.entry()["path"].as_str().unwrap())
    }

    /// Extracts partition `n` (1-based) of the image as a file.
    fn partition(&self, n: usize) -> PathBuf {
        let raw = self.dir.path().join("disk.raw");
        if !raw.exists() {
            let st = Command::new("qemu-img")
                .args(["convert", "-O", "raw"])
                .arg(self.path())
                .arg(&raw)
                .status()
                .unwrap();
            assert!(st.success());
        }
        let table = Command::new("sfdisk").arg("-J").arg(&raw).output().unwrap();
        let t: Value = serde_json::from_slice(&table.stdout).unwrap();
        let p = &t["partitiontable"]["partitions"][n - 1];
        let (start, size) = (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap());
        let out = self.dir.path().join(format!("part{n}.img"));
        let st = Command::new("dd")
            .arg(format!("if={}", raw.display()))
            .arg(format!("of={}", out.display()))
            .args([
                "bs=512",
                &format!("skip={start}"),
                &format!("count={size}"),
                "conv=sparse",
                "status=none",
            ])
            .status()
            .unwrap();
        assert!(st.success());
        out
    }
}

fn debugfs(image: &Path, request: &str) -> String {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(request)
        .arg(image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "debugfs {request}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn build(extra: &[&str]) -> (Image, testkit::Run) {
    let c = compose();
    let dir = tempdir();
    let out_dir = dir.path().join("images");
    let ks = kickstart();
    let mut args = vec![
        "--kickstart",
        ks.to_str().unwrap(),
        "--repo",
        c.repo.to_str().unwrap(),
        "--ref",
        REF,
        "--output-dir",
        out_dir.to_str().unwrap(),
    ];
    args.extend(extra);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = tool("qcow2-build", &args, None);
    let doc = if run.code == 0 {
        run.json()
    } else {
        Value::Null
    };
    (Image { dir, doc }, run)
}

fn shared_image() -> &'static Image {
    static I: OnceLock<Image> = OnceLock::new();
    I.get_or_init(|| {
        let (img, run) = build(&[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        img
    })
}

#[test]
fn image_is_clean_and_describes_itself() {
    require!("ostree");
    require!("qemu-img");
    require!("mkfs.vfat");
    require_root!();
    let img = shared_image();
    assert_valid_manifest(&img.doc);
    let e = img.entry();
    assert_eq!(e["commit"], compose().commit.as_str());
    assert_eq!(e["format"], "qcow2");
    assert_eq!(e["virtual_size"], 6u64 << 30);
    let check = Command::new("qemu-img")
        .arg("check")
        .arg(img.path())
        .output()
        .unwrap();
    assert!(check.status.success() && String::from_utf8_lossy(&check.stdout).contains("No errors"));
    let bytes = fs::read(img.path()).unwrap();
    assert_eq!(e["size"], bytes.len());
    assert_eq!(e["sha256"], file_sha256(&img.path()));
    // A 6 GiB disk, written sparsely: the qcow2 holds the data only.
    assert!(bytes.len() < 200 << 20, "qcow2 is {} bytes", bytes.len());
    let labels: Vec<&str> = e["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["EFI-SYSTEM", "boot", "root"]);
    assert!(e["kernel_args"]
        .as_str()
        .unwrap()
        .contains("console=ttyS0,115200n8"));
    // No staging directory or temporary image is left beside the image.
    let left: Vec<String> = testkit::listing(img.path().parent().unwrap());
    assert_eq!(left, ["fedora-cloud-atomic.qcow2"]);
}

fn file_sha256(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn boot_entry_and_deployment_are_in_the_image() {
    require!("debugfs");
    require!("qemu-img");
    require_root!();
    let img = shared_image();
    let commit = &compose().commit;
    let boot = img.partition(2);
    let entries = debugfs(&boot, "ls -l /loader/entries");
    assert!(entries.contains("ostree-1-fedora-atomic.conf"), "{entries}");
    let bls = debugfs(&boot, "cat /loader/entries/ostree-1-fedora-atomic.conf");
    assert!(
        bls.contains("no_timer_check console=tty1 console=ttyS0,115200n8"),
        "kickstart kargs:\n{bls}"
    );
    assert!(bls.contains("root=LABEL=root"), "{bls}");
    assert!(
        bls.contains("ostree=/ostree/boot.1/fedora-atomic/"),
        "{bls}"
    );
    // Fedora's layout: grub2/grub.cfg is a link to the loader's config.
    assert!(debugfs(&boot, "cat /loader/grub.cfg").contains("menuentry"));
    assert!(
        debugfs(&boot, "stat /grub2/grub.cfg").contains("Fast link dest: \"../loader/grub.cfg\"")
    );
    let root = img.partition(3);
    let deploy = format!("/ostree/deploy/fedora-atomic/deploy/{commit}.0");
    let stat = debugfs(&root, &format!("stat {deploy}"));
    assert!(
        stat.contains("Flags: 0x80010"),
        "the deployment must stay immutable:\n{stat}"
    );
    // The kickstart's settings and %post reached the deployment's /etc.
    assert_eq!(
        debugfs(&root, &format!("cat {deploy}/etc/motd")),
        "Built by qcow2-build\n"
    );
    let shadow = debugfs(&root, &format!("cat {deploy}/etc/shadow"));
    assert!(
        shadow.lines().any(|l| l.starts_with("root:!")),
        "rootpw --lock:\n{shadow}"
    );
    let wants = debugfs(
        &root,
        &format!("ls {deploy}/etc/systemd/system/multi-user.target.wants"),
    );
    assert!(wants.contains("docker.service"));
    let esp = img.partition(1);
    let listing = Command::new("mdir")
        .args(["-i", esp.to_str().unwrap(), "::/EFI/BOOT"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains("BOOTX64"));
}

#[test]
fn image_boots_through_its_own_grub_with_ovmf() {
    require!("qemu-system-x86_64");
    require_root!();
    let img = shared_image();
    let serial = match qemu::boot_uefi(&img.path(), img.dir.path(), Duration::from_secs(120)) {
        Ok(serial) => serial,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let want = format!("commit={}", compose().commit);
    let marker = qemu::marker_line(&serial).unwrap_or("");
    assert!(
        marker.contains("RELENG-BOOT-OK") && marker.contains(&want),
        "no boot marker naming the commit; serial tail:\n{}",
        qemu::tail(&serial)
    );
    assert!(serial.contains("GRUB"), "booted without GRUB?");
}

#[test]
fn kernel_and_initrd_of_the_boot_entry_boot_directly() {
    require!("qemu-system-x86_64");
    require!("debugfs");
    require_root!();
    let img = shared_image();
    let boot = img.partition(2);
    let bls = debugfs(&boot, "cat /loader/entries/ostree-1-fedora-atomic.conf");
    let field = |k: &str| {
        bls.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
            .unwrap()
    };
    let (linux, initrd, options) = (field("linux "), field("initrd "), field("options "));
    let kernel = img.dir.path().join("vmlinuz");
    let initramfs = img.dir.path().join("initramfs");
    debugfs(&boot, &format!("dump {linux} {}", kernel.display()));
    debugfs(&boot, &format!("dump {initrd} {}", initramfs.display()));
    let serial = qemu::run(
        &[
            "-kernel".into(),
            kernel.display().to_string(),
            "-initrd".into(),
            initramfs.display().to_string(),
            "-append".into(),
            options,
            "-drive".into(),
            format!(
                "file={},if=virtio,format=qcow2,snapshot=on",
                img.path().display()
            ),
        ],
        Duration::from_secs(90),
    );
    let want = "RELENG-BOOT-OK ostree=/ostree/boot.1/fedora-atomic/";
    assert!(
        serial.contains(want) && serial.contains(&format!("commit={}", compose().commit)),
        "serial tail:\n{}",
        qemu::tail(&serial)
    );
}

#[test]
fn kickstart_reads_as_pykickstart_reads_it() {
    let probe = Command::new("python3")
        .args(["-c", "import pykickstart"])
        .status();
    if !probe.map(|s| s.success()).unwrap_or(false) {
        eprintln!(
            "SKIPPED: python3 module pykickstart is not installed (cargo xtask deps installs it)"
        );
        return;
    }
    let script = r#"
import json, sys
from pykickstart.parser import KickstartParser
from pykickstart.version import makeVersion, F21
# F21: the release that introduced ostreesetup, the 2014 dialect.
p = KickstartParser(makeVersion(F21))
p.readKickstart(sys.argv[1])
h = p.handler
o = h.ostreesetup
print(json.dumps({
  "osname": o.osname, "remote": o.remote or o.osname, "url": o.url, "ref": o.ref, "nogpg": bool(o.nogpg),
  "append": h.bootloader.appendLine, "timeout": h.bootloader.timeout,
  "parts": [[pd.mountpoint, pd.size, bool(pd.grow), pd.fstype or None] for pd in h.partition.partitions]
         + [[lv.mountpoint, lv.size, bool(lv.grow), lv.fstype or None] for lv in h.logvol.lvList],
}))
"#;
    let mut kickstarts: Vec<PathBuf> = fs::read_dir(testkit::source_fixtures().join("kickstarts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ks"))
        .collect();
    kickstarts.sort();
    assert!(kickstarts.len() >= 2);
    for ks in kickstarts {
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&ks)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pykickstart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ours = qcow2_build::kickstart::load(&ks).unwrap();
        let o = ours.ostreesetup.unwrap();
        assert_eq!(theirs["osname"], o.osname);
        assert_eq!(theirs["remote"], o.remote);
        assert_eq!(theirs["url"], o.url);
        assert_eq!(theirs["ref"], o.ref_);
        assert_eq!(theirs["nogpg"], o.nogpg);
        assert_eq!(theirs["append"], ours.bootloader_append.unwrap());
        assert_eq!(theirs["timeout"], ours.bootloader_timeout.unwrap());
        let parts: Vec<Value> = ours
            .parts
            .iter()
            .map(|p| serde_json::json!([p.mountpoint, p.size_mib, p.grow, p.fstype]))
            .collect();
        assert_eq!(theirs["parts"], Value::Array(parts));
    }
}

#[test]
fn a_kickstart_without_ostreesetup_is_bad_input_even_unprivileged() {
    // Refused before the root check: runs everywhere.
    let dir = tempdir();
    let out_dir = dir.path().join("out");
    let no_setup = dir.path().join("no-setup.ks");
    fs::write(&no_setup, "text\npart /boot --size=300\n").unwrap();
    let r = tool(
        "qcow2-build",
        &[
            "--kickstart",
            no_setup.to_str().unwrap(),
            "--output-dir",
            out_dir.to_str().unwrap(),
        ],
        None,
    )
    .fails_with(2);
    assert!(r.stderr.contains("no ostreesetup"), "{}", r.stderr);
    assert!(!out_dir.exists(), "nothing may be created for bad input");
}

#[test]
fn bad_inputs_fail_cleanly_and_leave_nothing() {
    require!("ostree");
    require_root!();
    let c = compose();
    let dir = tempdir();
    let out_dir = dir.path().join("out");
    // A ref the repository lacks: exit 1 naming ref and source.
    let r = tool(
        "qcow2-build",
        &[
            "--kickstart",
            kickstart().to_str().unwrap(),
            "--repo",
            c.repo.to_str().unwrap(),
            "--ref",
            "no/such/ref",
            "--output-dir",
            out_dir.to_str().unwrap(),
        ],
        None,
    )
    .fails_with(1);
    assert!(
        r.stderr.contains("no/such/ref") && r.stderr.contains(c.repo.to_str().unwrap()),
        "{}",
        r.stderr
    );
    // A root partition too small for the tree: the size needed is named.
    let small = dir.path().join("small.ks");
    let text = fs::read_to_string(kickstart()).unwrap();
    let text: String = text
        .lines()
        .filter(|l| {
            !l.starts_with("part pv.01") && !l.starts_with("volgroup") && !l.starts_with("logvol")
        })
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + "part / --size=8 --fstype=ext4\n";
    fs::write(&small, text).unwrap();
    let r = tool(
        "qcow2-build",
        &[
            "--kickstart",
            small.to_str().unwrap(),
            "--repo",
            c.repo.to_str().unwrap(),
            "--ref",
            REF,
            "--output-dir",
            out_dir.to_str().unwrap(),
        ],
        None,
    )
    .fails_with(2);
    assert!(
        r.stderr.contains("the tree needs about") && r.stderr.contains("MiB"),
        "{}",
        r.stderr
    );
    assert!(
        testkit::listing(&out_dir).is_empty(),
        "left behind: {:?}",
        testkit::listing(&out_dir)
    );
}
