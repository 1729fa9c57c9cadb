//! The package cache against real RPMs built by rpmbuild.

use super::*;
use std::os::unix::fs::MetadataExt;

/// A package with a plain file, a setuid binary, a hard-link pair and
/// a symlink.
fn package(out: &Path) -> (PathBuf, String) {
    let rpm = testkit::build_rpm(
        "Name: cached\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\nBuildArch: noarch\n\
         %description\nd\n%install\nmkdir -p %{buildroot}/usr/bin %{buildroot}/usr/share/c\n\
         echo plain > %{buildroot}/usr/share/c/plain\n\
         echo suid > %{buildroot}/usr/bin/su-ish\n\
         echo same > %{buildroot}/usr/share/c/one\n\
         ln %{buildroot}/usr/share/c/one %{buildroot}/usr/share/c/two\n\
         ln -s plain %{buildroot}/usr/share/c/sym\n\
         %files\n/usr/share/c\n%attr(4755,root,root) /usr/bin/su-ish\n",
        out,
    );
    let sha = file_details::FileDetails::of_path(&rpm).unwrap().sha256;
    (rpm, sha)
}

fn by_content(entry: &Entry, text: &str) -> (PathBuf, CachedFile) {
    let f = entry
        .files
        .values()
        .filter(|f| !f.symlink)
        .find(|f| fs::read(entry.file(f.index)).unwrap() == text.as_bytes())
        .unwrap_or_else(|| panic!("no cached file holds {text:?}"));
    (entry.file(f.index), f.clone())
}

