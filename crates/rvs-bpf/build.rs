//! Builds the kernel relay's BPF program (bpf/relay.bpf.c) with clang when clang and libbpf's
//! headers are there, and otherwise uses the object committed beside it (bpf/relay.bpf.o, made
//! by the same command), so a machine without them still builds rvs.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/relay.bpf.c";
    let committed = "bpf/relay.bpf.o";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed={committed}");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("relay.bpf.o");
    let arch_include = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let built =
        Command::new("clang").args(["-O2", "-g", "-target", "bpf", &arch_include, "-c", src, "-o"]).arg(&out).status();
    match built {
        Ok(s) if s.success() => {
            // Debug info is not needed at run time; BTF (which describes the maps) stays.
            let _ = Command::new("llvm-strip").arg("-g").arg(&out).status();
        }
        failed => {
            let why = match failed {
                Ok(s) => format!("clang failed ({s}; are libbpf-dev's headers installed?)"),
                Err(e) => format!("clang not found ({e})"),
            };
            println!("cargo:warning={why}: using the committed {committed}");
            std::fs::copy(committed, &out).expect("copy the committed BPF object");
        }
    }
}
