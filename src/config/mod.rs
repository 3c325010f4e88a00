//! srvd.toml: read (`file`), then validated into `Settings` (`settings`).
//! Anything wrong is a `ConfigError` naming the key, which `main` turns into
//! exit code 78 (EX_CONFIG) so that systemd does not restart into the same error.

pub mod duration;
pub mod file;
pub mod names;
pub mod paths;
pub mod settings;

use std::fmt;
use std::path::Path;

pub use file::{FileConfig, Net, Wait, WriteMode};
pub use names::Domain;
pub use settings::{
    DnsSettings, Flags, Ownership, Perms, RecordSource, Servers, Settings, TemplateSettings, Timing,
};

/// The default config path, as packaged.
pub const DEFAULT_PATH: &str = "/etc/srvd/srvd.toml";

/// A config that cannot be used, with every problem found, each naming its key.
#[derive(Debug)]
pub struct ConfigError {
    pub path: String,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "{}: {one}", self.path),
            many => {
                write!(f, "{}: {} problems", self.path, many.len())?;
                for p in many {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates the config at `path`, and reads the files it names
/// that srvd reads once per load: `resolv_conf`'s name servers. (Templates
/// are read by `engine::load`; zone files and dest are followed as they change.)
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let error = |problems| ConfigError {
        path: path.display().to_string(),
        problems,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        // A new user's first run: say where srvd looked and how to point it elsewhere.
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "; give the config's path with --config PATH (or -c PATH)"
        } else {
            ""
        };
        error(vec![format!("cannot read the config: {e}{hint}")])
    })?;
    let mut settings = parse(&text, path)?;
    if let RecordSource::Dns(DnsSettings {
        servers: Servers::ResolvConf { path, listed },
        ..
    }) = &mut settings.source
    {
        *listed = resolv_conf_servers(path).map_err(|e| error(vec![e]))?;
    }
    Ok(settings)
}

/// The name servers `path` lists (resolv.conf(5) `nameserver` lines, port
/// 53), or why there are none to ask.
pub fn resolv_conf_servers(path: &Path) -> Result<Vec<std::net::SocketAddr>, String> {
    let fix = "fix the file, or list the servers in `nameservers`";
    let text = std::fs::read(path).map_err(|e| {
        format!(
            "`resolv_conf`: cannot read {}: {e} ({fix}; a relative path is relative to srvd.toml's directory)",
            path.display()
        )
    })?;
    let no_server = || {
        format!(
            "`resolv_conf` {} lists no `nameserver` ({fix})",
            path.display()
        )
    };
    if !String::from_utf8_lossy(&text)
        .lines()
        .any(|l| l.trim_start().starts_with("nameserver"))
    {
        return Err(no_server());
    }
    let (config, _) = hickory_resolver::system_conf::parse_resolv_conf(text)
        .map_err(|e| format!("`resolv_conf` {}: {e} ({fix})", path.display()))?;
    let servers: Vec<std::net::SocketAddr> = config
        .name_servers()
        .iter()
        .map(|ns| std::net::SocketAddr::new(ns.ip, 53))
        .collect();
    if servers.is_empty() {
        return Err(no_server());
    }
    Ok(servers)
}

/// Reads and validates the config at `path`, with the run-mode flags of the
/// command line (`cli`) added: a flag on either side is on, as the Go srvd had
/// it; the command line cannot turn off what the file turns on.
pub fn load_with_flags(path: &Path, cli: Flags) -> Result<Settings, ConfigError> {
    let mut settings = load(path)?;
    settings.flags = settings.flags.or(cli);
    Ok(settings)
}

/// Validates config text; `path` names it in errors and anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Settings, ConfigError> {
    let error = |problems| ConfigError {
        path: path.display().to_string(),
        problems,
    };
    // Some editors start a UTF-8 file with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let file: FileConfig = toml::from_str(text).map_err(|e| error(vec![toml_message(&e, text)]))?;
    settings::validate(file, path).map_err(error)
}

