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

/// Structured fields of an event about a template, sent to the journal as
/// SRVD_TEMPLATE, SRVD_DEST, one SRVD_DOMAIN per domain (so that
/// `journalctl SRVD_DOMAIN=x` finds every template that uses x) and
/// SRVD_COMMAND. On stderr the message alone is printed.
pub struct Fields<'a> {
    pub template: &'a str,
    pub dest: &'a str,
    pub domains: &'a [&'a str],
    pub command: Option<&'a str>,
}

impl log::kv::Source for Fields<'_> {
    fn visit<'kvs>(
        &'kvs self,
        visitor: &mut dyn log::kv::VisitSource<'kvs>,
    ) -> Result<(), log::kv::Error> {
        use log::kv::{Key, Value};
        visitor.visit_pair(Key::from_str("srvd_template"), Value::from(self.template))?;
        visitor.visit_pair(Key::from_str("srvd_dest"), Value::from(self.dest))?;
        for d in self.domains {
            visitor.visit_pair(Key::from_str("srvd_domain"), Value::from(*d))?;
        }
        if let Some(c) = self.command {
            visitor.visit_pair(Key::from_str("srvd_command"), Value::from(c))?;
        }
        Ok(())
    }
}

/// Logs `args` at `level` with `fields`, under `target` (the caller's module,
/// so that `RUST_LOG=srvd::engine=debug` picks the engine's events).
pub fn event(target: &'static str, level: log::Level, fields: &Fields, args: std::fmt::Arguments) {
    if level > log::max_level()
        || !log::logger().enabled(&Metadata::builder().level(level).target(target).build())
    {
        return;
    }
    log::logger().log(
        &Record::builder()
            .args(args)
            .level(level)
            .target(target)
            .module_path_static(Some(target))
            .key_values(fields)
            .build(),
    );
}

/// Logs an event about template `t` (a `&TemplateSettings`), with its journal
/// fields (SRVD_TEMPLATE, SRVD_DEST, one SRVD_DOMAIN per domain, and
/// SRVD_COMMAND when `cmd` names one), under the calling module's target:
/// `tlog!(Warn, t, Some(cmd), "{}: ...", t.name)`.
macro_rules! tlog {
    ($level:ident, $t:expr, $cmd:expr, $($arg:tt)+) => {{
        let t: &$crate::config::TemplateSettings = $t;
        let domains: Vec<&str> = t.domains.iter().map(|d| d.text.as_str()).collect();
        $crate::logging::event(
            module_path!(),
            log::Level::$level,
            &$crate::logging::Fields {
                template: &t.name,
                dest: &t.dest.to_string_lossy(),
                domains: &domains,
                command: $cmd,
            },
            format_args!($($arg)+),
        )
    }};
}
pub(crate) use tlog;
