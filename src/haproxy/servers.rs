//! The `server` lines of a rendered HAProxy configuration, and what changed
//! between two renders: the plan the runtime API can carry out, or the reason
//! it cannot and HAProxy must reload.
//!
//! A change qualifies for the runtime API only when every line outside the
//! `server` lines of `backend` and `listen` sections is the same, byte for
//! byte, and in the same place; then each server added, removed, or changed in
//! address, port, weight, `backup` or `disabled` becomes a [`Change`]. The
//! rule is conservative on purpose: anything the runtime API cannot express
//! the same way HAProxy's parser would (a `default-server` line, which HAProxy
//! does not apply to servers added at runtime; `balance first`, where the
//! order of servers matters; a `server-template`) makes the whole change a
//! reload. The words are HAProxy's: configuration.txt section 5.2 (server and
//! default-server options) and management.txt section 9.3 (`add server`).

use std::collections::BTreeMap;
use std::fmt;

/// One `server NAME ADDRESS[:PORT] [KEYWORD ...]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    /// The address as written, without the port (a host name, an IPv4
    /// address, or an IPv6 address without brackets).
    pub addr: String,
    /// The port, when the line gives one.
    pub port: Option<u16>,
    /// `weight N` (0-256), when the line gives one; HAProxy's default is 1.
    pub weight: Option<u16>,
    pub backup: bool,
    pub disabled: bool,
    /// The line asks for health checks (`check`).
    pub check: bool,
    /// The line asks for agent checks (`agent-check`).
    pub agent: bool,
    /// Every other keyword with its arguments, in order, as written: what
    /// `add server` must be given again, and what makes two lines differ in
    /// ways the runtime API cannot change in place.
    pub options: Vec<String>,
}

impl Server {
    /// The address as `add server` and `set server ... addr` take it.
    pub fn address(&self) -> String {
        let host = if self.addr.contains(':') {
            format!("[{}]", self.addr)
        } else {
            self.addr.clone()
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }

    /// The weight HAProxy uses: the line's, or 1 (configuration.txt, `weight`).
    pub fn effective_weight(&self) -> u16 {
        self.weight.unwrap_or(1)
    }
}

/// A `backend` or `listen` section's servers, in the order of the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    pub servers: Vec<Server>,
    /// Why servers here cannot be added at runtime, if a reason applies.
    pub no_runtime_add: Option<String>,
}

/// A rendered configuration as the runtime API sees it: its servers by
/// backend, and everything else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// Every line that is not a server line of a backend or listen section,
    /// in order, with a placeholder where server lines were.
    skeleton: Vec<String>,
    /// Backends and listen sections, by name.
    pub backends: BTreeMap<String, Backend>,
}

/// One thing to do through the runtime API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A server that is not running yet.
    Add { backend: String, server: Server },
    /// A server to drain, then delete.
    Remove { backend: String, server: Server },
    /// `set server BACKEND/NAME weight N`.
    Weight {
        backend: String,
        name: String,
        weight: u16,
    },
    /// `set server BACKEND/NAME addr A port P`.
    Addr { backend: String, server: Server },
    /// `set server BACKEND/NAME state ready|maint` (the `disabled` keyword).
    State {
        backend: String,
        name: String,
        disabled: bool,
    },
}

impl Change {
    /// The backend the change touches.
    pub fn backend(&self) -> &str {
        match self {
            Change::Add { backend, .. }
            | Change::Remove { backend, .. }
            | Change::Weight { backend, .. }
            | Change::Addr { backend, .. }
            | Change::State { backend, .. } => backend,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Add { backend, server } => {
                write!(f, "add {backend}/{} {}", server.name, server.address())
            }
            Change::Remove { backend, server } => write!(f, "remove {backend}/{}", server.name),
            Change::Weight {
                backend,
                name,
                weight,
            } => {
                write!(f, "weight {backend}/{name} {weight}")
            }
            Change::Addr { backend, server } => {
                write!(f, "address {backend}/{} {}", server.name, server.address())
            }
            Change::State {
                backend,
                name,
                disabled,
            } => write!(
                f,
                "{} {backend}/{name}",
                if *disabled { "disable" } else { "enable" }
            ),
        }
    }
}

