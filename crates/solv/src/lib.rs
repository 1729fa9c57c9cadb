//! A small safe binding of the system libsolv for composing RPM trees.
//!
//! [`Pool`] loads rpm-md metadata (primary, and filelists when a file
//! dependency needs it) and solves an install request into the packages to
//! install, in libsolv's install order. The pool is always in RPM mode:
//! Debian's libsolv starts in Debian mode, where `noarch` is not an
//! architecture and rich dependencies are not RPM's.
//!
//! Fetching and verifying the metadata files is the caller's job; this
//! crate only hands paths to libsolv.

mod ffi;
mod queue;

use std::cmp::Ordering;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use ffi::Id;
use queue::OwnedQueue;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A metadata file could not be read or parsed.
    #[error("{path}: {message}")]
    Load {
        /// The file.
        path: PathBuf,
        /// libsolv's or the system's message.
        message: String,
    },
    /// A requested name matches no package and no provide.
    #[error("no package provides `{0}`")]
    NoMatch(String),
    /// The request has no solution; one line per problem, as libsolv
    /// words it ("nothing provides … needed by …").
    #[error("dependency problems:\n  {}", .0.join("\n  "))]
    Unsolvable(Vec<String>),
    /// A string for libsolv contained a NUL byte.
    #[error("`{0}` contains a NUL byte")]
    Nul(String),
}

/// The package-manager convention a pool follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistType {
    /// RPM: what this crate always uses.
    Rpm,
    /// Debian: libsolv's default on Debian.
    Deb,
    /// Anything else libsolv knows.
    Other(i32),
}

/// Index of a repository in the order it was added to the pool.
pub type RepoIndex = usize;

/// A package's checksum as the repository metadata states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    /// Algorithm name, e.g. `sha256`.
    pub kind: String,
    /// Lower-case hex digest.
    pub hex: String,
}

/// A package chosen by the solver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Name.
    pub name: String,
    /// Epoch (0 when the package has none).
    pub epoch: u32,
    /// Version.
    pub version: String,
    /// Release.
    pub release: String,
    /// Architecture.
    pub arch: String,
    /// The repository it comes from.
    pub repo: RepoIndex,
    /// Location of the RPM relative to the repository's base URL.
    pub location: String,
    /// Checksum of the RPM file from the metadata.
    pub checksum: Option<Checksum>,
    /// Size of the RPM file from the metadata.
    pub download_size: u64,
}

impl Package {
    /// `name-[epoch:]version-release.arch`, as rpm and dnf print it.
    pub fn nevra(&self) -> String {
        if self.epoch == 0 {
            format!(
                "{}-{}-{}.{}",
                self.name, self.version, self.release, self.arch
            )
        } else {
            format!(
                "{}-{}:{}-{}.{}",
                self.name, self.epoch, self.version, self.release, self.arch
            )
        }
    }

    /// `[epoch:]version-release`.
    pub fn evr(&self) -> String {
        if self.epoch == 0 {
            format!("{}-{}", self.version, self.release)
        } else {
            format!("{}:{}-{}", self.epoch, self.version, self.release)
        }
    }
}

/// What to install.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Names or provides, optionally with `.arch` or a version relation
    /// (`libfoo >= 2`), as in a treefile's `packages`.
    pub install: Vec<String>,
    /// Pull in weak dependencies (`Recommends`).
    pub recommends: bool,
}

/// A libsolv pool in RPM mode.
pub struct Pool {
    ptr: NonNull<ffi::Pool>,
    repos: Vec<NonNull<ffi::Repo>>,
    prepared: bool,
}

impl Pool {
    /// A pool in RPM mode for `arch` (e.g. `x86_64`), whose arch policy then
    /// also accepts `noarch` and the arch's compatible ones.
    pub fn new(arch: &str) -> Result<Pool, Error> {
        Self::with_disttype(arch, ffi::DISTTYPE_RPM)
    }

    /// A pool left in Debian mode: only for tests that show why RPM mode
    /// matters.
    #[doc(hidden)]
    pub fn new_debian_mode(arch: &str) -> Result<Pool, Error> {
        Self::with_disttype(arch, ffi::DISTTYPE_DEB)
    }

    fn with_disttype(arch: &str, disttype: i32) -> Result<Pool, Error> {
        let arch = cstring(arch)?;
        // SAFETY: pool_create returns a fresh pool we own; the calls below
        // only configure it.
        unsafe {
            let ptr = NonNull::new(ffi::pool_create()).expect("libsolv: out of memory");
            // The disttype must be set before the arch: setarch reads it.
            ffi::pool_setdisttype(ptr.as_ptr(), disttype);
            ffi::pool_setarch(ptr.as_ptr(), arch.as_ptr());
            Ok(Pool {
                ptr,
                repos: Vec::new(),
                prepared: false,
            })
        }
    }

    /// The pool's package-manager convention, read back from libsolv.
    pub fn disttype(&self) -> DistType {
        // SAFETY: reads one field of a live pool.
        match unsafe { ffi::rs_pool_disttype(self.ptr.as_ptr()) } {
            ffi::DISTTYPE_RPM => DistType::Rpm,
            ffi::DISTTYPE_DEB => DistType::Deb,
            other => DistType::Other(other),
        }
    }

