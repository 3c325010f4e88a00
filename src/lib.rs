//! srvd turns DNS SRV records into configuration files and reloads the
//! middleware that reads them.
//!
//! Data flows one way, a module per step:
//! config → records → render → apply → reload.
//!
//! Modules are `pub` only where the binary, the benchmarks, the fuzz targets
//! or the integration tests need them; the rest is `pub(crate)`, so that the
//! compiler reports code nothing uses.

/// Staged file, atomic replace, rollback, crash leftovers, the reload marker.
pub(crate) mod apply;
/// The command line, also the source of the man page and completions.
pub mod cli;
/// Wall-clock formatting.
pub(crate) mod clock;
/// Check and reload commands: words, process groups, timeouts, output.
pub(crate) mod command;
/// srvd.toml: the file as written, then validated settings.
pub mod config;
/// The event loop: schedule, signals, watchdog, status publication.
pub mod daemon;
/// SRV and A/AAAA lookups, CNAME chains, answers confirmed over TCP.
pub(crate) mod dns;
/// DNS NOTIFY (RFC 1996): the listener and its `[notify]` settings.
pub(crate) mod dns_notify;
/// One cycle: lookup, render, decide, apply, reload (a folder, a file per step).
pub mod engine;
/// HAProxy's runtime API and master CLI.
pub mod haproxy;
/// The status endpoint's minimal HTTP server.
pub(crate) mod http;
/// stderr or journald logging, and the per-template event macro.
pub mod logging;
/// Go srvd templates (text/template) converted to Tera.
pub mod migrate;
/// One query to the listed name servers: order, attempts, timeout.
pub(crate) mod nameservers;
/// When to apply a change: wait, cooldown, back-off.
pub(crate) mod plan;
/// From a DNS answer to validated, ordered SRV records.
pub mod records;
/// Tera templates, their context and helpers.
pub mod render;
/// Where records come from (DNS or a zone file) and the TTL cache.
pub mod source;
/// What identifies one version of a file on disk.
pub(crate) mod stamp;
/// STATUS line, /status JSON, /metrics text.
pub(crate) mod status;
/// sd_notify(3), socket activation, journal detection.
pub mod systemd;
/// Records from an RFC 1035 zone file.
pub mod zone;
