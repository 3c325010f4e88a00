//! Logs through the `log` facade: to the journal natively (priorities and
//! SRVD_* fields) when stderr is the journal, else one line per record on
//! stderr. `--log-level` wins over RUST_LOG, which wins over the default.

use std::io::Write;
use std::time::SystemTime;

use log::{LevelFilter, Log, Metadata, Record};
use systemd_journal_logger::JournalLog;

use crate::clock;

struct Logger {
    filter: env_filter::Filter,
    journal: Option<JournalLog>,
}

/// Installs the logger. `level` comes from `--log-level`.
pub fn init(level: Option<LevelFilter>, journal: bool) {
    let mut builder = env_filter::Builder::new();
    // Libraries only speak up when something is wrong.
    builder.filter_level(LevelFilter::Warn);
    match (level, std::env::var("RUST_LOG")) {
        (Some(level), _) => {
            builder.filter_module("srvd", level);
        }
        (None, Ok(spec)) if !spec.trim().is_empty() => {
            builder.filter_module("srvd", LevelFilter::Info);
            builder.parse(&spec);
        }
        _ => {
            builder.filter_module("srvd", LevelFilter::Info);
        }
    }
    let filter = builder.build();
    let journal = if journal {
        JournalLog::new()
            .ok()
            .map(|j| j.with_syslog_identifier("srvd".to_owned()))
    } else {
        None
    };
    log::set_max_level(filter.filter());
    let _ = log::set_boxed_logger(Box::new(Logger { filter, journal }));
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if !self.filter.matches(record) {
            return;
        }
        if let Some(journal) = &self.journal {
            if journal.journal_send(record).is_ok() {
                return;
            }
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "{} {:<5} {}",
            clock::rfc3339(SystemTime::now()),
            record.level(),
            record.args()
        );
    }

    fn flush(&self) {}
}
