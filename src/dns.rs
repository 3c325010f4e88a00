//! The DNS edge: SRV and A/AAAA lookups through the listed name servers
//! (`nameservers`: in order, UDP with TCP on truncation, timeouts,
//! attempts), with the answers read by `records`.
//!
//! srvd does not use hickory's `Resolver::lookup`: that path follows a CNAME
//! in an SRV answer to the SRV *targets* and reports NXDOMAIN, and it caches
//! behind srvd's back. Here every lookup is counted, CNAME chains are
//! followed by srvd, and TTL caching is done in `source`, where it can be
//! seen and tested.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::config::{DnsSettings, Net, Servers};
use crate::nameservers::{self, NameServers, Reply};
use crate::records::{self, Answer, LookupError};

/// A domain's targets as (target, port): what a later answer must keep.
type Targets = BTreeSet<(String, u16)>;

/// How the first reply of a lookup came.
struct Via {
    server: SocketAddr,
    udp: bool,
    /// See `nameservers::Reply::full`.
    full: bool,
}

/// Sends srvd's queries to the configured name servers.
#[derive(Clone)]
pub struct Resolver {
    servers: NameServers,
    sent: Arc<AtomicU64>,
    /// The targets (target, port) of the last answer given per domain: a
    /// UDP answer that drops any of them is confirmed over TCP first.
    last: Arc<Mutex<HashMap<Name, Targets>>>,
    /// Servers found to trim their UDP answers without setting TC: asked
    /// over TCP from then on.
    trimming: Arc<Mutex<HashSet<SocketAddr>>>,
}

impl Resolver {
    /// The resolver for polling: `nameservers`, or those of `resolv_conf`.
    pub fn new(dns: &DnsSettings) -> Result<Self> {
        let servers = match &dns.servers {
            Servers::List(list) => list,
            Servers::ResolvConf { listed, .. } => listed,
        };
        Self::with_servers(servers, dns)
    }

    /// A resolver that asks exactly `servers`, in order, moving to the next
    /// only when one fails (see `nameservers`).
    pub fn with_servers(servers: &[SocketAddr], dns: &DnsSettings) -> Result<Self> {
        anyhow::ensure!(!servers.is_empty(), "no nameserver to ask");
        Ok(Resolver {
            servers: NameServers::new(
                servers,
                dns.net == Net::Tcp,
                dns.timeout,
                dns.attempts,
                dns.edns0_size,
            ),
            sent: Arc::new(AtomicU64::new(0)),
            last: Arc::default(),
            trimming: Arc::default(),
        })
    }

    /// Counts this resolver's queries in `counter` (shared with others).
    pub fn counting_into(mut self, counter: Arc<AtomicU64>) -> Self {
        self.sent = counter;
        self
    }

