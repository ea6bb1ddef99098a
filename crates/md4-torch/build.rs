//! Compile the C++ shim (cpp/md4_torch.cpp) against the libtorch that torch-sys links.
#[path = "../../build/libtorch_cc.rs"]
mod libtorch_cc;

fn main() {
    libtorch_cc::compile("cpp/md4_torch.cpp", "md4_torch", &[], &[]);
}
