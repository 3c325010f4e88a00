//! Sending one query to the listed name servers: in the order given, moving
//! to the next only when one fails, each query sent once and waited for
//! `dns_timeout`, the whole list tried `dns_attempts` times.
//!
//! srvd does not use hickory's name server pool for this: the pool orders
//! servers by response time (so two servers of one zone that disagree for a
//! while make srvd alternate between their answers), retransmits UDP queries
//! on its own timer, and spends one timeout on the whole list. Here the
//! order, the count and the timing of queries are the ones documented in
//! srvd.toml(5), like resolv.conf(5)'s `timeout` and `attempts`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use hickory_proto::op::{DnsRequestOptions, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::tcp::TcpClientStream;
use hickory_resolver::net::udp::UdpClientStream;
use hickory_resolver::net::xfer::{DnsExchange, DnsHandle, DnsRequestSender};
use hickory_resolver::net::{DnsMultiplexer, NetError};

use crate::records::LookupError;

/// The listed name servers and how to ask them.
#[derive(Clone)]
pub struct NameServers {
    servers: Vec<SocketAddr>,
    /// `net = "tcp"`: never UDP.
    tcp_only: bool,
    /// How long one query waits for its answer.
    timeout: Duration,
    /// How many times the list is tried before a lookup fails (at least 1).
    attempts: usize,
    options: DnsRequestOptions,
    /// The largest UDP reply srvd announced it takes, in octets.
    udp_limit: usize,
}

/// An answer, and where it came from.
pub struct Reply {
    pub message: Message,
    pub server: SocketAddr,
    /// True when it came over TCP (never trimmed to a UDP payload size).
    pub tcp: bool,
    /// A UDP reply of more than three quarters of the payload size srvd
    /// announced (512 octets without EDNS, RFC 1035 4.2.1; `edns0_size`
    /// with it, RFC 6891 6.2.3): a server that trims UDP answers without
    /// setting TC may have cut it.
    pub full: bool,
}

impl NameServers {
    /// `servers` in the order to ask them; `timeout` per query, `attempts`
    /// rounds over the list; `edns0_size` None sends no OPT record.
    pub fn new(
        servers: &[SocketAddr],
        tcp_only: bool,
        timeout: Duration,
        attempts: usize,
        edns0_size: Option<u16>,
    ) -> Self {
        let mut options = DnsRequestOptions::default();
        options.use_edns = edns0_size.is_some();
        if let Some(size) = edns0_size {
            options.edns_payload_len = size;
        }
        // Never ask for DNSSEC records: srvd does not validate them.
        options.edns_set_dnssec_ok = false;
        options.recursion_desired = true;
        NameServers {
            servers: servers.to_vec(),
            tcp_only,
            timeout,
            attempts: attempts.max(1),
            options,
            udp_limit: edns0_size.map_or(512, usize::from),
        }
    }

    /// The servers, in the order they are asked.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// Asks `name` `rtype`: each server in order until one answers, the list
    /// `attempts` times. An answer is NOERROR or NXDOMAIN that is not a
    /// referral; a truncated UDP answer is asked again over TCP of the same
    /// server; `tcp` names servers to ask over TCP only. Errors: the most
    /// telling failure seen (a server's response code or referral before a
    /// timeout), a timeout naming the servers, attempts and timeout.
    pub async fn ask(
        &self,
        name: &Name,
        rtype: RecordType,
        tcp: &[SocketAddr],
    ) -> Result<Reply, LookupError> {
        let mut failure: Option<LookupError> = None;
        for _ in 0..self.attempts {
            for &server in &self.servers {
                let over_tcp = self.tcp_only || tcp.contains(&server);
                match self.ask_one(server, name, rtype, over_tcp).await {
                    Ok(reply) => return Ok(reply),
                    Err(e) => {
                        log::debug!("{name} {rtype} from {server}: {e}");
                        if failure.as_ref().is_none_or(|f| rank(&e) >= rank(f)) {
                            failure = Some(e);
                        }
                    }
                }
            }
        }
        Err(match failure {
            Some(LookupError::Timeout { .. }) | None => self.timeout_error(),
            Some(e) => e,
        })
    }

    /// Asks one `server` once (over TCP when `tcp`, else UDP then TCP on
    /// truncation) and sorts the response into an answer or a failure.
    pub async fn ask_one(
        &self,
        server: SocketAddr,
        name: &Name,
        rtype: RecordType,
        tcp: bool,
    ) -> Result<Reply, LookupError> {
        let mut over_tcp = tcp;
        let (mut message, mut size) = self.send(server, name, rtype, over_tcp).await?;
        if message.metadata.truncation && !over_tcp {
            over_tcp = true;
            (message, size) = self.send(server, name, rtype, true).await.map_err(|e| {
                LookupError::Other(format!(
                    "{server} truncated its UDP answer, and over TCP: {e}"
                ))
            })?;
        }
        if message.metadata.truncation {
            return Err(LookupError::Other(format!(
                "{server} truncated its answer over TCP"
            )));
        }
        match message.metadata.response_code {
            ResponseCode::NoError if is_referral(&message) => {
                Err(LookupError::Referral(referral_zone(&message)))
            }
            ResponseCode::NoError | ResponseCode::NXDomain => Ok(Reply {
                message,
                server,
                tcp: over_tcp,
                full: !over_tcp && size * 4 > self.udp_limit * 3,
            }),
            ResponseCode::ServFail => Err(LookupError::ServFail),
            ResponseCode::Refused => Err(LookupError::Refused),
            code => Err(LookupError::Other(format!("response code {code}"))),
        }
    }

