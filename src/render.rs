//! Templates: Tera with no autoescaping (these are config files, not HTML),
//! strict about undefined variables, and the helpers the Go srvd offered.
//!
//! Context of every template:
//! - `srvs`: the records of the template's first domain;
//! - `domains`: a map from each configured domain (as written) to its records,
//!   iterated in config order (Tera's `preserve_order`: a map iterated in a
//!   template renders the same text every time, and a record's fields come
//!   in a fixed order).
//! - `hostname`: this host's name.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use tera::{Context, Kwargs, State, Tera, TeraResult, Value};

use crate::config::TemplateSettings;
use crate::records::Srv;

/// Every template of the config, compiled once at start-up (and on SIGHUP).
pub struct Renderer {
    tera: Tera,
    /// The Tera name of each template, by config index: its src path.
    names: Vec<String>,
}

impl Renderer {
    /// Reads and compiles each template's `src`, and renders each against
    /// sample records (`try_samples`): what fails with any records is
    /// refused here, not at the first render.
    pub fn load(templates: &[TemplateSettings]) -> Result<Self, Vec<String>> {
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        for t in templates {
            let name = t.src.display().to_string();
            match std::fs::read_to_string(&t.src) {
                Ok(text) => sources.push((name, text)),
                Err(e) => errors.push(format!(
                    "template {name:?} (`src` of {:?}): cannot read it: {e}",
                    t.name
                )),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let renderer = Self::from_sources(sources)?;
        let errors: Vec<String> = (templates.iter().enumerate())
            .filter_map(|(i, t)| renderer.try_samples(i, t).err())
            .collect();
        if errors.is_empty() {
            Ok(renderer)
        } else {
            Err(errors)
        }
    }

    /// Compiles templates given as (name, text) pairs, in config order.
    pub fn from_sources(sources: Vec<(String, String)>) -> Result<Self, Vec<String>> {
        let mut tera = new_tera();
        let mut errors = Vec::new();
        let mut names = Vec::new();
        for (name, text) in sources {
            if !tera.contains_template(&name) {
                // Tera reads much of Go's syntax as something else (`{{ range
                // .srvs }}` compiles, as a variable `range.srvs`), so a Go
                // template is named as such before Tera says anything.
                if let Some(go) = go_syntax(&text) {
                    errors.push(format!(
                        "template {name}:{}:{}: this looks like a Go srvd template \
                         (text/template syntax): `{}`; srvd templates are Tera: convert it \
                         with `srvd migrate-template {name}` (see docs/migrating.md)",
                        go.line, go.column, go.action
                    ));
                    names.push(name);
                    continue;
                }
                if let Err(e) = tera.add_raw_template(&name, &text) {
                    errors.push(format!("template {}", error_text(&e)));
                }
            }
            names.push(name);
        }
        if errors.is_empty() {
            Ok(Renderer { tera, names })
        } else {
            Err(errors)
        }
    }

    /// Renders template `index` with the records of its domains, in config order.
    pub fn render(
        &self,
        index: usize,
        domains: &[(&str, &[Srv])],
        hostname: &str,
    ) -> Result<String, String> {
        // Each domain's records become Tera values once, shared by `srvs` and
        // `domains` (a value clone is a reference count).
        let values: Vec<Value> = domains.iter().map(|(_, r)| records_value(r)).collect();
        let mut map = tera::Map::with_capacity(domains.len());
        for ((name, _), v) in domains.iter().zip(&values) {
            map.insert(name.to_string().into(), v.clone());
        }
        let mut ctx = Context::new();
        ctx.insert_value(
            "srvs",
            values
                .first()
                .cloned()
                .unwrap_or_else(|| Value::from(Vec::<Value>::new())),
        );
        ctx.insert_value("domains", Value::from(map));
        ctx.insert("hostname", hostname);
        let name = &self.names[index];
        match catch_unwind(AssertUnwindSafe(|| self.tera.render(name, &ctx))) {
            Ok(Ok(text)) => Ok(text),
            Ok(Err(e)) => Err(error_text(&e)),
            Err(_) => Err(format!(
                "{name}: the template engine panicked while rendering"
            )),
        }
    }
}

impl Renderer {
    /// Renders template `index` (of `t`) against sample records that use
    /// every field a record can have (`addrs` only with `resolve_targets`,
    /// as lookups give it), and against no records where `allow_empty`
    /// allows that: a template that uses a field records do not have
    /// (`{{ s.hostname }}`) is refused when the config loads, not at its
    /// first render. The error names the template and Tera's line.
    pub fn try_samples(&self, index: usize, t: &TemplateSettings) -> Result<(), String> {
        let records = sample_records(t.resolve_targets);
        let mut sets: Vec<(&str, &[Srv])> = vec![("sample records", &records)];
        if t.allow_empty {
            sets.push(("no records (`allow_empty`)", &[]));
        }
        for (what, set) in sets {
            let domains: Vec<(&str, &[Srv])> =
                t.domains.iter().map(|d| (d.text.as_str(), set)).collect();
            self.render(index, &domains, "host.example.com")
                .map_err(|e| {
                    format!(
                        "template {} (`src` of {:?}) fails to render with {what}: {e} \
                         (the fields of a record are in docs/templates.md)",
                        t.src.display(),
                        t.name
                    )
                })?;
        }
        Ok(())
    }
}

/// Two records with every field set, as a lookup would give them: one
/// active, one of lower priority with weight 0.
pub fn sample_records(with_addrs: bool) -> Vec<Srv> {
    [
        (10, 10, 3306, "db-001.example.com", "192.0.2.11"),
        (20, 0, 3307, "db-002.example.com", "2001:db8::12"),
    ]
    .into_iter()
    .map(|(priority, weight, port, host, addr)| {
        let mut r = Srv::new(host, port, priority, weight, 30);
        if with_addrs {
            if let Ok(ip) = addr.parse() {
                r.set_addrs(&[ip]);
            }
        }
        r
    })
    .collect()
}

/// Where a template uses Go text/template syntax (the Go srvd's templates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoSyntax {
    /// 1-based line of the action.
    pub line: usize,
    /// 1-based column (in characters) of its `{{`.
    pub column: usize,
    /// The action as written, up to its `}}` or the end of its line.
    pub action: String,
}

/// The first `{{ ... }}` of `text` that only Go's text/template reads: one
/// starting with `.`, `$` or a `/*` comment (`{{ .Target }}`, `{{ $srvs :=
/// ... }}`), a Go control word (`{{ range .srvs }}`, `{{ end }}`), or a
/// function applied to space-separated arguments (`{{ fetchsrvs .domains
/// "x" }}`). None of these is a Tera expression that renders with srvd's
/// context, so a Tera template is never flagged.
pub fn go_syntax(text: &str) -> Option<GoSyntax> {
    let mut from = 0;
    while let Some(found) = text[from..].find(['{']) {
        let at = from + found;
        from = at + 1;
        // Tera comments may quote Go syntax.
        if text[at..].starts_with("{#") {
            match text[at..].find("#}") {
                Some(end) => from = at + end + 2,
                None => return None,
            }
            continue;
        }
        if !text[at..].starts_with("{{") {
            continue;
        }
        from = text[at..].find("}}").map_or(text.len(), |e| at + e + 2);
        let mut body = &text[at + 2..];
        if let Some(rest) = body.strip_prefix('-') {
            body = rest;
        }
        let body = body.trim_start_matches([' ', '\t', '\r', '\n']);
        let word_len = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        let (word, after) = body.split_at(word_len);
        let spaced = after.starts_with([' ', '\t']);
        let arg = after.trim_start_matches([' ', '\t']);
        let closes = arg.starts_with("}}") || arg.starts_with("-}}");
        let go = body.starts_with('.') && !body.starts_with("..")
            || body.starts_with('$')
            || body.starts_with("/*")
            || matches!(word, "end" | "else") && closes
            || matches!(
                word,
                "range" | "if" | "with" | "else" | "define" | "template" | "block"
            ) && spaced
                && !closes
            || !word.is_empty() && word != "not" && spaced && arg.starts_with(['.', '$', '"', '`']);
        if go {
            let before = &text[..at];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            let rest = &text[at..];
            let end = rest
                .find("}}")
                .map(|e| e + 2)
                .unwrap_or(rest.len())
                .min(rest.find('\n').unwrap_or(rest.len()));
            return Some(GoSyntax {
                line,
                column,
                action: rest[..end].to_owned(),
            });
        }
    }
    None
}

/// The records as a Tera value. Built once per domain per render and shared
/// by `srvs` and `domains`: at thousands of records, the conversion costs
/// about as much as running the template.
fn records_value(records: &[Srv]) -> Value {
    Value::from_serializable(records)
}

/// Tera's error with its causes, which carry the template name, line and column.
fn error_text(e: &tera::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text.trim_start_matches("error: ").trim_end().to_owned()
}

fn new_tera() -> Tera {
    let mut tera = Tera::new();
    tera.autoescape_on(Vec::<&str>::new());
    tera.register_filter("shuffle", shuffle);
    tera.register_filter("rotate", rotate);
    tera.register_filter("ipv4_to_int", ipv4_to_int);
    tera.register_filter("hex_to_int", hex_to_int);
    tera.register_filter("haproxy_servers", crate::haproxy::template::filter);
    tera.register_function("hostname", |_: Kwargs, _: &State| host_name());
    tera.register_function("interface_addrs", |_: Kwargs, _: &State| interface_addrs());
    tera.register_function("ipv4s_by_interface", |_: Kwargs, _: &State| {
        ipv4s_by_interface()
    });
    tera.register_function("ipv4_by_interface", |_: Kwargs, _: &State| {
        ipv4s_by_interface()
            .into_iter()
            .filter_map(|(name, ips)| ips.into_iter().next().map(|ip| (name, ip)))
            .collect::<BTreeMap<String, String>>()
    });
    tera
}

/// This host's name, as `hostname` in the context and `hostname()`.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `list | shuffle(seed=N)`: the same permutation for the same seed and list,
/// on every host and every srvd version (splitmix64 + Fisher-Yates), so that a
/// fleet can spread load with e.g. `seed=ipv4_to_int(...)` without rewrites.
fn shuffle(list: Vec<Value>, kwargs: Kwargs, _: &State) -> TeraResult<Vec<Value>> {
    let seed = kwargs.must_get::<i64>("seed")?;
    Ok(shuffled(list, seed as u64))
}

pub fn shuffled<T>(mut list: Vec<T>, seed: u64) -> Vec<T> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..list.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        list.swap(i, j);
    }
    list
}

