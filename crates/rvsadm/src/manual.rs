//! rvsadm(8) and the shell completions the package installs, from a clap [`Command`] that is
//! a projection of [`OPTIONS`]: rvsadm parses ipvsadm's grammar itself ([`crate::parse`]),
//! and this command only describes the same table, so the manual, the completions and
//! `--help` cannot list different options.

use clap::{Arg, ArgAction, Command, ValueHint};
use clap_mangen::roff::{roman, Roff};

use crate::options::{ArgKind, OptDef, Section, OPTIONS};

/// The heading of `section` in the manual (its `--help` title without the colon).
fn heading(section: Section) -> &'static str {
    let title = section.title();
    let first = title.lines().next().unwrap_or(title);
    first.strip_suffix(':').unwrap_or(first)
}

/// Whether the option's completion values are whole words (not prefixes such as `host=`).
fn whole_words(d: &OptDef) -> bool {
    !d.values.is_empty() && d.values.iter().all(|v| !v.ends_with(['=', ':']))
}

/// One option of the table as a clap argument.
pub fn arg(d: &OptDef) -> Arg {
    let mut a = Arg::new(d.long).long(d.long).help(d.help).help_heading(heading(d.section));
    if let Some((first, rest)) = d.shorts.split_first() {
        a = a.short(*first);
        for c in rest {
            a = a.visible_short_alias(*c);
        }
    }
    a = match d.arg {
        ArgKind::Flag => a.num_args(0).action(ArgAction::SetTrue),
        ArgKind::Value(v) => {
            a.value_name(v).num_args(1).action(if d.repeat { ArgAction::Append } else { ArgAction::Set })
        }
        ArgKind::Optional(v) => a.value_name(v).num_args(0..=1).action(ArgAction::Set),
    };
    if whole_words(d) {
        a = a.value_parser(clap::builder::PossibleValuesParser::new(d.values.iter().copied()));
    }
    let address = (d.long.ends_with("-service") && d.long != "fwmark-service") || d.long.ends_with("-server");
    if d.long == "api" {
        a = a.value_hint(ValueHint::AnyPath);
    } else if address && d.arg != ArgKind::Flag {
        a = a.value_hint(ValueHint::Hostname);
    }
    a
}

/// rvsadm's options as a clap command (for the manual and the completions, not for parsing).
pub fn command() -> Command {
    let usage: Vec<String> =
        OPTIONS.iter().filter(|d| !d.usage.is_empty()).map(|d| format!("rvsadm {}", d.usage)).collect();
    let mut cmd = Command::new("rvsadm")
        .version(env!("CARGO_PKG_VERSION"))
        .about("the ipvsadm-compatible administration tool for rvsd")
        .long_about(
            "rvsadm is ipvsadm 1.31's command line for rvsd, the rvs director: the same commands and options \
             (short and long, clustered short options, --opt=value), the same checks, messages and exit statuses, \
             and the same listings. The first option is the command. rvsadm talks to rvsd only through its control \
             API: the unix socket (/run/rvsd.sock, --api PATH or $RVSADM_API) or the loopback TCP API \
             (--api http://127.0.0.1:PORT with the bearer token in $RVSADM_TOKEN).",
        )
        .override_usage(usage.join("\n"))
        .disable_help_flag(true)
        .disable_version_flag(true);
    for d in OPTIONS {
        cmd = cmd.arg(arg(d));
    }
    cmd
}

