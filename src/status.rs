//! What srvd tells the outside: the one-line STATUS for `systemctl status`,
//! the JSON of GET /status (keeping the Go srvd's `LastUpdate` and `Ok`), and
//! the Prometheus text of GET /metrics. All built from one `Snapshot` the
//! daemon publishes after every cycle.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::SystemTime;

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
}

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The Go srvd's field: when a change was last applied.
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
    pub changes: u64,
    pub check_failures: u64,
    pub reload_failures: u64,
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

    /// The Prometheus text exposition format, version 0.0.4.
    pub fn metrics_text(&self) -> String {
        let c = &self.counters;
        let mut m = Metrics::default();
        m.counter("srvd_cycles_total", "Poll cycles run.", &[], c.cycles);
        m.counter(
            "srvd_dns_queries_total",
            "Queries sent to DNS servers.",
            &[],
            c.dns_queries,
        );
        m.family(
            "srvd_dns_errors_total",
            "counter",
            "Failed SRV lookups, by kind.",
        );
        for (kind, n) in &c.dns_errors {
            m.sample("srvd_dns_errors_total", &[("kind", kind)], *n as f64);
        }
        m.counter("srvd_renders_total", "Templates rendered.", &[], c.renders);
        m.counter(
            "srvd_render_errors_total",
            "Template render errors.",
            &[],
            c.render_errors,
        );
        m.counter(
            "srvd_rejected_records_total",
            "SRV records dropped because their target is not a valid host name.",
            &[],
            c.rejected_records,
        );
        m.family(
            "srvd_reloads_total",
            "counter",
            "Reload commands run, by result.",
        );
        m.sample(
            "srvd_reloads_total",
            &[("result", "success")],
            c.reloads_ok as f64,
        );
        m.sample(
            "srvd_reloads_total",
            &[("result", "failure")],
            c.reloads_failed as f64,
        );
        m.family(
            "srvd_config_reloads_total",
            "counter",
            "SIGHUP config reloads, by result.",
        );
        m.sample(
            "srvd_config_reloads_total",
            &[("result", "success")],
            c.config_reloads_ok as f64,
        );
        m.sample(
            "srvd_config_reloads_total",
            &[("result", "failure")],
            c.config_reloads_failed as f64,
        );

        m.family(
            "srvd_changes_applied_total",
            "counter",
            "Changes written to dest, by template.",
        );
        for t in &self.templates {
            m.sample(
                "srvd_changes_applied_total",
                &[("template", &t.name)],
                t.changes as f64,
            );
        }
        m.family(
            "srvd_check_failures_total",
            "counter",
            "check_cmd failures, by template.",
        );
        for t in &self.templates {
            m.sample(
                "srvd_check_failures_total",
                &[("template", &t.name)],
                t.check_failures as f64,
            );
        }
        m.family(
            "srvd_reload_failures_total",
            "counter",
            "reload_cmd failures, by template.",
        );
        for t in &self.templates {
            m.sample(
                "srvd_reload_failures_total",
                &[("template", &t.name)],
                t.reload_failures as f64,
            );
        }
        m.family(
            "srvd_template_healthy",
            "gauge",
            "1 when the template's last cycle succeeded.",
        );
        for t in &self.templates {
            m.sample(
                "srvd_template_healthy",
                &[("template", &t.name)],
                if t.ok { 1.0 } else { 0.0 },
            );
        }
        m.family(
            "srvd_template_last_success_timestamp_seconds",
            "gauge",
            "When the template was last rendered or found up to date.",
        );
        for t in &self.templates {
            if let Some(at) = t.last_success_at {
                m.sample(
                    "srvd_template_last_success_timestamp_seconds",
                    &[("template", &t.name)],
                    clock::unix_secs(at),
                );
            }
        }
        m.family("srvd_records", "gauge", "Usable SRV records per domain.");
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.templates {
            for d in &t.domains {
                if let Some(n) = d.records {
                    if seen.insert(d.domain.clone()) {
                        m.sample("srvd_records", &[("domain", &d.domain)], n as f64);
                    }
                }
            }
        }
        if let Some(n) = &self.notify {
            let n = n.lock().expect("counters lock");
            m.counter(
                "srvd_notify_received_total",
                "DNS NOTIFY messages received.",
                &[],
                n.received,
            );
            m.counter(
                "srvd_notify_accepted_total",
                "DNS NOTIFY messages accepted.",
                &[],
                n.accepted,
            );
            m.family(
                "srvd_notify_refused_total",
                "counter",
                "DNS NOTIFY messages refused or dropped, by reason.",
            );
            m.sample(
                "srvd_notify_refused_total",
                &[("reason", "source")],
                n.refused as f64,
            );
            m.sample(
                "srvd_notify_refused_total",
                &[("reason", "tsig")],
                n.bad_tsig as f64,
            );
            m.sample(
                "srvd_notify_refused_total",
                &[("reason", "malformed")],
                n.malformed as f64,
            );
            m.counter(
                "srvd_notify_ignored_total",
                "Accepted DNS NOTIFY messages for zones no template uses.",
                &[],
                n.ignored,
            );
            m.family(
                "srvd_notify_last_timestamp_seconds",
                "gauge",
                "When the last NOTIFY of each zone was accepted.",
            );
            for (zone, at) in &n.last_unix {
                m.sample("srvd_notify_last_timestamp_seconds", &[("zone", zone)], *at);
            }
        }
        m.family(
            "srvd_ready",
            "gauge",
            "1 once srvd has told systemd it is ready.",
        );
        m.sample("srvd_ready", &[], if self.ready { 1.0 } else { 0.0 });
        m.text
    }
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

#[derive(Default)]
struct Metrics {
    text: String,
}

impl Metrics {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: u64) {
        self.family(name, "counter", help);
        self.sample(name, labels, value as f64);
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
            changes: 3,
            check_failures: 1,
            reload_failures: 0,
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
    fn metrics_are_prometheus_text_with_escaped_labels() {
        let mut s = Snapshot::new("x".into());
        s.templates = vec![template("we\"ird", true, None, 2)];
        s.counters.dns_errors.insert("servfail", 2);
        let text = s.metrics_text();
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
