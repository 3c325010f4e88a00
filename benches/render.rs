//! In-process costs, with the example HAProxy template:
//! - `render`: records → rendered bytes;
//! - `render_plain`: the same template with the records as they come
//!   (`srvs`, not `srvs | haproxy_servers`): what the filter costs;
//! - `unchanged_cycle`: a whole poll cycle whose records did not change, from
//!   records in hand (a zone file, already read) to the decision "unchanged";
//! - `unchanged_cycle_reread`: the same cycle when the records arrive anew,
//!   equal to the last ones, as when a cached DNS answer expires: the zone
//!   file is touched before each iteration, so the cycle reads and parses it
//!   again, validates and orders the records, looks up every target's
//!   address, and compares with the last render's records;
//! - `resolve_targets`: the part of that cycle a DNS user pays at every TTL
//!   expiry with `resolve_targets = true`: a new SRV answer (equal to the
//!   last one) whose targets' addresses have expired too, looked up again
//!   from a zone in memory (no network, no file parsing).
//!
//! `cargo bench --bench render` prints medians; budgets: a render of 1,000
//! records ≤ 2 ms, of 10,000 ≤ 20 ms. `bash benches/run.sh` runs these with
//! the whole-process benchmarks and prints one table.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::Instant;

use srvd::config::{Flags, RecordSource};
use srvd::engine::{self, Engine};
use srvd::records::{Answer, Srv};
use srvd::render::Renderer;
use srvd::source::Source;

const SIZES: &[usize] = &[10, 100, 1_000, 10_000];
const TEMPLATE: &str = include_str!("../examples/haproxy.cfg.tmpl");

fn main() {
    divan::main();
}

fn records(n: usize) -> Vec<Srv> {
    let mut v: Vec<Srv> = (0..n)
        .map(|i| {
            let priority = if i % 10 == 0 { 20 } else { 10 };
            let mut s = Srv::new(&format!("db-{i:05}.example.com"), 3306, priority, 5, 30);
            let ip = std::net::Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8);
            s.set_addrs(&[ip.into()]);
            s
        })
        .collect();
    srvd::records::sort_dedup(&mut v);
    v
}

#[divan::bench(args = SIZES)]
fn render(bencher: divan::Bencher, n: usize) {
    bench_render(bencher, TEMPLATE.into(), n);
}

#[divan::bench(args = SIZES)]
fn render_plain(bencher: divan::Bencher, n: usize) {
    let plain = TEMPLATE
        .replace("srvs | haproxy_servers", "srvs")
        .replace("s.name", "s.host")
        .replace("s.backup", "s.priority > 10");
    assert_ne!(
        plain, TEMPLATE,
        "the example no longer uses haproxy_servers"
    );
    bench_render(bencher, plain, n);
}

/// Renders `template` with `n` records, once per iteration.
fn bench_render(bencher: divan::Bencher, template: String, n: usize) {
    let renderer = Renderer::from_sources(vec![("haproxy.cfg.tmpl".into(), template)]).unwrap();
    let recs = records(n);
    bencher.bench(|| {
        let out = renderer
            .render(0, &[("_mysql._tcp.example.com", &recs)], "app-1")
            .unwrap();
        divan::black_box(out.len())
    });
}

/// A zone file with `n` SRV records and their A records, and a config that
/// renders the example template from it into a temporary directory.
fn site(n: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut zone =
        String::from("$ORIGIN example.com.\n$TTL 30\n@ IN SOA ns1 h 1 3600 600 86400 30\n");
    for i in 0..n {
        let prio = if i % 10 == 0 { 20 } else { 10 };
        let _ = writeln!(zone, "_mysql._tcp IN SRV {prio} 5 3306 db-{i:05}");
        let _ = writeln!(
            zone,
            "db-{i:05} IN A 10.{}.{}.{}",
            i >> 16 & 255,
            i >> 8 & 255,
            i & 255
        );
    }
    std::fs::write(dir.path().join("z.zone"), zone).unwrap();
    std::fs::write(dir.path().join("haproxy.cfg.tmpl"), TEMPLATE).unwrap();
    let config = dir.path().join("srvd.toml");
    std::fs::write(
        &config,
        "src = \"haproxy.cfg.tmpl\"\ndest = \"haproxy.cfg\"\ndomain = \"_mysql._tcp.example.com\"\n\
         zone_file = \"z.zone\"\nresolve_targets = true\nnohttpd = true\n",
    )
    .unwrap();
    (dir, config)
}

