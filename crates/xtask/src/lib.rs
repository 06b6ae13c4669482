//! Build tasks that are not compilation: `dist` generates the manual pages (rvsd(8) and
//! rvsadm(8) from the clap definitions behind `--help`, rvsd.toml(5) from
//! `docs/rvsd.example.toml`), the shell completions (bash, zsh, fish) and the packaged
//! configuration; `deb` builds the Debian package from `[package.metadata.deb]` of
//! `crates/rvsd/Cargo.toml` with dpkg-deb, so it needs no tool beyond dpkg (`cargo deb` reads
//! the same table). Nothing it generates is checked in.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap_complete::Shell;

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root")
}

/// The file name a shell's completions for a command are looked up by.
type CompletionFile = fn(&str) -> String;

/// The three shells completions are generated for, with the file name each wants.
pub const SHELLS: [(Shell, CompletionFile); 3] =
    [(Shell::Bash, |c| format!("{c}.bash")), (Shell::Zsh, |c| format!("_{c}")), (Shell::Fish, |c| format!("{c}.fish"))];

/// The API socket of the example and the one the package's configuration uses instead:
/// `ProtectSystem=strict` leaves only the unit's runtime directory writable under /run.
const EXAMPLE_SOCKET: &str = "socket = \"/run/rvsd.sock\"";
const PACKAGED_SOCKET: &str = "socket = \"/run/rvs/rvsd.sock\"";

/// `/etc/rvs/rvsd.toml` as the package installs it: the example, with the API socket in
/// rvsd.service's runtime directory (`/run/rvsd.sock` links to it through tmpfiles.d).
pub fn packaged_config(example: &str) -> Result<String> {
    if !example.contains(EXAMPLE_SOCKET) {
        bail!("docs/rvsd.example.toml no longer has the line `{EXAMPLE_SOCKET}` that the package moves");
    }
    let body = example.replacen(EXAMPLE_SOCKET, PACKAGED_SOCKET, 1);
    Ok(format!(
        "# /etc/rvs/rvsd.toml, installed by the rvsd package from rvs's docs/rvsd.example.toml (a\n\
         # copy is in /usr/share/doc/rvsd/). See rvsd.toml(5). Edit it, check it with\n\
         # `rvsd --check-config /etc/rvs/rvsd.toml`, then `systemctl enable --now rvsd`\n\
         # (`systemctl reload rvsd` after later edits). The API socket is in /run/rvs, the only\n\
         # place under /run that rvsd.service may write; /run/rvsd.sock links to it.\n\n{body}"
    ))
}

/// Escapes text for roff: backslashes, dashes, and a leading dot or quote.
fn roff_escape(line: &str) -> String {
    let s = line.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with(['.', '\'']) {
        format!("\\&{s}")
    } else {
        s
    }
}

/// The table a line opens (`[api]`, `[[service.real_server]]`, a commented-out `# [sync]`).
fn table_header(line: &str) -> Option<String> {
    let t = line.trim_start();
    let t = t.strip_prefix("# ").filter(|r| r.starts_with('[')).unwrap_or(t);
    if !t.starts_with('[') {
        return None;
    }
    let end = if t.starts_with("[[") { t.find("]]")? + 2 } else { t.find(']')? + 1 };
    Some(t[..end].to_string())
}

/// The example file cut at its table headers: (header, lines). The comment lines right above a
/// header (with no blank line between) go with it; what precedes the first table is the
/// preamble, header "".
pub fn example_tables(example: &str) -> Vec<(String, Vec<String>)> {
    let mut tables: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
    for line in example.lines() {
        if let Some(header) = table_header(line) {
            let current = &mut tables.last_mut().expect("one table").1;
            let keep = current.iter().rposition(|l| !l.trim_start().starts_with('#')).map_or(0, |i| i + 1);
            let moved: Vec<String> = current.split_off(keep);
            tables.push((header, moved));
        }
        tables.last_mut().expect("one table").1.push(line.to_string());
    }
    for (_, lines) in &mut tables {
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
    }
    tables.retain(|(h, lines)| !h.is_empty() || !lines.is_empty());
    tables
}

