//! Applying server changes through HAProxy's runtime API (the stats socket at
//! `level admin`), so that a change in the records needs no reload, and
//! checking afterwards that HAProxy runs what the file says.
//!
//! Commands and answers are those of management.txt section 9.3 for HAProxy
//! 2.6: `add server`, `enable health|agent|server`, `set server ... weight |
//! addr ... port ... | state drain|maint|ready`, `shutdown sessions server`,
//! `del server`, `show servers state`, `show stat`. A server leaves in three
//! steps: drain (no new connections; current ones may finish, for up to
//! `drain`), then its remaining sessions are shut down, then it is deleted.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::servers::{Backend, Change, Server};
use super::socket::{CliAddress, CliError, ask};

/// A step the runtime API refused or could not be asked: the reason srvd
/// falls back to a reload.
#[derive(Debug)]
pub struct RuntimeError {
    /// A short, stable label for /metrics: `socket`, `refused`, `verify`.
    pub reason: &'static str,
    pub detail: String,
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for RuntimeError {}

/// One command line and how to tell that it worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub line: String,
    expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The command answers nothing (or only blank lines) when it works.
    Silence,
    /// The answer starts with one of these.
    StartsWith(&'static [&'static str]),
}

impl Command {
    fn silent(line: String) -> Command {
        Command {
            line,
            expect: Expect::Silence,
        }
    }

    fn answered(line: String, ok: &'static [&'static str]) -> Command {
        Command {
            line,
            expect: Expect::StartsWith(ok),
        }
    }

    /// Whether `answer` says the command worked.
    pub fn worked(&self, answer: &str) -> bool {
        let answer = answer.trim();
        match self.expect {
            Expect::Silence => answer.is_empty(),
            Expect::StartsWith(ok) => ok.iter().any(|p| answer.starts_with(p)),
        }
    }
}

/// The commands of one change, in three phases: before the drain, the
/// servers to drain, and after the drain.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Script {
    pub now: Vec<Command>,
    /// `backend/server` names to drain before `after`.
    pub drain: Vec<String>,
    pub after: Vec<Command>,
    /// Servers to add once the drain is over (a server replaced under the
    /// same name).
    pub last: Vec<Command>,
}

fn id(backend: &str, name: &str) -> String {
    format!("{backend}/{name}")
}

fn add_commands(backend: &str, s: &Server) -> Vec<Command> {
    let mut line = format!("add server {} {}", id(backend, &s.name), s.address());
    for o in &s.options {
        line.push(' ');
        line.push_str(o);
    }
    if let Some(w) = s.weight {
        line.push_str(&format!(" weight {w}"));
    }
    if s.backup {
        line.push_str(" backup");
    }
    let mut out = vec![Command::answered(line, &["New server registered."])];
    if s.check {
        out.push(Command::silent(format!(
            "enable health {}",
            id(backend, &s.name)
        )));
    }
    if s.agent {
        out.push(Command::silent(format!(
            "enable agent {}",
            id(backend, &s.name)
        )));
    }
    if !s.disabled {
        out.push(Command::silent(format!(
            "enable server {}",
            id(backend, &s.name)
        )));
    }
    out
}

fn remove_commands(backend: &str, s: &Server) -> Vec<Command> {
    let i = id(backend, &s.name);
    vec![
        Command::silent(format!("shutdown sessions server {i}")),
        Command::silent(format!("set server {i} state maint")),
        Command::answered(format!("del server {i}"), &["Server deleted."]),
    ]
}

