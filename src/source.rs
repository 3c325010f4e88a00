//! Where records come from (DNS or a zone file) and how long an answer may be
//! reused: no new query before the answer's TTL has run out, so polling every
//! second a domain with TTL 30 costs two queries a minute, not sixty.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::StreamExt;
use futures_util::stream;
use hickory_proto::rr::Name;

use crate::config::RecordSource;
use crate::dns::Resolver;
use crate::records::{Answer, LookupError};
use crate::zone::ZoneFile;

/// A domain's answer, shared: cache hits cost a reference count, not a copy.
pub type SrvResult = Result<Arc<Answer>, LookupError>;

pub struct Source {
    backend: Backend,
    srv_cache: HashMap<Name, Cached<Arc<Answer>>>,
    addr_cache: HashMap<Name, Cached<Vec<IpAddr>>>,
    /// The last answer given addresses, per domain: the same answer with
    /// fresh addresses is handed out again as is (no copy, no compare).
    resolved: HashMap<Name, Resolved>,
    /// The newest SOA serial taken from each zone's primaries after a
    /// NOTIFY: an answer from a primary behind it is not used.
    serials: HashMap<Name, u32>,
}

struct Resolved {
    from: Arc<Answer>,
    to: Arc<Answer>,
    fresh_until: Instant,
}

enum Backend {
    Dns {
        resolver: Resolver,
        settings: crate::config::DnsSettings,
        /// Resolvers that ask a zone's primaries directly (after a NOTIFY).
        direct: HashMap<Vec<SocketAddr>, Resolver>,
        queries: Arc<AtomicU64>,
    },
    Zone(ZoneFile),
}

/// Direct resolvers kept; more distinct primary sets start the cache afresh.
const DIRECT_RESOLVERS: usize = 32;

/// The most lookups srvd has in flight at once; the rest wait their turn, in
/// order. Each one in flight holds about 12 KiB (its future, its UDP socket's
/// buffers, the answer being read): all 1,000 names of 1,000 templates
/// expiring together took 12 MiB at once, which this bounds to under 1 MiB.
/// On loopback a lookup takes about 0.1 ms, so the wait is a few
/// milliseconds; behind a server that does not answer, names queue for
/// `dns_timeout` × attempts per round of this many.
pub const MAX_LOOKUPS_IN_FLIGHT: usize = 64;

struct Cached<T> {
    value: T,
    fresh_until: Instant,
}

/// The longest an answer is reused, whatever its TTL says.
pub const MAX_CACHE: Duration = Duration::from_secs(86_400);

/// When an answer with `ttl` asked at `now` goes stale.
fn fresh_until(now: Instant, ttl: u32) -> Instant {
    now + Duration::from_secs(ttl.into()).min(MAX_CACHE)
}

/// The addresses `answer`'s additional section gave for `target`, when
/// they are good for at least as long as the answer itself (a new answer
/// brings them again); else the target is looked up like any other.
fn glue_for<'a>(answer: &'a Answer, target: &str) -> Option<&'a [IpAddr]> {
    answer
        .glue_of(target)
        .filter(|g| !g.addrs.is_empty() && g.ttl >= answer.ttl)
        .map(|g| &g.addrs[..])
}

/// Whether a cached answer must be asked again at `now`. An answer asked at
/// `asked_at` with TTL `ttl` is good until `asked_at + ttl`, exactly.
pub fn is_stale(fresh_until: Instant, now: Instant) -> bool {
    now >= fresh_until
}

/// Outcome of one domain in one fetch.
pub struct Fetched {
    pub domain: Name,
    pub result: SrvResult,
    /// False when the answer came from the cache.
    pub asked: bool,
}