    /// One query, sent once, waited for `timeout`: the reply and its size
    /// on the wire, in octets.
    async fn send(
        &self,
        server: SocketAddr,
        name: &Name,
        rtype: RecordType,
        tcp: bool,
    ) -> Result<(Message, usize), LookupError> {
        let query = Query::query(name.clone(), rtype);
        let provider = TokioRuntimeProvider::default();
        let exchange = async {
            if tcp {
                let (connect, sender) =
                    TcpClientStream::new(server, None, Some(self.timeout), provider);
                let stream = DnsMultiplexer::new(connect.await?, sender).with_timeout(self.timeout);
                exchange_once(stream, query, self.options).await
            } else {
                let stream = UdpClientStream::builder(server, provider)
                    .with_timeout(Some(self.timeout))
                    .with_max_retries(1)
                    .build();
                exchange_once(stream, query, self.options).await
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Err(self.timeout_error()),
            Ok(Ok(message)) => Ok(message),
            Ok(Err(NetError::Timeout)) => Err(self.timeout_error()),
            Ok(Err(e)) => Err(LookupError::Other(format!("{server}: {e}"))),
        }
    }

    fn timeout_error(&self) -> LookupError {
        let mut servers = String::new();
        for (i, s) in self.servers.iter().enumerate() {
            let _ = write!(servers, "{}{s}", if i > 0 { ", " } else { "" });
        }
        LookupError::Timeout {
            servers,
            attempts: self.attempts,
            timeout: self.timeout,
        }
    }
}

/// Sends `query` over `stream` and waits for its response (and its size on
/// the wire), driving the stream's background work in the same task:
/// nothing is left running once the response (or the timeout around this)
/// is in.
async fn exchange_once<S: DnsRequestSender>(
    stream: S,
    query: Query,
    options: DnsRequestOptions,
) -> Result<(Message, usize), NetError> {
    let (exchange, background) = DnsExchange::<TokioRuntimeProvider>::from_stream(stream);
    let mut responses = exchange.lookup(query, options);
    let response = {
        let lookup = responses.next();
        tokio::pin!(lookup, background);
        tokio::select! {
            biased;
            r = &mut lookup => r,
            () = &mut background => lookup.await,
        }
    };
    match response {
        Some(r) => r.map(|r| {
            let size = r.as_buffer().len();
            (r.into_message(), size)
        }),
        // The exchange ends its stream without an item when the stream's
        // own timer (set to the same timeout) runs out.
        None => Err(NetError::Timeout),
    }
}

/// Which failure says most: a server that answered beats one that did not.
fn rank(e: &LookupError) -> u8 {
    match e {
        LookupError::Timeout { .. } => 0,
        LookupError::Other(_) => 1,
        _ => 2,
    }
}

/// A referral (RFC 1034 4.3.2 step 3b): no answer, not authoritative, NS
/// records in the authority section and no SOA. It says where to ask, not
/// what is there; a NODATA answer carries the zone's SOA (RFC 2308 2.2).
pub fn is_referral(message: &Message) -> bool {
    message.answers.is_empty()
        && !message.metadata.authoritative
        && message
            .authorities
            .iter()
            .any(|r| r.record_type() == RecordType::NS)
        && !message
            .authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA)
}

fn referral_zone(message: &Message) -> String {
    message
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::NS)
        .map(|r| crate::records::escaped(&r.name))
        .unwrap_or_default()
}

/// How long a negative answer may be believed (RFC 2308 section 5): the
/// smaller of the SOA record's TTL and its MINIMUM field; none without SOA.
pub fn negative_ttl(message: &Message) -> Option<u32> {
    message.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(crate::records::ttl_of(r).min(soa.minimum)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{NS, SOA};
    use std::str::FromStr;

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap()
    }

    fn empty(authoritative: bool) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.authoritative = authoritative;
        m
    }

    fn soa(ttl: u32, minimum: u32) -> Record {
        Record::from_rdata(
            name("example.com."),
            ttl,
            RData::SOA(SOA::new(
                name("ns1.example.com."),
                name("hostmaster.example.com."),
                1,
                3600,
                600,
                86400,
                minimum,
            )),
        )
    }

    #[test]
    fn a_referral_is_told_from_nodata() {
        let ns = Record::from_rdata(
            name("db.example.com."),
            300,
            RData::NS(NS(name("ns.db.example.com."))),
        );
        let mut referral = empty(false);
        referral.add_authority(ns.clone());
        assert!(is_referral(&referral));
        assert_eq!(referral_zone(&referral), "db.example.com.");

        let mut nodata = empty(true);
        nodata.add_authority(soa(300, 60));
        assert!(!is_referral(&nodata));

        // An authoritative answer with NS in authority is the server's own
        // zone, not a delegation away from it.
        let mut own = empty(true);
        own.add_authority(ns);
        assert!(!is_referral(&own));
    }

    #[test]
    fn negative_ttl_is_the_smaller_of_soa_ttl_and_minimum() {
        let mut m = empty(true);
        assert_eq!(negative_ttl(&m), None);
        m.add_authority(soa(300, 60));
        assert_eq!(negative_ttl(&m), Some(60));
        let mut m = empty(true);
        m.add_authority(soa(5, 60));
        assert_eq!(negative_ttl(&m), Some(5));
    }
}
