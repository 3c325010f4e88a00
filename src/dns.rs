//! The DNS edge: SRV and A/AAAA lookups through hickory-resolver, with its
//! errors mapped to srvd's few failure kinds. Caching by TTL is not done here
//! (hickory's cache is off) but in `source`, where srvd can see and count it.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};

use crate::config::{DnsSettings, Net, Servers};
use crate::records::{self, Answer, LookupError};

/// A resolver set up from srvd.toml's DNS keys.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

impl Resolver {
    /// The resolver for polling: `nameservers`, or those of `resolv_conf`.
    pub fn new(dns: &DnsSettings) -> Result<Self> {
        let servers = match &dns.servers {
            Servers::List(list) => list.clone(),
            Servers::ResolvConf(path) => {
                let text = std::fs::read(path)
                    .with_context(|| format!("reading resolv_conf {}", path.display()))?;
                let (config, _) = hickory_resolver::system_conf::parse_resolv_conf(text)
                    .with_context(|| format!("parsing resolv_conf {}", path.display()))?;
                config
                    .name_servers()
                    .iter()
                    .map(|ns| SocketAddr::new(ns.ip, 53))
                    .collect()
            }
        };
        Self::with_servers(&servers, dns)
    }

    /// A resolver that asks exactly `servers`, in order.
    pub fn with_servers(servers: &[SocketAddr], dns: &DnsSettings) -> Result<Self> {
        anyhow::ensure!(!servers.is_empty(), "no nameserver to ask");
        let name_servers = servers
            .iter()
            .map(|addr| {
                let protocols: &[ProtocolConfig] = match dns.net {
                    // UDP first; a truncated answer is asked again over TCP.
                    Net::Udp => &[ProtocolConfig::Udp, ProtocolConfig::Tcp],
                    Net::Tcp => &[ProtocolConfig::Tcp],
                };
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
        let config = ResolverConfig::from_name_servers(name_servers);
        let mut builder =
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        let opts = builder.options_mut();
        opts.timeout = dns.timeout;
        opts.attempts = dns.attempts;
        opts.edns0 = dns.edns0_size.is_some();
        if let Some(size) = dns.edns0_size {
            opts.edns_payload_len = size;
        }
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.num_concurrent_reqs = 1;
        opts.ndots = 0;
        opts.preserve_intermediates = true;
        let inner = builder.build().context("building the DNS resolver")?;
        Ok(Resolver { inner })
    }

    /// The SRV records of `domain`.
    pub async fn srv(&self, domain: &Name) -> Result<Answer, LookupError> {
        match self.inner.lookup(domain.clone(), RecordType::SRV).await {
            Ok(lookup) => Ok(records::answer_from(domain, lookup.answers())),
            Err(e) => match lookup_error(e) {
                LookupError::NoRecords => Ok(Answer::default()),
                other => Err(other),
            },
        }
    }

    /// The A and AAAA addresses of `host`, with the smallest TTL among them.
    /// A name with neither gives an empty list, not an error.
    pub async fn addrs(&self, host: &Name) -> Result<(Vec<IpAddr>, u32), LookupError> {
        let (v4, v6) = futures_util::future::join(
            self.inner.lookup(host.clone(), RecordType::A),
            self.inner.lookup(host.clone(), RecordType::AAAA),
        )
        .await;
        let mut addrs = Vec::new();
        let mut ttl = u32::MAX;
        for result in [v4, v6] {
            match result {
                Ok(lookup) => {
                    for r in lookup.answers() {
                        let ip = match &r.data {
                            RData::A(a) => IpAddr::V4(a.0),
                            RData::AAAA(a) => IpAddr::V6(a.0),
                            _ => continue,
                        };
                        ttl = ttl.min(r.ttl);
                        addrs.push(ip);
                    }
                }
                Err(e) => match lookup_error(e) {
                    LookupError::NoRecords | LookupError::NxDomain => {}
                    other => return Err(other),
                },
            }
        }
        addrs.sort();
        addrs.dedup();
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
