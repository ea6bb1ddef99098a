//! Compile the C++ shim (cpp/md4_dist.cpp) against the libtorch that torch-sys links, with
//! torch-sys's flags, c10d's Gloo switch and the gloo headers vendored in vendor/gloo.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=cpp/md4_dist.cpp");
    println!("cargo:rerun-if-changed=vendor/gloo/include");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB")
            .expect("torch-sys exports DEP_TCH_LIBTORCH_LIB (libtorch's lib directory)"),
    );
    let root = lib.parent().expect("libtorch's lib directory has a parent").to_path_buf();
    cc::Build::new()
        .cpp(true)
        .file("cpp/md4_dist.cpp")
        .include("vendor/gloo/include")
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .flag("-DUSE_C10D_GLOO")
        .warnings(false)
        .compile("md4_dist");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