/// rvsd.toml(5), generated from the example file: the description, then each table of the
/// example as it stands (every setting with its default and its comment).
pub fn config_man_page(example: &str, version: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, ".TH RVSD.TOML 5 \"\" \"rvsd {version}\" \"File Formats\"");
    out.push_str(".SH NAME\nrvsd.toml \\- the configuration file of rvsd, the rvs director\n");
    out.push_str(".SH SYNOPSIS\n/etc/rvs/rvsd.toml\n");
    out.push_str(
        ".SH DESCRIPTION\n\
         The file is TOML. rvsd reads it at start (\\fBrvsd \\-\\-config\\fR FILE) and again at each reload \
         (SIGHUP, \\fBsystemctl reload rvsd\\fR, or POST /v1/reload), and then applies only the difference with \
         what runs, all or nothing: unchanged services and real servers keep their connections and counters; a \
         refused file changes nothing. The file is the source of truth at reload: a change made at run time \
         through the API or rvsadm and not written here is undone by the next reload.\n\
         .PP\n\
         \\fBrvsd \\-\\-check\\-config\\fR FILE validates the file (TLS keys and CA files too) and exits 0 when it is \
         good. Unknown fields are refused. Each error names the file, line, column and the full path of the \
         field, and shows the line:\n\
         .PP\n.nf\n\
         /etc/rvs/rvsd.toml:5:8: service[0].real_server[0].weight: real server 127.0.0.1:81: weight 70000 is out of range 0..=65535\n\
         \x20   | weight=70000\n.fi\n\
         .PP\n\
         The sections below are the example configuration (docs/rvsd.example.toml, installed in \
         /usr/share/doc/rvsd/), table by table: every setting with its default. Tables written [[name]] may appear \
         more than once; a commented-out table is optional.\n",
    );
    for (header, lines) in example_tables(example) {
        if header.is_empty() {
            continue;
        }
        // The http service is a second [[service]] table: its heading says which.
        let http = header == "[[service]]" && lines.iter().any(|l| l.trim_start().starts_with("kind = \"http\""));
        let title = if http { format!("{header}, kind = http") } else { header.clone() };
        let _ = writeln!(out, ".SH \"{}\"", title.replace('"', ""));
        out.push_str(".nf\n");
        for l in &lines {
            out.push_str(&roff_escape(l));
            out.push('\n');
        }
        out.push_str(".fi\n");
    }
    out.push_str(".SH FILES\n/etc/rvs/rvsd.toml, /usr/share/doc/rvsd/rvsd.example.toml\n");
    out.push_str(".SH SEE ALSO\nrvsd(8), rvsadm(8)\n");
    out
}

/// Runs `cmd`, failing with its stderr when it fails.
fn run(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

/// `gzip -9n`: a reproducible compressed copy beside `path` (`path.gz`); the original goes.
fn gzip(path: &Path) -> Result<PathBuf> {
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let data = run(Command::new("gzip").args(["-9", "-n", "-c"]).arg(path))?;
    std::fs::write(&gz, data)?;
    std::fs::remove_file(path)?;
    Ok(gz)
}

/// Generates into `out`: `man/{rvsd.8,rvsadm.8,rvsd.toml.5}.gz`, `completions/` for both
/// commands and the three shells, and `rvsd.toml` (the packaged configuration). rvsd's page
/// and completions come from the rvsd binary in `bin_dir` (its hidden `--generate-man` and
/// `--completions`), rvsadm's from [`rvsadm::manual`].
pub fn dist(bin_dir: &Path, out: &Path) -> Result<()> {
    let root = workspace_root();
    let rvsd = bin_dir.join("rvsd");
    if !rvsd.is_file() {
        bail!("{} is missing: build it first (cargo build --release -p rvsd -p rvsadm)", rvsd.display());
    }
    let man = out.join("man");
    let completions = out.join("completions");
    for d in [&man, &completions] {
        if d.exists() {
            std::fs::remove_dir_all(d)?;
        }
        std::fs::create_dir_all(d)?;
    }
    run(Command::new(&rvsd).arg("--generate-man").arg(&man))?;
    for page in std::fs::read_dir(&man)? {
        gzip(&page?.path())?;
    }
    std::fs::write(man.join("rvsadm.8"), rvsadm::manual::man_page()?)?;
    gzip(&man.join("rvsadm.8"))?;
    let example = std::fs::read_to_string(root.join("docs/rvsd.example.toml")).context("docs/rvsd.example.toml")?;
    std::fs::write(man.join("rvsd.toml.5"), config_man_page(&example, env!("CARGO_PKG_VERSION")))?;
    gzip(&man.join("rvsd.toml.5"))?;
    for (shell, name) in SHELLS {
        let script = run(Command::new(&rvsd).arg("--completions").arg(shell.to_string()))?;
        std::fs::write(completions.join(name("rvsd")), script)?;
        std::fs::write(completions.join(name("rvsadm")), rvsadm::manual::completions(shell))?;
    }
    std::fs::write(out.join("rvsd.toml"), packaged_config(&example)?)?;
    Ok(())
}

/// One `assets` entry of `[package.metadata.deb]`: where the file comes from, where it goes
/// (relative to the root of the package), its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub source: PathBuf,
    pub dest: PathBuf,
    pub mode: u32,
}

