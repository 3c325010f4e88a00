//! What srvd tells the outside: the one-line STATUS for `systemctl status`,
//! the JSON of GET /status (keeping the Go srvd's `LastUpdate` and `Ok`), and
//! the Prometheus text of GET /metrics. All built from one `Snapshot` the
//! daemon publishes after every cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write};
use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;

use crate::clock;

/// Counters since start. Names follow Prometheus conventions in `metrics_text`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    pub cycles: u64,
    pub dns_queries: u64,
    pub dns_errors: BTreeMap<&'static str, u64>,
    pub renders: u64,
    pub render_errors: u64,
    pub rejected_records: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub config_reloads_ok: u64,
    pub config_reloads_failed: u64,
    /// Changes applied through HAProxy's runtime API (`haproxy_socket`).
    pub runtime_changes: u64,
    /// Reloads those changes made unnecessary.
    pub reloads_avoided: u64,
    /// Runtime API commands sent and accepted.
    pub runtime_commands: u64,
    /// Changes that went to a reload instead, by reason.
    pub runtime_fallbacks: BTreeMap<&'static str, u64>,
    /// Reloads owed because HAProxy ran other servers than dest's.
    pub runtime_reconciled: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The Go srvd's field: when every dest was last confirmed current
    /// (written and reloaded, or found up to date); Go's zero time before.
    #[serde(rename = "LastUpdate")]
    pub last_update: String,
    /// The Go srvd's field: every template healthy.
    #[serde(rename = "Ok")]
    pub ok: bool,
    pub version: &'static str,
    pub started: String,
    pub ready: bool,
    pub config: String,
    /// Why the last `systemctl reload srvd` was refused, until one succeeds.
    pub config_error: Option<String>,
    pub templates: Vec<TemplateStatus>,
    pub counters: Counters,
    /// The DNS NOTIFY listener's counters, when `[notify]` is on: shared
    /// with the listener and read when served, so they are always current.
    #[serde(serialize_with = "live_counters")]
    pub notify: Option<SharedCounters>,
    #[serde(skip)]
    pub last_change: Option<SystemTime>,
    /// The last change went through HAProxy's runtime API, with no reload.
    #[serde(skip)]
    pub last_change_no_reload: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TemplateStatus {
    pub name: String,
    pub dest: String,
    pub ok: bool,
    pub error: Option<String>,
    pub domains: Vec<DomainStatus>,
    /// Records rendered into dest by the last successful render.
    pub targets: usize,
    pub last_change: Option<String>,
    pub last_success: Option<String>,
    /// Why a rendered change is waiting, if one is.
    pub pending: Option<String>,
    /// Until when it waits (RFC 3339, UTC).
    pub pending_until: Option<String>,
    pub changes: u64,
    pub check_failures: u64,
    pub reload_failures: u64,
    /// How the last change reached the middleware: "runtime" (HAProxy's
    /// runtime API, no reload) or "reload"; None before the first change.
    pub last_change_applied: Option<&'static str>,
    #[serde(skip)]
    pub last_success_at: Option<SystemTime>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DomainStatus {
    pub domain: String,
    pub records: Option<usize>,
    pub error: Option<String>,
    /// A fault of the name servers that srvd works around, with its fix
    /// (a server that trims UDP answers without TC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

pub type SharedCounters = std::sync::Arc<std::sync::Mutex<crate::dns_notify::DnsNotifyCounters>>;

fn live_counters<S: serde::Serializer>(
    c: &Option<SharedCounters>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => serde::Serialize::serialize(&*c.lock().expect("counters lock"), s),
        None => s.serialize_none(),
    }
}

/// Go's zero time, which the Go srvd reported before its first update.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Snapshot {
    pub fn new(config: String) -> Self {
        Snapshot {
            last_update: GO_ZERO_TIME.into(),
            ok: false,
            version: env!("CARGO_PKG_VERSION"),
            started: clock::rfc3339(SystemTime::now()),
            ready: false,
            config,
            config_error: None,
            templates: Vec::new(),
            counters: Counters::default(),
            notify: None,
            last_change: None,
            last_change_no_reload: false,
        }
    }

    pub fn set_last_change(&mut self, t: SystemTime) {
        self.last_change = Some(t);
        self.last_update = clock::rfc3339(t);
    }

    /// One line for `systemctl status`: "2 templates ok, 1 failing
    /// (_mysql._tcp.example.com: SERVFAIL); 7 targets; last change 12:01:05".
    pub fn status_line(&self) -> String {
        let ok = self.templates.iter().filter(|t| t.ok).count();
        let failing: Vec<&TemplateStatus> = self.templates.iter().filter(|t| !t.ok).collect();
        let mut line = format!("{ok} template{} ok", if ok == 1 { "" } else { "s" });
        if let Some(first) = failing.first() {
            let reason = first.error.as_deref().unwrap_or("not rendered yet");
            let _ = write!(
                line,
                ", {} failing ({})",
                failing.len(),
                first_line(reason, 80)
            );
        }
        let targets: usize = self.templates.iter().map(|t| t.targets).sum();
        let _ = write!(
            line,
            "; {targets} target{}",
            if targets == 1 { "" } else { "s" }
        );
        match self.last_change {
            Some(t) => {
                let _ = write!(line, "; last change {}", clock::local_hms(t));
                if self.last_change_no_reload {
                    line.push_str(" (runtime API, no reload)");
                }
            }
            None => line.push_str("; no change yet"),
        }
        if let Some(n) = &self.notify {
            let n = n.lock().expect("counters lock");
            let _ = write!(
                line,
                "; NOTIFY {} accepted, {} refused",
                n.accepted,
                n.refused + n.bad_tsig
            );
            if let Some(at) = n.last_at {
                let _ = write!(line, ", last {}", clock::local_hms(at));
            }
        }
        if let Some(e) = &self.config_error {
            let _ = write!(line, "; config reload refused: {}", first_line(e, 80));
        }
        line
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// GET /metrics: the Prometheus text exposition format, version 0.0.4
    /// (served as `prometheus_text::CONTENT_TYPE`), written by
    /// `prometheus-client` from this snapshot. Families and samples come in a
    /// fixed order: templates in config order, error kinds and zones sorted.
    pub fn metrics_text(self: &Arc<Self>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exposition(Arc::clone(self))));
        let mut text = String::new();
        // Writing into a String cannot fail, nor can the collector.
        let _ = prometheus_text::encode(&mut text, &registry);
        text
    }
}