#[test]
fn entries_are_extracted_once_and_published_whole() {
    let d = tempfile::tempdir().unwrap();
    let (rpm, sha) = package(&d.path().join("rpms"));
    let cache = PkgCache::open(&d.path().join("cache")).unwrap();
    let e = cache.entry(&sha, &rpm, "cached-1-1").unwrap();
    // Not visible under its name until published.
    assert!(!d.path().join("cache/pkgcache").join(&sha).exists());
    // The hard-link pair is stored once, the symlink as a symlink; no
    // file keeps setuid; the index knows each file's object.
    assert_eq!(e.files.len(), 4, "{:?}", e.files);
    let sym = e.files.values().find(|f| f.symlink).unwrap();
    assert_eq!(
        fs::read_link(e.file(sym.index)).unwrap(),
        Path::new("plain")
    );
    let (suid, meta) = by_content(&e, "suid\n");
    assert_eq!(meta.mode, 0o755);
    assert_eq!(fs::metadata(&suid).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(meta.object, plain_object(0o755, b"suid\n"));
    // Payload order covers every packaged entry, directories too.
    assert!(e.order.len() > e.files.len(), "{:?}", e.order);
    cache.check(&Witness::default(), &HashMap::new()).unwrap();
    cache.publish().unwrap();
    assert!(d.path().join("cache/pkgcache").join(&sha).is_dir());
    assert_eq!(cache.counts(), (0, 1));
    let again = cache.entry(&sha, &rpm, "cached-1-1").unwrap();
    assert_eq!(again.files.len(), 4);
    assert_eq!(cache.counts(), (1, 1));
    cache.check(&Witness::default(), &HashMap::new()).unwrap();
    drop(cache);
    assert!(!d.path().join("cache/pkgcache/in-use").exists());

    // A killed compose's half-made entry is removed by the next one,
    // and never taken for an entry.
    let half = d.path().join(format!("cache/pkgcache/.new-{sha}-1"));
    fs::create_dir_all(half.join("f")).unwrap();
    let cache = PkgCache::open(&d.path().join("cache")).unwrap();
    assert!(!half.exists());
    assert!(d.path().join("cache/pkgcache").join(&sha).is_dir());
    assert!(
        cache.entry("zz", &rpm, "x").is_err(),
        "a bad key is refused"
    );
    // A file gone from an entry makes it extracted again.
    let e = cache.entry(&sha, &rpm, "cached-1-1").unwrap();
    let (plain, _) = by_content(&e, "plain\n");
    fs::remove_file(plain).unwrap();
    let e = cache.entry(&sha, &rpm, "cached-1-1").unwrap();
    by_content(&e, "plain\n");
}

#[test]
fn a_compose_that_dies_with_links_unchecked_costs_the_whole_cache() {
    let d = tempfile::tempdir().unwrap();
    let (rpm, sha) = package(&d.path().join("rpms"));
    let cache = PkgCache::open(&d.path().join("cache")).unwrap();
    cache.entry(&sha, &rpm, "cached-1-1").unwrap();
    cache.check(&Witness::default(), &HashMap::new()).unwrap();
    cache.publish().unwrap();
    drop(cache);
    // Entries handed out, never checked (a kill, a panic).
    let cache = PkgCache::open(&d.path().join("cache")).unwrap();
    cache.entry(&sha, &rpm, "cached-1-1").unwrap();
    drop(cache);
    assert!(d.path().join("cache/pkgcache/in-use").exists());
    let cache = PkgCache::open(&d.path().join("cache")).unwrap();
    assert!(!d.path().join("cache/pkgcache").join(&sha).exists());
    cache.entry(&sha, &rpm, "cached-1-1").unwrap();
    assert_eq!(cache.counts(), (0, 1));
}

/// Links into a tree, witnessed as unpacking does.
fn linked(cache: &PkgCache, rpm: &Path, sha: &str, tree: &Path) -> (Witness, Entry) {
    let e = cache.entry(sha, rpm, "cached-1-1").unwrap();
    let mut witness = Witness::default();
    for text in ["plain\n", "same\n"] {
        let (source, meta) = by_content(&e, text);
        let at = tree.join(text.trim());
        let _ = fs::remove_file(&at);
        fs::hard_link(&source, &at).unwrap();
        witness.record(&source, &meta, sha, "cached-1-1").unwrap();
    }
    (witness, e)
}

#[test]
fn writes_through_a_link_evict_the_entry_other_changes_do_not() {
    use std::io::Write as _;
    let d = tempfile::tempdir().unwrap();
    let (rpm, sha) = package(&d.path().join("rpms"));
    let cache = PkgCache::open(&d.path().join("cache")).unwrap();
    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let published = d.path().join("cache/pkgcache").join(&sha);
    let (w, _) = linked(&cache, &rpm, &sha, &tree);
    assert_eq!(cache.check(&w, &HashMap::new()).unwrap(), 0);
    cache.publish().unwrap();

    // An xattr the file had when linked (an SELinux label, say) is no
    // change.
    let e = cache.entry(&sha, &rpm, "cached-1-1").unwrap();
    let (plain, _) = by_content(&e, "plain\n");
    let c = std::ffi::CString::new(plain.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C strings and a buffer of the size given.
    let r = unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"user.label".as_ptr(),
            b"l".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_eq!(r, 0, "setxattr: {}", std::io::Error::last_os_error());
    let (w, _) = linked(&cache, &rpm, &sha, &tree);
    assert_eq!(cache.check(&w, &HashMap::new()).unwrap(), 0);
    assert!(published.is_dir());

    // Unlinking and renaming change nothing of the file.
    let (w, _) = linked(&cache, &rpm, &sha, &tree);
    fs::remove_file(tree.join("same")).unwrap();
    fs::rename(tree.join("plain"), tree.join("moved")).unwrap();
    assert_eq!(cache.check(&w, &HashMap::new()).unwrap(), 0);
    assert!(published.is_dir());

    type Change = fn(&Path);
    let changes: [(&str, Change); 6] = [
        ("append", |p| {
            fs::OpenOptions::new()
                .append(true)
                .open(p)
                .unwrap()
                .write_all(b"tampered\n")
                .unwrap()
        }),
        // Same size, mtime put back: only the content tells.
        ("rewrite", |p| {
            let mtime = fs::metadata(p).unwrap().modified().unwrap();
            let f = fs::OpenOptions::new().write(true).open(p).unwrap();
            (&f).write_all(b"PLAIN\n").unwrap();
            f.set_modified(mtime).unwrap();
        }),
        ("chmod", |p| {
            fs::set_permissions(p, fs::Permissions::from_mode(0o600)).unwrap()
        }),
        ("touch", |p| {
            fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(SystemTime::now())
                .unwrap()
        }),
        ("xattr", |p| {
            let path = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: valid C strings and a buffer of the size given.
            let r = unsafe {
                libc::setxattr(
                    path.as_ptr(),
                    c"user.x".as_ptr(),
                    b"1".as_ptr().cast(),
                    1,
                    0,
                )
            };
            assert_eq!(r, 0, "setxattr: {}", std::io::Error::last_os_error());
        }),
        // chattr +d: an inode flag any owner may set.
        ("chattr", |p| {
            use std::os::fd::AsRawFd;
            let f = fs::File::open(p).unwrap();
            let mut flags: libc::c_long = 0;
            // SAFETY: FS_IOC_{GET,SET}FLAGS read and write one long.
            unsafe {
                assert_eq!(
                    libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags),
                    0
                );
                flags |= 0x40; // FS_NODUMP_FL
                let r = libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags);
                assert_eq!(r, 0, "chattr: {}", std::io::Error::last_os_error());
            }
        }),
    ];
    for (what, change) in changes {
        let (w, _) = linked(&cache, &rpm, &sha, &tree);
        change(&tree.join("plain"));
        assert_eq!(cache.check(&w, &HashMap::new()).unwrap(), 1, "{what}");
        assert!(!published.exists(), "{what}: still cached");
        // Extracted afresh, pristine.
        let e = cache.entry(&sha, &rpm, "cached-1-1").unwrap();
        let (source, _) = by_content(&e, "plain\n");
        assert_eq!(fs::read_to_string(source).unwrap(), "plain\n", "{what}");
        cache.check(&Witness::default(), &HashMap::new()).unwrap();
        cache.publish().unwrap();
    }
}

#[test]
fn the_commits_checksums_stand_in_for_reading_the_files() {
    let d = tempfile::tempdir().unwrap();
    let (rpm, sha) = package(&d.path().join("rpms"));
    let cache = PkgCache::open(&d.path().join("cache")).unwrap();
    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let (w, e) = linked(&cache, &rpm, &sha, &tree);
    let id = |text: &str| {
        let m = fs::metadata(by_content(&e, text).0).unwrap();
        (m.dev(), m.ino())
    };
    let mut known = HashMap::new();
    known.insert(id("plain\n"), plain_object(0o644, b"plain\n"));
    known.insert(id("same\n"), plain_object(0o644, b"same\n"));
    assert_eq!(cache.check(&w, &known).unwrap(), 0);
    // The commit saw other content: the entry goes.
    known.insert(id("plain\n"), plain_object(0o644, b"other\n"));
    assert_eq!(cache.check(&w, &known).unwrap(), 1);
}

#[test]
fn cache_files_are_never_written_through_what_is_there() {
    let d = tempfile::tempdir().unwrap();
    let outside = d.path().join("outside");
    fs::write(&outside, "keep").unwrap();
    let file = d.path().join("f");
    std::os::unix::fs::symlink(&outside, &file).unwrap();
    assert!(write_new(&file, b"new", 0o644, 0).is_err());
    assert_eq!(fs::read_to_string(&outside).unwrap(), "keep");
}