/// The package's description, read from `crates/rvsd/Cargo.toml`.
#[derive(Debug, Clone)]
pub struct DebMetadata {
    pub name: String,
    pub version: String,
    pub description: String,
    pub extended: String,
    pub maintainer: String,
    pub depends: String,
    pub section: String,
    pub priority: String,
    pub conf_files: Vec<String>,
    pub maintainer_scripts: PathBuf,
    pub assets: Vec<Asset>,
}

/// A source path whose file name may hold one `*` (cargo-deb's globs, as far as the table
/// uses them), as the files it names, sorted; a path without `*` as itself.
fn expand(source: &Path) -> Result<Vec<PathBuf>> {
    let name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let Some((prefix, suffix)) = name.split_once('*') else { return Ok(vec![source.to_path_buf()]) };
    let dir = source.parent().context("a glob without a directory")?;
    let mut found: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.len() >= prefix.len() + suffix.len() && n.starts_with(prefix) && n.ends_with(suffix)
            })
            .map(|e| e.path())
            .collect(),
        // Not generated yet: the glob names nothing, as in cargo-deb before its build.
        Err(_) => Vec::new(),
    };
    found.sort();
    Ok(found)
}

/// Reads `[package.metadata.deb]` as cargo-deb does: sources are relative to the package's
/// directory, except `target/release/...`, the build's output (here `bin_dir`), and
/// `../../target/dist/...`, what [`dist`] generated (here `dist_dir`); a destination ending in
/// `/` keeps the source's file name.
pub fn deb_metadata(bin_dir: &Path, dist_dir: &Path) -> Result<DebMetadata> {
    let root = workspace_root();
    let pkg_dir = root.join("crates/rvsd");
    let manifest: toml::Value = std::fs::read_to_string(pkg_dir.join("Cargo.toml"))?.parse()?;
    let package = &manifest["package"];
    let deb = package.get("metadata").and_then(|m| m.get("deb")).context("no [package.metadata.deb]")?;
    let s = |key: &str| -> Result<String> {
        Ok(deb.get(key).and_then(|v| v.as_str()).with_context(|| format!("[package.metadata.deb] {key}"))?.to_string())
    };
    let workspace: toml::Value = std::fs::read_to_string(root.join("Cargo.toml"))?.parse()?;
    let version = workspace["workspace"]["package"]["version"].as_str().context("the workspace's version")?;
    let mut assets = Vec::new();
    for a in deb.get("assets").and_then(|a| a.as_array()).context("[package.metadata.deb] assets")? {
        let a: Vec<&str> = a.as_array().map(|v| v.iter().filter_map(|x| x.as_str()).collect()).unwrap_or_default();
        let [src, dest, mode] = a[..] else { bail!("an asset is [source, destination, mode]: {a:?}") };
        let source = if let Some(rest) = src.strip_prefix("target/release/") {
            bin_dir.join(rest)
        } else if let Some(rest) = src.strip_prefix("../../target/dist/") {
            dist_dir.join(rest)
        } else {
            pkg_dir.join(src)
        };
        let mode = u32::from_str_radix(mode, 8)?;
        for source in expand(&source)? {
            let mut dest = PathBuf::from(dest);
            if dest.to_string_lossy().ends_with('/') {
                dest = dest.join(source.file_name().context("an asset without a file name")?);
            }
            assets.push(Asset { source, dest, mode });
        }
    }
    Ok(DebMetadata {
        name: s("name")?,
        version: format!("{version}-{}", s("revision")?),
        description: package["description"].as_str().unwrap_or("rvsd").trim_end_matches('.').to_string(),
        extended: s("extended-description")?,
        maintainer: s("maintainer")?,
        depends: s("depends")?,
        section: s("section")?,
        priority: s("priority")?,
        conf_files: deb
            .get("conf-files")
            .and_then(|c| c.as_array())
            .map(|c| c.iter().filter_map(|x| x.as_str().map(String::from)).collect())
            .unwrap_or_default(),
        maintainer_scripts: pkg_dir.join(s("maintainer-scripts")?),
        assets,
    })
}

