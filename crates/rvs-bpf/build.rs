//! Builds every BPF program of the crate (`bpf/*.bpf.c`: the kernel relay, the XDP packet
//! engine, ...) with clang when clang and libbpf's headers are there, and otherwise uses the
//! object committed beside each source (`bpf/NAME.bpf.o`, made by the same command), so a
//! machine without them still builds rvs. Each object lands in OUT_DIR as `NAME.bpf.o`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=bpf");
    let mut sources: Vec<PathBuf> = std::fs::read_dir("bpf")
        .expect("read bpf/")
        .map(|e| e.expect("a bpf/ entry").path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".bpf.c")))
        .collect();
    sources.sort();
    // Headers every program may include: a change rebuilds them all.
    for entry in std::fs::read_dir("bpf").expect("read bpf/") {
        let path = entry.expect("a bpf/ entry").path();
        if path.extension().is_some_and(|e| e == "h") {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    for src in sources {
        build(&src, &out_dir);
    }
}

fn build(src: &Path, out_dir: &Path) {
    let file = src.file_name().and_then(|f| f.to_str()).expect("a UTF-8 file name");
    let stem = file.strip_suffix(".bpf.c").expect("a .bpf.c file");
    let committed = src.with_file_name(format!("{stem}.bpf.o"));
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", committed.display());
    let out = out_dir.join(format!("{stem}.bpf.o"));
    let arch_include = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let built = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", &arch_include, "-Ibpf", "-c"])
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
