//! srvd's entry point: parse the command line, set up logging, run, and map
//! the outcome to an exit code (see `srvd --help`).

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};

use srvd::cli::{Cli, Command, translate_legacy};
use srvd::config::{ConfigError, Flags};
use srvd::{daemon, engine, logging, systemd};

/// EX_CONFIG from sysexits.h: the config is wrong, restarting will not help.
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse_from(translate_legacy(std::env::args_os()));
    logging::init(cli.log_level, systemd::stderr_is_journal());
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = if e.chain().any(|c| c.is::<ConfigError>()) {
                EXIT_CONFIG
            } else {
                1
            };
            log::error!("{e:#}");
            if !systemd::stderr_is_journal() && !log::log_enabled!(log::Level::Error) {
                eprintln!("srvd: {e:#}");
            }
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    let flags = Flags {
        dry_run: cli.dry_run,
        no_reload: cli.no_reload,
        no_check: cli.no_check,
        oneshot: cli.oneshot,
    };
    match cli.command {
        None => daemon::run(daemon::Options {
            config: cli.config,
            flags,
            no_status: cli.no_status,
            status_listen: cli.status_listen,
        }),
        Some(Command::Check) => check(&cli.config),
        Some(Command::Render { zone, template }) => render(&cli.config, zone, template),
        Some(Command::Generate { man, completions }) => generate(man, completions),
        Some(Command::MigrateTemplate { file }) => migrate_template(&file),
    }
}

/// `srvd migrate-template`: the Tera form of a Go srvd template on stdout.
fn migrate_template(path: &std::path::Path) -> Result<u8> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading template {}", path.display()))?;
    match srvd::migrate::convert(&text) {
        Ok(converted) => {
            for note in &converted.notes {
                log::warn!("{}:{note}", path.display());
            }
            print!("{}", converted.text);
            Ok(0)
        }
        Err(problems) => {
            let lines: Vec<String> = problems
                .iter()
                .map(|p| format!("{}:{p}", path.display()))
                .collect();
            anyhow::bail!(
                "cannot convert {} (see docs/migrating-templates.md):\n{}",
                path.display(),
                lines.join("\n")
            )
        }
    }
}

/// `srvd check`: refuses what start-up or a first render would refuse. The
/// config and every template load and render against sample records
/// (`engine::load`, as at start), and against the zone file's records when
/// there is one; what may come right later (a command not installed yet,
/// an owner that does not resolve yet, a domain the zone file lacks) is a
/// warning.
fn check(path: &std::path::Path) -> Result<u8> {
    let loaded = engine::load(path, Flags::default())?;
    for t in &loaded.settings.templates {
        for (key, cmd) in [("check_cmd", &t.check_cmd), ("reload_cmd", &t.reload_cmd)] {
            if let Some(cmd) = cmd {
                let argv = cmd.expand(&t.dest, &t.dest);
                if let Some(problem) = program_problem(&argv[0]) {
                    log::warn!("{}: `{key}`: {problem}", t.name);
                }
            }
        }
        for problem in t.perms.unresolved() {
            log::warn!(
                "{}: {problem}: srvd starts, and this template fails (and retries) until it resolves",
                t.name
            );
        }
    }
    if let srvd::config::RecordSource::ZoneFile(zone) = &loaded.settings.source {
        let problems = render_zone(&loaded, zone);
        if !problems.is_empty() {
            return Err(ConfigError {
                path: path.display().to_string(),
                problems,
            }
            .into());
        }
    }
    let names: Vec<&str> = loaded
        .settings
        .templates
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    println!(
        "{}: OK ({} template{}: {})",
        path.display(),
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    Ok(0)
}

/// Renders every template against the records of the zone file at `zone`,
/// as its first render will. Returns the templates that fail to render; a
/// domain whose records cannot be used is a warning (the daemon retries it).
fn render_zone(loaded: &engine::Loaded, zone: &std::path::Path) -> Vec<String> {
    use srvd::records::{self, Srv};
    let file = srvd::zone::ZoneFile::open(zone);
    let host = srvd::render::host_name();
    let mut problems = Vec::new();
    'templates: for (i, t) in loaded.settings.templates.iter().enumerate() {
        let mut sets: Vec<Vec<Srv>> = Vec::new();
        for d in &t.domains {
            let answer = file
                .srv(&d.name)
                .and_then(|a| records::usable(&a, t.allow_empty, t.min_records).map(|()| a));
            let mut answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    log::warn!("{}: {}: {e} in {}", t.name, d.text, zone.display());
                    continue 'templates;
                }
            };
            if t.resolve_targets {
                answer.records.retain_mut(|r| {
                    let addrs = hickory_proto::rr::Name::from_ascii(&r.target)
                        .ok()
                        .and_then(|n| file.addrs(&n).ok())
                        .map(|(addrs, _)| addrs)
                        .unwrap_or_default();
                    r.set_addrs(&addrs);
                    !addrs.is_empty()
                });
            }
            sets.push(answer.records);
        }
        let domains: Vec<(&str, &[Srv])> = (t.domains.iter().zip(&sets))
            .map(|(d, r)| (d.text.as_str(), r.as_slice()))
            .collect();
        if let Err(e) = loaded.renderer.render(i, &domains, &host) {
            problems.push(format!(
                "template {:?} fails to render with the records of {}: {e}",
                t.name,
                zone.display()
            ));
        }
    }
    problems
}

