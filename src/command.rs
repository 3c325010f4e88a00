//! Running `check_cmd` and `reload_cmd`: split into words once as a shell would
//! (no shell runs them), each run in its own process group so that a timeout or
//! a stop can take down everything the command started, with its output sent to
//! the log and bounded in memory.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};

/// A command line from srvd.toml. `{{ src }}` (or the Go srvd's `{{ .src }}`)
/// stands for the staged file, `{{ dest }}` for the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    text: String,
    words: Vec<Vec<Piece>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Src,
    Dest,
}

impl CommandLine {
    /// Finds the placeholders, then splits `text` into words (quotes respected).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("the command is empty".into());
        }
        if text.contains([SRC_MARK, DEST_MARK]) {
            return Err(format!("{text:?} contains a reserved character"));
        }
        let marked = mark_placeholders(text).map_err(|e| format!("{e} in {text:?}"))?;
        let words = shlex::split(&marked)
            .ok_or_else(|| format!("cannot split {text:?} into words: unbalanced quotes"))?;
        if words.is_empty() {
            return Err("the command is empty".into());
        }
        let words: Vec<Vec<Piece>> = words.iter().map(|w| pieces(w)).collect();
        if !matches!(words[0][..], [Piece::Text(_)]) {
            return Err(format!(
                "the program name in {text:?} cannot be a placeholder"
            ));
        }
        Ok(CommandLine {
            text: text.to_owned(),
            words,
        })
    }

    /// The command as written in the config.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The program's file name, used to label its output in the log.
    pub fn label(&self) -> String {
        match &self.words[0][..] {
            [Piece::Text(p)] => Path::new(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.clone()),
            _ => "command".into(),
        }
    }

    /// The words to execute, with the placeholders filled in.
    pub fn expand(&self, src: &Path, dest: &Path) -> Vec<OsString> {
        self.words
            .iter()
            .map(|pieces| {
                let mut word = OsString::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => word.push(t),
                        Piece::Src => word.push(src),
                        Piece::Dest => word.push(dest),
                    }
                }
                word
            })
            .collect()
    }
}

/// Stand-ins for the placeholders while the text is split into words:
/// private-use characters, which shlex keeps as they are.
const SRC_MARK: char = '\u{e000}';
const DEST_MARK: char = '\u{e001}';

/// Replaces every `{{ src }}`, `{{ .src }}`, `{{ dest }}`, `{{ .dest }}` with its mark.
fn mark_placeholders(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("unclosed `{{`")?;
        let inner = after[..end].trim();
        out.push(match inner.strip_prefix('.').unwrap_or(inner) {
            "src" => SRC_MARK,
            "dest" => DEST_MARK,
            _ => {
                return Err(format!(
                    "unknown placeholder `{{{{ {inner} }}}}` (use {{{{ src }}}} or {{{{ dest }}}})"
                ));
            }
        });
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn pieces(word: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    for c in word.chars() {
        let mark = match c {
            SRC_MARK => Piece::Src,
            DEST_MARK => Piece::Dest,
            _ => {
                text.push(c);
                continue;
            }
        };
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(mark);
    }
    if !text.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Text(text));
    }
    pieces
}

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// It could not be started (missing, not executable...).
    Spawn(std::io::Error),
    /// It ran and exited non-zero or was killed by a signal.
    Exit(ExitStatus),
    /// The same, without a line of output: the log cannot say why. `quiet`:
    /// it was run with `-q`/`--quiet`, which is what makes `haproxy -c -q`
    /// print nothing on every error (HAProxy 2.6), so the message says how
    /// to get the reason.
    Silent { status: ExitStatus, quiet: bool },
    /// It ran past its timeout; its whole process group was killed.
    Timeout(Duration),
    /// srvd is stopping; the command's process group was killed.
    Stopped,
    /// The middleware was asked directly (HAProxy's master CLI) and refused
    /// or did not confirm; the text says which and why.
    Refused(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Spawn(e) => write!(f, "could not be started: {e}"),
            Failure::Exit(status) => match (status.code(), status.signal()) {
                (Some(code), _) => write!(f, "exited with status {code}"),
                (None, Some(sig)) => write!(f, "was killed by signal {sig}"),
                _ => write!(f, "failed ({status})"),
            },
            Failure::Silent { status, quiet } => {
                write!(
                    f,
                    "{} and printed nothing, so the log cannot say why",
                    Failure::Exit(*status)
                )?;
                if *quiet {
                    f.write_str(
                        "; it runs with a quiet flag, which hides the reason: drop it \
                         (`haproxy -c -q` prints nothing on errors: use `haproxy -c`)",
                    )?;
                }
                Ok(())
            }
            Failure::Timeout(d) => write!(
                f,
                "timed out after {} and was killed",
                crate::config::duration::display(*d)
            ),
            Failure::Stopped => write!(f, "was interrupted because srvd is stopping"),
            Failure::Refused(why) => f.write_str(why),
        }
    }
}

