//! The command line. Also the source of the srvd(8) man page and the shell
//! completions (`srvd generate`), so they never drift from `--help`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use log::LevelFilter;

use crate::config::DEFAULT_PATH;

/// Render config files from DNS SRV records, check them, swap them in
/// atomically and reload the middleware that reads them.
#[derive(Debug, Parser)]
#[command(
    name = "srvd",
    version,
    about,
    long_about = "srvd polls DNS SRV records (or a zone file), renders each configured \
        template with them, validates the result with the template's check command, \
        replaces the destination file atomically and runs the reload command, only when \
        the output really changed and never with a broken or empty config.\n\n\
        Without a subcommand srvd runs as a daemon (Type=notify under systemd). \
        SIGHUP re-reads the config and templates; SIGTERM stops it.",
    after_help = "Exit status: 0 success; 1 a template failed (--oneshot, --dry-run) or a \
        runtime error; \
        2 bad command line; 78 bad config or template.\n\
        The Go srvd's single-dash flags (-config, -oneshot, -dryrun, -noreload, -nocheck, \
        -nohttpd, -version) are accepted too."
)]
pub struct Cli {
    /// The config file.
    #[arg(short, long, value_name = "PATH", default_value = DEFAULT_PATH, global = true)]
    pub config: PathBuf,

    /// Run one cycle and exit: 0 if every template is up to date or was
    /// updated, 1 if any failed.
    #[arg(long)]
    pub oneshot: bool,

    /// Render and print what would change as a diff; write nothing, reload
    /// nothing. One cycle, then exit, with --oneshot's exit status: 0 if every
    /// template is up to date or would be updated, 1 if any failed.
    #[arg(long, visible_alias = "dryrun")]
    pub dry_run: bool,

    /// Write changes but run no reload command.
    #[arg(long, visible_alias = "noreload")]
    pub no_reload: bool,

    /// Write changes without running the check command.
    #[arg(long, visible_alias = "nocheck")]
    pub no_check: bool,

    /// Do not serve the status endpoint.
    #[arg(long, visible_alias = "nohttpd")]
    pub no_status: bool,

    /// Serve the status endpoint (/status, /metrics) on this address and
    /// port, e.g. 127.0.0.1:9161, instead of status_addr and status_port
    /// (and even with nohttpd). A socket passed by systemd still wins.
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "no_status")]
    pub status_listen: Option<std::net::SocketAddr>,

    /// Log level for srvd's own messages: error, warn, info, debug, trace
    /// (default info; RUST_LOG is used when this is not given).
    #[arg(
        long,
        value_name = "LEVEL",
        global = true,
        value_parser = log_level(),
        hide_possible_values = true
    )]
    pub log_level: Option<LevelFilter>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config and compile every template, like `nginx -t`.
    Check,
    /// Look up the records and print each rendered template to stdout.
    Render {
        /// Take the records from this RFC 1035 zone file instead of DNS.
        #[arg(long, value_name = "FILE")]
        zone: Option<PathBuf>,
        /// Only this template (its `name`, or its dest).
        #[arg(long, value_name = "NAME")]
        template: Option<String>,
    },
    /// Convert a Go srvd template to Tera and print it on stdout.
    ///
    /// The Go text/template is converted so that it renders the same bytes;
    /// notes on stderr say where srvd's output may still differ. What cannot
    /// be converted is listed with its line and column, and srvd exits 1.
    MigrateTemplate {
        /// The Go srvd template, e.g. /etc/haproxy/haproxy.cfg.tmpl.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Write the man page and shell completions (used by packaging).
    #[command(hide = true)]
    Generate {
        /// Directory for srvd.8.
        #[arg(long, value_name = "DIR")]
        man: Option<PathBuf>,
        /// Directory for srvd.bash, _srvd (zsh) and srvd.fish.
        #[arg(long, value_name = "DIR")]
        completions: Option<PathBuf>,
    },
}

/// `--log-level`'s parser: clap then lists the levels when one is misspelt
/// (`verbose`), which the `log` crate's own FromStr does not.
fn log_level() -> impl clap::builder::TypedValueParser<Value = LevelFilter> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["off", "error", "warn", "info", "debug", "trace"])
        .map(|s| s.parse::<LevelFilter>().unwrap_or(LevelFilter::Info))
}

/// The Go srvd's flags, as Go's flag package spells them, and their names here.
const LEGACY: &[(&str, &str)] = &[
    ("config", "--config"),
    ("oneshot", "--oneshot"),
    ("dryrun", "--dry-run"),
    ("noreload", "--no-reload"),
    ("nocheck", "--no-check"),
    ("nohttpd", "--no-status"),
    ("version", "--version"),
];

/// Rewrites the Go srvd's single-dash flags (`-config x`, `-config=x`,
/// `-dryrun`, `-dryrun=true`...) to their double-dash names; everything
/// else passes through untouched.
pub fn translate_legacy(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    for arg in args {
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        let Some(flag) = text.strip_prefix('-').filter(|f| !f.starts_with('-')) else {
            out.push(arg);
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        match LEGACY.iter().find(|(old, _)| *old == name) {
            Some(("config", new)) => out.push(match value {
                Some(v) => format!("{new}={v}").into(),
                None => (*new).into(),
            }),
            Some((_, new)) => match value {
                None | Some("true") | Some("1") => out.push((*new).into()),
                Some("false") | Some("0") => {}
                Some(_) => out.push(arg),
            },
            None => out.push(arg),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(args: &[&str]) -> Vec<String> {
        translate_legacy(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn go_flags_become_long_flags() {
        assert_eq!(
            t(&["srvd", "-config", "srvd.toml", "-oneshot", "-dryrun"]),
            ["srvd", "--config", "srvd.toml", "--oneshot", "--dry-run"]
        );
        assert_eq!(
            t(&["srvd", "-config=/x.toml"]),
            ["srvd", "--config=/x.toml"]
        );
        assert_eq!(
            t(&["srvd", "-noreload=true", "-nocheck=false"]),
            ["srvd", "--no-reload"]
        );
        assert_eq!(
            t(&["srvd", "-nohttpd", "-version"]),
            ["srvd", "--no-status", "--version"]
        );
    }

    #[test]
    fn other_arguments_are_untouched() {
        assert_eq!(
            t(&["srvd", "-c", "x", "--oneshot", "render"]),
            ["srvd", "-c", "x", "--oneshot", "render"]
        );
    }

    #[test]
    fn legacy_and_new_flags_parse_to_the_same() {
        let old = Cli::try_parse_from(translate_legacy(
            ["srvd", "-config", "/a.toml", "-dryrun", "-nohttpd"].map(OsString::from),
        ))
        .unwrap();
        assert_eq!(old.config, PathBuf::from("/a.toml"));
        assert!(old.dry_run && old.no_status);
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
