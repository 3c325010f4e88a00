//! DNS NOTIFY on the daemon's side: the listener's inbox and counters, and
//! the refreshes they schedule (only the templates with a domain in the
//! notified zone, each at most once per debounce, asking the zone's primaries
//! directly).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use hickory_proto::rr::Name;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::config::TemplateSettings;
use crate::dns_notify::settings::DnsNotifySettings;
use crate::dns_notify::{self, DnsNotifyCounters, Inbox};

/// The DNS NOTIFY listener's side of the daemon.
pub(super) struct DnsNotifyListener {
    inbox: Arc<Inbox>,
    pub(super) counters: Arc<Mutex<DnsNotifyCounters>>,
    /// Woken by the listener at every packet it counts.
    counted: Arc<Notify>,
    pub(super) settings: watch::Sender<Arc<DnsNotifySettings>>,
}

/// Waits for the NOTIFY counters to move, then lets STATUS follow at most
/// once a second: asleep while no NOTIFY comes, one wake-up a second under
/// a flood.
pub(super) struct CountersWatch {
    counted: Arc<Notify>,
    /// A move seen and not yet published (kept when the wait is cancelled).
    moved: bool,
    published: Instant,
}

/// The shortest time between two STATUS lines the NOTIFY counters cause.
const COUNTERS_EVERY: Duration = Duration::from_secs(1);

impl DnsNotifyListener {
    pub(super) async fn start(settings: DnsNotifySettings) -> Result<Self> {
        let (tx, rx) = watch::channel(Arc::new(settings));
        let inbox = Arc::new(Inbox::default());
        let counters = Arc::new(Mutex::new(DnsNotifyCounters::default()));
        let counted = Arc::new(Notify::new());
        dns_notify::serve(rx, inbox.clone(), counters.clone(), counted.clone()).await?;
        Ok(DnsNotifyListener {
            inbox,
            counters,
            counted,
            settings: tx,
        })
    }

    pub(super) fn watch(&self) -> CountersWatch {
        CountersWatch {
            counted: self.counted.clone(),
            moved: false,
            published: Instant::now(),
        }
    }
}

/// A NOTIFY-driven refresh of one template.
#[derive(Clone, Default)]
pub(super) struct Refresh {
    /// When to run it; None when none is pending.
    pub(super) at: Option<Instant>,
    /// Domains to ask the zone's primaries for, and which ones.
    pub(super) direct: HashMap<Name, Vec<SocketAddr>>,
    /// When the last one ran, for the debounce.
    pub(super) last: Option<Instant>,
}

/// Turns accepted NOTIFYs into refreshes of exactly the templates with a
/// domain in the notified zone, each at most once per debounce.
pub(super) fn schedule(
    listener: &DnsNotifyListener,
    templates: &[TemplateSettings],
    refresh: &mut [Refresh],
    now: Instant,
) {
    let debounce = listener.settings.borrow().debounce;
    for n in listener.inbox.take() {
        let mut related = false;
        for (i, t) in templates.iter().enumerate() {
            let in_zone: Vec<&Name> = t
                .domains
                .iter()
                .map(|d| &d.name)
                .filter(|d| n.zone.zone_of(d))
                .collect();
            if in_zone.is_empty() {
                continue;
            }
            related = true;
            let r = &mut refresh[i];
            for d in in_zone {
                r.direct.insert(d.clone(), n.servers.clone());
            }
            let earliest = r.last.map_or(now, |last| (last + debounce).max(now));
            r.at = Some(r.at.map_or(earliest, |at| at.min(earliest)).max(earliest));
        }
        if !related {
            listener.counters.lock().expect("counters lock").ignored += 1;
            listener.counted.notify_one();
            log::debug!("NOTIFY for {}: no template uses that zone", n.zone);
        }
    }
}

/// Resolves, at most once a second, when the NOTIFY counters have moved.
pub(super) async fn counters_moved(watch: &mut Option<CountersWatch>) {
    let Some(w) = watch else {
        return std::future::pending().await;
    };
    // Cancel-safe: the select! that polls this may drop it at either await;
    // a move already seen is kept in `moved`.
    if !w.moved {
        w.counted.notified().await;
        w.moved = true;
    }
    tokio::time::sleep_until(w.published + COUNTERS_EVERY).await;
    w.moved = false;
    w.published = Instant::now();
}

pub(super) async fn inbox_ready(dns_notify: &Option<DnsNotifyListener>) {
    match dns_notify {
        Some(n) => n.inbox.ready().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns_notify::ZoneChanged;
    use std::str::FromStr;

    fn listener(debounce: Duration) -> DnsNotifyListener {
        let settings = DnsNotifySettings {
            listen: vec![],
            allow: vec![],
            tsig: None,
            primaries: vec![],
            debounce,
        };
        DnsNotifyListener {
            inbox: Arc::new(Inbox::default()),
            counters: Arc::new(Mutex::new(DnsNotifyCounters::default())),
            counted: Arc::default(),
            settings: watch::channel(Arc::new(settings)).0,
        }
    }

    fn templates() -> Vec<TemplateSettings> {
        let text = "zone_file = \"z\"\n[[template]]\nsrc = \"a\"\ndest = \"/x/a.cfg\"\ndomain = \"_db._tcp.example.com\"\n\
                    [[template]]\nsrc = \"b\"\ndest = \"/x/b.cfg\"\ndomain = \"_db._tcp.example.org\"\n";
        crate::config::parse(text, std::path::Path::new("/x/srvd.toml"))
            .unwrap()
            .templates
    }

    fn notify(l: &DnsNotifyListener, zone: &str) {
        let server: SocketAddr = "127.0.0.1:5300".parse().unwrap();
        assert!(l.inbox.put(ZoneChanged {
            zone: Name::from_str(zone).unwrap(),
            servers: vec![server],
        }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_notify_refreshes_only_the_templates_of_its_zone_once_per_debounce() {
        let l = listener(Duration::from_millis(200));
        let t = templates();
        let mut refresh = vec![Refresh::default(); 2];
        let now = Instant::now();
        notify(&l, "example.com.");
        schedule(&l, &t, &mut refresh, now);
        assert_eq!(refresh[0].at, Some(now));
        assert_eq!(refresh[1].at, None, "another zone");
        let domain = Name::from_str("_db._tcp.example.com.").unwrap();
        assert_eq!(refresh[0].direct.keys().collect::<Vec<_>>(), [&domain]);

        // It ran; the next NOTIFY waits out the debounce.
        refresh[0].at = None;
        refresh[0].last = Some(now);
        notify(&l, "example.com.");
        let later = now + Duration::from_millis(50);
        schedule(&l, &t, &mut refresh, later);
        assert_eq!(refresh[0].at, Some(now + Duration::from_millis(200)));

        notify(&l, "example.net.");
        schedule(&l, &t, &mut refresh, later);
        assert_eq!(l.counters.lock().unwrap().ignored, 1, "no template uses it");
    }
}
