//! The C interface of cpp/md4_dist.cpp (c10d's TCPStore, PrefixStore and ProcessGroupGloo) and
//! one conversion of its error convention (return 1, message in `err`) into `anyhow` errors.

use anyhow::{Result, anyhow};
use std::ffi::{CStr, c_char, c_int, c_void};

#[repr(C)]
pub struct RawStore {
    _private: [u8; 0],
}

#[repr(C)]
pub struct RawGroup {
    _private: [u8; 0],
}

unsafe extern "C" {
    pub fn md4d_free(p: *mut c_void);
    pub fn md4d_store_tcp(
        host: *const c_char,
        port: u16,
        is_server: c_int,
        world_size: i64,
        timeout_ms: i64,
        prefix: *const c_char,
        out: *mut *mut RawStore,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn md4d_store_port(s: *mut RawStore, port: *mut u16, err: *mut *mut c_char) -> c_int;
    pub fn md4d_store_set(
        s: *mut RawStore,
        key: *const c_char,
        data: *const u8,
        len: usize,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn md4d_store_get(
        s: *mut RawStore,
        key: *const c_char,
        data: *mut *mut u8,
        len: *mut usize,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn md4d_store_add(
        s: *mut RawStore,
        key: *const c_char,
        value: i64,
        result: *mut i64,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn md4d_store_free(s: *mut RawStore);
    pub fn md4d_gloo_new(
        s: *mut RawStore,
        rank: c_int,
        size: c_int,
        interface: *const c_char,
        hostname: *const c_char,
        timeout_ms: i64,
        threads: c_int,
        out: *mut *mut RawGroup,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn md4d_allreduce_sum(pg: *mut RawGroup, t: *mut c_void, err: *mut *mut c_char) -> c_int;
    pub fn md4d_broadcast(pg: *mut RawGroup, t: *mut c_void, root: c_int, err: *mut *mut c_char) -> c_int;
    pub fn md4d_barrier(pg: *mut RawGroup, err: *mut *mut c_char) -> c_int;
    pub fn md4d_pg_free(pg: *mut RawGroup);
}

/// Call a shim function that reports failure through `err`, and turn it into a `Result`.
pub fn check(call: impl FnOnce(*mut *mut c_char) -> c_int) -> Result<()> {
    let mut err: *mut c_char = std::ptr::null_mut();
    if call(&mut err) == 0 {
        return Ok(());
    }
    if err.is_null() {
        return Err(anyhow!("c10d failed without a message"));
    }
    // SAFETY: on failure the shim sets `err` to a malloc'd NUL-terminated string we now own.
    let message = unsafe { CStr::from_ptr(err) }.to_string_lossy().trim().to_string();
    // SAFETY: allocated by the shim's malloc; freed once.
    unsafe { md4d_free(err.cast()) };
    Err(anyhow!("{message}"))
}
