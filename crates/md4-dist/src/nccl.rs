//! NCCL through its C API, resolved at run time from the `libnccl.so.2` that libtorch_cuda
//! already loaded (the wheel's copy; nothing is loaded that libtorch did not load). The unique
//! id travels through the TCP store. Collectives run on CUDA's legacy default stream, the stream
//! libtorch's kernels use unless a program switches streams, so they are ordered with them.

use crate::store::Store;
use anyhow::{Context, Result, anyhow, bail};
use std::ffi::{CStr, c_char, c_int, c_void};
use tch::{Kind, Tensor};

#[repr(C)]
#[derive(Clone, Copy)]
struct UniqueId {
    internal: [c_char; 128],
}

type GetUniqueId = unsafe extern "C" fn(*mut UniqueId) -> c_int;
type CommInitRank = unsafe extern "C" fn(*mut *mut c_void, c_int, UniqueId, c_int) -> c_int;
type AllReduce =
    unsafe extern "C" fn(*const c_void, *mut c_void, usize, c_int, c_int, *mut c_void, *mut c_void) -> c_int;
type Broadcast =
    unsafe extern "C" fn(*const c_void, *mut c_void, usize, c_int, c_int, *mut c_void, *mut c_void) -> c_int;
type CommDestroy = unsafe extern "C" fn(*mut c_void) -> c_int;
type GetErrorString = unsafe extern "C" fn(c_int) -> *const c_char;

const NCCL_SUM: c_int = 0;

/// An NCCL communicator of one rank.
pub struct Comm {
    comm: *mut c_void,
    all_reduce: AllReduce,
    broadcast: Broadcast,
    destroy: CommDestroy,
    error_string: GetErrorString,
}

/// NCCL's function `name`.
fn symbol<F: Copy>(handle: usize, name: &str) -> Result<F> {
    // SAFETY: the callers give each symbol its documented C signature.
    unsafe { md4_torch::cuda::function(Some(handle), name) }
        .ok_or_else(|| anyhow!("libnccl.so.2 has no symbol {name}"))
}

/// NCCL's data type code for a tensor kind.
fn data_type(kind: Kind) -> Result<c_int> {
    Ok(match kind {
        Kind::Int8 => 0,
        Kind::Uint8 => 1,
        Kind::Int => 2,
        Kind::Int64 => 4,
        Kind::Half => 6,
        Kind::Float => 7,
        Kind::Double => 8,
        Kind::BFloat16 => 9,
        other => bail!("NCCL cannot reduce tensors of kind {other:?}"),
    })
}

impl Comm {
    /// Create rank `rank`'s communicator of `size` ranks on GPU `device_index`.
    pub fn new(store: &Store, rank: usize, size: usize, device_index: usize) -> Result<Self> {
        let Some(handle) = md4_torch::cuda::mapped_library("libnccl.so.2") else {
            bail!(
                "libnccl.so.2 is not loaded: NCCL comes with libtorch_cuda (the torch==2.11.0 CUDA wheel's \
                 nvidia-nccl package); open a CUDA device first, or use the Gloo backend (--dist-backend gloo)"
            );
        };
        let get_id: GetUniqueId = symbol(handle, "ncclGetUniqueId")?;
        let init: CommInitRank = symbol(handle, "ncclCommInitRank")?;
        let error_string: GetErrorString = symbol(handle, "ncclGetErrorString")?;
        let describe = |code: c_int| -> String {
            // SAFETY: ncclGetErrorString returns a static NUL-terminated string.
            unsafe { CStr::from_ptr(error_string(code)) }.to_string_lossy().into_owned()
        };
        let mut id = UniqueId { internal: [0; 128] };
        if rank == 0 {
            // SAFETY: valid out-pointer.
            let code = unsafe { get_id(&mut id) };
            if code != 0 {
                bail!("ncclGetUniqueId failed: {}", describe(code));
            }
            let bytes: Vec<u8> = id.internal.iter().map(|&c| c as u8).collect();
            store.set("nccl_unique_id", &bytes)?;
        } else {
            let bytes = store.get("nccl_unique_id")?;
            if bytes.len() != 128 {
                bail!("the NCCL unique id in the store has {} bytes, expected 128", bytes.len());
            }
            for (d, s) in id.internal.iter_mut().zip(bytes) {
                *d = s as c_char;
            }
        }
        md4_torch::cuda::set_current_device(device_index)?;
        let mut comm = std::ptr::null_mut();
        // SAFETY: valid out-pointer; the id is passed by value as NCCL declares it.
        let code = unsafe { init(&mut comm, size as c_int, id, rank as c_int) };
        if code != 0 {
            bail!("ncclCommInitRank (rank {rank} of {size}) failed: {}", describe(code));
        }
        Ok(Self {
            comm,
            all_reduce: symbol(handle, "ncclAllReduce")?,
            broadcast: symbol(handle, "ncclBroadcast")?,
            destroy: symbol(handle, "ncclCommDestroy")?,
            error_string,
        })
    }

    fn checked(&self, what: &str, code: c_int) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        // SAFETY: static string.
        let message = unsafe { CStr::from_ptr((self.error_string)(code)) }.to_string_lossy().into_owned();
        Err(anyhow!("{what} failed: {message}"))
    }

    /// In-place sum of a contiguous CUDA tensor over every rank.
    pub fn all_reduce_sum(&self, t: &Tensor) -> Result<()> {
        let dtype = data_type(t.kind())?;
        let p = t.data_ptr();
        // SAFETY: `t` is contiguous on this communicator's GPU (checked by the caller) and
        // outlives the call; the stream argument NULL is CUDA's legacy default stream.
        let code =
            unsafe { (self.all_reduce)(p, p, t.numel(), dtype, NCCL_SUM, self.comm, std::ptr::null_mut()) };
        self.checked("ncclAllReduce", code)
    }

    /// In-place copy of rank `root`'s tensor to every rank.
    pub fn broadcast(&self, t: &Tensor, root: usize) -> Result<()> {
        let dtype = data_type(t.kind()).or_else(|_| Ok::<_, anyhow::Error>(1))?;
        let count = if dtype == 1 { t.numel() * t.kind().elt_size_in_bytes() } else { t.numel() };
        let p = t.data_ptr();
        // SAFETY: as in all_reduce_sum; bytes are broadcast as uint8 for kinds NCCL lacks.
        let code =
            unsafe { (self.broadcast)(p, p, count, dtype, root as c_int, self.comm, std::ptr::null_mut()) };
        self.checked("ncclBroadcast", code).context("broadcast")
    }
}

impl Drop for Comm {
    fn drop(&mut self) {
        // SAFETY: created by ncclCommInitRank, destroyed once.
        unsafe { (self.destroy)(self.comm) };
    }
}
