//! c10d's TCPStore behind a prefix: the key-value rendezvous every rank meets at (the same store
//! torchrun's agent hosts).

use crate::ffi::{self, RawStore};
use anyhow::{Context, Result};
use std::ffi::CString;
use std::time::Duration;

/// A TCPStore client, or the server when this process hosts it.
pub struct Store {
    raw: *mut RawStore,
    host: String,
}

// SAFETY: c10d::Store is thread-safe (a socket client with its own lock); the pointer is owned.
unsafe impl Send for Store {}
// SAFETY: as above.
unsafe impl Sync for Store {}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({}:{})", self.host, self.port().unwrap_or(0))
    }
}

impl Store {
    /// Connect to (or, with `server`, host) the store at `host:port`. A server opened on port 0
    /// binds a free port ([`Store::port`]). Every operation waits at most `timeout`.
    pub fn tcp(
        host: &str,
        port: u16,
        server: bool,
        world_size: Option<usize>,
        timeout: Duration,
        prefix: &str,
    ) -> Result<Self> {
        let c_host = CString::new(host)?;
        let c_prefix = CString::new(prefix)?;
        let mut raw = std::ptr::null_mut();
        ffi::check(|err| {
            // SAFETY: valid C strings and out-pointers for the duration of the call.
            unsafe {
                ffi::md4d_store_tcp(
                    c_host.as_ptr(),
                    port,
                    server as i32,
                    world_size.map_or(-1, |w| w as i64),
                    timeout.as_millis() as i64,
                    c_prefix.as_ptr(),
                    &mut raw,
                    err,
                )
            }
        })
        .with_context(|| {
            if server {
                format!("cannot host the TCP store on {host}:{port}")
            } else {
                format!(
                    "cannot reach the TCP store at {host}:{port} (is rank 0 / the launcher running there?)"
                )
            }
        })?;
        Ok(Self { raw, host: host.to_string() })
    }

    /// The port the store listens on.
    pub fn port(&self) -> Result<u16> {
        let mut port = 0u16;
        // SAFETY: `raw` is live; valid out-pointer.
        ffi::check(|err| unsafe { ffi::md4d_store_port(self.raw, &mut port, err) })?;
        Ok(port)
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        let k = CString::new(key)?;
        // SAFETY: `raw` is live; `value` is valid for its length.
        ffi::check(|err| unsafe {
            ffi::md4d_store_set(self.raw, k.as_ptr(), value.as_ptr(), value.len(), err)
        })
        .with_context(|| format!("store: setting '{key}'"))
    }

    /// The value of `key`, waiting for another rank to set it (up to the store's timeout).
    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        let k = CString::new(key)?;
        let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
        // SAFETY: `raw` is live; valid out-pointers.
        ffi::check(|err| unsafe { ffi::md4d_store_get(self.raw, k.as_ptr(), &mut data, &mut len, err) })
            .with_context(|| format!("store: waiting for '{key}'"))?;
        // SAFETY: on success `data` is a malloc'd buffer of `len` bytes that we now own.
        let out = unsafe { std::slice::from_raw_parts(data, len) }.to_vec();
        // SAFETY: freed once, with the shim's allocator.
        unsafe { ffi::md4d_free(data.cast()) };
        Ok(out)
    }

    /// Atomically add `value` to the counter `key` and return the new value.
    pub fn add(&self, key: &str, value: i64) -> Result<i64> {
        let k = CString::new(key)?;
        let mut out = 0i64;
        // SAFETY: `raw` is live; valid out-pointer.
        ffi::check(|err| unsafe { ffi::md4d_store_add(self.raw, k.as_ptr(), value, &mut out, err) })
            .with_context(|| format!("store: adding to '{key}'"))?;
        Ok(out)
    }

    pub(crate) fn raw(&self) -> *mut RawStore {
        self.raw
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: created by md4d_store_tcp and freed once.
        unsafe { ffi::md4d_store_free(self.raw) }
    }
}