/// Why `program` would not run, if it is plainly missing.
fn program_problem(program: &std::ffi::OsStr) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let p = std::path::Path::new(program);
    let found = if p.components().count() > 1 {
        Some(p.to_owned())
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(p))
                .find(|c| c.is_file())
        })
    };
    match found {
        None => Some(format!("{} not found in PATH", p.display())),
        Some(f) => match std::fs::metadata(&f) {
            Err(e) => Some(format!("{}: {e}", f.display())),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => {
                Some(format!("{} is not executable", f.display()))
            }
            Ok(_) => None,
        },
    }
}

/// `srvd render`: print what each template renders to now.
fn render(
    path: &std::path::Path,
    zone: Option<std::path::PathBuf>,
    only: Option<String>,
) -> Result<u8> {
    let mut loaded = engine::load(path, Flags::default())?;
    if let Some(zone) = zone {
        loaded.settings.source = srvd::config::RecordSource::ZoneFile(zone);
    }
    let templates = loaded.settings.templates.clone();
    let picked: Vec<usize> = match &only {
        Some(name) => {
            let i = templates
                .iter()
                .position(|t| &t.name == name || t.dest.as_os_str() == name.as_str())
                .with_context(|| {
                    let names: Vec<&str> = templates.iter().map(|t| t.name.as_str()).collect();
                    format!(
                        "no template named {name:?}; the templates in {} are: {} (a dest path works too)",
                        path.display(),
                        names.join(", ")
                    )
                })?;
            vec![i]
        }
        None => (0..templates.len()).collect(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (_stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut engine = engine::Engine::new(loaded, path, stop_rx)?;
        let mut failed = false;
        let several = picked.len() > 1;
        for i in picked {
            match engine.preview(i).await {
                Ok(bytes) => {
                    use std::io::Write;
                    if several {
                        println!("==> {} <==", templates[i].name);
                    }
                    std::io::stdout().write_all(&bytes)?;
                }
                Err(e) => {
                    log::error!("{}: {e}", templates[i].name);
                    failed = true;
                }
            }
        }
        Ok(if failed { 1 } else { 0 })
    })
}

/// `srvd generate`: the man pages (srvd(8) and one per subcommand) and the
/// completions, from the clap definition.
fn generate(
    man: Option<std::path::PathBuf>,
    completions: Option<std::path::PathBuf>,
) -> Result<u8> {
    if let Some(dir) = man {
        std::fs::create_dir_all(&dir)?;
        let mut cmd = Cli::command().disable_help_subcommand(true);
        cmd.build();
        let page = clap_mangen::Man::new(cmd.clone()).section("8");
        let mut out = Vec::new();
        page.render_title(&mut out)?;
        page.render_name_section(&mut out)?;
        page.render_synopsis_section(&mut out)?;
        page.render_description_section(&mut out)?;
        page.render_options_section(&mut out)?;
        page.render_subcommands_section(&mut out)?;
        out.extend_from_slice(MAN_EXIT_STATUS.as_bytes());
        page.render_version_section(&mut out)?;
        let path = dir.join("srvd.8");
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            clap_mangen::Man::new(sub.clone())
                .section("8")
                .generate_to(&dir)
                .with_context(|| format!("writing the man page of {}", sub.get_name()))?;
        }
    }
    if let Some(dir) = completions {
        use clap_complete::{Shell, generate_to};
        std::fs::create_dir_all(&dir)?;
        let mut cmd = Cli::command();
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            generate_to(shell, &mut cmd, "srvd", &dir)
                .with_context(|| format!("writing {shell} completions"))?;
        }
    }
    Ok(0)
}

/// The parts of srvd(8) that clap does not describe.
const MAN_EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success; with \fB\-\-oneshot\fR or \fB\-\-dry\-run\fR, every template is up to date or was (would be) updated.
.TP
\fB1\fR
A template failed (\fB\-\-oneshot\fR, \fB\-\-dry\-run\fR), or a runtime error.
.TP
\fB2\fR
Bad command line.
.TP
\fB78\fR
Bad config or template (EX_CONFIG). The packaged units do not restart on it.
.SH SIGNALS
.TP
\fBSIGHUP\fR
Re\-read the config and the templates; a bad config is refused and the running one stays.
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop: running check and reload commands are killed with their process group.
.SH FILES
.TP
\fI/etc/srvd/srvd.toml\fR
The default config.
.SH "SEE ALSO"
\fBsrvd.toml\fR(5), \fBsrvd\-check\fR(8), \fBsrvd\-render\fR(8), \fBsrvd\-migrate\-template\fR(8), \fBsystemd.service\fR(5), \fBhaproxy\fR(1)
"#;
