//! rvsd(8), generated from the same clap definitions as `--help` (`rvsd --generate-man DIR`,
//! which the packaging runs), with the signals, files, environment and the systemd unit added.

use std::path::{Path, PathBuf};

use clap_mangen::roff::{bold, roman, Roff};

/// What the options alone do not say: (section, [(term, text)]).
const SECTIONS: &[(&str, &[(&str, &str)])] = &[
    (
        "SIGNALS",
        &[
            (
                "SIGHUP",
                "Reload the configuration file: the difference with what runs is applied as one all-or-nothing \
                 batch; a refused file changes nothing and the error is logged.",
            ),
            (
                "SIGTERM, SIGINT",
                "Stop accepting, let connections drain for drain_timeout_secs, then close what is left and exit 0.",
            ),
        ],
    ),
    (
        "FILES",
        &[
            ("/etc/rvs/rvsd.toml", "The configuration; see rvsd.toml(5). rvsd --check-config validates it."),
            (
                "/run/rvs/rvsd.sock",
                "The control API's unix socket as the packaged configuration sets it; /run/rvsd.sock, rvsadm's \
                 default, is a link to it.",
            ),
            ("/sys/fs/bpf/rvs/", "Where the packet engine pins its maps and links, so its flows outlive a restart."),
        ],
    ),
    (
        "SYSTEMD",
        &[(
            "rvsd.service",
            "Runs rvsd --config /etc/rvs/rvsd.toml with Type=notify: rvsd sends READY=1 once the configuration is \
             applied and the API answers, RELOADING=1 and then READY=1 around a reload (systemctl reload rvsd sends \
             SIGHUP), and STOPPING=1 when it starts draining. The unit bounds rvsd to CAP_NET_ADMIN, \
             CAP_NET_BIND_SERVICE, CAP_NET_RAW and CAP_BPF.",
        )],
    ),
    (
        "ENVIRONMENT",
        &[
            ("RVSD_LOG", "A tracing filter for the log on stderr (default info; debug for more)."),
            ("RVSD_THREADS", "As --threads."),
            ("NOTIFY_SOCKET", "Set by systemd: where the readiness notifications go."),
        ],
    ),
    ("SEE ALSO", &[("", "rvsadm(8), rvsd.toml(5), ipvsadm(8), systemd.service(5)")]),
];

/// The manual page of `cmd` as roff.
pub fn render(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd).section("8").manual("System Administration");
    let mut page = Vec::new();
    man.render(&mut page)?;
    let mut roff = Roff::new();
    for (title, items) in SECTIONS {
        roff.control("SH", [*title]);
        for (term, text) in *items {
            if term.is_empty() {
                roff.text([roman(*text)]);
            } else {
                roff.control("TP", []).text([bold(*term)]).text([roman(*text)]);
            }
        }
    }
    roff.to_writer(&mut page)?;
    Ok(page)
}

/// Writes `rvsd.8` for `cmd` into `dir`, and a page for each subcommand (`rvsd-demo.8`,
/// `rvsd-real-server-dr.8`, ...) that it names; returns the main page's path.
pub fn write_man(cmd: clap::Command, dir: &Path) -> std::io::Result<PathBuf> {
    fn subcommands(cmd: &clap::Command, dir: &Path) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            subcommands(sub, dir)?;
            let man = clap_mangen::Man::new(sub.clone()).section("8").manual("System Administration");
            man.generate_to(dir)?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir)?;
    // `rvsd help` is there at the command line; the pages need no page of their own for it.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    subcommands(&cmd, dir)?;
    let path = dir.join("rvsd.8");
    std::fs::write(&path, render(cmd)?)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_page_has_every_visible_option_and_the_added_sections() {
        let page = String::from_utf8(super::render(crate::Cli::command()).unwrap()).unwrap();
        for arg in crate::Cli::command().get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                // roff escapes the dashes: \-\-check\-config
                let escaped = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(page.contains(&escaped), "--{long} is missing from rvsd.8");
            }
        }
        for s in ["SIGNALS", "FILES", "SYSTEMD", "real\\-server"] {
            assert!(page.contains(s), "{s} is missing from rvsd.8");
        }
        assert!(!page.contains("generate\\-man"), "hidden options stay out of the page");
    }

    #[test]
    fn each_subcommand_has_its_page() {
        let dir = tempfile::tempdir().unwrap();
        super::write_man(crate::Cli::command(), dir.path()).unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "rvsd-demo.8",
                "rvsd-packet-engine.8",
                "rvsd-real-server-dr.8",
                "rvsd-real-server-tunnel.8",
                "rvsd-real-server.8",
                "rvsd.8"
            ]
        );
        let main = std::fs::read_to_string(dir.path().join("rvsd.8")).unwrap();
        assert!(!main.contains("rvsd\\-help"), "no page is named for `rvsd help`");
    }
}