    /// One lookup: the servers in order, over TCP for those known to trim
    /// (or all of them when `tcp`).
    async fn query(&self, name: &Name, rtype: RecordType, tcp: bool) -> Result<Reply, LookupError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let over_tcp: Vec<SocketAddr> = if tcp {
            self.servers.servers().to_vec()
        } else {
            self.trimming
                .lock()
                .expect("trimming lock")
                .iter()
                .copied()
                .collect()
        };
        self.servers.ask(name, rtype, &over_tcp).await
    }

    /// The SRV records of `domain`, following a CNAME chain that leaves the
    /// answer (a CNAME into another zone) with further queries.
    ///
    /// A UDP answer that drops a target of the last answer is asked again
    /// over TCP before it is believed: a server may trim a UDP answer to
    /// what fits without setting TC (Consul does by default), which would
    /// make every poll a different subset. So is the first answer for a
    /// name when it filled most of the UDP payload size, so that dest is
    /// not first written from a trimmed answer. When the TCP answer holds more,
    /// that server is named once in the log and asked over TCP from then on.
    pub async fn srv(&self, domain: &Name) -> Result<Answer, LookupError> {
        let (mut answer, via) = self.srv_once(domain, false).await?;
        let from = via.server;
        let targets = |a: &Answer| -> Targets {
            a.records
                .iter()
                .map(|r| (r.target.clone(), r.port))
                .collect()
        };
        let last = self.last.lock().expect("last lock").get(domain).cloned();
        let now = targets(&answer);
        // A UDP answer that drops targets of the last one, or the first
        // answer for the name when it came near the payload size (nothing
        // to compare it with, and just what a trimmed answer looks like).
        let doubtful = via.udp
            && match &last {
                Some(last) => !last.is_subset(&now),
                None => via.full,
            };
        if doubtful {
            let (confirmed, _) = self.srv_once(domain, true).await?;
            if !targets(&confirmed).is_subset(&now) {
                self.found_trimming(domain, from);
            }
            answer = confirmed;
        }
        if self.trimming.lock().expect("trimming lock").contains(&from) {
            answer.warning = Some(format!(
                "{from} trims UDP answers without setting TC; set net = \"tcp\""
            ));
        }
        self.last
            .lock()
            .expect("last lock")
            .insert(domain.clone(), targets(&answer));
        Ok(answer)
    }

    fn found_trimming(&self, domain: &Name, server: SocketAddr) {
        if self.trimming.lock().expect("trimming lock").insert(server) {
            log::warn!(srvd_domain = domain.to_string().as_str();
                "{domain}: {server} trims its UDP answers to what fits without setting TC \
                 (Consul does by default); srvd asks it over TCP from now on; \
                 set net = \"tcp\" in srvd.toml (or enable_truncate in Consul's dns_config)");
        }
    }

    /// The SRV answer as the servers give it, and how its first reply came.
    async fn srv_once(&self, domain: &Name, tcp: bool) -> Result<(Answer, Via), LookupError> {
        let mut collected: Vec<Record> = Vec::new();
        let mut additionals: Vec<Record> = Vec::new();
        let mut name = domain.clone();
        let mut first: Option<Via> = None;
        let mut nxdomain = None;
        // The first query, then one per hop that leaves the answers so far.
        for _ in 0..=records::MAX_CNAME_HOPS {
            let reply = self.query(&name, RecordType::SRV, tcp).await?;
            first.get_or_insert(Via {
                server: reply.server,
                udp: !reply.tcp,
                full: reply.full,
            });
            let code = reply.message.metadata.response_code;
            if code == ResponseCode::NXDomain {
                nxdomain = Some(nameservers::negative_ttl(&reply.message).unwrap_or(0));
            }
            let empty = reply.message.answers.is_empty();
            collected.extend(reply.message.answers);
            additionals.extend(reply.message.additionals);
            if empty || nxdomain.is_some() {
                break;
            }
            let mut answer = records::answer_from(domain, &collected);
            if answer.had_records {
                answer.glue = records::glue(&answer, &additionals);
                return Ok((answer, first.expect("one reply at least")));
            }
            let refs: Vec<&Record> = collected.iter().collect();
            let (owners, _) = records::chain(domain, &refs);
            match owners.last() {
                Some(end) if *end != name => name = end.clone(),
                _ => break,
            }
        }
        let mut answer = records::answer_from(domain, &collected);
        if let Some(negative) = nxdomain {
            answer.nxdomain = true;
            // RFC 2181: a TTL with its top bit set counts as 0.
            let negative = if negative > i32::MAX as u32 {
                0
            } else {
                negative
            };
            answer.ttl = if collected.is_empty() {
                negative
            } else {
                answer.ttl.min(negative)
            };
        }
        Ok((answer, first.expect("one reply at least")))
    }

    /// The zone that holds `name` and its SOA serial, as these servers see
    /// it: asked as `name SOA`, found in the answer (at a zone's apex) or
    /// in the authority section (RFC 2308 2.2). None when no server says.
    pub async fn zone_serial(&self, name: &Name) -> Option<(Name, u32)> {
        let reply = self.query(name, RecordType::SOA, false).await.ok()?;
        let m = &reply.message;
        m.answers
            .iter()
            .chain(&m.authorities)
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some((r.name.clone(), soa.serial)),
                _ => None,
            })
    }

    /// The A and AAAA addresses of `host`, with the smallest TTL among them.
    /// A name with neither gives an empty list, not an error, believed for
    /// the answers' negative-caching TTL (RFC 2308). When one family
    /// fails but the other gives addresses, those are used: a server that
    /// refuses AAAA for an IPv4-only name must not take the backend away.
    pub async fn addrs(&self, host: &Name) -> Result<(Vec<IpAddr>, u32), LookupError> {
        let (v4, v6) = futures_util::future::join(
            self.query(host, RecordType::A, false),
            self.query(host, RecordType::AAAA, false),
        )
        .await;
        let mut addrs = Vec::new();
        let mut ttl = u32::MAX;
        // How long "no address" may be believed: the smaller negative TTL of
        // the two answers, 0 when one of them gave none.
        let mut negative_ttl = u32::MAX;
        let mut failed = None;
        for (rtype, result) in [("A", v4), ("AAAA", v6)] {
            match result {
                Ok(reply) if reply.message.answers.is_empty() => {
                    // NXDOMAIN or NODATA: believed for the SOA's negative
                    // TTL (RFC 2308); RFC 2181: a TTL with its top bit set
                    // counts as 0.
                    let negative =
                        nameservers::negative_ttl(&reply.message).filter(|t| *t <= i32::MAX as u32);
                    negative_ttl = negative_ttl.min(negative.unwrap_or(0));
                }
                Ok(Reply { message, .. }) => {
                    let refs: Vec<&Record> = message.answers.iter().collect();
                    let (owners, chain_ttl) = records::chain(host, &refs);
                    let before = addrs.len();
                    for r in &message.answers {
                        let ip = match &r.data {
                            RData::A(a) => IpAddr::V4(a.0),
                            RData::AAAA(a) => IpAddr::V6(a.0),
                            _ => continue,
                        };
                        if owners.contains(&r.name) {
                            ttl = ttl.min(records::ttl_of(r)).min(chain_ttl);
                            addrs.push(ip);
                        }
                    }
                    if addrs.len() == before {
                        // Records, but no address at the end of them.
                        negative_ttl = 0;
                    }
                }
                Err(e) => {
                    failed.get_or_insert(LookupError::Target {
                        host: records::escaped(host),
                        rtype,
                        error: Box::new(e),
                    });
                }
            }
        }
        if let (Some(e), true) = (failed, addrs.is_empty()) {
            return Err(e);
        }
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            ttl = negative_ttl;
        }
        Ok((addrs, if ttl == u32::MAX { 0 } else { ttl }))
    }
}

/// Whether zone serial `a` is older than `b` in serial number arithmetic
/// (RFC 1982 section 3.2): `b` is ahead of `a` by 1 to 2^31 - 1. Serials
/// 2^31 apart are not comparable, and are not called older.
pub fn serial_older(a: u32, b: u32) -> bool {
    (1..=i32::MAX as u32).contains(&b.wrapping_sub(a))
}

#[cfg(test)]
mod tests {
    use super::serial_older;

    #[test]
    fn serials_compare_in_rfc_1982_arithmetic() {
        assert!(serial_older(1, 2));
        assert!(!serial_older(2, 1));
        assert!(!serial_older(7, 7));
        // Past the wrap: 4294967295 + 1 = 0 is newer.
        assert!(serial_older(u32::MAX, 0));
        assert!(!serial_older(0, u32::MAX));
        assert!(serial_older(0, (1 << 31) - 1));
        // 2^31 apart: undefined (RFC 1982 3.2), not older either way.
        assert!(!serial_older(0, 1 << 31));
        assert!(!serial_older(1 << 31, 0));
    }
}