/// A runtime and an engine for the site's config whose first cycle has read
/// the zone, rendered and written dest; the sender keeps it from stopping.
fn engine_after_first_cycle(
    config: &std::path::Path,
) -> (
    tokio::runtime::Runtime,
    Engine,
    tokio::sync::watch::Sender<bool>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let loaded = engine::load(config, Flags::default()).unwrap();
    let mut engine = Engine::new(loaded, config, stop_rx).unwrap();
    let first = rt.block_on(engine.cycle(&[0], Instant::now(), true, &HashMap::new()));
    assert!(first.failed.is_empty() && first.changed == [0]);
    (rt, engine, stop)
}

#[divan::bench(args = SIZES)]
fn unchanged_cycle(bencher: divan::Bencher, n: usize) {
    let (_dir, config) = site(n);
    let (rt, mut engine, _stop) = engine_after_first_cycle(&config);
    let direct = HashMap::new();
    bencher.bench_local(|| {
        let report = rt.block_on(engine.cycle(&[0], Instant::now(), false, &direct));
        assert!(report.changed.is_empty() && report.failed.is_empty());
    });
}

// Five single-iteration samples: at 10,000 records one iteration takes seconds.
#[divan::bench(args = SIZES, sample_count = 5, sample_size = 1)]
fn unchanged_cycle_reread(bencher: divan::Bencher, n: usize) {
    let (dir, config) = site(n);
    let zone = dir.path().join("z.zone");
    let (rt, mut engine, _stop) = engine_after_first_cycle(&config);
    let direct = HashMap::new();
    let file = std::fs::File::options().write(true).open(&zone).unwrap();
    let mut stamp = std::time::SystemTime::now();
    bencher
        .with_inputs(|| {
            // A new mtime, same content: the next cycle reads the file again.
            stamp += std::time::Duration::from_millis(1);
            file.set_modified(stamp).unwrap();
        })
        .bench_local_values(|()| {
            let report = rt.block_on(engine.cycle(&[0], Instant::now(), false, &direct));
            assert!(report.changed.is_empty() && report.failed.is_empty());
        });
}

#[divan::bench(args = SIZES, sample_count = 5, sample_size = 1)]
fn resolve_targets(bencher: divan::Bencher, n: usize) {
    let (dir, _config) = site(n);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut source = Source::new(&RecordSource::ZoneFile(dir.path().join("z.zone"))).unwrap();
    let domain: hickory_proto::rr::Name = "_mysql._tcp.example.com.".parse().unwrap();
    let mut now = Instant::now();
    let fetched = rt.block_on(source.srv(std::slice::from_ref(&domain), now, &HashMap::new()));
    let answer = fetched[0].result.clone().unwrap();
    assert_eq!(answer.records.len(), n);
    rt.block_on(source.resolve_targets(&domain, &answer, now))
        .unwrap();
    bencher
        .with_inputs(|| {
            // The zone's TTL is 30 s: 31 s later every address is stale, and
            // the SRV answer is a new one with the same records.
            now += std::time::Duration::from_secs(31);
            (std::sync::Arc::new(Answer::clone(&answer)), now)
        })
        .bench_local_values(|(fresh, now)| {
            let resolved = rt.block_on(source.resolve_targets(&domain, &fresh, now));
            assert_eq!(resolved.unwrap().records.len(), n);
        });
}