/// Wraps the extended description as a control file wants it (each line begins with a space).
fn control_description(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > 78 {
            let _ = writeln!(out, " {line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, " {line}");
    }
    out
}

/// The files under `root/rel`, as paths relative to `root`.
fn list_files(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let path = rel.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            list_files(root, &path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn dir_size(path: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { dir_size(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}

/// How dpkg-deb compresses the package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// xz, as Debian's packages are (for a release build).
    Xz,
    /// gzip -1: seconds instead of minutes for the debug binaries a test packages.
    Fast,
}

/// Builds the package into `out_dir` from the binaries in `bin_dir` (after [`dist`] into
/// `out_dir/dist`); returns the .deb's path.
pub fn deb(bin_dir: &Path, out_dir: &Path, compression: Compression) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dist_dir = out_dir.join("dist");
    dist(bin_dir, &dist_dir)?;
    let meta = deb_metadata(bin_dir, &dist_dir)?;
    let arch = String::from_utf8(run(Command::new("dpkg").arg("--print-architecture"))?)?.trim().to_string();
    let stage = out_dir.join("deb-root");
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    for a in &meta.assets {
        let to = stage.join(&a.dest);
        std::fs::create_dir_all(to.parent().expect("a destination in a directory"))?;
        std::fs::copy(&a.source, &to).with_context(|| format!("asset {}", a.source.display()))?;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(a.mode))?;
    }
    // As cargo-deb does: the binaries without their debug sections, where binutils is here.
    if Command::new("strip").arg("--version").output().is_ok_and(|o| o.status.success()) {
        for a in meta.assets.iter().filter(|a| a.dest.starts_with("usr/sbin")) {
            run(Command::new("strip").arg("--strip-debug").arg(stage.join(&a.dest)))?;
        }
    }
    let doc = stage.join("usr/share/doc").join(&meta.name);
    std::fs::create_dir_all(&doc)?;
    std::fs::write(
        doc.join("copyright"),
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: rvs\n\nFiles: *\nCopyright: rvs developers\nLicense: Apache-2.0\n \
         On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.\n",
    )?;
    let installed_kib = dir_size(&stage)?.div_ceil(1024);
    let mut files = Vec::new();
    list_files(&stage, Path::new(""), &mut files)?;
    files.sort();
    let md5sums = run(Command::new("md5sum").current_dir(&stage).args(&files))?;
    let control_dir = stage.join("DEBIAN");
    std::fs::create_dir_all(&control_dir)?;
    let control = format!(
        "Package: {}\nVersion: {}\nArchitecture: {arch}\nMaintainer: {}\nInstalled-Size: {installed_kib}\n\
         Depends: {}\nSection: {}\nPriority: {}\nDescription: {}\n{}",
        meta.name,
        meta.version,
        meta.maintainer,
        meta.depends,
        meta.section,
        meta.priority,
        meta.description,
        control_description(&meta.extended)
    );
    std::fs::write(control_dir.join("control"), control)?;
    std::fs::write(control_dir.join("md5sums"), md5sums)?;
    if !meta.conf_files.is_empty() {
        std::fs::write(control_dir.join("conffiles"), meta.conf_files.join("\n") + "\n")?;
    }
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        let from = meta.maintainer_scripts.join(script);
        if from.is_file() {
            let to = control_dir.join(script);
            std::fs::copy(&from, &to)?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    let deb = out_dir.join(format!("{}_{}_{arch}.deb", meta.name, meta.version));
    let compress: &[&str] = match compression {
        Compression::Xz => &["-Zxz"],
        Compression::Fast => &["-Zgzip", "-z1"],
    };
    run(Command::new("dpkg-deb").arg("--root-owner-group").args(compress).arg("--build").arg(&stage).arg(&deb))?;
    Ok(deb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> String {
        std::fs::read_to_string(workspace_root().join("docs/rvsd.example.toml")).unwrap()
    }

    #[test]
    fn the_example_is_cut_at_its_tables_with_their_leading_comments() {
        let tables = example_tables(&example());
        let headers: Vec<&str> = tables.iter().map(|(h, _)| h.as_str()).collect();
        for h in ["[api]", "[director]", "[timeouts]", "[sync]", "[[service]]", "[[service.real_server]]"] {
            assert!(headers.contains(&h), "{h} in {headers:?}");
        }
        // The comment above the http service opens its table, not the end of the one before.
        let http = tables.iter().filter(|(h, _)| h == "[[service]]").nth(1).expect("two services");
        assert!(http.1[0].starts_with("# A Layer-7 virtual service"), "{:?}", http.1);
        // Every line of the example is in the page's tables, once.
        let lines: usize = tables.iter().map(|(_, l)| l.len()).sum();
        let non_trailing = example().lines().count();
        assert!(lines <= non_trailing && lines + 20 > non_trailing, "{lines} of {non_trailing}");
    }

    #[test]
    fn the_config_page_has_every_setting_of_the_example() {
        let page = config_man_page(&example(), "0.0.0");
        assert!(page.starts_with(".TH RVSD.TOML 5"));
        assert!(page.contains(".SH \"[[service]], kind = http\""), "{page}");
        for key in ["connect_timeout_ms", "drain_timeout_secs", "u_threshold", "proxy_protocol", "default_pool"] {
            assert!(page.contains(&key.replace('-', "\\-")), "{key}");
        }
        // No line of the page starts a roff request by accident.
        for line in page.lines().filter(|l| l.starts_with('.')) {
            let request = line[1..].split_whitespace().next().unwrap_or("");
            assert!(["TH", "SH", "PP", "nf", "fi"].contains(&request), "{line}");
        }
    }

    #[test]
    fn the_packaged_config_moves_only_the_socket() {
        let packaged = packaged_config(&example()).unwrap();
        assert!(packaged.contains(PACKAGED_SOCKET) && !packaged.contains(EXAMPLE_SOCKET));
        let settings = |t: &str| t.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).count();
        assert_eq!(settings(&packaged), settings(&example()));
    }

    #[test]
    fn the_metadata_names_files_that_exist_or_are_generated() {
        let bin = Path::new("/nonexistent/bin");
        let dist = Path::new("/nonexistent/dist");
        let meta = deb_metadata(bin, dist).unwrap();
        assert_eq!(meta.name, "rvsd");
        assert!(meta.version.ends_with("-1"));
        let dests: Vec<String> = meta.assets.iter().map(|a| a.dest.display().to_string()).collect();
        for d in ["usr/sbin/rvsd", "usr/sbin/rvsadm", "etc/rvs/rvsd.toml", "lib/systemd/system/rvsd.service"] {
            assert!(dests.iter().any(|x| x == d), "{d} in {dests:?}");
        }
        for a in &meta.assets {
            if !a.source.starts_with(bin) && !a.source.starts_with(dist) {
                assert!(a.source.is_file(), "{} is missing", a.source.display());
            }
        }
        assert_eq!(meta.conf_files, ["/etc/rvs/rvsd.toml"]);
        assert!(meta.maintainer_scripts.join("postinst").is_file());
    }
}
