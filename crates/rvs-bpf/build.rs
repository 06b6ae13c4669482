//! Builds every BPF program of bpf/ (each `bpf/NAME.bpf.c` to `$OUT_DIR/NAME.bpf.o`) with clang
//! when clang and libbpf's headers are there, and otherwise uses the object committed beside
//! its source (`bpf/NAME.bpf.o`, made by the same command), so a machine without them still
//! builds rvs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=bpf");
    let mut sources: Vec<PathBuf> = std::fs::read_dir("bpf")
        .expect("read bpf/")
        .map(|e| e.expect("read bpf/").path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".bpf.c")))
        .collect();
    sources.sort();
    for src in &sources {
        build(src, &out_dir);
    }
}

fn build(src: &Path, out_dir: &Path) {
    let name = src.file_name().and_then(|n| n.to_str()).expect("a UTF-8 file name");
    let object = name.strip_suffix(".c").map(|stem| format!("{stem}.o")).expect("NAME.bpf.c");
    let committed = src.with_file_name(&object);
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", committed.display());
    let out = out_dir.join(&object);
    let arch_include = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let built = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", &arch_include, "-c"])
        .arg(src)
        .arg("-o")
        .arg(&out)
        .status();
    match built {
        Ok(s) if s.success() => {
            // Debug info is not needed at run time; BTF (which describes the maps) stays.
            let _ = Command::new("llvm-strip").arg("-g").arg(&out).status();
        }
        failed => {
            let why = match failed {
                Ok(s) => format!("clang failed on {} ({s}; are libbpf-dev's headers installed?)", src.display()),
                Err(e) => format!("clang not found ({e})"),
            };
            println!("cargo:warning={why}: using the committed {}", committed.display());
            std::fs::copy(&committed, &out).expect("copy the committed BPF object");
        }
    }
}