    /// Adds a repository from its rpm-md primary file (plain, gz, xz or
    /// zstd, by extension).
    pub fn add_rpmmd(&mut self, name: &str, primary: &Path) -> Result<RepoIndex, Error> {
        let cname = cstring(name)?;
        // SAFETY: repo_create returns a repo owned by the pool, valid until
        // pool_free.
        let repo = unsafe { ffi::repo_create(self.ptr.as_ptr(), cname.as_ptr()) };
        let repo = NonNull::new(repo).expect("libsolv: out of memory");
        self.load(repo, primary, 0)?;
        self.repos.push(repo);
        self.prepared = false;
        Ok(self.repos.len() - 1)
    }

    /// Adds a repository's filelists to the packages its primary defined.
    pub fn add_filelists(&mut self, repo: RepoIndex, filelists: &Path) -> Result<(), Error> {
        let r = self.repos[repo];
        self.load(r, filelists, ffi::REPO_EXTEND_SOLVABLES)?;
        self.prepared = false;
        Ok(())
    }

    fn load(&mut self, repo: NonNull<ffi::Repo>, path: &Path, flags: i32) -> Result<(), Error> {
        let cpath = cstring(path.to_str().ok_or_else(|| Error::Load {
            path: path.into(),
            message: "path is not UTF-8".into(),
        })?)?;
        // SAFETY: repo belongs to this pool; the path is a valid C string.
        let rc = unsafe { ffi::rs_repo_add_rpmmd_path(repo.as_ptr(), cpath.as_ptr(), flags) };
        match rc {
            0 => {
                unsafe { ffi::repo_internalize(repo.as_ptr()) };
                Ok(())
            }
            -1 => Err(Error::Load {
                path: path.into(),
                message: std::io::Error::last_os_error().to_string(),
            }),
            _ => Err(Error::Load {
                path: path.into(),
                message: self.errstr(),
            }),
        }
    }

    /// Finishes loading: indexes file provides and what-provides. Returns
    /// the file dependencies no loaded package provides, which means the
    /// filelists are needed (or the request is unsolvable).
    pub fn prepare(&mut self) -> Vec<String> {
        let p = self.ptr.as_ptr();
        let mut files = OwnedQueue::new();
        // SAFETY: live pool and queues we own.
        unsafe {
            ffi::pool_addfileprovides_queue(p, files.as_mut_ptr(), std::ptr::null_mut());
            ffi::pool_createwhatprovides(p);
        }
        self.prepared = true;
        files
            .as_slice()
            .iter()
            .filter(|&&id| unsafe { ffi::rs_whatprovides_count(p, id) } == 0)
            .map(|&id| self.id2str(id))
            .collect()
    }

    /// Excludes every package for which `exclude` is true, as dnf's
    /// `exclude=` and a treefile's `exclude-packages` do: the solver never
    /// considers it.
    pub fn exclude(&mut self, mut exclude: impl FnMut(RepoIndex, &str) -> bool) {
        let p = self.ptr.as_ptr();
        // SAFETY: ids below nsolvables are valid; we only read them.
        let n = unsafe { ffi::rs_pool_nsolvables(p) };
        for id in 2..n {
            let Some(repo) = self.repo_of(id) else {
                continue;
            };
            let name = unsafe { opt_str(ffi::rs_solvable_name(p, id)) }.unwrap_or_default();
            if exclude(repo, &name) {
                unsafe { ffi::rs_pool_exclude(p, id) };
            }
        }
        self.prepared = false;
    }

    /// Solves `request` and returns the packages to install, in install
    /// order.
    pub fn solve(&mut self, request: &Request) -> Result<Vec<Package>, Error> {
        if !self.prepared {
            self.prepare();
        }
        let p = self.ptr.as_ptr();
        let mut jobs = OwnedQueue::new();
        let flags = ffi::SELECTION_NAME
            | ffi::SELECTION_PROVIDES
            | ffi::SELECTION_REL
            | ffi::SELECTION_DOTARCH
            | ffi::SELECTION_CANON;
        for spec in &request.install {
            let cspec = cstring(spec)?;
            let mut sel = OwnedQueue::new();
            // SAFETY: live pool, owned queue, valid C string.
            unsafe { ffi::selection_make(p, sel.as_mut_ptr(), cspec.as_ptr(), flags) };
            if sel.as_slice().is_empty() {
                return Err(Error::NoMatch(spec.clone()));
            }
            for pair in sel.as_slice().chunks(2) {
                jobs.push(pair[0] | ffi::SOLVER_INSTALL);
                jobs.push(pair[1]);
            }
        }
        // SAFETY: the solver and transaction are freed before returning;
        // strings are copied out while they are alive.
        unsafe {
            let solver = ffi::solver_create(p);
            ffi::solver_set_flag(
                solver,
                ffi::SOLVER_FLAG_IGNORE_RECOMMENDED,
                (!request.recommends) as i32,
            );
            let nproblems = ffi::solver_solve(solver, jobs.as_mut_ptr());
            if nproblems > 0 {
                let problems = (1..=nproblems)
                    .map(|i| opt_str(ffi::solver_problem2str(solver, i)).unwrap_or_default())
                    .collect();
                ffi::solver_free(solver);
                return Err(Error::Unsolvable(problems));
            }
            let trans = ffi::solver_create_transaction(solver);
            ffi::transaction_order(trans, 0);
            let steps = &*ffi::rs_transaction_steps(trans);
            let ids: Vec<Id> = if steps.count > 0 {
                std::slice::from_raw_parts(steps.elements, steps.count as usize).to_vec()
            } else {
                Vec::new()
            };
            ffi::transaction_free(trans);
            ffi::solver_free(solver);
            Ok(ids.into_iter().map(|id| self.package(id)).collect())
        }
    }