/// The commands for `changes`, in an order that never leaves a backend with
/// less than it needs: additions and in-place changes first, then drains,
/// then deletions, then servers re-added under a name that was deleted.
pub fn script(changes: &[Change]) -> Script {
    let mut s = Script::default();
    let removed: Vec<(String, String)> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Remove { backend, server } => Some((backend.clone(), server.name.clone())),
            _ => None,
        })
        .collect();
    for c in changes {
        match c {
            Change::Add { backend, server } => {
                let cmds = add_commands(backend, server);
                if removed.contains(&(backend.clone(), server.name.clone())) {
                    s.last.extend(cmds);
                } else {
                    s.now.extend(cmds);
                }
            }
            Change::Remove { backend, server } => {
                s.now.push(Command::silent(format!(
                    "set server {} state drain",
                    id(backend, &server.name)
                )));
                s.drain.push(id(backend, &server.name));
                s.after.extend(remove_commands(backend, server));
            }
            Change::Weight {
                backend,
                name,
                weight,
            } => s.now.push(Command::silent(format!(
                "set server {} weight {weight}",
                id(backend, name)
            ))),
            Change::Addr { backend, server } => {
                let mut line = format!(
                    "set server {} addr {}",
                    id(backend, &server.name),
                    server.addr
                );
                if let Some(p) = server.port {
                    line.push_str(&format!(" port {p}"));
                }
                s.now.push(Command::answered(
                    line,
                    &["IP changed", "no need to change", "port changed"],
                ));
            }
            Change::State {
                backend,
                name,
                disabled,
            } => s.now.push(Command::silent(format!(
                "set server {} state {}",
                id(backend, name),
                if *disabled { "maint" } else { "ready" }
            ))),
        }
    }
    s
}

/// What applying a script did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Commands sent and accepted.
    pub commands: usize,
    /// How long the drain lasted.
    pub drained: Duration,
}

async fn run(addr: &CliAddress, cmd: &Command, limit: Duration) -> Result<(), RuntimeError> {
    let answer = ask(addr, &cmd.line, limit)
        .await
        .map_err(|e| socket_error(addr, &cmd.line, e))?;
    if cmd.worked(&answer) {
        Ok(())
    } else {
        Err(RuntimeError {
            reason: "refused",
            detail: format!(
                "HAProxy refused `{}`: {}",
                cmd.line,
                answer.trim().lines().next().unwrap_or("(no answer)")
            ),
        })
    }
}

fn socket_error(addr: &CliAddress, line: &str, e: CliError) -> RuntimeError {
    RuntimeError {
        reason: if matches!(e, CliError::Timeout) {
            "timeout"
        } else {
            "socket"
        },
        detail: format!("runtime API {addr}: `{line}`: {e}"),
    }
}

/// Carries out `script` on the stats socket at `addr`: each command within
/// `limit`, the drain for at most `drain` (shorter when the servers have no
/// sessions left). Stops at the first command that does not work; the caller
/// then reloads, which completes whatever is left.
pub async fn apply(
    addr: &CliAddress,
    script: &Script,
    limit: Duration,
    drain: Duration,
) -> Result<Applied, RuntimeError> {
    let mut applied = Applied::default();
    for c in &script.now {
        run(addr, c, limit).await?;
        applied.commands += 1;
    }
    if !script.drain.is_empty() {
        let started = Instant::now();
        let until = started + drain;
        loop {
            let stat = ask(addr, "show stat", limit)
                .await
                .map_err(|e| socket_error(addr, "show stat", e))?;
            let sessions = current_sessions(&stat);
            let busy = script
                .drain
                .iter()
                .any(|id| sessions.get(id).copied().unwrap_or(0) > 0);
            if !busy || Instant::now() >= until {
                break;
            }
            sleep(Duration::from_millis(100).min(until - Instant::now())).await;
        }
        applied.drained = started.elapsed();
    }
    for c in &script.after {
        run_del(addr, c, limit).await?;
        applied.commands += 1;
    }
    for c in &script.last {
        run(addr, c, limit).await?;
        applied.commands += 1;
    }
    Ok(applied)
}

