//! Raw declarations of the libsolv calls we make, and of our shim.
//! Values of the `#define`s are libsolv's stable ABI (solver.h, repo.h,
//! selection.h, pool.h of 0.7).

#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_ulonglong};

pub type Id = c_int;

#[repr(C)]
pub struct Pool {
    _private: [u8; 0],
}
#[repr(C)]
pub struct Repo {
    _private: [u8; 0],
}
#[repr(C)]
pub struct Solver {
    _private: [u8; 0],
}
#[repr(C)]
pub struct Transaction {
    _private: [u8; 0],
}

/// libsolv's growable Id array (queue.h); initialised and freed by libsolv.
#[repr(C)]
pub struct Queue {
    pub elements: *mut Id,
    pub count: c_int,
    pub alloc: *mut Id,
    pub left: c_int,
}

pub const DISTTYPE_RPM: c_int = 0;
pub const DISTTYPE_DEB: c_int = 1;

pub const REPO_EXTEND_SOLVABLES: c_int = 1 << 4;

pub const SELECTION_NAME: c_int = 1 << 0;
pub const SELECTION_PROVIDES: c_int = 1 << 1;
pub const SELECTION_CANON: c_int = 1 << 3;
pub const SELECTION_DOTARCH: c_int = 1 << 4;
pub const SELECTION_REL: c_int = 1 << 5;

pub const SOLVER_INSTALL: Id = 0x0100;
pub const SOLVER_FLAG_IGNORE_RECOMMENDED: c_int = 7;

pub const EVRCMP_COMPARE: c_int = 0;

extern "C" {
    pub fn pool_create() -> *mut Pool;
    pub fn pool_free(pool: *mut Pool);
    pub fn pool_setdisttype(pool: *mut Pool, disttype: c_int) -> c_int;
    pub fn pool_setarch(pool: *mut Pool, arch: *const c_char);
    pub fn pool_addfileprovides_queue(pool: *mut Pool, idq: *mut Queue, idqinst: *mut Queue);
    pub fn pool_createwhatprovides(pool: *mut Pool);
    pub fn pool_errstr(pool: *mut Pool) -> *mut c_char;
    pub fn pool_id2str(pool: *const Pool, id: Id) -> *const c_char;
    pub fn pool_evrcmp_str(
        pool: *const Pool,
        evr1: *const c_char,
        evr2: *const c_char,
        mode: c_int,
    ) -> c_int;
    pub fn solv_chksum_type2str(kind: Id) -> *const c_char;

    pub fn repo_create(pool: *mut Pool, name: *const c_char) -> *mut Repo;
    pub fn repo_internalize(repo: *mut Repo);

    pub fn queue_init(q: *mut Queue);
    pub fn queue_free(q: *mut Queue);

    pub fn selection_make(
        pool: *mut Pool,
        sel: *mut Queue,
        name: *const c_char,
        flags: c_int,
    ) -> c_int;

    pub fn solver_create(pool: *mut Pool) -> *mut Solver;
    pub fn solver_free(solver: *mut Solver);
    pub fn solver_set_flag(solver: *mut Solver, flag: c_int, value: c_int) -> c_int;
    pub fn solver_solve(solver: *mut Solver, job: *mut Queue) -> c_int;
    pub fn solver_problem2str(solver: *mut Solver, problem: Id) -> *const c_char;
    pub fn solver_create_transaction(solver: *mut Solver) -> *mut Transaction;
    pub fn transaction_order(trans: *mut Transaction, flags: c_int);
    pub fn transaction_free(trans: *mut Transaction);

    // csrc/shim.c
    pub fn rs_pool_disttype(pool: *const Pool) -> c_int;
    pub fn rs_pool_nsolvables(pool: *const Pool) -> c_int;
    pub fn rs_solvable_repo(pool: *const Pool, p: Id) -> *mut Repo;
    pub fn rs_whatprovides_count(pool: *mut Pool, dep: Id) -> c_int;
    pub fn rs_queue_push(q: *mut Queue, v: Id);
    pub fn rs_transaction_steps(trans: *const Transaction) -> *const Queue;
    pub fn rs_repo_add_rpmmd_path(repo: *mut Repo, path: *const c_char, flags: c_int) -> c_int;
    pub fn rs_pool_exclude(pool: *mut Pool, p: Id);
    pub fn rs_solvable_name(pool: *mut Pool, p: Id) -> *const c_char;
    pub fn rs_solvable_evr(pool: *mut Pool, p: Id) -> *const c_char;
    pub fn rs_solvable_arch(pool: *mut Pool, p: Id) -> *const c_char;
    pub fn rs_solvable_location(pool: *mut Pool, p: Id) -> *const c_char;
    pub fn rs_solvable_checksum(pool: *mut Pool, p: Id, kind: *mut Id) -> *const c_char;
    pub fn rs_solvable_downloadsize(pool: *mut Pool, p: Id) -> c_ulonglong;
    pub fn rs_solvable_is_installable(pool: *mut Pool, p: Id) -> c_int;
}