    /// Compares two `[epoch:]version[-release]` strings as rpm does.
    pub fn evr_cmp(&self, a: &str, b: &str) -> Result<Ordering, Error> {
        let (ca, cb) = (cstring(a)?, cstring(b)?);
        // SAFETY: live pool, valid C strings.
        let r = unsafe {
            ffi::pool_evrcmp_str(
                self.ptr.as_ptr(),
                ca.as_ptr(),
                cb.as_ptr(),
                ffi::EVRCMP_COMPARE,
            )
        };
        Ok(r.cmp(&0))
    }

    /// Names of the solvables the pool's arch policy would install (tests
    /// use it to show what RPM mode changes).
    pub fn installable_names(&self) -> Vec<String> {
        let p = self.ptr.as_ptr();
        let n = unsafe { ffi::rs_pool_nsolvables(p) };
        (2..n)
            .filter(|&id| self.repo_of(id).is_some())
            .filter(|&id| unsafe { ffi::rs_solvable_is_installable(p, id) } != 0)
            .filter_map(|id| unsafe { opt_str(ffi::rs_solvable_name(p, id)) })
            .collect()
    }

    fn package(&self, id: Id) -> Package {
        let p = self.ptr.as_ptr();
        // SAFETY: id comes from the solver's transaction over this pool.
        unsafe {
            let name = opt_str(ffi::rs_solvable_name(p, id)).unwrap_or_default();
            let evr = opt_str(ffi::rs_solvable_evr(p, id)).unwrap_or_default();
            let arch = opt_str(ffi::rs_solvable_arch(p, id)).unwrap_or_default();
            let location = opt_str(ffi::rs_solvable_location(p, id)).unwrap_or_default();
            let mut kind: Id = 0;
            let checksum =
                opt_str(ffi::rs_solvable_checksum(p, id, &mut kind)).map(|hex| Checksum {
                    kind: opt_str(ffi::solv_chksum_type2str(kind)).unwrap_or_default(),
                    hex,
                });
            let (epoch, version, release) = split_evr(&evr);
            Package {
                name,
                epoch,
                version,
                release,
                arch,
                repo: self.repo_of(id).unwrap_or(0),
                location,
                checksum,
                download_size: ffi::rs_solvable_downloadsize(p, id),
            }
        }
    }

    fn repo_of(&self, id: Id) -> Option<RepoIndex> {
        // SAFETY: id is below nsolvables.
        let r = unsafe { ffi::rs_solvable_repo(self.ptr.as_ptr(), id) };
        self.repos.iter().position(|x| x.as_ptr() == r)
    }

    fn id2str(&self, id: Id) -> String {
        // SAFETY: ids handed out by this pool.
        unsafe { opt_str(ffi::pool_id2str(self.ptr.as_ptr(), id)) }.unwrap_or_default()
    }

    fn errstr(&self) -> String {
        // SAFETY: pool_errstr returns the pool's own last-error buffer.
        unsafe { opt_str(ffi::pool_errstr(self.ptr.as_ptr())) }.unwrap_or_default()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: we own the pool; repos die with it.
        unsafe { ffi::pool_free(self.ptr.as_ptr()) }
    }
}

/// Splits `[epoch:]version-release`; a missing epoch is 0.
fn split_evr(evr: &str) -> (u32, String, String) {
    let (epoch, rest) = match evr.split_once(':') {
        Some((e, rest)) if e.bytes().all(|b| b.is_ascii_digit()) => (e.parse().unwrap_or(0), rest),
        _ => (0, evr),
    };
    let (version, release) = rest.rsplit_once('-').unwrap_or((rest, ""));
    (epoch, version.to_string(), release.to_string())
}

fn cstring(s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|_| Error::Nul(s.to_string()))
}

/// Copies a C string libsolv owns (or NULL).
unsafe fn opt_str(p: *const std::os::raw::c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        Some(CStr::from_ptr(p).to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evr_splits_like_rpm() {
        assert_eq!(
            split_evr("2:2.1-3.fc42"),
            (2, "2.1".into(), "3.fc42".into())
        );
        assert_eq!(split_evr("1.0-1"), (0, "1.0".into(), "1".into()));
    }
}
