//! Compiles `src/xdp.bpf.c` with clang and generates its libbpf-rs skeleton.

use std::path::PathBuf;

const SRC: &str = "src/xdp.bpf.c";

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("xdp.skel.rs");
    // `-target bpf` does not search Debian's multiarch include directory, where <asm/types.h>
    // (pulled in by <linux/bpf.h>) lives.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let (multiarch, target_arch) = match arch.as_str() {
        "aarch64" => ("aarch64-linux-gnu", "arm64"),
        _ => ("x86_64-linux-gnu", "x86"),
    };
    if let Err(e) = libbpf_cargo::SkeletonBuilder::new()
        .source(SRC)
        .clang_args([
            "-O2".to_string(),
            "-Wall".to_string(),
            format!("-D__TARGET_ARCH_{target_arch}"),
            format!("-I/usr/include/{multiarch}"),
        ])
        .build_and_generate(&out)
    {
        // One clear line: the usual cause is a missing clang or kernel headers.
        panic!("building {SRC} failed (needs clang, libelf-dev, zlib1g-dev, linux-libc-dev; scripts/install-deps.sh installs them): {e:#}");
    }
    println!("cargo:rerun-if-changed={SRC}");
}