/// toml's message, made to read as one line per fact: "line 3, column 1: unknown
/// field `reload_cmnd`, expected one of ...".
fn toml_message(e: &toml::de::Error, input: &str) -> String {
    let msg = suggest(e.message().trim_end());
    let msg = msg.as_str();
    match e.span() {
        Some(span) => {
            let (line, col) = line_col(input, span.start);
            let text = input.lines().nth(line - 1).unwrap_or("");
            let msg = in_user_words(msg, text);
            let key_hint = Some(text)
                .map(|l| l.trim())
                .filter(|l| !l.is_empty())
                .map(|l| format!(" (in `{}`)", truncate(l, 60)))
                .unwrap_or_default();
            format!("line {line}, column {col}: {msg}{key_hint}")
        }
        None => msg.to_owned(),
    }
}

/// toml's and serde's words for a value of the wrong shape ("unexpected
/// leading zero", "expected u16") told as what to write instead, from the
/// key on the offending `line`. TOML forbids leading zeros in integers
/// (toml.io, v1.0.0, "Integer"), which is why a file mode is a string.
fn in_user_words(msg: &str, line: &str) -> String {
    let key = line.split('=').next().unwrap_or("").trim();
    let integer_given = msg.contains("leading zero") || msg.contains("invalid type: integer");
    let msg = if msg.contains("leading zero") {
        "a TOML number cannot start with 0"
    } else {
        msg
    };
    if key == "mode" && integer_given {
        return format!("{msg}: write the mode as a quoted octal string, e.g. mode = \"0644\"");
    }
    for (ty, words) in [
        ("u16", "a whole number, 0–65535"),
        ("u32", "a whole number, 0–4294967295"),
    ] {
        if let Some(found) = msg.strip_suffix(&format!(", expected {ty}")) {
            let words = if key.ends_with("port") {
                "a port number, 1–65535, without quotes"
            } else {
                words
            };
            return format!("{found}, expected {words}");
        }
    }
    msg.to_owned()
}

/// "unknown field `reload_cmnd`, expected one of `src`, ..." becomes
/// "unknown field `reload_cmnd` (did you mean `reload_cmd`?)" when one
/// expected key is a typo away.
fn suggest(msg: &str) -> String {
    let Some(rest) = msg.strip_prefix("unknown field `") else {
        return msg.to_owned();
    };
    let Some((unknown, expected)) = rest.split_once("`, expected one of ") else {
        return msg.to_owned();
    };
    let best = expected
        .split(", ")
        .map(|k| k.trim_matches('`'))
        .map(|k| (edit_distance(unknown, k), k))
        .min();
    match best {
        Some((d, k)) if d <= 2.max(unknown.len() / 4) => {
            format!("unknown field `{unknown}` (did you mean `{k}`?)")
        }
        _ => msg.to_owned(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn line_col(input: &str, offset: usize) -> (usize, usize) {
    let before = &input[..offset.min(input.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_the_wrong_shape_are_told_in_the_users_words() {
        let cases = [
            (
                "mode = 0644",
                "write the mode as a quoted octal string, e.g. mode = \"0644\"",
            ),
            ("mode = 644", "e.g. mode = \"0644\""),
            (
                "status_port = \"8080\"",
                "expected a port number, 1–65535, without quotes",
            ),
            ("status_port = 70000", "expected a port number, 1–65535"),
            ("edns0_size = 99999", "expected a whole number, 0–65535"),
            ("dns_attempts = 09", "a TOML number cannot start with 0"),
        ];
        for (line, wanted) in cases {
            let e = parse(line, Path::new("/x/srvd.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(wanted), "{line}: {e}");
            assert!(
                !e.contains("expected u16") && !e.contains("expected nothing"),
                "{line}: {e}"
            );
        }
    }

    #[test]
    fn a_missing_config_points_to_the_flag() {
        let e = load(Path::new("/nonexistent/srvd.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("No such file") && e.contains("--config PATH"),
            "{e}"
        );
    }

    #[test]
    fn a_typo_gets_a_suggestion() {
        assert_eq!(
            suggest(
                "unknown field `reload_cmnd`, expected one of `src`, `reload_cmd`, `check_cmd`"
            ),
            "unknown field `reload_cmnd` (did you mean `reload_cmd`?)"
        );
        let far = "unknown field `xyz`, expected one of `src`, `reload_cmd`";
        assert_eq!(suggest(far), far);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
