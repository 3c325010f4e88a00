//! The DNS edge: SRV and A/AAAA queries sent through hickory-resolver's name
//! server pool (UDP with TCP on truncation, failover between servers,
//! timeouts, attempts), with the answers read by `records`.
//!
//! srvd asks the pool directly instead of through `Resolver::lookup`: that
//! path follows a CNAME in an SRV answer to the SRV *targets* and reports
//! NXDOMAIN, and it caches behind srvd's back. Here every query is one
//! counted query, CNAME chains are followed by srvd, and TTL caching is done
//! in `source`, where it can be seen and tested.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use hickory_proto::op::{DnsRequestOptions, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverOpts, ServerOrderingStrategy,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::{DnsHandle, RetryDnsHandle};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig};

use crate::config::{DnsSettings, Net, Servers};
use crate::records::{self, Answer, LookupError};

/// Sends srvd's queries to the configured name servers.
#[derive(Clone)]
pub struct Resolver {
    handle: RetryDnsHandle<NameServerPool<TokioRuntimeProvider>>,
    options: DnsRequestOptions,
    sent: Arc<AtomicU64>,
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

    /// A resolver that asks exactly `servers`, in order.
    pub fn with_servers(servers: &[SocketAddr], dns: &DnsSettings) -> Result<Self> {
        anyhow::ensure!(!servers.is_empty(), "no nameserver to ask");
        let protocols: &[ProtocolConfig] = match dns.net {
            // UDP first; a truncated answer is asked again over TCP.
            Net::Udp => &[ProtocolConfig::Udp, ProtocolConfig::Tcp],
            Net::Tcp => &[ProtocolConfig::Tcp],
        };
        let name_servers: Vec<NameServerConfig> = servers
            .iter()
            .map(|addr| {
                let connections = protocols
                    .iter()
                    .map(|p| {
                        let mut c = ConnectionConfig::new(p.clone());
                        c.port = addr.port();
                        c
                    })
                    .collect();
                NameServerConfig::new(addr.ip(), true, connections)
            })
            .collect();
        let mut opts = ResolverOpts::default();
        opts.timeout = dns.timeout;
        opts.attempts = dns.attempts;
        opts.edns0 = dns.edns0_size.is_some();
        opts.num_concurrent_reqs = 1;
        opts.server_ordering_strategy = ServerOrderingStrategy::QueryStatistics;
        let cx = Arc::new(PoolContext::new(
            opts,
            TlsConfig::new().context("setting up the DNS client")?,
        ));
        let pool = NameServerPool::from_config(name_servers, cx, TokioRuntimeProvider::default());
        let mut options = DnsRequestOptions::default();
        options.use_edns = dns.edns0_size.is_some();
        if let Some(size) = dns.edns0_size {
            options.edns_payload_len = size;
        }
        // Never ask for DNSSEC records: srvd does not validate them.
        options.edns_set_dnssec_ok = false;
        options.recursion_desired = true;
        Ok(Resolver {
            handle: RetryDnsHandle::new(pool, dns.attempts.max(1)),
            options,
            sent: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Counts this resolver's queries in `counter` (shared with others).
    pub fn counting_into(mut self, counter: Arc<AtomicU64>) -> Self {
        self.sent = counter;
        self
    }

    async fn query(&self, name: &Name, rtype: RecordType) -> Result<Message, LookupError> {
        self.query_negative(name, rtype).await.map_err(|(e, _)| e)
    }

    /// Like `query`; an error also gives the negative-caching TTL of the
    /// SOA record in the answer's authority section (RFC 2308), if any.
    async fn query_negative(
        &self,
        name: &Name,
        rtype: RecordType,
    ) -> Result<Message, (LookupError, Option<u32>)> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let mut responses = self
            .handle
            .lookup(Query::query(name.clone(), rtype), self.options);
        match responses.next().await {
            Some(Ok(response)) => Ok(response.into_message()),
            Some(Err(e)) => {
                let negative_ttl = match &e {
                    NetError::Dns(DnsError::NoRecordsFound(nr)) => nr.negative_ttl,
                    _ => None,
                };
                Err((lookup_error(e), negative_ttl))
            }
            None => Err((LookupError::Other("no response".into()), None)),
        }
    }

    /// The SRV records of `domain`, following a CNAME chain that leaves the
    /// answer (a CNAME into another zone) with further queries.
    pub async fn srv(&self, domain: &Name) -> Result<Answer, LookupError> {
        let mut collected: Vec<Record> = Vec::new();
        let mut additionals: Vec<Record> = Vec::new();
        let mut name = domain.clone();
        // The first query, then one per hop that leaves the answers so far.
        for _ in 0..=records::MAX_CNAME_HOPS {
            match self.query(&name, RecordType::SRV).await {
                Ok(message) => {
                    collected.extend(message.answers);
                    additionals.extend(message.additionals);
                }
                Err(LookupError::NoRecords) => break,
                Err(e) => return Err(e),
            }
            let mut answer = records::answer_from(domain, &collected);
            if answer.had_records {
                answer.glue = records::glue(&answer, &additionals);
                return Ok(answer);
            }
            let refs: Vec<&Record> = collected.iter().collect();
            let (owners, _) = records::chain(domain, &refs);
            match owners.last() {
                Some(end) if *end != name => name = end.clone(),
                _ => break,
            }
        }
        Ok(records::answer_from(domain, &collected))
    }

    /// The A and AAAA addresses of `host`, with the smallest TTL among them.
    /// A name with neither gives an empty list, not an error, believed for
    /// the answers' negative-caching TTL (RFC 2308). When one family
    /// fails but the other gives addresses, those are used: a server that
    /// refuses AAAA for an IPv4-only name must not take the backend away.
    pub async fn addrs(&self, host: &Name) -> Result<(Vec<IpAddr>, u32), LookupError> {
        let (v4, v6) = futures_util::future::join(
            self.query_negative(host, RecordType::A),
            self.query_negative(host, RecordType::AAAA),
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
                Ok(message) => {
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
                Err((LookupError::NoRecords | LookupError::NxDomain, negative)) => {
                    // RFC 2181: a TTL with its top bit set counts as 0.
                    let negative = negative.filter(|t| *t <= i32::MAX as u32);
                    negative_ttl = negative_ttl.min(negative.unwrap_or(0));
                }
                Err((e, _)) => {
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

fn lookup_error(e: NetError) -> LookupError {
    match e {
        NetError::Timeout => LookupError::Timeout,
        NetError::Dns(DnsError::ResponseCode(code)) => response_code_error(code),
        NetError::Dns(DnsError::NoRecordsFound(nr)) => match nr.response_code {
            ResponseCode::NXDomain => LookupError::NxDomain,
            ResponseCode::NoError => LookupError::NoRecords,
            code => response_code_error(code),
        },
        other => LookupError::Other(other.to_string()),
    }
}

fn response_code_error(code: ResponseCode) -> LookupError {
    match code {
        ResponseCode::ServFail => LookupError::ServFail,
        ResponseCode::Refused => LookupError::Refused,
        ResponseCode::NXDomain => LookupError::NxDomain,
        other => LookupError::Other(format!("response code {other}")),
    }
}