/// `list | rotate(n=N)`: the list starting at its N-th element (N modulo the
/// length; negative N rotates the other way).
fn rotate(mut list: Vec<Value>, kwargs: Kwargs, _: &State) -> TeraResult<Vec<Value>> {
    let n = kwargs.must_get::<i64>("n")?;
    if !list.is_empty() {
        let k = n.rem_euclid(list.len() as i64) as usize;
        list.rotate_left(k);
    }
    Ok(list)
}

/// `"10.1.2.3" | ipv4_to_int`: the address as a 32-bit number.
fn ipv4_to_int(text: String, _: Kwargs, _: &State) -> TeraResult<i64> {
    text.trim()
        .parse::<std::net::Ipv4Addr>()
        .map(|ip| u32::from(ip) as i64)
        .map_err(|_| tera::Error::message(format!("ipv4_to_int: {text:?} is not an IPv4 address")))
}

/// `"ff" | hex_to_int`: a hexadecimal number (with or without 0x).
fn hex_to_int(text: String, _: Kwargs, _: &State) -> TeraResult<i64> {
    let t = text.trim();
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    i64::from_str_radix(digits, 16).map_err(|_| {
        tera::Error::message(format!("hex_to_int: {text:?} is not a hexadecimal number"))
    })
}

/// Every address of every interface, "address/prefix", as the Go srvd's `ifaddrs`.
fn interface_addrs() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifa in addrs {
            let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else {
                continue;
            };
            if let (Some(a), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
                out.push(format!("{}/{}", a.ip(), u32::from(m.ip()).count_ones()));
            } else if let (Some(a), Some(m)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
                let prefix: u32 = m.ip().octets().iter().map(|b| b.count_ones()).sum();
                out.push(format!("{}/{}", a.ip(), prefix));
            }
        }
    }
    out
}