/// The metrics of one snapshot, handed to `prometheus-client` on each
/// scrape: the values already live in the snapshot, so they are described
/// here rather than kept a second time in the crate's atomic metrics.
#[derive(Debug)]
struct Exposition(Arc<Snapshot>);

impl Collector for Exposition {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let s = &*self.0;
        let c = &s.counters;
        counter(&mut e, "srvd_cycles", "Poll cycles run.", c.cycles)?;
        counter(
            &mut e,
            "srvd_dns_queries",
            "Queries sent to DNS servers.",
            c.dns_queries,
        )?;
        family(
            &mut e,
            ("srvd_dns_errors", MetricType::Counter),
            "Failed SRV lookups, by kind.",
            None,
            c.dns_errors
                .iter()
                .map(|(kind, n)| ([("kind", *kind)], ConstCounter::new(*n))),
        )?;
        counter(&mut e, "srvd_renders", "Templates rendered.", c.renders)?;
        counter(
            &mut e,
            "srvd_render_errors",
            "Template render errors.",
            c.render_errors,
        )?;
        counter(
            &mut e,
            "srvd_rejected_records",
            "SRV records dropped because their target is not a valid host name.",
            c.rejected_records,
        )?;
        by_result(
            &mut e,
            "srvd_reloads",
            "Reload commands run, by result.",
            c.reloads_ok,
            c.reloads_failed,
        )?;
        by_result(
            &mut e,
            "srvd_config_reloads",
            "SIGHUP config reloads, by result.",
            c.config_reloads_ok,
            c.config_reloads_failed,
        )?;
        counter(
            &mut e,
            "srvd_runtime_changes",
            "Changes applied through HAProxy's runtime API, with no reload.",
            c.runtime_changes,
        )?;
        counter(
            &mut e,
            "srvd_reloads_avoided",
            "Reloads made unnecessary by the runtime API.",
            c.reloads_avoided,
        )?;
        counter(
            &mut e,
            "srvd_runtime_commands",
            "Runtime API commands sent and accepted.",
            c.runtime_commands,
        )?;
        family(
            &mut e,
            ("srvd_runtime_fallbacks", MetricType::Counter),
            "Changes that needed a reload instead of the runtime API, by reason.",
            None,
            c.runtime_fallbacks
                .iter()
                .map(|(reason, n)| ([("reason", *reason)], ConstCounter::new(*n))),
        )?;
        counter(
            &mut e,
            "srvd_runtime_reconciled",
            "Reloads owed because HAProxy ran other servers than dest's.",
            c.runtime_reconciled,
        )?;
        let per_template = |value: fn(&TemplateStatus) -> u64| {
            s.templates
                .iter()
                .map(move |t| ([("template", t.name.as_str())], ConstCounter::new(value(t))))
        };
        family(
            &mut e,
            ("srvd_changes_applied", MetricType::Counter),
            "Changes written to dest, by template.",
            None,
            per_template(|t| t.changes),
        )?;
        family(
            &mut e,
            ("srvd_check_failures", MetricType::Counter),
            "check_cmd failures, by template.",
            None,
            per_template(|t| t.check_failures),
        )?;
        family(
            &mut e,
            ("srvd_reload_failures", MetricType::Counter),
            "reload_cmd failures, by template.",
            None,
            per_template(|t| t.reload_failures),
        )?;
        family(
            &mut e,
            ("srvd_template_healthy", MetricType::Gauge),
            "1 when the template's last cycle succeeded.",
            None,
            s.templates.iter().map(|t| {
                (
                    [("template", t.name.as_str())],
                    ConstGauge::new(i64::from(t.ok)),
                )
            }),
        )?;
        family(
            &mut e,
            ("srvd_template_last_success_timestamp", MetricType::Gauge),
            "When the template was last rendered or found up to date.",
            Some(&Unit::Seconds),
            s.templates.iter().filter_map(|t| {
                let at = t.last_success_at?;
                Some((
                    [("template", t.name.as_str())],
                    ConstGauge::new(clock::unix_secs(at)),
                ))
            }),
        )?;
        // A domain used by several templates is one series.
        let mut seen = BTreeSet::new();
        family(
            &mut e,
            ("srvd_records", MetricType::Gauge),
            "Usable SRV records per domain.",
            None,
            s.templates
                .iter()
                .flat_map(|t| &t.domains)
                .filter(|d| seen.insert(d.domain.as_str()))
                .filter_map(|d| {
                    let n = i64::try_from(d.records?).unwrap_or(i64::MAX);
                    Some(([("domain", d.domain.as_str())], ConstGauge::new(n)))
                }),
        )?;
        if let Some(n) = &s.notify {
            let n = n.lock().expect("counters lock");
            counter(
                &mut e,
                "srvd_notify_received",
                "DNS NOTIFY messages received.",
                n.received,
            )?;
            counter(
                &mut e,
                "srvd_notify_accepted",
                "DNS NOTIFY messages accepted.",
                n.accepted,
            )?;
            family(
                &mut e,
                ("srvd_notify_refused", MetricType::Counter),
                "DNS NOTIFY messages refused or dropped, by reason.",
                None,
                [
                    ("source", n.refused),
                    ("tsig", n.bad_tsig),
                    ("malformed", n.malformed),
                ]
                .into_iter()
                .map(|(reason, v)| ([("reason", reason)], ConstCounter::new(v))),
            )?;
            counter(
                &mut e,
                "srvd_notify_ignored",
                "Accepted DNS NOTIFY messages for zones no template uses.",
                n.ignored,
            )?;
            family(
                &mut e,
                ("srvd_notify_last_timestamp", MetricType::Gauge),
                "When the last NOTIFY of each zone was accepted.",
                Some(&Unit::Seconds),
                n.last_unix
                    .iter()
                    .map(|(zone, at)| ([("zone", zone.as_str())], ConstGauge::new(*at))),
            )?;
        }
        let ready = ConstGauge::new(i64::from(s.ready));
        let m = e.encode_descriptor(
            "srvd_ready",
            "1 once srvd has told systemd it is ready.",
            None,
            ready.metric_type(),
        )?;
        ready.encode(m)
    }
}