/// `del server` refuses while connections are still being torn down after
/// `shutdown sessions`: ask again for a short while.
async fn run_del(addr: &CliAddress, cmd: &Command, limit: Duration) -> Result<(), RuntimeError> {
    if !cmd.line.starts_with("del server") {
        return run(addr, cmd, limit).await;
    }
    let until = Instant::now() + limit;
    loop {
        match run(addr, cmd, limit).await {
            Err(e) if e.reason == "refused" && Instant::now() < until => {
                sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// Current sessions per `backend/server`, from `show stat`'s CSV
/// (management.txt section 9.1, field `scur`).
pub fn current_sessions(stat: &str) -> BTreeMap<String, u64> {
    let mut lines = stat.lines();
    let Some(header) = lines.next() else {
        return BTreeMap::new();
    };
    let cols: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(scur)) = (col("pxname"), col("svname"), col("scur")) else {
        return BTreeMap::new();
    };
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let name = *f.get(sv)?;
            if name == "FRONTEND" || name == "BACKEND" {
                return None;
            }
            Some((id(f.get(px)?, name), f.get(scur)?.parse().unwrap_or(0)))
        })
        .collect()
}

/// A server as HAProxy runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub name: String,
    pub addr: String,
    pub port: u16,
    /// The weight set by the configuration or `set server ... weight`.
    pub weight: u16,
    /// In maintenance by the configuration or by the runtime API.
    pub maint: bool,
    pub backup: bool,
}

/// Reads `show servers state BACKEND` (its srv_admin_state bits: 0x01 forced
/// maintenance, 0x04 `disabled` in the configuration) and the `bck` column
/// of `show stat`.
pub fn parse_running(state: &str, stat: &str, backend: &str) -> Option<Vec<Running>> {
    let mut lines = state.lines();
    // The first line is the format version, the second the column names.
    lines.next()?;
    let header = lines.next()?;
    let cols: Vec<&str> = header.trim_start_matches("# ").split_whitespace().collect();
    let col = |n: &str| cols.iter().position(|c| *c == n);
    let (be, name, addr, admin, uweight, port) = (
        col("be_name")?,
        col("srv_name")?,
        col("srv_addr")?,
        col("srv_admin_state")?,
        col("srv_uweight")?,
        col("srv_port")?,
    );
    let backups = backup_flags(stat);
    let mut out = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < cols.len() || f[be] != backend {
            continue;
        }
        let admin: u32 = f[admin].parse().ok()?;
        out.push(Running {
            name: f[name].to_owned(),
            addr: f[addr].to_owned(),
            port: f[port].parse().ok()?,
            weight: f[uweight].parse().ok()?,
            maint: admin & (0x01 | 0x04) != 0,
            backup: backups.get(&id(backend, f[name])).copied().unwrap_or(false),
        });
    }
    Some(out)
}

fn backup_flags(stat: &str) -> BTreeMap<String, bool> {
    let mut lines = stat.lines();
    let Some(header) = lines.next() else {
        return BTreeMap::new();
    };
    let cols: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(bck)) = (col("pxname"), col("svname"), col("bck")) else {
        return BTreeMap::new();
    };
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((id(f.get(px)?, f.get(sv)?), *f.get(bck)? == "1"))
        })
        .collect()
}

