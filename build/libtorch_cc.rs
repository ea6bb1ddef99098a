//! Shared by the build scripts of crates with a C++ shim (md4-torch, md4-dist): compile it
//! against the libtorch that torch-sys links, with torch-sys's own flags, and bake libtorch's
//! directory into dependents as an rpath.
use std::path::PathBuf;

/// Compile `source` into the static library `name`, with extra include directories and flags.
pub fn compile(source: &str, name: &str, includes: &[&str], flags: &[&str]) {
    println!("cargo:rerun-if-changed={source}");
    for dir in includes {
        println!("cargo:rerun-if-changed={dir}");
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB")
            .expect("torch-sys exports DEP_TCH_LIBTORCH_LIB (libtorch's lib directory)"),
    );
    let root = lib.parent().expect("libtorch's lib directory has a parent").to_path_buf();
    let mut build = cc::Build::new();
    build.cpp(true).file(source);
    for dir in includes {
        build.include(dir);
    }
    build
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT");
    for flag in flags {
        build.flag(flag);
    }
    build.warnings(false).compile(name);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
