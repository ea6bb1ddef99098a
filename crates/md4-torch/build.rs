//! Compile the C++ shim (cpp/md4_torch.cpp) against the libtorch that torch-sys links, with
//! torch-sys's own flags, and bake libtorch's directory into dependents as an rpath.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=cpp/md4_torch.cpp");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB")
            .expect("torch-sys exports DEP_TCH_LIBTORCH_LIB (libtorch's lib directory)"),
    );
    let root = lib.parent().expect("libtorch's lib directory has a parent").to_path_buf();
    cc::Build::new()
        .cpp(true)
        .file("cpp/md4_torch.cpp")
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .warnings(false)
        .compile("md4_torch");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