/// How long a process group gets between SIGTERM and SIGKILL after a timeout.
pub const GRACE: Duration = Duration::from_secs(2);
/// The same when srvd itself is stopping: systemd expects a prompt exit.
const STOP_GRACE: Duration = Duration::from_millis(300);
/// How long output is still read after the command exits, for lines a
/// background grandchild keeps writing into the pipe.
const DRAIN: Duration = Duration::from_millis(100);

/// Runs `argv` in a new process group and logs its output under `label`.
///
/// `stop` turning true kills the group at once (srvd is shutting down).
pub async fn run(
    argv: &[OsString],
    label: &str,
    limit: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Failure> {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    for var in crate::systemd::PRIVATE_ENV {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().map_err(Failure::Spawn)?;
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut output = Output::default();
    let mut out_buf = vec![0u8; 8192];
    let mut err_buf = vec![0u8; 8192];
    let deadline = Instant::now() + limit;

    let result = loop {
        tokio::select! {
            status = child.wait() => {
                break match status {
                    Ok(s) if s.success() => Ok(()),
                    Ok(s) => Err(Failure::Exit(s)),
                    Err(e) => Err(Failure::Spawn(e)),
                };
            }
            n = read_some(&mut stdout, &mut out_buf) => output.feed(Stream::Out, &out_buf[..n], &mut stdout),
            n = read_some(&mut stderr, &mut err_buf) => output.feed(Stream::Err, &err_buf[..n], &mut stderr),
            _ = sleep_until(deadline) => {
                kill_group(pgid, &mut child, GRACE).await;
                break Err(Failure::Timeout(limit));
            }
            _ = stopped(stop) => {
                kill_group(pgid, &mut child, STOP_GRACE).await;
                break Err(Failure::Stopped);
            }
        }
    };

    // Whatever is already in the pipes still belongs to this run.
    let drain_until = Instant::now() + DRAIN;
    while stdout.is_some() || stderr.is_some() {
        tokio::select! {
            n = read_some(&mut stdout, &mut out_buf) => output.feed(Stream::Out, &out_buf[..n], &mut stdout),
            n = read_some(&mut stderr, &mut err_buf) => output.feed(Stream::Err, &err_buf[..n], &mut stderr),
            _ = sleep_until(drain_until) => break,
        }
    }
    output.finish();
    output.log(label, result.is_ok());
    let result = match result {
        Err(Failure::Exit(status)) if output.lines().next().is_none() => {
            let quiet = argv.iter().any(|a| a == "-q" || a == "--quiet");
            Err(Failure::Silent { status, quiet })
        }
        other => other,
    };
    if let Some(pgid) = pgid {
        if result.is_ok() || matches!(result, Err(Failure::Exit(_) | Failure::Silent { .. })) {
            reap_at_deadline(pgid, deadline, label);
        }
    }
    result
}

/// Process groups a command left behind when it exited, killed at its
/// deadline (or when srvd stops).
static LINGERING: std::sync::Mutex<Vec<Pid>> = std::sync::Mutex::new(Vec::new());

/// The command exited, but processes it started in its group may still run
/// (`sh -c 'x & exit 0'`): they get the rest of the command's time, then the
/// group is killed like a command that timed out. Daemons a reload starts
/// are not touched: they leave the group with setsid(2).
fn reap_at_deadline(pgid: Pid, deadline: Instant, label: &str) {
    if killpg(pgid, None).is_err() {
        return; // Nothing left in the group.
    }
    log::warn!(srvd_command = label; "{label}: exited and left processes running in its group; they will be killed at its timeout");
    LINGERING.lock().expect("lingering lock").push(pgid);
    tokio::spawn(async move {
        sleep_until(deadline).await;
        if killpg(pgid, Signal::SIGTERM).is_ok() {
            tokio::time::sleep(GRACE).await;
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        LINGERING
            .lock()
            .expect("lingering lock")
            .retain(|p| *p != pgid);
    });
}

/// Kills every process group a finished command left behind: srvd is
/// stopping and will not be there at their deadline.
pub fn kill_lingering() {
    for pgid in LINGERING.lock().expect("lingering lock").drain(..) {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        // The sender is gone: nobody can ask for a stop any more.
        std::future::pending::<()>().await;
    }
}

async fn read_some<R: tokio::io::AsyncRead + Unpin>(pipe: &mut Option<R>, buf: &mut [u8]) -> usize {
    match pipe {
        Some(p) => p.read(buf).await.unwrap_or(0),
        None => std::future::pending().await,
    }
}

async fn kill_group(pgid: Option<Pid>, child: &mut tokio::process::Child, grace: Duration) {
    if let Some(pgid) = pgid {
        let _ = killpg(pgid, Signal::SIGTERM);
    }
    if timeout(grace, child.wait()).await.is_err() {
        if let Some(pgid) = pgid {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        let _ = child.wait().await;
    } else if let Some(pgid) = pgid {
        // The leader is gone; anything left in its group gets no second chance.
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stream {
    Out,
    Err,
}

/// Longest line kept; the rest of a longer line is dropped.
const MAX_LINE: usize = 4096;
/// Lines kept from the start and from the end of the output.
const HEAD_LINES: usize = 50;
const TAIL_LINES: usize = 50;

/// The command's output, split into lines, bounded in memory whatever the
/// command prints: the first and the last lines are kept, the middle counted.
#[derive(Default)]
struct Output {
    partial: [Vec<u8>; 2],
    head: Vec<(Stream, String)>,
    tail: std::collections::VecDeque<(Stream, String)>,
    skipped: u64,
}

impl Output {
    fn feed<R>(&mut self, stream: Stream, bytes: &[u8], pipe: &mut Option<R>) {
        if bytes.is_empty() {
            // End of file (or a read error): the pipe is done.
            *pipe = None;
            self.flush_partial(stream);
            return;
        }
        let idx = stream as usize;
        for &b in bytes {
            if b == b'\n' {
                self.flush_partial(stream);
            } else if self.partial[idx].len() < MAX_LINE {
                self.partial[idx].push(b);
            }
        }
    }

    fn flush_partial(&mut self, stream: Stream) {
        let idx = stream as usize;
        if self.partial[idx].is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.partial[idx]).into_owned();
        self.partial[idx].clear();
        self.push_line(stream, line);
    }

    fn push_line(&mut self, stream: Stream, line: String) {
        if self.head.len() < HEAD_LINES {
            self.head.push((stream, line));
            return;
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
            self.skipped += 1;
        }
        self.tail.push_back((stream, line));
    }

    fn finish(&mut self) {
        self.flush_partial(Stream::Out);
        self.flush_partial(Stream::Err);
    }

    fn lines(&self) -> impl Iterator<Item = &(Stream, String)> {
        self.head.iter().chain(self.tail.iter())
    }

    fn log(&self, label: &str, ok: bool) {
        let level = if ok {
            log::Level::Info
        } else {
            log::Level::Warn
        };
        for (i, (stream, line)) in self.lines().enumerate() {
            if i == self.head.len() && self.skipped > 0 {
                log::log!(level, srvd_command = label; "{label}: ... {} more lines not logged", self.skipped);
            }
            let tag = if *stream == Stream::Err {
                "stderr"
            } else {
                "stdout"
            };
            log::log!(level, srvd_command = label; "{label} ({tag}): {line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_and_tera_placeholders_expand_to_the_staged_file() {
        for text in [
            "/usr/sbin/haproxy -c -V -f {{ .src }}",
            "/usr/sbin/haproxy -c -V -f {{ src }}",
            "/usr/sbin/haproxy -c -V -f {{src}}",
            "/usr/sbin/haproxy -c -V -f {{.src}}",
        ] {
            let cmd = CommandLine::parse(text).unwrap();
            let argv = cmd.expand(Path::new("/etc/.staged"), Path::new("/etc/final"));
            assert_eq!(
                argv,
                ["/usr/sbin/haproxy", "-c", "-V", "-f", "/etc/.staged"]
            );
            assert_eq!(cmd.label(), "haproxy");
        }
    }

    #[test]
    fn quotes_are_respected_and_placeholders_work_inside_words() {
        let cmd = CommandLine::parse(r#"sh -c 'cp "$0" /tmp/x' --file={{ dest }}.bak"#).unwrap();
        let argv = cmd.expand(Path::new("/a b/s"), Path::new("/d e/f"));
        assert_eq!(argv, ["sh", "-c", r#"cp "$0" /tmp/x"#, "--file=/d e/f.bak"]);
    }

    #[test]
    fn bad_commands_are_refused_with_a_reason() {
        assert!(CommandLine::parse("").unwrap_err().contains("empty"));
        assert!(CommandLine::parse("   ").unwrap_err().contains("empty"));
        assert!(
            CommandLine::parse("echo 'oops")
                .unwrap_err()
                .contains("unbalanced")
        );
        assert!(
            CommandLine::parse("check {{ source }}")
                .unwrap_err()
                .contains("source")
        );
        assert!(
            CommandLine::parse("check {{ src")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            CommandLine::parse("{{ src }} -c")
                .unwrap_err()
                .contains("program")
        );
    }

    #[test]
    fn output_is_bounded_and_keeps_both_ends() {
        let mut out = Output::default();
        let mut pipe = Some(());
        let mut text = Vec::new();
        for i in 0..10_000 {
            text.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        text.extend(std::iter::repeat_n(b'x', 100_000));
        out.feed(Stream::Out, &text, &mut pipe);
        out.finish();
        let lines: Vec<_> = out.lines().map(|(_, l)| l.clone()).collect();
        assert_eq!(lines.len(), HEAD_LINES + TAIL_LINES);
        assert_eq!(lines[0], "line 0");
        assert_eq!(lines[HEAD_LINES + TAIL_LINES - 2], "line 9999");
        assert_eq!(lines.last().unwrap().len(), MAX_LINE);
        assert_eq!(out.skipped, 10_001 - (HEAD_LINES + TAIL_LINES) as u64);
    }
}