/// rvsadm(8) as roff.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let cmd = command();
    let man = clap_mangen::Man::new(cmd.clone()).section("8").manual("System Administration");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    // The synopsis is ipvsadm's: one line per command (clap's would list every option).
    let mut roff = Roff::new();
    roff.control("SH", ["SYNOPSIS"]);
    for d in OPTIONS.iter().filter(|d| !d.usage.is_empty()) {
        roff.text([roman(format!("rvsadm {}", d.usage))]).control("br", []);
    }
    roff.to_writer(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    let mut roff = Roff::new();
    roff.control("SH", ["DIFFERENCES FROM IPVSADM"]);
    for line in crate::help::DIFFERENCES.lines() {
        roff.text([roman(line.strip_prefix("Differences from ipvsadm: ").unwrap_or(line))]).control("PP", []);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    roff.control("TP", []).text([roman("RVSADM_API")]).text([roman("rvsd's API when --api is not given.")]);
    roff.control("TP", []).text([roman("RVSADM_TOKEN")]).text([roman("The bearer token of the TCP API.")]);
    roff.control("SH", ["EXIT STATUS"]);
    roff.text([roman(
        "0 on success; 2 for what ipvsadm refuses (an illegal option for the command, a bad value, an error from \
         rvsd); 255 for what its option parser refuses.",
    )]);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman("rvsd(8), rvsd.toml(5), ipvsadm(8)")]);
    roff.to_writer(&mut page)?;
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command(), "rvsadm", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{by_long, by_short};

    #[test]
    fn the_command_is_well_formed() {
        command().debug_assert();
    }

    /// Both ways: every option of the table is in the command with the same names and arity,
    /// and every argument of the command is an option the parser knows.
    #[test]
    fn the_command_and_the_parsers_table_list_the_same_options() {
        let cmd = command();
        for d in OPTIONS {
            let a =
                cmd.get_arguments().find(|a| a.get_id() == d.long).unwrap_or_else(|| panic!("--{} missing", d.long));
            assert_eq!(a.get_long(), Some(d.long));
            let shorts: Vec<char> =
                a.get_short().into_iter().chain(a.get_visible_short_aliases().unwrap_or_default()).collect();
            assert_eq!(shorts, d.shorts, "--{}", d.long);
            let arity = a.get_num_args().expect("set by arg()");
            match d.arg {
                ArgKind::Flag => assert_eq!(arity.max_values(), 0, "--{}", d.long),
                ArgKind::Value(_) => assert_eq!((arity.min_values(), arity.max_values()), (1, 1), "--{}", d.long),
                ArgKind::Optional(_) => assert_eq!((arity.min_values(), arity.max_values()), (0, 1), "--{}", d.long),
            }
        }
        for a in cmd.get_arguments() {
            let long = a.get_long().expect("every option has a long name");
            assert!(by_long(long).is_some(), "--{long} is not in the parser's table");
            for c in a.get_short().into_iter().chain(a.get_visible_short_aliases().unwrap_or_default()) {
                assert_eq!(by_short(c).map(|d| d.long), Some(long), "-{c}");
            }
        }
        assert_eq!(cmd.get_arguments().count(), OPTIONS.len());
    }

    /// What the parser accepts with each option is what the manual says it takes.
    #[test]
    fn the_parser_takes_the_values_the_command_describes() {
        let argv = |words: &[&str]| -> Vec<String> {
            std::iter::once("rvsadm").chain(words.iter().copied()).map(String::from).collect()
        };
        // A required value: the parser refuses the option without one.
        let err = crate::parse::parse(&argv(&["-A", "-t"])).expect_err("-t needs a value");
        assert!(!err.message.is_empty());
        // An optional value: -p alone and -p 600 are both taken.
        crate::parse::parse(&argv(&["-A", "-t", "10.0.0.1:80", "-p"])).expect("-p without a value");
        crate::parse::parse(&argv(&["-A", "-t", "10.0.0.1:80", "-p", "600"])).expect("-p with a value");
        // A flag takes none.
        crate::parse::parse(&argv(&["-L", "-n"])).expect("-n is a flag");
    }

    #[test]
    fn the_page_lists_every_option_and_the_synopsis() {
        let page = String::from_utf8(man_page().unwrap()).unwrap();
        for d in OPTIONS {
            let escaped = format!("\\-\\-{}", d.long.replace('-', "\\-"));
            assert!(page.contains(&escaped), "--{} is missing from rvsadm.8", d.long);
        }
        assert!(page.contains(".SH SYNOPSIS"), "{page}");
        assert!(page.contains("DIFFERENCES FROM IPVSADM"));
        assert!(page.contains("wlc"));
    }

    #[test]
    fn completions_name_every_long_option() {
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
            let text = String::from_utf8(completions(shell)).unwrap();
            for d in OPTIONS {
                assert!(text.contains(d.long), "{shell}: --{} missing", d.long);
            }
        }
    }
}