/// Interface name to its IPv4 addresses, as the Go srvd's `ipv4sbyif`.
fn ipv4s_by_interface() -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifa in addrs {
            if let Some(a) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()) {
                out.entry(ifa.interface_name.clone())
                    .or_default()
                    .push(a.ip().to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(host: &str, port: u16, priority: u16) -> Srv {
        Srv::new(host, port, priority, 0, 30)
    }

    #[test]
    fn haproxy_servers_names_the_item_and_the_field_it_cannot_use() {
        let e = render(
            "{% for s in [1] | haproxy_servers %}{% endfor %}",
            &[("d", &[])],
        )
        .unwrap_err();
        assert!(e.contains("haproxy_servers: item 0 has no `host`"), "{e}");
        let e = render(
            "{% for s in [{\"host\": \"a\", \"port\": 70000, \"priority\": 1, \"weight\": 1}] \
             | haproxy_servers %}{% endfor %}",
            &[("d", &[])],
        )
        .unwrap_err();
        assert!(e.contains("item 0: `port` is not 0-65535"), "{e}");
    }

    fn render(text: &str, domains: &[(&str, &[Srv])]) -> Result<String, String> {
        Renderer::from_sources(vec![("t.tmpl".into(), text.into())])
            .map_err(|e| e.join("; "))?
            .render(0, domains, "app-1")
    }

    #[test]
    fn srvs_domains_and_hostname_are_in_the_context() {
        let a = [srv("db-001.example.com", 3306, 10)];
        let b = [srv("cache.example.com", 6379, 0)];
        let out = render(
            "{% for s in srvs %}server {{ s.target }} {{ s.target }}:{{ s.port }} check\n{% endfor %}\
             {% for s in domains[\"_redis._tcp.example.com\"] %}{{ s.host }}:{{ s.port }}{% endfor %} on {{ hostname }}",
            &[("_mysql._tcp.example.com", &a), ("_redis._tcp.example.com", &b)],
        )
        .unwrap();
        assert_eq!(
            out,
            "server db-001.example.com. db-001.example.com.:3306 check\ncache.example.com:6379 on app-1"
        );
    }

    /// A map iterated in a template must give the same text every time:
    /// with a random order, a restart would rewrite dest and reload.
    #[test]
    fn maps_iterate_in_config_and_field_order() {
        let one = [srv("a", 1, 0)];
        let names = [
            "_e._tcp.x",
            "_a._tcp.x",
            "_d._tcp.x",
            "_b._tcp.x",
            "_c._tcp.x",
        ];
        let domains: Vec<(&str, &[Srv])> = names.iter().map(|n| (*n, &one[..])).collect();
        let text = "{% for name, recs in domains %}{{ name }} {% endfor %}|\
                    {% for k, v in srvs[0] %}{{ k }} {% endfor %}";
        let r = Renderer::from_sources(vec![("t".into(), text.into())]).unwrap();
        let first = r.render(0, &domains, "h").unwrap();
        assert_eq!(
            first,
            "_e._tcp.x _a._tcp.x _d._tcp.x _b._tcp.x _c._tcp.x |\
             target host port priority weight ttl endpoint "
        );
        for _ in 0..20 {
            assert_eq!(r.render(0, &domains, "h").unwrap(), first);
        }
    }

    #[test]
    fn undefined_variables_are_errors_naming_the_line() {
        let err = render(
            "line one\n{{ srvs[0].nope }}\n",
            &[("d", &[srv("a", 1, 0)])],
        )
        .unwrap_err();
        assert!(err.contains("t.tmpl:2"), "{err}");
        let err = render("{{ missing }}", &[("d", &[])]).unwrap_err();
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn syntax_errors_name_the_template_and_line() {
        let err = Renderer::from_sources(vec![("x.tmpl".into(), "a\n{% for %}\n".into())])
            .err()
            .unwrap()
            .join("");
        assert!(err.contains("x.tmpl:2"), "{err}");
    }

    #[test]
    fn nothing_is_html_escaped() {
        let out = render("{{ v }}", &[]);
        assert!(out.is_err());
        let r =
            Renderer::from_sources(vec![("t.html".into(), "{{ hostname }}<&>".into())]).unwrap();
        assert_eq!(r.render(0, &[], "a&b").unwrap(), "a&b<&>");
    }

    #[test]
    fn go_templates_are_named_with_their_line() {
        for (text, line, column, action) in [
            (
                "a\n  {{ range .srvs }}\n{{ end }}",
                2,
                3,
                "{{ range .srvs }}",
            ),
            (
                "x {{- $srvs := fetchsrvs .domains \"d\" }}",
                1,
                3,
                "{{- $srvs := fetchsrvs .domains \"d\" }}",
            ),
            ("\n\n{{ .Target }}", 3, 1, "{{ .Target }}"),
            ("{{/* c */}}", 1, 1, "{{/* c */}}"),
            ("{% if x %}{{ end }}", 1, 11, "{{ end }}"),
            ("{{ printf \"%s\" x }}", 1, 1, "{{ printf \"%s\" x }}"),
            ("{{ if .x }}", 1, 1, "{{ if .x }}"),
        ] {
            let found = go_syntax(text).unwrap_or_else(|| panic!("{text:?} not flagged"));
            assert_eq!(
                found,
                GoSyntax {
                    line,
                    column,
                    action: action.into()
                },
                "{text:?}"
            );
        }
    }

    #[test]
    fn tera_templates_are_not_taken_for_go() {
        for text in [
            "{% for s in srvs %}{{ s.target }}:{{ s.port }}{% endfor %}",
            "{{ hostname }} {{ hostname() }} {{- srvs | length -}} {{ not srvs }}",
            "{{ \"a\" ~ srvs[0].host if srvs else \"b\" }} {{ x in \"abc\" }}",
            "{# was {{ .Target }} #}{{ \"{#\" }} {{ s }}",
        ] {
            assert_eq!(go_syntax(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_go_template_fails_to_load_pointing_to_the_converter() {
        let err = Renderer::from_sources(vec![(
            "/etc/haproxy/haproxy.cfg.tmpl".into(),
            "backend nodes\n  {{ range .srvs }}\n  server {{ .Target }}\n  {{ end }}\n".into(),
        )])
        .err()
        .expect("a Go template must not load")
        .join("\n");
        assert!(err.contains("haproxy.cfg.tmpl:2:3"), "{err}");
        assert!(err.contains("looks like a Go srvd template"), "{err}");
        assert!(
            err.contains("srvd migrate-template /etc/haproxy/haproxy.cfg.tmpl"),
            "{err}"
        );
        assert!(err.contains("docs/migrating.md"), "{err}");
    }

    #[test]
    fn shuffle_is_deterministic_and_a_permutation() {
        let list: Vec<u32> = (0..10).collect();
        let a = shuffled(list.clone(), 42);
        assert_eq!(a, shuffled(list.clone(), 42));
        assert_ne!(a, shuffled(list.clone(), 43));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, list);
        // Pinned: the same seed must give the same order in every release.
        assert_eq!(a, [0, 9, 5, 8, 6, 4, 7, 2, 1, 3]);
    }

    #[test]
    fn helpers_work_in_templates() {
        let recs = [srv("a", 1, 0), srv("b", 2, 0), srv("c", 3, 0)];
        let out = render(
            "{% for s in srvs | rotate(n=1) %}{{ s.host }}{% endfor %} \
             {% for s in srvs | rotate(n=-1) %}{{ s.host }}{% endfor %} \
             {{ \"10.0.0.1\" | ipv4_to_int }} {{ \"ff\" | hex_to_int }} {{ hostname() != \"\" }} \
             {{ srvs | shuffle(seed=1) | length }}",
            &[("d", &recs)],
        )
        .unwrap();
        assert_eq!(out, "bca cab 167772161 255 true 3");
        assert!(
            render("{{ \"x\" | ipv4_to_int }}", &[])
                .unwrap_err()
                .contains("IPv4")
        );
        assert!(render("{{ srvs | rotate }}", &[("d", &recs)]).is_err());
    }
}
