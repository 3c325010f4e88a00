//! The shipped HAProxy templates (examples/, packaging/, the one in docs/templates.md,
//! the NixOS module's example) against a real `haproxy -c`: every valid set
//! of records renders a config HAProxy accepts and that means what the
//! records say: a server per host and port, weights, priority as backup.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use srvd::records::{Srv, sort_dedup};
use srvd::render::Renderer;
use support::*;

fn repo(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// A frame for the templates that are only a backend: what HAProxy needs
/// around it to start, with a frontend using that backend.
fn framed(backend: &str) -> String {
    let name = backend
        .lines()
        .find_map(|l| l.trim().strip_prefix("backend "))
        .expect("a backend")
        .trim()
        .to_owned();
    format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\n\
         frontend f\n  bind 127.0.0.1:3306\n  default_backend {name}\n\n{backend}\n"
    )
}

/// Every HAProxy template srvd ships, by where it is shipped.
fn shipped_templates() -> Vec<(&'static str, String)> {
    let docs = repo("docs/templates.md");
    let section = &docs[docs
        .find("## Example: primary and backup servers")
        .expect("the docs' example section")..];
    let start = section.find("```jinja\n").expect("a jinja block") + "```jinja\n".len();
    let block = &section[start..start + section[start..].find("```").unwrap()];

    // The module's example: the `text` option's `example = ''...''`, with
    // the indentation Nix strips from an indented string.
    let nix = repo("nix/module.nix");
    let text = &nix[nix.find("text = mkOption").expect("the text option")..];
    let start = text.find("example = ''\n").unwrap() + "example = ''\n".len();
    let body = &text[start..start + text[start..].find("'';").unwrap()];
    let indent = body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap();
    let body: String = body
        .lines()
        .map(|l| format!("{}\n", l.get(indent..).unwrap_or("")))
        .collect();

    // The Kubernetes example's ConfigMap entry, indented by 4 in the YAML.
    let k8s = repo("packaging/container/kubernetes.yaml");
    let start = k8s
        .find("  haproxy.cfg.tmpl: |\n")
        .expect("the ConfigMap's template")
        + "  haproxy.cfg.tmpl: |\n".len();
    let k8s: String = k8s[start..start + k8s[start..].find("\n---").unwrap()]
        .lines()
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();

    vec![
        (
            "examples/haproxy.cfg.tmpl",
            repo("examples/haproxy.cfg.tmpl"),
        ),
        (
            "packaging/container/haproxy.cfg.tmpl",
            repo("packaging/container/haproxy.cfg.tmpl"),
        ),
        ("packaging/container/kubernetes.yaml", k8s),
        (
            "packaging/examples/haproxy-runtime/haproxy.cfg.tmpl",
            repo("packaging/examples/haproxy-runtime/haproxy.cfg.tmpl"),
        ),
        ("docs/templates.md", framed(block)),
        ("nix/module.nix", framed(&body)),
    ]
}

/// splitmix64: the same record sets on every run, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }
}

fn srv(host: &str, port: u16, priority: u16, weight: u16, addr: IpAddr) -> Srv {
    let mut s = Srv::new(host, port, priority, weight, 30);
    s.set_addrs(&[addr]);
    s
}

/// Valid record sets: the field cases, one record, all weights 0, and
/// random ones (priorities and weights over their whole range, 0 and 65535
/// included; few hosts on several ports, so one host often has several
/// records, some for the same port at two priorities; IPv4 and IPv6).
fn record_sets() -> Vec<Vec<Srv>> {
    let v4 = |n: u8| IpAddr::from([127, 0, 0, n]);
    let mut sets = vec![
        vec![
            srv("db-001.example.com", 3306, 10, 10, v4(11)),
            srv("db-001.example.com", 3307, 10, 10, v4(11)),
            srv("db-002.example.com", 3306, 10, 10, v4(12)),
        ],
        vec![
            srv("db-001.example.com", 3306, 10, 100, v4(11)),
            srv("db-002.example.com", 3306, 10, 100, v4(12)),
            srv("db-003.example.com", 3306, 10, 0, v4(13)),
        ],
        vec![srv("only.example.com", 1, 0, 0, v4(1))],
        vec![srv("only.example.com", 65535, 65535, 65535, v4(1))],
        vec![
            srv("a.example.com", 1, 1, 0, v4(1)),
            srv("b.example.com", 1, 1, 0, v4(2)),
            srv("c.example.com", 1, 2, 0, v4(3)),
        ],
    ];
    let mut rng = Rng(0x5eed);
    let hosts = [
        "db-001.example.com",
        "db-002.example.com",
        "x_y.example.com",
        "n1",
    ];
    let ports = [1, 3306, 3307, 65535];
    let priorities = [0, 0, 10, 10, 20, 65535];
    let weights = [0, 0, 1, 10, 100, 127, 128, 255, 256, 65534, 65535];
    for _ in 0..60 {
        let n = 1 + (rng.next() % 24) as usize;
        let set = (0..n)
            .map(|_| {
                let addr = if rng.next() % 4 == 0 {
                    IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1])
                } else {
                    v4(1 + (rng.next() % 200) as u8)
                };
                srv(
                    rng.pick(&hosts),
                    rng.pick(&ports),
                    rng.pick(&priorities),
                    rng.pick(&weights),
                    addr,
                )
            })
            .collect();
        sets.push(set);
    }
    // Many records.
    sets.push(
        (0..300)
            .map(|i| {
                srv(
                    &format!("r{i}.example.com"),
                    3306,
                    (i % 3) as u16,
                    (i * 217) as u16,
                    v4(9),
                )
            })
            .collect(),
    );
    for set in &mut sets {
        sort_dedup(set);
    }
    sets
}