/// Where `source` takes records from, for the log: "name servers
/// 127.0.0.1:53 (resolv_conf /etc/resolv.conf)" or "zone file PATH".
pub fn describe(source: &RecordSource) -> String {
    use crate::config::Servers;
    let list = |l: &[SocketAddr]| {
        l.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match source {
        RecordSource::Dns(dns) => match &dns.servers {
            Servers::List(l) => format!("name servers {} (nameservers)", list(l)),
            Servers::ResolvConf { path, listed } => format!(
                "name servers {} (resolv_conf {})",
                list(listed),
                path.display()
            ),
        },
        RecordSource::ZoneFile(path) => format!("zone file {}", path.display()),
    }
}

impl Source {
    pub fn new(source: &RecordSource) -> Result<Self> {
        log::debug!("records from {}", describe(source));
        let backend = match source {
            RecordSource::Dns(dns) => {
                let queries = Arc::new(AtomicU64::new(0));
                Backend::Dns {
                    resolver: Resolver::new(dns)?.counting_into(queries.clone()),
                    settings: dns.clone(),
                    direct: HashMap::new(),
                    queries,
                }
            }
            RecordSource::ZoneFile(path) => Backend::Zone(ZoneFile::open(path)),
        };
        Ok(Source {
            backend,
            srv_cache: HashMap::new(),
            addr_cache: HashMap::new(),
            resolved: HashMap::new(),
            serials: HashMap::new(),
        })
    }

    /// The SRV answers of `domains` at `now`, asking DNS only for those whose
    /// cached answer is stale, or which `direct` says to ask a zone's primaries
    /// for now (a NOTIFY came). Failures are never cached: the next call asks again.
    pub async fn srv(
        &mut self,
        domains: &[Name],
        now: Instant,
        direct: &HashMap<Name, Vec<SocketAddr>>,
    ) -> Vec<Fetched> {
        let (resolver, direct_resolvers) = match &mut self.backend {
            Backend::Zone(zone) => {
                // Answers stay valid until the file changes.
                if zone.refresh() {
                    self.srv_cache.clear();
                    self.addr_cache.clear();
                    self.resolved.clear();
                }
                return domains
                    .iter()
                    .map(|d| match self.srv_cache.get(d) {
                        Some(c) => Fetched {
                            domain: d.clone(),
                            result: Ok(c.value.clone()),
                            asked: false,
                        },
                        None => {
                            let result = zone.srv(d).map(Arc::new);
                            if let Ok(answer) = &result {
                                self.srv_cache.insert(
                                    d.clone(),
                                    Cached {
                                        value: answer.clone(),
                                        fresh_until: now,
                                    },
                                );
                            }
                            Fetched {
                                domain: d.clone(),
                                result,
                                asked: true,
                            }
                        }
                    })
                    .collect();
            }
            Backend::Dns {
                resolver,
                settings,
                direct: cache,
                queries,
            } => {
                let mut picked = HashMap::new();
                for d in domains {
                    let Some(servers) = direct.get(d) else {
                        continue;
                    };
                    if !cache.contains_key(servers) {
                        if cache.len() >= DIRECT_RESOLVERS {
                            cache.clear();
                        }
                        match Resolver::with_servers(servers, settings) {
                            Ok(r) => {
                                cache.insert(servers.clone(), r.counting_into(queries.clone()));
                            }
                            Err(e) => log::warn!("cannot ask {servers:?} directly: {e:#}"),
                        }
                    }
                    if let Some(r) = cache.get(servers) {
                        picked.insert(d.clone(), r.clone());
                    }
                }
                (resolver.clone(), picked)
            }
        };
        let stale: Vec<&Name> = domains
            .iter()
            .filter(|d| {
                direct_resolvers.contains_key(*d)
                    || self
                        .srv_cache
                        .get(*d)
                        .is_none_or(|c| is_stale(c.fresh_until, now))
            })
            .collect();
        // The serials as they were before this fetch: the answers below
        // update them as they come in.
        let serials = self.serials.clone();
        let (resolver, direct_resolvers, serials) = (&resolver, &direct_resolvers, &serials);
        let mut answers = stream::iter(stale.iter().map(|&d| async move {
            let Some(direct) = direct_resolvers.get(d) else {
                return (d, resolver.srv(d).await, None);
            };
            let (result, soa) =
                futures_util::future::join(direct.srv(d), direct.zone_serial(d)).await;
            match (result, soa) {
                // The notified zone's primary does not hold the name (it
                // lives in a child zone delegated elsewhere): a referral
                // is not an answer, so ask the servers polling asks.
                (Err(LookupError::Referral(zone)), _) => {
                    log::info!(
                        "{d}: the notified zone's primary refers to {zone}; asking the name servers instead"
                    );
                    (d, resolver.srv(d).await, None)
                }
                // A primary behind what srvd already took from the zone
                // (restored from a backup, a lagging one of several) must
                // not move dest back.
                (_, Some((zone, serial)))
                    if serials
                        .get(&zone)
                        .is_some_and(|seen| crate::dns::serial_older(serial, *seen)) =>
                {
                    log::warn!(
                        "{d}: the primary of {zone} answers with serial {serial}, older than {} already used; asking the name servers instead",
                        serials[&zone]
                    );
                    (d, resolver.srv(d).await, None)
                }
                (result, soa) => (d, result, soa),
            }
        }))
        .buffered(MAX_LOOKUPS_IN_FLIGHT);
        // Each answer is taken in as it comes (in order), so that an answer
        // equal to the cached one is dropped at once: at most
        // MAX_LOOKUPS_IN_FLIGHT new answers exist besides the cache.
        let mut asked: HashMap<&Name, SrvResult> = HashMap::new();
        while let Some((domain, result, soa)) = answers.next().await {
            if let (Ok(_), Some((zone, serial))) = (&result, soa) {
                let seen = self.serials.entry(zone).or_insert(serial);
                if crate::dns::serial_older(*seen, serial) {
                    *seen = serial;
                }
            }
            // The same answer as last time (the common case: a TTL ran out,
            // nothing changed) keeps the one already shared, which the
            // templates' renders hold: not a second copy of each answer.
            let result = result.map(|answer| match self.srv_cache.get(domain) {
                Some(old) if *old.value == answer => old.value.clone(),
                _ => Arc::new(answer),
            });
            match &result {
                Ok(answer) => {
                    self.srv_cache.insert(
                        domain.clone(),
                        Cached {
                            value: answer.clone(),
                            fresh_until: fresh_until(now, answer.ttl),
                        },
                    );
                }
                Err(_) => {
                    self.srv_cache.remove(domain);
                }
            }
            asked.insert(domain, result);
        }
        domains
            .iter()
            .map(|d| match asked.remove(d) {
                Some(result) => Fetched {
                    domain: d.clone(),
                    result,
                    asked: true,
                },
                None => Fetched {
                    domain: d.clone(),
                    result: Ok(self.srv_cache[d].value.clone()),
                    asked: false,
                },
            })
            .collect()
    }

    /// Fills in `addrs` for every record of `answer`: from the answer's
    /// additional section when it carries the target's addresses for at least
    /// as long as the answer lives, else from the cache while fresh, else by
    /// asking. A target without any address is left out; a failed lookup
    /// fails the whole answer, since a partial list could drop most backends.
    pub async fn resolve_targets(
        &mut self,
        domain: &Name,
        source: &Arc<Answer>,
        now: Instant,
    ) -> SrvResult {
        if let Some(r) = self.resolved.get(domain) {
            if Arc::ptr_eq(&r.from, source) && !is_stale(r.fresh_until, now) {
                return Ok(r.to.clone());
            }
        }
        let mut answer = Answer::clone(source);
        let glued = |target: &str| glue_for(source, target);
        // A set, not `Vec::contains`: thousands of targets must not cost
        // their square.
        let mut seen: HashSet<Name> = HashSet::new();
        let mut wanted: Vec<Name> = Vec::new();
        for r in &answer.records {
            if glued(&r.target).is_some() {
                continue;
            }
            let Ok(name) = Name::from_ascii(&r.target) else {
                continue;
            };
            let fresh = self
                .addr_cache
                .get(&name)
                .is_some_and(|c| !is_stale(c.fresh_until, now));
            if !fresh && seen.insert(name.clone()) {
                wanted.push(name);
            }
        }
        let results: Vec<Result<(Vec<IpAddr>, u32), LookupError>> = match &self.backend {
            Backend::Zone(zone) => wanted.iter().map(|n| zone.addrs(n)).collect(),
            Backend::Dns { resolver, .. } => {
                let resolver = resolver.clone();
                stream::iter(wanted.iter().map(|n| resolver.addrs(n)))
                    .buffered(MAX_LOOKUPS_IN_FLIGHT)
                    .collect()
                    .await
            }
        };
        for (name, result) in wanted.into_iter().zip(results) {
            let (addrs, ttl) = result?;
            self.addr_cache.insert(
                name,
                Cached {
                    value: addrs,
                    fresh_until: fresh_until(now, ttl),
                },
            );
        }
        let mut dropped = Vec::new();
        let mut fresh_until: Option<Instant> = None;
        answer.records.retain_mut(|r| {
            if let Some(addrs) = glued(&r.target) {
                r.set_addrs(addrs);
                return true;
            }
            let cached = Name::from_ascii(&r.target)
                .ok()
                .and_then(|n| self.addr_cache.get(&n));
            if let Some(c) = cached {
                fresh_until = Some(fresh_until.map_or(c.fresh_until, |f| f.min(c.fresh_until)));
            }
            let addrs = cached.map(|c| c.value.clone()).unwrap_or_default();
            if addrs.is_empty() {
                dropped.push(crate::records::Rejected {
                    target: r.target.clone(),
                    port: r.port,
                    reason: "no A or AAAA record".into(),
                });
                return false;
            }
            r.set_addrs(&addrs);
            true
        });
        answer.rejected.extend(dropped);
        let answer = Arc::new(answer);
        self.resolved.insert(
            domain.clone(),
            Resolved {
                from: source.clone(),
                to: answer.clone(),
                // With no address from the cache, the result holds for as
                // long as `source` is the answer in force.
                fresh_until: fresh_until.unwrap_or(now + MAX_CACHE),
            },
        );
        Ok(answer)
    }

    /// Until when the cached answers of `domains` (and, with `addrs`, their
    /// targets' addresses) stay fresh: the earliest TTL to run out. None when
    /// one is not cached (it failed, or was never asked). A zone file's
    /// answers hold until the file changes, which is followed elsewhere: the
    /// longest cache, `MAX_CACHE`.
    pub fn fresh_until(&self, domains: &[Name], addrs: bool, now: Instant) -> Option<Instant> {
        let mut until = now + MAX_CACHE;
        for d in domains {
            let srv = self.srv_cache.get(d)?;
            if let Backend::Dns { .. } = self.backend {
                until = until.min(srv.fresh_until);
            }
            if addrs {
                let r = self.resolved.get(d)?;
                if !Arc::ptr_eq(&r.from, &srv.value) {
                    return None;
                }
                until = until.min(r.fresh_until);
            }
        }
        Some(until)
    }

    /// Queries sent to DNS servers since start (SRV, A and AAAA).
    pub fn queries(&self) -> u64 {
        match &self.backend {
            Backend::Dns { queries, .. } => queries.load(std::sync::atomic::Ordering::Relaxed),
            Backend::Zone(_) => 0,
        }
    }

    /// Drops cache entries for names no template uses any more.
    pub fn retain(&mut self, domains: &[Name]) {
        self.srv_cache.retain(|d, _| domains.contains(d));
        self.addr_cache.clear();
        self.resolved.clear();
    }
}
