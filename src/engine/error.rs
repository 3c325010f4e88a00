//! Why a template failed a cycle: one variant per step (lookup, render, read,
//! write, check, reload), carrying values; the text for the log and /status
//! is made only when it is shown.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::command::Failure;
use crate::config::TemplateSettings;
use crate::config::duration::display;
use crate::records::LookupError;

/// A template's failure in one cycle. `Display` gives the text logged and
/// shown as the template's `error` in /status.
#[derive(Debug)]
pub enum Error {
    /// Records of some domains cannot be used: each domain as written, and why.
    Lookup(Vec<(String, LookupError)>),
    /// The template did not render: Tera's message.
    Render(String),
    /// Dest could not be read (with the path, from `apply::read_dest`).
    Read(anyhow::Error),
    /// The staged file could not be written or put in place.
    Write(anyhow::Error),
    /// `owner` or `group` names a user or group that does not resolve (a
    /// directory service not up yet, a package not installed yet): dest is
    /// left alone, the next try is in `backoff`.
    Owner { why: String, backoff: Duration },
    /// check_cmd refused the staged file; dest (as configured) was left alone
    /// and the same render waits `backoff`.
    Check {
        failure: Failure,
        dest: PathBuf,
        backoff: Duration,
    },
    /// reload_cmd failed after dest (its real path) was replaced; `rollback`
    /// says what became of dest; the same render waits `backoff`.
    Reload {
        failure: Arc<Failure>,
        dest: PathBuf,
        rollback: Rollback,
        backoff: Duration,
    },
    /// A reload owed from before failed again; the next try is in `backoff`.
    OwedReload {
        failure: Arc<Failure>,
        backoff: Duration,
    },
}

/// What became of dest after its reload failed.
#[derive(Debug)]
pub enum Rollback {
    /// Back to the content it had before (or removed, if it had none).
    Done,
    /// The rollback itself failed: dest keeps the new content.
    Failed(anyhow::Error),
    /// Kept on purpose (`disable_rollback_on_reload_failure`).
    Kept,
    /// Kept: dest did not exist before, so there was nothing to roll back
    /// to, and the middleware needs the checked file to start.
    FirstVersion,
}

impl Error {
    /// The command that failed, as configured, for the log's SRVD_COMMAND.
    pub fn command<'a>(&self, t: &'a TemplateSettings) -> Option<&'a str> {
        match self {
            Error::Check { .. } => t.check_cmd.as_ref().map(|c| c.text()),
            Error::Reload { .. } | Error::OwedReload { .. } => {
                t.reload_cmd.as_ref().map(|c| c.text())
            }
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Lookup(domains) => {
                for (n, (domain, e)) in domains.iter().enumerate() {
                    if n > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{domain}: {e}")?;
                }
                Ok(())
            }
            Error::Render(e) => write!(f, "template {e}"),
            Error::Read(e) | Error::Write(e) => write!(f, "{e:#}"),
            Error::Owner { why, backoff } => write!(
                f,
                "{why}: dest left as it was until it resolves (a directory service or a \
                 package not there yet?); next try in {}",
                display(*backoff)
            ),
            Error::Check {
                failure,
                dest,
                backoff,
            } => write!(
                f,
                "check_cmd {failure}; {} left as it was; next try when the output changes, or in {}",
                dest.display(),
                display(*backoff)
            ),
            Error::Reload {
                failure,
                dest,
                rollback,
                backoff,
            } => {
                write!(f, "{} {failure}; {} ", reload_word(failure), dest.display())?;
                match rollback {
                    Rollback::Done => f.write_str("rolled back to the previous content")?,
                    Rollback::Failed(e) => write!(f, "rollback FAILED: {e:#}")?,
                    Rollback::Kept => f.write_str("kept (disable_rollback_on_reload_failure)")?,
                    Rollback::FirstVersion => {
                        return write!(
                            f,
                            "kept (checked, and there was no previous version to roll back to); reload retried in {}",
                            display(*backoff)
                        );
                    }
                }
                write!(
                    f,
                    "; next try when the output changes, or in {}",
                    display(*backoff)
                )
            }
            Error::OwedReload { failure, backoff } => {
                write!(
                    f,
                    "{} {failure}; next try in {}",
                    reload_word(failure),
                    display(*backoff)
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// How the log names the reload that failed: the command, or HAProxy's
/// master CLI (whose failure text says so itself).
fn reload_word(failure: &Failure) -> &'static str {
    match failure {
        Failure::Refused(_) => "reload",
        _ => "reload_cmd",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_texts_are_those_operators_know() {
        let lookup = Error::Lookup(vec![
            ("_a._tcp.x".into(), LookupError::Other("timed out".into())),
            ("_b._tcp.x".into(), LookupError::Other("refused".into())),
        ]);
        assert_eq!(
            lookup.to_string(),
            format!(
                "_a._tcp.x: {}; _b._tcp.x: {}",
                LookupError::Other("timed out".into()),
                LookupError::Other("refused".into())
            )
        );
        let owner = Error::Owner {
            why: "`owner`: no user named \"pgbouncer\"".into(),
            backoff: Duration::from_secs(10),
        };
        assert!(
            owner.to_string().starts_with(
                "`owner`: no user named \"pgbouncer\": dest left as it was until it resolves"
            ),
            "{owner}"
        );
        assert_eq!(
            Error::Render("x.tmpl: oops".into()).to_string(),
            "template x.tmpl: oops"
        );
        let check = Error::Check {
            failure: Failure::Timeout(Duration::from_secs(3)),
            dest: "/etc/haproxy/haproxy.cfg".into(),
            backoff: Duration::from_secs(10),
        };
        assert_eq!(
            check.to_string(),
            format!(
                "check_cmd {}; /etc/haproxy/haproxy.cfg left as it was; next try when the output changes, or in {}",
                Failure::Timeout(Duration::from_secs(3)),
                display(Duration::from_secs(10))
            )
        );
        let reload = Error::Reload {
            failure: Arc::new(Failure::Stopped),
            dest: "/d".into(),
            rollback: Rollback::Kept,
            backoff: Duration::from_secs(20),
        };
        assert_eq!(
            reload.to_string(),
            format!(
                "reload_cmd {}; /d kept (disable_rollback_on_reload_failure); next try when the output changes, or in {}",
                Failure::Stopped,
                display(Duration::from_secs(20))
            )
        );
        let owed = Error::OwedReload {
            failure: Arc::new(Failure::Stopped),
            backoff: Duration::from_secs(10),
        };
        assert_eq!(
            owed.to_string(),
            format!(
                "reload_cmd {}; next try in {}",
                Failure::Stopped,
                display(Duration::from_secs(10))
            )
        );
    }
}
