//! Validated settings: what the daemon runs on. Every value here has been
//! checked, defaults are filled in, and the top-level template keys have been
//! merged into each template, so nothing downstream looks at raw TOML.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::{FileConfig, Id, Net, TemplateTable, Wait, WriteMode};
use super::names::{Domain, parse_nameserver};
use super::paths::same_file;
use crate::command::CommandLine;
use crate::dns_notify::{self, settings::DnsNotifySettings};
use crate::haproxy::socket::CliAddress;

/// Defaults, documented in the README and srvd.toml(5).
pub mod defaults {
    use std::time::Duration;
    pub const INTERVAL: Duration = Duration::from_secs(1);
    pub const TIMEOUT: Duration = Duration::from_secs(10);
    pub const COOLDOWN: Duration = Duration::ZERO;
    pub const DNS_TIMEOUT: Duration = Duration::from_secs(2);
    pub const DNS_ATTEMPTS: usize = 2;
    pub const EDNS0_SIZE: u16 = 1232;
    pub const STATUS_PORT: u16 = 8080;
    pub const RESOLV_CONF: &str = "/etc/resolv.conf";
    pub const DRAIN: Duration = Duration::from_secs(10);
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub templates: Vec<TemplateSettings>,
    pub source: RecordSource,
    /// None when the status endpoint is off (`nohttpd`).
    pub status: Option<SocketAddr>,
    pub flags: Flags,
    pub rollback_on_reload_failure: bool,
    /// Upper bound of the random delay before the first query.
    pub splay: Duration,
    /// Whether to speak the sd_notify protocol when NOTIFY_SOCKET is set.
    pub sd_notify: bool,
    /// DNS NOTIFY listener, when `[notify]` is configured.
    pub dns_notify: Option<DnsNotifySettings>,
}

/// Run-mode switches; the command line can only turn them on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub dry_run: bool,
    pub no_reload: bool,
    pub no_check: bool,
    pub oneshot: bool,
}

