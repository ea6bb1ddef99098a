//! Compile the C++ shim (cpp/md4_dist.cpp) against the libtorch that torch-sys links, with
//! c10d's Gloo switch and the gloo headers vendored in vendor/gloo.
#[path = "../../build/libtorch_cc.rs"]
mod libtorch_cc;

fn main() {
    libtorch_cc::compile("cpp/md4_dist.cpp", "md4_dist", &["vendor/gloo/include"], &["-DUSE_C10D_GLOO"]);
}