/// `haproxy -c` on `text`; the test fails (not skips) without HAProxy.
fn haproxy_accepts(text: &str, dir: &Path) -> Result<(), String> {
    let file = dir.join("haproxy.cfg");
    std::fs::write(&file, text).unwrap();
    let out = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&file)
        .output()
        .expect(
            "haproxy must be installed to test the shipped templates (tests/all.sh installs it)",
        );
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The `server` lines of a config: name → (weight, backup).
fn servers(cfg: &str) -> Vec<(String, u16, bool)> {
    cfg.lines()
        .filter_map(|l| l.trim().strip_prefix("server "))
        .map(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let weight = words
                .iter()
                .position(|w| *w == "weight")
                .map(|i| words[i + 1].parse().unwrap())
                .expect("every server line has a weight");
            (words[0].to_owned(), weight, words.contains(&"backup"))
        })
        .collect()
}

/// What the records mean in HAProxy's terms, computed here from RFC 2782
/// on its own: a server per host:port (the first, lowest priority, record
/// of each), backup above the lowest priority, weights scaled per tier with
/// 0 kept at 0 unless the whole tier is 0.
fn meaning(records: &[Srv]) -> BTreeMap<String, (u16, bool)> {
    let mut first: Vec<&Srv> = Vec::new();
    for r in records {
        if !first.iter().any(|f| f.host == r.host && f.port == r.port) {
            first.push(r);
        }
    }
    let lowest = first.iter().map(|r| r.priority).min().unwrap_or(0);
    let mut max: HashMap<bool, u32> = HashMap::new();
    for r in &first {
        let m = max.entry(r.priority > lowest).or_default();
        *m = (*m).max(u32::from(r.weight));
    }
    first
        .iter()
        .map(|r| {
            let backup = r.priority > lowest;
            let m = max[&backup];
            let w = u32::from(r.weight);
            let weight = if m == 0 {
                1
            } else if w == 0 {
                0
            } else {
                ((w * 256 + m / 2) / m).clamp(1, 256)
            };
            (format!("{}:{}", r.host, r.port), (weight as u16, backup))
        })
        .collect()
}

#[test]
fn every_shipped_haproxy_template_renders_what_the_records_mean_and_haproxy_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let sets = record_sets();
    let templates = shipped_templates();
    assert_eq!(templates.len(), 6);
    let mut checked = 0;
    for (name, text) in &templates {
        let renderer = Renderer::from_sources(vec![(name.to_string(), text.clone())])
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        for (i, set) in sets.iter().enumerate() {
            let cfg = renderer
                .render(0, &[("_mysql._tcp.example.com", set)], "app-1")
                .unwrap_or_else(|e| panic!("{name}, set {i}: {e}"));
            if let Err(e) = haproxy_accepts(&cfg, dir.path()) {
                panic!("{name}, set {i}: haproxy -c refused:\n{e}\n{cfg}");
            }
            let got = servers(&cfg);
            let named: BTreeMap<String, (u16, bool)> =
                got.iter().map(|(n, w, b)| (n.clone(), (*w, *b))).collect();
            assert_eq!(
                named.len(),
                got.len(),
                "{name}, set {i}: names repeat\n{cfg}"
            );
            assert_eq!(named, meaning(set), "{name}, set {i}:\n{cfg}");
            checked += 1;
        }
    }
    assert_eq!(checked, templates.len() * sets.len());
    assert!(sets.len() > 60);
}

/// A field case's srvd.toml and zone file, with the bundled template.
fn field_site(case: &str) -> Site {
    let site = Site::from_field_case(case);
    site.write("haproxy.cfg.tmpl", &repo("examples/haproxy.cfg.tmpl"));
    site
}

#[test]
fn one_node_on_two_ports_is_two_servers_that_haproxy_accepts() {
    // SRV 10 10 3306 db-001 and 10 10 3307 db-001 (two instances on one
    // node), checked with the operator's `haproxy -c -q`.
    let site = field_site("01-dup-server-names");
    let out = site.run(&["--oneshot"]);
    let cfg = site.read("out/haproxy.cfg");
    assert!(
        out.status.success(),
        "{}\n{cfg}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = servers(&cfg).into_iter().map(|s| s.0).collect();
    assert_eq!(
        names,
        [
            "db-001.example.com:3306",
            "db-001.example.com:3307",
            "db-002.example.com:3306"
        ],
        "{cfg}"
    );
    assert!(cfg.contains("127.0.0.11:3307"), "{cfg}");
    haproxy_accepts(&cfg, site.dir.path()).unwrap();
}

#[test]
fn a_weight_zero_replica_being_drained_gets_no_share() {
    // SRV 10 100 db-001, 10 100 db-002, 10 0 db-003 (RFC 2782: weight 0 is
    // "a very small chance"): db-003 must not get a third of the reads.
    let site = field_site("34-srv-weight-zero-full-share");
    let out = site.run(&["--oneshot"]);
    let cfg = site.read("out/haproxy.cfg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        servers(&cfg),
        [
            ("db-001.example.com:3306".to_owned(), 256, false),
            ("db-002.example.com:3306".to_owned(), 256, false),
            ("db-003.example.com:3306".to_owned(), 0, false),
        ],
        "{cfg}"
    );
    haproxy_accepts(&cfg, site.dir.path()).unwrap();
}