impl Flags {
    /// Each flag on when it is on in `self` or in `other`.
    pub fn or(self, other: Flags) -> Flags {
        Flags {
            dry_run: self.dry_run || other.dry_run,
            no_reload: self.no_reload || other.no_reload,
            no_check: self.no_check || other.no_check,
            oneshot: self.oneshot || other.oneshot,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RecordSource {
    Dns(DnsSettings),
    /// Records read from an RFC 1035 master file instead of DNS.
    ZoneFile(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct DnsSettings {
    pub servers: Servers,
    pub timeout: Duration,
    pub attempts: usize,
    /// EDNS0 UDP payload size; None sends no OPT record.
    pub edns0_size: Option<u16>,
    pub net: Net,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Servers {
    /// `resolv_conf` (relative to the config's directory), and the name
    /// servers it listed when srvd.toml was loaded (`config::load` reads it,
    /// at start and on SIGHUP; `parse` leaves the list empty).
    ResolvConf {
        path: PathBuf,
        listed: Vec<SocketAddr>,
    },
    List(Vec<SocketAddr>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateSettings {
    /// How logs and status name this template: `name`, else dest.
    pub name: String,
    pub src: PathBuf,
    pub dest: PathBuf,
    pub domains: Vec<Domain>,
    pub check_cmd: Option<CommandLine>,
    pub reload_cmd: Option<CommandLine>,
    pub perms: Ownership,
    pub allow_empty: bool,
    pub min_records: usize,
    pub resolve_targets: bool,
    /// How dest is replaced; `Rename` unless the config says `in-place`.
    pub write: WriteMode,
    pub timing: Timing,
    pub haproxy: HaproxySettings,
}

/// How srvd talks to HAProxy itself, instead of (or before) `reload_cmd`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HaproxySettings {
    /// The stats socket at `level admin` (`haproxy_socket`): server changes
    /// go through the runtime API, with no reload.
    pub socket: Option<CliAddress>,
    /// The master CLI (`haproxy_master_socket`, `haproxy -W -S`): reloads go
    /// through it, with a verdict, instead of `reload_cmd`.
    pub master_socket: Option<CliAddress>,
    /// How long a server leaving through the runtime API may finish its
    /// sessions before they are shut down (`drain`; zero: at once).
    pub drain: Duration,
}

/// Mode and ownership to give dest; None keeps the existing file's (or 0644
/// and srvd's own ids for a new file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Perms {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// `mode`, `owner` and `group` as configured. A name that did not resolve
/// when the config was loaded stays a name: a user from a directory service
/// (LDAP, SSSD) or from a package installed later may resolve at the next
/// try, so it fails its template's writes (with the back-off) instead of
/// the whole config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    pub mode: Option<u32>,
    pub owner: Option<Id>,
    pub group: Option<Id>,
}

impl Ownership {
    /// The ids to give dest now (getpwnam(3), getgrnam(3)), or why a name
    /// does not resolve: "`owner`: no user named \"pgbouncer\"".
    pub fn resolve(&self) -> Result<Perms, String> {
        let uid = self.owner.as_ref().map(resolve_user).transpose();
        let gid = self.group.as_ref().map(resolve_group).transpose();
        match (uid, gid) {
            (Ok(uid), Ok(gid)) => Ok(Perms {
                mode: self.mode,
                uid,
                gid,
            }),
            _ => Err(self.unresolved().join("; ")),
        }
    }

    /// The names that do not resolve now, each with why.
    pub fn unresolved(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(Err(e)) = self.owner.as_ref().map(resolve_user) {
            out.push(format!("`owner`: {e}"));
        }
        if let Some(Err(e)) = self.group.as_ref().map(resolve_group) {
            out.push(format!("`group`: {e}"));
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub interval: Duration,
    pub timeout: Duration,
    pub cooldown: Duration,
    pub wait: Option<Wait>,
}

/// Turns the file as written into settings, or lists everything wrong with it.
pub fn validate(mut file: FileConfig, config_path: &Path) -> Result<Settings, Vec<String>> {
    let mut errors = Vec::new();
    let base = config_path.parent().unwrap_or(Path::new("."));

    let mut defaults = file.take_template_keys();
    let top_has_template_keys = defaults.src.is_some()
        || defaults.dest.is_some()
        || defaults.domain.is_some()
        || defaults.domains.is_some();
    let mut tables: Vec<(String, TemplateTable)> = Vec::new();
    // The keys that make a template go to the top-level one; every other
    // template key at top level is a default of all templates.
    let top = TemplateTable {
        src: defaults.src.take(),
        dest: defaults.dest.take(),
        domain: defaults.domain.take(),
        domains: defaults.domains.take(),
        ..TemplateTable::default()
    };
    if top_has_template_keys {
        tables.push(("top level".into(), top));
    }
    for (i, t) in std::mem::take(&mut file.template).into_iter().enumerate() {
        tables.push((format!("[[template]] #{}", i + 1), t));
    }
    if tables.is_empty() {
        errors.push(
            "no template: set `src`, `dest` and `domains` at top level, or add [[template]] tables"
                .into(),
        );
    }

    let mut templates = Vec::new();
    for (place, table) in tables {
        match template(place.clone(), table, &defaults, base) {
            Ok(t) => templates.push(t),
            Err(mut e) => errors.append(&mut e),
        }
    }
    for (i, a) in templates.iter().enumerate() {
        for b in &templates[i + 1..] {
            if same_file(&a.dest, &b.dest) {
                let spelled = if a.dest.as_os_str() == b.dest.as_os_str() {
                    String::new()
                } else {
                    format!(" (also spelled {})", b.dest.display())
                };
                errors.push(format!(
                    "`dest`: templates {:?} and {:?} both write {}{spelled}: \
                     they would overwrite each other every cycle; give each its own file",
                    a.name,
                    b.name,
                    a.dest.display()
                ));
            }
        }
        // A template's own src is checked in `template`.
        for b in templates.iter().filter(|b| b.name != a.name) {
            if same_file(&a.src, &b.dest) {
                errors.push(format!(
                    "`dest` of {:?} is the template of {:?} ({}): srvd would overwrite it",
                    b.name,
                    a.name,
                    b.dest.display()
                ));
            }
        }
    }

    let source = match (file.zone_file, file.nameservers, file.resolv_conf) {
        (Some(_), Some(_), _) => {
            errors.push("`zone_file` and `nameservers` cannot both be set".into());
            None
        }
        (Some(zone), None, _) => {
            let zone = base.join(zone);
            for t in templates.iter().filter(|t| same_file(&zone, &t.dest)) {
                errors.push(format!(
                    "`dest` of {:?} is the zone file ({}): srvd would overwrite its records",
                    t.name,
                    zone.display()
                ));
            }
            Some(RecordSource::ZoneFile(zone))
        }
        (None, servers, resolv_conf) => {
            let servers = match servers {
                Some(list) if list.is_empty() => {
                    errors.push("`nameservers` is empty".into());
                    None
                }
                Some(list) => {
                    let mut addrs = Vec::new();
                    for s in &list {
                        match parse_nameserver(s) {
                            Ok(a) => addrs.push(a),
                            Err(e) => errors.push(format!("`nameservers`: {e}")),
                        }
                    }
                    Some(Servers::List(addrs))
                }
                None => Some(Servers::ResolvConf {
                    path: base
                        .join(resolv_conf.unwrap_or_else(|| PathBuf::from(defaults::RESOLV_CONF))),
                    listed: Vec::new(),
                }),
            };
            if file.dns_attempts == Some(0) {
                errors.push("`dns_attempts` must be at least 1".into());
            }
            if file.dns_timeout == Some(Duration::ZERO) {
                errors.push("`dns_timeout` must be greater than 0".into());
            }
            servers.map(|servers| {
                RecordSource::Dns(DnsSettings {
                    servers,
                    timeout: file.dns_timeout.unwrap_or(defaults::DNS_TIMEOUT),
                    attempts: file
                        .dns_attempts
                        .map(|a| a as usize)
                        .unwrap_or(defaults::DNS_ATTEMPTS),
                    edns0_size: match file.edns0_size {
                        Some(0) => None,
                        Some(n) if n < 512 => {
                            errors.push(format!(
                                "`edns0_size` {n} is below 512 (use 0 to turn EDNS0 off)"
                            ));
                            None
                        }
                        Some(n) => Some(n),
                        None => Some(defaults::EDNS0_SIZE),
                    },
                    net: file.net.unwrap_or(Net::Udp),
                })
            })
        }
    };

    let status = if file.nohttpd.unwrap_or(false) {
        None
    } else {
        Some(SocketAddr::new(
            file.status_addr.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            file.status_port.unwrap_or(defaults::STATUS_PORT),
        ))
    };

    let dns_notify = file.notify.and_then(|n| {
        dns_notify::settings::validate(n, base)
            .map_err(|mut e| errors.append(&mut e))
            .ok()
    });

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Settings {
        templates,
        source: source.expect("a record source whenever there are no errors"),
        status,
        flags: Flags {
            dry_run: file.dryrun.unwrap_or(false),
            no_reload: file.noreload.unwrap_or(false),
            no_check: file.nocheck.unwrap_or(false),
            oneshot: file.oneshot.unwrap_or(false),
        },
        rollback_on_reload_failure: !file.disable_rollback_on_reload_failure.unwrap_or(false),
        splay: file.splay.unwrap_or(Duration::ZERO),
        sd_notify: file.sdnotify.unwrap_or(true),
        dns_notify,
    })
}

/// The shortest `interval` and `timeout` accepted.
const MIN_DURATION: Duration = Duration::from_millis(1);

fn template(
    place: String,
    t: TemplateTable,
    defaults: &TemplateTable,
    base: &Path,
) -> Result<TemplateSettings, Vec<String>> {
    let mut errors = Vec::new();
    let mut err = |msg: String| errors.push(format!("{place}: {msg}"));

    let src = t.src.map(|p| base.join(p));
    let dest = t.dest.map(|p| base.join(p));
    if src.is_none() {
        err("`src` (the template file) is missing".into());
    }
    if dest.is_none() {
        err("`dest` (the file to write) is missing".into());
    }
    if let (Some(s), Some(d)) = (&src, &dest) {
        if same_file(s, d) {
            err(format!(
                "`src` and `dest` are the same file ({}): srvd would overwrite its template",
                d.display()
            ));
        }
    }
    if let Some(d) = &dest {
        if d.file_name().is_none() {
            err(format!("`dest` {} is not a file name", d.display()));
        }
    }

    let texts: Vec<String> = match (t.domain, t.domains) {
        (Some(_), Some(_)) => {
            err("set `domain` or `domains`, not both".into());
            Vec::new()
        }
        (Some(d), None) => vec![d],
        (None, Some(list)) if list.is_empty() => {
            err("`domains` is empty: list at least one SRV name".into());
            list
        }
        (None, Some(list)) => list,
        (None, None) => {
            err("`domains` is missing: list at least one SRV name".into());
            Vec::new()
        }
    };
    let mut domains: Vec<Domain> = Vec::new();
    for text in texts {
        match Domain::parse(&text) {
            Ok(d) if domains.iter().any(|x| x.name == d.name) => {
                err(format!("`domains` lists {text:?} twice"));
            }
            Ok(d) => domains.push(d),
            Err(e) => err(format!("`domains`: {e}")),
        }
    }

    let command = |key: &str, text: Option<String>, err: &mut dyn FnMut(String)| {
        text.and_then(|text| {
            CommandLine::parse(&text)
                .map_err(|e| err(format!("`{key}`: {e}")))
                .ok()
        })
    };
    let check_cmd = command(
        "check_cmd",
        t.check_cmd.or_else(|| defaults.check_cmd.clone()),
        &mut err,
    );
    let reload_cmd = command(
        "reload_cmd",
        t.reload_cmd.or_else(|| defaults.reload_cmd.clone()),
        &mut err,
    );

    let mode = t
        .mode
        .or_else(|| defaults.mode.clone())
        .and_then(|m| parse_mode(&m).map_err(|e| err(format!("`mode`: {e}"))).ok());
    // A name that resolves now is fixed now, as before; one that does not
    // is looked up again at each write (see `Ownership`).
    let owner = t
        .owner
        .or_else(|| defaults.owner.clone())
        .map(|id| resolve_user(&id).map_or(id, Id::Number));
    let group = t
        .group
        .or_else(|| defaults.group.clone())
        .map(|id| resolve_group(&id).map_or(id, Id::Number));

    let interval = t
        .interval
        .or(defaults.interval)
        .unwrap_or(defaults::INTERVAL);
    // Below a millisecond a poll loop is a busy loop.
    if interval < MIN_DURATION {
        err("`interval` must be greater than 0 (1ms at least)".into());
    }
    let timeout = t.timeout.or(defaults.timeout).unwrap_or(defaults::TIMEOUT);
    if timeout < MIN_DURATION {
        err("`timeout` must be greater than 0 (1ms at least)".into());
    }

    let socket = |key: &str, text: Option<String>, err: &mut dyn FnMut(String)| {
        text.and_then(|text| match CliAddress::parse(&text) {
            Ok(CliAddress::Unix(path)) => Some(CliAddress::Unix(base.join(path))),
            Ok(addr) => Some(addr),
            Err(e) => {
                err(format!("`{key}`: {e}"));
                None
            }
        })
    };
    let haproxy = HaproxySettings {
        socket: socket(
            "haproxy_socket",
            t.haproxy_socket.or_else(|| defaults.haproxy_socket.clone()),
            &mut err,
        ),
        master_socket: socket(
            "haproxy_master_socket",
            t.haproxy_master_socket
                .or_else(|| defaults.haproxy_master_socket.clone()),
            &mut err,
        ),
        drain: t.drain.or(defaults.drain).unwrap_or(defaults::DRAIN),
    };

    if !errors.is_empty() {
        return Err(errors);
    }
    let dest = dest.expect("checked above");
    Ok(TemplateSettings {
        name: t.name.unwrap_or_else(|| dest.display().to_string()),
        src: src.expect("checked above"),
        dest,
        domains,
        check_cmd,
        reload_cmd,
        perms: Ownership { mode, owner, group },
        allow_empty: t.allow_empty.or(defaults.allow_empty).unwrap_or(false),
        min_records: t.min_records.or(defaults.min_records).unwrap_or(0) as usize,
        resolve_targets: t
            .resolve_targets
            .or(defaults.resolve_targets)
            .unwrap_or(false),
        write: t.write.or(defaults.write).unwrap_or(WriteMode::Rename),
        timing: Timing {
            interval,
            timeout,
            cooldown: t
                .cooldown
                .or(defaults.cooldown)
                .unwrap_or(defaults::COOLDOWN),
            wait: t.wait.or(defaults.wait),
        },
        haproxy,
    })
}

fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return Err(format!(
            "{text:?} is not an octal file mode such as \"0644\" or \"0640\""
        ));
    }
    u32::from_str_radix(digits, 8).map_err(|e| e.to_string())
}

fn resolve_user(id: &Id) -> Result<u32, String> {
    match id {
        Id::Number(n) => Ok(*n),
        Id::Name(name) => match nix::unistd::User::from_name(name) {
            Ok(Some(u)) => Ok(u.uid.as_raw()),
            Ok(None) => Err(format!("no user named {name:?}")),
            Err(e) => Err(format!("looking up user {name:?}: {e}")),
        },
    }
}

fn resolve_group(id: &Id) -> Result<u32, String> {
    match id {
        Id::Number(n) => Ok(*n),
        Id::Name(name) => match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Ok(g.gid.as_raw()),
            Ok(None) => Err(format!("no group named {name:?}")),
            Err(e) => Err(format!("looking up group {name:?}: {e}")),
        },
    }
}