/// Why a change needs a reload: shown in the log and counted by reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedsReload {
    /// A short, stable label for /metrics (`lines`, `default-server`, ...).
    pub reason: &'static str,
    /// The sentence for the log.
    pub detail: String,
}

impl fmt::Display for NeedsReload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

fn needs(reason: &'static str, detail: String) -> NeedsReload {
    NeedsReload { reason, detail }
}

/// Section keywords that start a new section (configuration.txt section 2.5
/// and the sections it lists).
const SECTIONS: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "resolvers",
    "peers",
    "userlist",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
    "fcgi-app",
    "crt-store",
    "traces",
];

/// Splits a configuration line into words as HAProxy does for the cases a
/// rendered server line uses: blanks separate words, `#` outside quotes
/// starts a comment, and single or double quotes group a word. Lines using
/// backslash escapes or environment variables are kept whole so that any
/// change in them is a change of the skeleton.
fn words(line: &str) -> Option<Vec<String>> {
    if line.contains('\\') || line.contains('$') {
        return None;
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None => match c {
                '"' | '\'' => {
                    quote = Some(c);
                    in_word = true;
                }
                '#' => break,
                c if c.is_whitespace() => {
                    if in_word {
                        out.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                }
                c => {
                    cur.push(c);
                    in_word = true;
                }
            },
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        out.push(cur);
    }
    Some(out)
}

/// Parses `ADDRESS[:PORT]` as a server line writes it. `None` for forms the
/// runtime API does not take the same way (a port range or offset, a
/// prefix such as `ipv4@`, a Unix socket path).
fn parse_address(text: &str) -> Option<(String, Option<u16>)> {
    if text.contains('@') || text.starts_with('/') {
        return None;
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        return Some((host.to_owned(), port));
    }
    match text.matches(':').count() {
        0 => Some((text.to_owned(), None)),
        1 => {
            let (host, port) = text.split_once(':')?;
            if port.is_empty() {
                return Some((host.to_owned(), None));
            }
            // "+N", "-N" and ranges are relative or multiple ports.
            if !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((host.to_owned(), Some(port.parse().ok()?)))
        }
        // A bare IPv6 address: HAProxy reads its last colon as the port
        // separator; rendered configs use brackets, ask for them.
        _ => None,
    }
}

/// Reads a `server` line's words (after `server`). `Err` names what the
/// runtime API cannot take.
fn parse_server(w: &[String]) -> Result<Server, String> {
    let [name, addr, rest @ ..] = w else {
        return Err("a server line without a name and an address".into());
    };
    let (addr, port) =
        parse_address(addr).ok_or_else(|| format!("server {name}: address {addr:?}"))?;
    let mut server = Server {
        name: name.clone(),
        addr,
        port,
        weight: None,
        backup: false,
        disabled: false,
        check: false,
        agent: false,
        options: Vec::new(),
    };
    let mut i = 0;
    while i < rest.len() {
        let kw = rest[i].as_str();
        match kw {
            "weight" => {
                let v = rest
                    .get(i + 1)
                    .ok_or_else(|| format!("server {name}: weight without a value"))?;
                let n: u16 = v
                    .parse()
                    .ok()
                    .filter(|n| *n <= 256)
                    .ok_or_else(|| format!("server {name}: weight {v:?}"))?;
                server.weight = Some(n);
                i += 2;
                continue;
            }
            "backup" => server.backup = true,
            "disabled" => server.disabled = true,
            "enabled" => server.disabled = false,
            "check" => {
                server.check = true;
                server.options.push(kw.to_owned());
            }
            "agent-check" => {
                server.agent = true;
                server.options.push(kw.to_owned());
            }
            _ => {
                // Keep the keyword with its value, if it takes one: a value is
                // the next word unless that word is itself a known flag. The
                // exact split does not matter for equality, only the order.
                server.options.push(kw.to_owned());
            }
        }
        i += 1;
    }
    Ok(server)
}

impl Layout {
    /// Reads a rendered configuration. Never fails: what it cannot read as a
    /// server line stays in the skeleton, so that any change to it is a
    /// change of the skeleton and HAProxy reloads.
    pub fn parse(text: &str) -> Layout {
        let mut layout = Layout::default();
        // The section in effect: (keyword, name).
        let mut section: Option<(String, String)> = None;
        // `default-server` seen in the last `defaults` section.
        let mut defaults_default_server = false;
        let mut defaults_balance_first = false;
        let mut last_was_server = false;
        for line in text.lines() {
            let Some(w) = words(line) else {
                layout.skeleton.push(line.to_owned());
                last_was_server = false;
                continue;
            };
            let first = w.first().map(String::as_str);
            if let Some(kw) = first.filter(|k| SECTIONS.contains(k)) {
                let name = w.get(1).cloned().unwrap_or_default();
                if kw == "defaults" {
                    defaults_default_server = false;
                    defaults_balance_first = false;
                }
                if kw == "backend" || kw == "listen" {
                    let entry = layout
                        .backends
                        .entry(name.clone())
                        .or_insert_with(|| Backend {
                            name: name.clone(),
                            ..Backend::default()
                        });
                    if defaults_default_server {
                        entry.no_runtime_add = Some(reason_default_server());
                    } else if defaults_balance_first {
                        entry.no_runtime_add = Some(reason_balance_first());
                    }
                }
                section = Some((kw.to_owned(), name));
                layout.skeleton.push(line.to_owned());
                last_was_server = false;
                continue;
            }
            let in_backend = section
                .as_ref()
                .filter(|(k, _)| k == "backend" || k == "listen")
                .map(|(_, n)| n.clone());
            match (first, &section) {
                (Some("default-server"), Some((k, _))) if k == "defaults" => {
                    defaults_default_server = true
                }
                (Some("balance"), Some((k, _))) if k == "defaults" => {
                    defaults_balance_first = w.get(1).map(String::as_str) == Some("first")
                }
                _ => {}
            }
            if let Some(backend) = in_backend {
                let b = layout.backends.get_mut(&backend).expect("entered above");
                match first {
                    Some("default-server") => b.no_runtime_add = Some(reason_default_server()),
                    Some("balance") if w.get(1).map(String::as_str) == Some("first") => {
                        b.no_runtime_add = Some(reason_balance_first())
                    }
                    Some("balance")
                        if b.no_runtime_add.as_deref() == Some(&reason_balance_first()) =>
                    {
                        b.no_runtime_add = None
                    }
                    _ => {}
                }
                if first == Some("server") {
                    if let Ok(server) = parse_server(&w[1..]) {
                        b.servers.push(server);
                        // Consecutive server lines share one placeholder, so
                        // that adding or removing one does not move others.
                        if !last_was_server {
                            layout.skeleton.push(format!("\0servers {backend}"));
                        }
                        last_was_server = true;
                        continue;
                    }
                }
            }
            // Blank and comment-only lines between server lines keep the
            // run of servers together.
            if last_was_server && w.is_empty() {
                continue;
            }
            layout.skeleton.push(line.to_owned());
            last_was_server = false;
        }
        layout
    }

    /// The servers of the running configuration, for comparing with HAProxy's
    /// own view (`show servers state`).
    pub fn backend(&self, name: &str) -> Option<&Backend> {
        self.backends.get(name)
    }
}

fn reason_default_server() -> String {
    "a default-server line applies here, and HAProxy does not apply it to servers added at runtime"
        .into()
}

fn reason_balance_first() -> String {
    "balance first depends on the order of servers, which servers added at runtime do not keep"
        .into()
}

/// What the runtime API must do to take `old`'s servers to `new`'s, or why
/// only a reload can. An empty list means the two renders differ in nothing
/// HAProxy runs (for example only in blank lines between servers).
pub fn diff(old: &Layout, new: &Layout) -> Result<Vec<Change>, NeedsReload> {
    if old.skeleton != new.skeleton {
        let line = first_difference(&old.skeleton, &new.skeleton);
        return Err(needs(
            "lines",
            format!("lines other than servers changed ({line})"),
        ));
    }
    let mut changes = Vec::new();
    for (name, new_b) in &new.backends {
        // Same skeleton, so the same backends exist in both.
        let Some(old_b) = old.backends.get(name) else {
            return Err(needs("lines", format!("backend {name} is new")));
        };
        if let Some(why) = new_b
            .no_runtime_add
            .as_ref()
            .or(old_b.no_runtime_add.as_ref())
        {
            if old_b.servers != new_b.servers {
                return Err(needs(
                    if why.starts_with("balance") {
                        "balance-first"
                    } else {
                        "default-server"
                    },
                    format!("backend {name}: {why}"),
                ));
            }
            continue;
        }
        backend_changes(name, old_b, new_b, &mut changes)?;
    }
    Ok(changes)
}

fn first_difference(a: &[String], b: &[String]) -> String {
    let show = |l: &String| {
        if l.starts_with('\0') {
            format!("the servers of {}", &l[9..])
        } else {
            format!("{:?}", l.trim())
        }
    };
    let i = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    match (a.get(i), b.get(i)) {
        (None, Some(added)) => format!("added {}", show(added)),
        (Some(removed), None) => format!("removed {}", show(removed)),
        // A line only added, or only removed, leaves the rest in step.
        (Some(old), Some(_)) if a.get(i + 1..) == b.get(i..) => format!("removed {}", show(old)),
        (Some(_), Some(new)) if b.get(i + 1..) == a.get(i..) => format!("added {}", show(new)),
        (Some(old), Some(new)) => format!("{} became {}", show(old), show(new)),
        (None, None) => String::new(),
    }
}

fn backend_changes(
    backend: &str,
    old: &Backend,
    new: &Backend,
    out: &mut Vec<Change>,
) -> Result<(), NeedsReload> {
    let mut seen = std::collections::BTreeSet::new();
    for s in &new.servers {
        if !seen.insert(s.name.as_str()) {
            return Err(needs(
                "lines",
                format!("backend {backend}: server name {} appears twice", s.name),
            ));
        }
    }
    let by_name = |list: &[Server], name: &str| list.iter().find(|s| s.name == name).cloned();
    // Removals first: a server that leaves frees its name before one of the
    // same name and a different kind is added back.
    for o in &old.servers {
        match by_name(&new.servers, &o.name) {
            None => out.push(Change::Remove {
                backend: backend.to_owned(),
                server: o.clone(),
            }),
            Some(n) if n.backup != o.backup || n.options != o.options => {
                // Active <-> backup, or a keyword `set server` cannot change:
                // remove and add again.
                out.push(Change::Remove {
                    backend: backend.to_owned(),
                    server: o.clone(),
                });
                out.push(Change::Add {
                    backend: backend.to_owned(),
                    server: n,
                });
            }
            Some(n) => {
                if n.addr != o.addr || n.port != o.port {
                    if n.port.is_none() && o.port.is_some() {
                        return Err(needs(
                            "address",
                            format!("backend {backend}: server {} lost its port", n.name),
                        ));
                    }
                    out.push(Change::Addr {
                        backend: backend.to_owned(),
                        server: n.clone(),
                    });
                }
                if n.effective_weight() != o.effective_weight() {
                    out.push(Change::Weight {
                        backend: backend.to_owned(),
                        name: n.name.clone(),
                        weight: n.effective_weight(),
                    });
                }
                if n.disabled != o.disabled {
                    out.push(Change::State {
                        backend: backend.to_owned(),
                        name: n.name.clone(),
                        disabled: n.disabled,
                    });
                }
            }
        }
    }
    for n in &new.servers {
        if by_name(&old.servers, &n.name).is_none() {
            out.push(Change::Add {
                backend: backend.to_owned(),
                server: n.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "global\n  stats socket /run/haproxy/admin.sock level admin\n\
        defaults\n  mode tcp\n\
        frontend fe\n  bind 127.0.0.1:3306\n  default_backend mysql\n\
        backend mysql\n  balance leastconn\n\
        \x20 server db-001 10.0.0.1:3306 weight 10 check\n\
        \x20 server db-002 10.0.0.2:3306 weight 10 check\n";

    fn with_servers(servers: &str) -> String {
        let head = BASE.split("  server db-001").next().unwrap();
        format!("{head}{servers}")
    }

    fn changes(old: &str, new: &str) -> Result<Vec<Change>, NeedsReload> {
        diff(&Layout::parse(old), &Layout::parse(new))
    }

    #[test]
    fn reads_server_lines_with_their_keywords() {
        let l = Layout::parse(BASE);
        let b = l.backend("mysql").unwrap();
        assert_eq!(b.servers.len(), 2);
        let s = &b.servers[0];
        assert_eq!(
            (s.name.as_str(), s.addr.as_str(), s.port),
            ("db-001", "10.0.0.1", Some(3306))
        );
        assert_eq!(s.weight, Some(10));
        assert!(s.check && !s.backup && !s.disabled);
        assert_eq!(s.address(), "10.0.0.1:3306");
    }

    #[test]
    fn same_text_is_no_change() {
        assert_eq!(changes(BASE, BASE), Ok(vec![]));
    }

    #[test]
    fn an_added_server_is_an_add() {
        let new = format!("{BASE}  server db-003 10.0.0.3:3307 weight 5 check\n");
        let c = changes(BASE, &new).unwrap();
        assert_eq!(c.len(), 1);
        let Change::Add { backend, server } = &c[0] else {
            panic!("{c:?}")
        };
        assert_eq!(backend, "mysql");
        assert_eq!(server.address(), "10.0.0.3:3307");
        assert_eq!(server.weight, Some(5));
    }

    #[test]
    fn a_removed_server_is_a_remove() {
        let new = with_servers("  server db-002 10.0.0.2:3306 weight 10 check\n");
        let c = changes(BASE, &new).unwrap();
        assert!(
            matches!(&c[..], [Change::Remove { server, .. }] if server.name == "db-001"),
            "{c:?}"
        );
    }

    #[test]
    fn weight_address_and_state_change_in_place() {
        let new = with_servers(
            "  server db-001 10.0.0.9:3310 weight 20 check\n  server db-002 10.0.0.2:3306 weight 10 check disabled\n",
        );
        let c = changes(BASE, &new).unwrap();
        assert_eq!(c.len(), 3, "{c:?}");
        assert!(
            matches!(&c[0], Change::Addr { server, .. } if server.address() == "10.0.0.9:3310")
        );
        assert!(matches!(&c[1], Change::Weight { weight: 20, .. }));
        assert!(matches!(&c[2], Change::State { disabled: true, name, .. } if name == "db-002"));
    }

    #[test]
    fn backup_or_a_keyword_change_is_remove_then_add() {
        let new = with_servers(
            "  server db-001 10.0.0.1:3306 weight 10 check backup\n  server db-002 10.0.0.2:3306 weight 10 check inter 5s\n",
        );
        let c = changes(BASE, &new).unwrap();
        let kinds: Vec<String> = c.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            kinds,
            [
                "remove mysql/db-001",
                "add mysql/db-001 10.0.0.1:3306",
                "remove mysql/db-002",
                "add mysql/db-002 10.0.0.2:3306"
            ]
        );
    }

    #[test]
    fn weight_one_and_no_weight_are_the_same() {
        let old = with_servers("  server a 10.0.0.1:1\n");
        let new = with_servers("  server a 10.0.0.1:1 weight 1\n");
        assert_eq!(changes(&old, &new), Ok(vec![]));
    }

    #[test]
    fn any_other_line_means_a_reload() {
        let new = BASE.replace("balance leastconn", "balance roundrobin");
        let e = changes(BASE, &new).unwrap_err();
        assert_eq!(e.reason, "lines");
        assert!(e.detail.contains("balance leastconn"), "{e}");
    }

    #[test]
    fn the_reason_says_whether_a_line_was_added_removed_or_changed() {
        let added = BASE.replace(
            "balance leastconn",
            "balance leastconn\n  option allbackups",
        );
        assert!(
            changes(BASE, &added)
                .unwrap_err()
                .detail
                .contains("added \"option allbackups\"")
        );
        assert!(
            changes(&added, BASE)
                .unwrap_err()
                .detail
                .contains("removed \"option allbackups\"")
        );
        let changed = BASE.replace("mode tcp", "mode http");
        let e = changes(BASE, &changed).unwrap_err().detail;
        assert!(e.contains("\"mode tcp\" became \"mode http\""), "{e}");
    }

    #[test]
    fn default_server_or_balance_first_means_a_reload_for_server_changes() {
        let old = BASE.replace(
            "balance leastconn",
            "balance leastconn\n  default-server inter 2s",
        );
        let new = format!("{old}  server db-003 10.0.0.3:3306\n");
        assert_eq!(changes(&old, &new).unwrap_err().reason, "default-server");
        let old = BASE.replace("mode tcp", "mode tcp\n  default-server inter 2s");
        let new = format!("{old}  server db-003 10.0.0.3:3306\n");
        assert_eq!(changes(&old, &new).unwrap_err().reason, "default-server");
        let old = BASE.replace("balance leastconn", "balance first");
        let new = format!("{old}  server db-003 10.0.0.3:3306\n");
        assert_eq!(changes(&old, &new).unwrap_err().reason, "balance-first");
        // Unchanged servers there are fine.
        assert_eq!(changes(&old, &old), Ok(vec![]));
    }

    #[test]
    fn servers_in_frontends_or_odd_addresses_stay_lines() {
        let old = with_servers("  server a unix@/run/a.sock\n");
        let new = with_servers("  server a unix@/run/b.sock\n");
        assert_eq!(changes(&old, &new).unwrap_err().reason, "lines");
        let old = with_servers("  server a 10.0.0.1:+1\n");
        let new = with_servers("  server a 10.0.0.1:+2\n");
        assert_eq!(changes(&old, &new).unwrap_err().reason, "lines");
    }

    #[test]
    fn a_whole_run_of_servers_can_be_replaced() {
        let old = with_servers("  server a 10.0.0.1:1\n  server b 10.0.0.2:1\n");
        let new = with_servers("  server c 10.0.0.3:1\n");
        let c = changes(&old, &new).unwrap();
        let kinds: Vec<String> = c.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            kinds,
            ["remove mysql/a", "remove mysql/b", "add mysql/c 10.0.0.3:1"]
        );
        // From none to some and back: the placeholder is kept only for a
        // run, so an emptied backend is a change of lines.
        let empty = with_servers("");
        assert_eq!(changes(&old, &empty).unwrap_err().reason, "lines");
    }

    #[test]
    fn ipv6_addresses_keep_their_brackets() {
        let old = with_servers("  server a [2001:db8::1]:3306\n");
        let new = with_servers("  server a [2001:db8::2]:3306\n");
        let c = changes(&old, &new).unwrap();
        assert!(
            matches!(&c[..], [Change::Addr { server, .. }] if server.address() == "[2001:db8::2]:3306")
        );
    }

    #[test]
    fn duplicate_names_need_a_reload() {
        let old = with_servers("  server a 10.0.0.1:1\n");
        let new = with_servers("  server a 10.0.0.1:1\n  server a 10.0.0.1:2\n");
        assert_eq!(changes(&old, &new).unwrap_err().reason, "lines");
    }
}