/// Where HAProxy's running servers differ from the file's, or `None` when
/// they match in names, addresses (where the file gives an IP address),
/// ports, weights, backup and maintenance.
pub fn mismatch(file: &Backend, running: &[Running]) -> Option<String> {
    let mut names: Vec<&str> = running.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    let mut wanted: Vec<&str> = file.servers.iter().map(|s| s.name.as_str()).collect();
    wanted.sort_unstable();
    if names != wanted {
        return Some(format!(
            "backend {}: HAProxy runs [{}], the file has [{}]",
            file.name,
            names.join(", "),
            wanted.join(", ")
        ));
    }
    for s in &file.servers {
        let r = running.iter().find(|r| r.name == s.name)?;
        let addr_differs = s
            .addr
            .parse::<IpAddr>()
            .is_ok_and(|ip| r.addr.parse::<IpAddr>().map(|r| r != ip).unwrap_or(true));
        let port_differs = s.port.is_some_and(|p| p != r.port);
        if addr_differs || port_differs {
            return Some(format!(
                "{}/{}: HAProxy runs {}:{}, the file has {}",
                file.name,
                s.name,
                r.addr,
                r.port,
                s.address()
            ));
        }
        if r.weight != s.effective_weight() {
            return Some(format!(
                "{}/{}: HAProxy runs weight {}, the file has {}",
                file.name,
                s.name,
                r.weight,
                s.effective_weight()
            ));
        }
        if r.backup != s.backup {
            return Some(format!("{}/{}: backup differs", file.name, s.name));
        }
        if r.maint != s.disabled {
            return Some(format!(
                "{}/{}: HAProxy has it {}, the file {}",
                file.name,
                s.name,
                if r.maint { "in maintenance" } else { "enabled" },
                if s.disabled {
                    "disables it"
                } else {
                    "enables it"
                }
            ));
        }
    }
    None
}

/// Asks HAProxy for `backend`'s servers and compares them with the file's.
/// `Ok(None)` when they match.
pub async fn verify(
    addr: &CliAddress,
    file: &Backend,
    limit: Duration,
) -> Result<Option<String>, RuntimeError> {
    let line = format!("show servers state {}", file.name);
    let state = ask(addr, &line, limit)
        .await
        .map_err(|e| socket_error(addr, &line, e))?;
    let stat = ask(addr, "show stat", limit)
        .await
        .map_err(|e| socket_error(addr, "show stat", e))?;
    let running = parse_running(&state, &stat, &file.name).ok_or_else(|| RuntimeError {
        reason: "verify",
        detail: format!(
            "runtime API {addr}: cannot read `{line}`: {:?}",
            state.lines().next().unwrap_or("")
        ),
    })?;
    Ok(mismatch(file, &running))
}

/// HAProxy's worker: its process id and how long it has run, from `show
/// info`. A change of either behind srvd's back means HAProxy restarted or
/// reloaded and runs the file, not what srvd applied at runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worker {
    pub pid: u32,
    pub uptime_sec: u64,
}