/// One counter without labels; `prometheus-client` adds the `_total`.
fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let c = ConstCounter::new(value);
    let m = e.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

/// A counter split by `result`: success, then failure.
fn by_result(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    ok: u64,
    failed: u64,
) -> fmt::Result {
    family(
        e,
        (name, MetricType::Counter),
        help,
        None,
        [("success", ok), ("failure", failed)]
            .into_iter()
            .map(|(result, n)| ([("result", result)], ConstCounter::new(n))),
    )
}

/// A metric family: HELP and TYPE once, then one sample per label set, in
/// the order given. With no samples, only HELP and TYPE are written.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    e: &mut DescriptorEncoder,
    (name, kind): (&str, MetricType),
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (L, M)>,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, unit, kind)?;
    for (labels, metric) in samples {
        metric.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() > max {
        let cut: String = line.chars().take(max).collect();
        format!("{cut}...")
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(name: &str, ok: bool, error: Option<&str>, targets: usize) -> TemplateStatus {
        TemplateStatus {
            name: name.into(),
            dest: format!("/etc/{name}"),
            ok,
            error: error.map(Into::into),
            domains: vec![DomainStatus {
                domain: "_mysql._tcp.example.com".into(),
                records: Some(targets),
                error: None,
                warning: None,
            }],
            targets,
            last_change: None,
            last_success: None,
            pending: None,
            pending_until: None,
            changes: 3,
            check_failures: 1,
            reload_failures: 0,
            last_change_applied: None,
            last_success_at: None,
        }
    }

    #[test]
    fn status_line_summarises_health_targets_and_last_change() {
        let mut s = Snapshot::new("/etc/srvd/srvd.toml".into());
        s.templates = vec![
            template("a", true, None, 4),
            template("b", true, None, 3),
            template("c", false, Some("_mysql._tcp.example.com: SERVFAIL"), 0),
        ];
        assert_eq!(
            s.status_line(),
            "2 templates ok, 1 failing (_mysql._tcp.example.com: SERVFAIL); 7 targets; no change yet"
        );
        s.set_last_change(SystemTime::now());
        assert!(s.status_line().contains("; last change "));
    }

    #[test]
    fn json_keeps_the_go_fields() {
        let s = Snapshot::new("x".into());
        let v: serde_json::Value = serde_json::from_str(&s.json()).unwrap();
        assert_eq!(v["LastUpdate"], GO_ZERO_TIME);
        assert_eq!(v["Ok"], false);
    }

    #[test]
    fn metrics_keep_every_family_name_and_type_in_order() {
        let mut s = Snapshot::new("x".into());
        let mut t = template("a", false, None, 2);
        t.last_success_at =
            Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_800_000_000_250));
        s.templates = vec![t, template("b", true, None, 2)];
        let notify = SharedCounters::default();
        {
            let mut n = notify.lock().unwrap();
            n.received = 4;
            n.bad_tsig = 1;
            n.last_unix.insert("example.com.".into(), 1_800_000_001.5);
        }
        s.notify = Some(notify);
        s.counters.runtime_fallbacks.insert("a new backend", 2);
        let text = Arc::new(s).metrics_text();
        let families: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .collect();
        let expected = [
            ("srvd_cycles_total", "counter"),
            ("srvd_dns_queries_total", "counter"),
            ("srvd_dns_errors_total", "counter"),
            ("srvd_renders_total", "counter"),
            ("srvd_render_errors_total", "counter"),
            ("srvd_rejected_records_total", "counter"),
            ("srvd_reloads_total", "counter"),
            ("srvd_config_reloads_total", "counter"),
            ("srvd_runtime_changes_total", "counter"),
            ("srvd_reloads_avoided_total", "counter"),
            ("srvd_runtime_commands_total", "counter"),
            ("srvd_runtime_fallbacks_total", "counter"),
            ("srvd_runtime_reconciled_total", "counter"),
            ("srvd_changes_applied_total", "counter"),
            ("srvd_check_failures_total", "counter"),
            ("srvd_reload_failures_total", "counter"),
            ("srvd_template_healthy", "gauge"),
            ("srvd_template_last_success_timestamp_seconds", "gauge"),
            ("srvd_records", "gauge"),
            ("srvd_notify_received_total", "counter"),
            ("srvd_notify_accepted_total", "counter"),
            ("srvd_notify_refused_total", "counter"),
            ("srvd_notify_ignored_total", "counter"),
            ("srvd_notify_last_timestamp_seconds", "gauge"),
            ("srvd_ready", "gauge"),
        ];
        assert_eq!(families, expected, "{text}");
        for (name, _) in expected {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
        }
        for sample in [
            "srvd_reloads_total{result=\"success\"} 0\n",
            "srvd_reloads_total{result=\"failure\"} 0\n",
            "srvd_runtime_fallbacks_total{reason=\"a new backend\"} 2\n",
            "srvd_template_healthy{template=\"a\"} 0\n",
            "srvd_template_healthy{template=\"b\"} 1\n",
            "srvd_template_last_success_timestamp_seconds{template=\"a\"} 1800000000.25\n",
            "srvd_records{domain=\"_mysql._tcp.example.com\"} 2\n",
            "srvd_notify_received_total 4\n",
            "srvd_notify_refused_total{reason=\"tsig\"} 1\n",
            "srvd_notify_last_timestamp_seconds{zone=\"example.com.\"} 1800000001.5\n",
            "srvd_ready 0\n",
        ] {
            assert!(text.contains(sample), "{sample}: {text}");
        }
        // Template b has no success yet, and its domain is a's: one series.
        assert!(!text.contains("timestamp_seconds{template=\"b\"}"));
        assert_eq!(text.matches("srvd_records{").count(), 1);
    }

    #[test]
    fn metrics_are_prometheus_text_with_escaped_labels() {
        let mut s = Snapshot::new("x".into());
        s.templates = vec![template("we\"ird", true, None, 2)];
        s.counters.dns_errors.insert("servfail", 2);
        let text = Arc::new(s).metrics_text();
        assert!(text.contains("srvd_dns_errors_total{kind=\"servfail\"} 2\n"));
        assert!(text.contains("srvd_changes_applied_total{template=\"we\\\"ird\"} 3\n"));
        assert!(text.contains("srvd_records{domain=\"_mysql._tcp.example.com\"} 2\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                line.rsplit(' ').next().unwrap().parse::<f64>().is_ok(),
                "{line}"
            );
        }
    }
}
