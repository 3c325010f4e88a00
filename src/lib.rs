//! srvd turns DNS SRV records into configuration files and reloads the
//! middleware that reads them.
//!
//! Data flows one way, a module per step:
//! config → records → render → apply → notify.

/// Staged file, atomic replace, rollback, crash leftovers.
pub mod apply;
/// The command line, also the source of the man page and completions.
pub mod cli;
/// Wall-clock formatting.
pub mod clock;
/// Check and reload commands: words, process groups, timeouts, output.
pub mod command;
/// srvd.toml: the file as written, then validated settings.
pub mod config;
/// The event loop: schedule, signals, watchdog, status publication.
pub mod daemon;
/// DNS lookups through hickory-resolver.
pub mod dns;
/// One cycle: lookup, render, decide, apply, reload.
pub mod engine;
/// HAProxy's runtime API and master CLI.
pub mod haproxy;
/// The status endpoint's minimal HTTP server.
pub mod http;
/// stderr or journald logging.
pub mod logging;
/// Go srvd templates (text/template) converted to Tera.
pub mod migrate;
/// DNS NOTIFY listener: instant refresh when a zone changes.
pub mod notify;
/// When to apply a change: wait, cooldown, back-off.
pub mod plan;
/// From a DNS answer to validated, ordered SRV records.
pub mod records;
/// Tera templates, their context and helpers.
pub mod render;
/// Where records come from (DNS or a zone file) and the TTL cache.
pub mod source;
/// STATUS line, /status JSON, /metrics text.
pub mod status;
/// sd_notify, socket activation, journal detection.
pub mod systemd;
/// Records from an RFC 1035 zone file.
pub mod zone;
