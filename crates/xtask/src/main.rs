//! `cargo run -p xtask -- dist [--bin-dir DIR] [--out DIR]`: man pages, completions and the
//! packaged configuration into DIR (default target/dist).
//! `cargo run -p xtask -- deb [--bin-dir DIR] [--out DIR]`: the Debian package into DIR
//! (default target/debian). The binaries come from --bin-dir (default target/release).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = xtask::workspace_root();
    let mut bin_dir = root.join("target/release");
    let mut out = None;
    let mut words = args.iter();
    let task = words.next().map(String::as_str);
    while let Some(w) = words.next() {
        match (w.as_str(), words.next()) {
            ("--bin-dir", Some(d)) => bin_dir = PathBuf::from(d),
            ("--out", Some(d)) => out = Some(PathBuf::from(d)),
            _ => return usage(&format!("unknown or incomplete option {w}")),
        }
    }
    let result = match task {
        Some("dist") => {
            let out = out.unwrap_or_else(|| root.join("target/dist"));
            xtask::dist(&bin_dir, &out).map(|()| out)
        }
        Some("deb") => {
            // Debug binaries are ten times larger: compress them fast.
            let fast = bin_dir.ends_with("debug");
            let compression = if fast { xtask::Compression::Fast } else { xtask::Compression::Xz };
            xtask::deb(&bin_dir, &out.unwrap_or_else(|| root.join("target/debian")), compression)
        }
        _ => return usage("give a task: dist or deb"),
    };
    match result {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("xtask: {why}\nusage: cargo run -p xtask -- dist|deb [--bin-dir DIR] [--out DIR]");
    ExitCode::from(2)
}