/// Reads `show info`'s `Pid` and `Uptime_sec`.
pub fn parse_info(text: &str) -> Option<Worker> {
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(':').map(str::trim))
    };
    Some(Worker {
        pid: field("Pid")?.parse().ok()?,
        uptime_sec: field("Uptime_sec")?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::servers::{Layout, diff};
    use super::*;

    fn lines(s: &[Command]) -> Vec<&str> {
        s.iter().map(|c| c.line.as_str()).collect()
    }

    const OLD: &str = "backend be\n  server a 10.0.0.1:3306 check weight 10\n  server b 10.0.0.2:3306 weight 10\n";

    #[test]
    fn a_script_adds_first_drains_then_deletes() {
        let new = "backend be\n  server b 10.0.0.2:3306 weight 20\n  server c 10.0.0.3:3306 check agent-check weight 5 backup\n";
        let c = diff(&Layout::parse(OLD), &Layout::parse(new)).unwrap();
        let s = script(&c);
        assert_eq!(
            lines(&s.now),
            [
                "set server be/a state drain",
                "set server be/b weight 20",
                "add server be/c 10.0.0.3:3306 check agent-check weight 5 backup",
                "enable health be/c",
                "enable agent be/c",
                "enable server be/c",
            ]
        );
        assert_eq!(s.drain, ["be/a"]);
        assert_eq!(
            lines(&s.after),
            [
                "shutdown sessions server be/a",
                "set server be/a state maint",
                "del server be/a"
            ]
        );
        assert!(s.last.is_empty());
    }

    #[test]
    fn a_server_replaced_under_its_name_is_added_after_the_deletion() {
        let new = "backend be\n  server a 10.0.0.1:3306 check weight 10 backup\n  server b 10.0.0.2:3306 weight 10 disabled\n";
        let c = diff(&Layout::parse(OLD), &Layout::parse(new)).unwrap();
        let s = script(&c);
        assert_eq!(
            lines(&s.now),
            ["set server be/a state drain", "set server be/b state maint"]
        );
        assert_eq!(
            lines(&s.last),
            [
                "add server be/a 10.0.0.1:3306 check weight 10 backup",
                "enable health be/a",
                "enable server be/a"
            ]
        );
    }

    #[test]
    fn a_disabled_server_is_added_but_not_enabled() {
        let new = format!("{OLD}  server c 10.0.0.3:1 disabled\n");
        let c = diff(&Layout::parse(OLD), &Layout::parse(&new)).unwrap();
        assert_eq!(lines(&script(&c).now), ["add server be/c 10.0.0.3:1"]);
    }

    #[test]
    fn answers_tell_success_from_refusal() {
        let add = Command::answered(
            "add server x/y 1.1.1.1:1".into(),
            &["New server registered."],
        );
        assert!(add.worked("New server registered.\n\n"));
        assert!(!add.worked("unknown keyword 'foobar'.\n"));
        let set = Command::silent("set server x/y weight 2".into());
        assert!(set.worked("\n"));
        assert!(!set.worked("No such server.\n"));
    }

    // From HAProxy 2.6.12 on this layout: `show servers state be` and `show stat`.
    const STATE: &str = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n\
        3 be 1 a 10.0.0.1 2 0 10 10 3 8 2 0 6 0 0 0 - 3306 - 0 0 - - 0\n\
        3 be 2 b 10.0.0.2 2 1 10 10 0 1 0 2 6 0 0 0 - 3306 - 0 0 - - 0\n\n";
    const STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck\n\
        fe,FRONTEND,,,0,1,,,,,,,,,,,,OPEN,,,\n\
        be,a,0,0,3,3,,,,,,,,,,,,UP,10,1,0\n\
        be,b,0,0,0,0,,,,,,,,,,,,MAINT,10,0,1\n\
        be,BACKEND,0,0,3,3,,,,,,,,,,,,UP,10,1,0\n";

    #[test]
    fn reads_running_servers_and_sessions() {
        let r = parse_running(STATE, STAT, "be").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[1],
            Running {
                name: "b".into(),
                addr: "10.0.0.2".into(),
                port: 3306,
                weight: 10,
                maint: true,
                backup: true
            }
        );
        let s = current_sessions(STAT);
        assert_eq!(s.get("be/a"), Some(&3));
        assert_eq!(s.get("be/b"), Some(&0));
        assert!(!s.contains_key("be/BACKEND"));
    }

    #[test]
    fn the_file_and_the_running_servers_are_compared() {
        let running = parse_running(STATE, STAT, "be").unwrap();
        let same = Layout::parse(
            "backend be\n  server a 10.0.0.1:3306 weight 10\n  server b 10.0.0.2:3306 weight 10 backup disabled\n",
        );
        assert_eq!(mismatch(same.backend("be").unwrap(), &running), None);
        let other = Layout::parse(
            "backend be\n  server a 10.0.0.1:3306 weight 11\n  server b 10.0.0.2:3306 weight 10 backup disabled\n",
        );
        assert!(
            mismatch(other.backend("be").unwrap(), &running)
                .unwrap()
                .contains("weight 10, the file has 11")
        );
        let gone = Layout::parse("backend be\n  server a 10.0.0.1:3306 weight 10\n");
        assert!(
            mismatch(gone.backend("be").unwrap(), &running)
                .unwrap()
                .contains("HAProxy runs [a, b]")
        );
    }

    #[test]
    fn reads_show_info() {
        assert_eq!(
            parse_info("Name: HAProxy\nPid: 14264\nUptime: 0d 0h00m00s\nUptime_sec: 42\n"),
            Some(Worker {
                pid: 14264,
                uptime_sec: 42
            })
        );
        assert_eq!(parse_info("Unknown command"), None);
    }
}
