//! DNS NOTIFY (RFC 1996): the zones' primaries tell srvd the moment a zone
//! changes, so a change reaches dest in milliseconds while polling stays slow.
//!
//! The listener answers every NOTIFY itself (UDP and TCP) and only hands the
//! loop "zone Z changed, ask these servers" through an `Inbox` that keeps one
//! entry per zone: a flood of NOTIFYs becomes at most one pending refresh per
//! zone, memory stays bounded, and the poll loop is never held up by it.
//! Which templates a zone concerns is the loop's business.
//!
//! Not to be confused with systemd's notification protocol (sd_notify(3)),
//! which lives in `systemd`.

pub mod settings;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, RecordType, TSigResponseContext, TSigner};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, watch};

use crate::clock;
use settings::{DnsNotifySettings, TsigKey, canonical_ip};

/// A NOTIFY that passed every check: this zone changed; ask `servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneChanged {
    pub zone: Name,
    pub servers: Vec<SocketAddr>,
}

/// Distinct zones waiting for the loop; NOTIFYs for more are dropped (and
/// counted in `DnsNotifyCounters::dropped`).
const INBOX_ZONES: usize = 1024;

/// Accepted NOTIFYs not yet taken by the loop, one entry per zone.
#[derive(Default)]
pub struct Inbox {
    pending: Mutex<HashMap<Name, ZoneChanged>>,
    wake: tokio::sync::Notify,
}

impl Inbox {
    /// Adds `n`, replacing what was pending for its zone. False when it was
    /// dropped: `INBOX_ZONES` other zones wait already.
    pub(crate) fn put(&self, n: ZoneChanged) -> bool {
        let mut pending = self.pending.lock().expect("inbox lock");
        if pending.len() >= INBOX_ZONES && !pending.contains_key(&n.zone) {
            return false;
        }
        pending.insert(n.zone.clone(), n);
        drop(pending);
        self.wake.notify_one();
        true
    }

    /// Everything pending, emptying the inbox.
    pub fn take(&self) -> Vec<ZoneChanged> {
        self.pending
            .lock()
            .expect("inbox lock")
            .drain()
            .map(|(_, n)| n)
            .collect()
    }

    /// Resolves when something was put since the last call.
    pub async fn ready(&self) {
        self.wake.notified().await;
    }
}

/// What the listener saw, for /status, /metrics and STATUS.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DnsNotifyCounters {
    pub received: u64,
    pub accepted: u64,
    /// From a source not in `allow`.
    pub refused: u64,
    /// Missing, unknown or wrong TSIG.
    pub bad_tsig: u64,
    /// Not a DNS message, or not a NOTIFY for one SOA.
    pub malformed: u64,
    /// Accepted, for a zone no template uses.
    pub ignored: u64,
    /// Accepted, but dropped: `INBOX_ZONES` other zones were waiting.
    pub dropped: u64,
    /// Zone → when its last accepted NOTIFY arrived.
    pub last: std::collections::BTreeMap<String, String>,
    /// The same in seconds since the epoch, for /metrics.
    #[serde(skip)]
    pub last_unix: std::collections::BTreeMap<String, f64>,
    #[serde(skip)]
    pub last_at: Option<SystemTime>,
}

/// The verdict on one packet, and the answer to send, if any.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted(Name),
    Refused,
    BadTsig(&'static str),
    /// Not a NOTIFY we can read: dropped, or answered FORMERR.
    Malformed,
}

/// Judges one packet from `from` and builds the response. A plain function of
/// the bytes, the settings and the time, tested without sockets.
pub fn handle(
    packet: &[u8],
    from: IpAddr,
    settings: &DnsNotifySettings,
    now_unix: u64,
) -> (Verdict, Option<Vec<u8>>) {
    let Ok(request) = Message::from_vec(packet) else {
        return (Verdict::Malformed, None);
    };
    if request.metadata.message_type != MessageType::Query {
        return (Verdict::Malformed, None);
    }
    let reply = |code: ResponseCode| {
        let mut r = Message::new(
            request.metadata.id,
            MessageType::Response,
            request.metadata.op_code,
        );
        r.metadata.authoritative = true;
        r.metadata.response_code = code;
        r.add_queries(request.queries.iter().cloned());
        r
    };
    let soa_question = match request.queries.as_slice() {
        [q] if q.query_type() == RecordType::SOA => Some(q.name().clone()),
        _ => None,
    };
    let zone = match (request.metadata.op_code, soa_question) {
        (OpCode::Notify, Some(zone)) => zone,
        _ => {
            return (
                Verdict::Malformed,
                reply(ResponseCode::FormErr).to_vec().ok(),
            );
        }
    };
    if !settings.allows(from) {
        return (Verdict::Refused, reply(ResponseCode::Refused).to_vec().ok());
    }
    let Some(key) = &settings.tsig else {
        if let Some(tsig) = request.signature() {
            // Signed with a key srvd does not have: say so (BADKEY), rather
            // than answer unsigned and leave the primary retrying.
            let ctx =
                TSigResponseContext::unknown_key(request.metadata.id, now_unix, tsig.name.clone());
            return (
                Verdict::BadTsig("signed, but srvd has no key configured"),
                signed(reply(ResponseCode::NotAuth), ctx),
            );
        }
        return (
            Verdict::Accepted(zone),
            reply(ResponseCode::NoError).to_vec().ok(),
        );
    };
    let Ok(signer) = signer(key) else {
        return (
            Verdict::BadTsig("key unusable"),
            reply(ResponseCode::NotAuth).to_vec().ok(),
        );
    };
    let Some(tsig) = request.signature() else {
        return (
            Verdict::BadTsig("not signed"),
            reply(ResponseCode::NotAuth).to_vec().ok(),
        );
    };
    if tsig.name != key.name {
        let ctx =
            TSigResponseContext::unknown_key(request.metadata.id, now_unix, tsig.name.clone());
        return (
            Verdict::BadTsig("unknown key"),
            signed(reply(ResponseCode::NotAuth), ctx),
        );
    }
    match signer.verify_message_byte(packet, None, true) {
        Err(_) => {
            let ctx = TSigResponseContext::bad_signature(request.metadata.id, now_unix, signer);
            (
                Verdict::BadTsig("bad signature"),
                signed(reply(ResponseCode::NotAuth), ctx),
            )
        }
        Ok((mac, _, window)) if !window.contains(&now_unix) => {
            let ctx = TSigResponseContext::new(
                request.metadata.id,
                now_unix,
                signer,
                mac,
                Some(hickory_proto::rr::rdata::tsig::TsigError::BadTime),
            );
            (
                Verdict::BadTsig("time outside the fudge window"),
                signed(reply(ResponseCode::NotAuth), ctx),
            )
        }
        Ok((mac, _, _)) => {
            let ctx = TSigResponseContext::new(request.metadata.id, now_unix, signer, mac, None);
            (
                Verdict::Accepted(zone),
                signed(reply(ResponseCode::NoError), ctx),
            )
        }
    }
}

/// The signer for srvd's key.
pub fn signer(key: &TsigKey) -> Result<TSigner> {
    let algorithm = match key.algorithm.as_str() {
        "hmac-sha512" => TsigAlgorithm::HmacSha512,
        _ => TsigAlgorithm::HmacSha256,
    };
    TSigner::new(key.secret.clone(), algorithm, key.name.clone(), 300).context("TSIG key")
}

fn signed(mut response: Message, ctx: TSigResponseContext) -> Option<Vec<u8>> {
    let unsigned = response.to_vec().ok()?;
    let record = ctx.sign(&unsigned).ok()?;
    response.set_signature(record);
    response.to_vec().ok()
}

/// How often a refused source is logged, at most.
const REFUSED_LOG_EVERY: Duration = Duration::from_secs(60);

/// The listener's shared state.
struct Shared {
    settings: watch::Receiver<Arc<DnsNotifySettings>>,
    inbox: Arc<Inbox>,
    counters: Arc<Mutex<DnsNotifyCounters>>,
    /// Woken at every packet counted, for the daemon's STATUS line.
    counted: Arc<tokio::sync::Notify>,
    logged: Mutex<HashMap<(IpAddr, String), Instant>>,
}

impl Shared {
    /// Judges a packet, records the outcome, and returns the bytes to answer.
    fn on_packet(&self, packet: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
        let settings = self.settings.borrow().clone();
        let ip = canonical_ip(from.ip());
        let now = SystemTime::now();
        let unix = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (verdict, answer) = handle(packet, ip, &settings, unix);
        let mut c = self.counters.lock().expect("counters lock");
        c.received += 1;
        self.counted.notify_one();
        match &verdict {
            Verdict::Accepted(zone) => {
                c.accepted += 1;
                let key = zone.to_string();
                if c.last.len() < INBOX_ZONES || c.last.contains_key(&key) {
                    c.last.insert(key.clone(), clock::rfc3339(now));
                    c.last_unix.insert(key, clock::unix_secs(now));
                }
                c.last_at = Some(now);
                drop(c);
                let servers = settings.primaries_for(zone, ip);
                log::debug!("NOTIFY for {zone} from {ip}: refreshing from {servers:?}");
                let queued = self.inbox.put(ZoneChanged {
                    zone: zone.clone(),
                    servers,
                });
                if !queued {
                    self.counters.lock().expect("counters lock").dropped += 1;
                    self.log_once(ip, "dropped: too many zones wait for a refresh");
                }
            }
            Verdict::Refused => {
                c.refused += 1;
                drop(c);
                self.log_once(ip, "refused: the source is not in [notify] allow");
            }
            Verdict::BadTsig(why) => {
                c.bad_tsig += 1;
                drop(c);
                self.log_once(ip, &format!("refused: TSIG {why}"));
            }
            Verdict::Malformed => c.malformed += 1,
        }
        answer
    }

    fn log_once(&self, ip: IpAddr, what: &str) {
        let mut logged = self.logged.lock().expect("log lock");
        let now = Instant::now();
        if logged.len() > 4096 {
            logged.retain(|_, t| now.duration_since(*t) < REFUSED_LOG_EVERY);
        }
        let key = (ip, what.to_owned());
        match logged.get(&key) {
            Some(t) if now.duration_since(*t) < REFUSED_LOG_EVERY => {}
            _ => {
                logged.insert(key, now);
                log::warn!("NOTIFY from {ip} {what} (logged once a minute per source and reason)");
            }
        }
    }
}

/// Binds every `listen` address (UDP and TCP) and serves until the process
/// ends. Fails at once if an address cannot be bound. `counted` is woken at
/// every packet `counters` counts.
pub async fn serve(
    settings: watch::Receiver<Arc<DnsNotifySettings>>,
    inbox: Arc<Inbox>,
    counters: Arc<Mutex<DnsNotifyCounters>>,
    counted: Arc<tokio::sync::Notify>,
) -> Result<()> {
    let listen = settings.borrow().listen.clone();
    let shared = Arc::new(Shared {
        settings,
        inbox,
        counters,
        counted,
        logged: Mutex::new(HashMap::new()),
    });
    for addr in listen {
        let udp = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("[notify] listen: binding UDP {addr}"))?;
        let tcp = TcpListener::bind(addr)
            .await
            .with_context(|| format!("[notify] listen: binding TCP {addr}"))?;
        log::info!("listening for DNS NOTIFY on {addr} (UDP and TCP)");
        tokio::spawn(serve_udp(udp, shared.clone()));
        tokio::spawn(serve_tcp(tcp, shared.clone()));
    }
    Ok(())
}

async fn serve_udp(socket: UdpSocket, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(answer) = shared.on_packet(&buf[..n], from) {
            let _ = socket.send_to(&answer, from).await;
        }
    }
}

/// TCP connections served at once; each gets `TCP_IDLE` per message.
const TCP_CONNECTIONS: usize = 64;
const TCP_IDLE: Duration = Duration::from_secs(5);

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    let permits = Arc::new(Semaphore::new(TCP_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, from)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = serve_tcp_conn(stream, from, &shared).await;
            drop(permit);
        });
    }
}

async fn serve_tcp_conn(mut stream: TcpStream, from: SocketAddr, shared: &Shared) -> Result<()> {
    loop {
        let mut len = [0u8; 2];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await??;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf)).await??;
        if let Some(answer) = shared.on_packet(&buf, from) {
            let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
            framed.extend(answer);
            stream.write_all(&framed).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use std::str::FromStr;

    fn settings(tsig: Option<TsigKey>) -> DnsNotifySettings {
        DnsNotifySettings {
            listen: vec![],
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            tsig,
            primaries: vec![(
                Name::from_str("example.com.").unwrap(),
                vec!["127.0.0.1:5300".parse().unwrap()],
            )],
            debounce: Duration::from_millis(200),
        }
    }

    fn key() -> TsigKey {
        TsigKey {
            name: Name::from_str("srvd-notify.").unwrap(),
            algorithm: "hmac-sha256".into(),
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
        }
    }

    fn notify(zone: &str) -> Message {
        let mut m = Message::new(4242, MessageType::Query, OpCode::Notify);
        m.add_query(Query::query(Name::from_str(zone).unwrap(), RecordType::SOA));
        m
    }

    fn answer(bytes: Option<Vec<u8>>) -> Message {
        Message::from_vec(&bytes.expect("an answer")).unwrap()
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn an_allowed_notify_is_accepted_and_answered_as_rfc_1996_says() {
        let (v, bytes) = handle(
            &notify("example.com.").to_vec().unwrap(),
            LOCAL,
            &settings(None),
            0,
        );
        assert_eq!(
            v,
            Verdict::Accepted(Name::from_str("example.com.").unwrap())
        );
        let a = answer(bytes);
        assert_eq!(a.metadata.id, 4242);
        assert_eq!(a.metadata.message_type, MessageType::Response);
        assert_eq!(a.metadata.op_code, OpCode::Notify);
        assert_eq!(a.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a.queries[0].query_type(), RecordType::SOA);
    }

    #[test]
    fn a_source_outside_allow_is_refused() {
        let other: IpAddr = "192.0.2.7".parse().unwrap();
        let (v, bytes) = handle(
            &notify("example.com.").to_vec().unwrap(),
            other,
            &settings(None),
            0,
        );
        assert_eq!(v, Verdict::Refused);
        assert_eq!(answer(bytes).metadata.response_code, ResponseCode::Refused);
        let mut none = settings(None);
        none.allow.clear();
        assert_eq!(
            handle(&notify("example.com.").to_vec().unwrap(), LOCAL, &none, 0).0,
            Verdict::Refused
        );
    }

    #[test]
    fn malformed_and_non_notify_packets_are_not_accepted() {
        assert_eq!(
            handle(b"\x00\x01garbage", LOCAL, &settings(None), 0),
            (Verdict::Malformed, None)
        );
        let mut query = notify("example.com.");
        query.metadata.op_code = OpCode::Query;
        let (v, bytes) = handle(&query.to_vec().unwrap(), LOCAL, &settings(None), 0);
        assert_eq!(v, Verdict::Malformed);
        assert_eq!(answer(bytes).metadata.response_code, ResponseCode::FormErr);
        let mut a_question = Message::new(1, MessageType::Query, OpCode::Notify);
        a_question.add_query(Query::query(
            Name::from_str("example.com.").unwrap(),
            RecordType::A,
        ));
        assert_eq!(
            handle(&a_question.to_vec().unwrap(), LOCAL, &settings(None), 0).0,
            Verdict::Malformed
        );
        let mut response = notify("example.com.");
        response.metadata.message_type = MessageType::Response;
        assert_eq!(
            handle(&response.to_vec().unwrap(), LOCAL, &settings(None), 0),
            (Verdict::Malformed, None)
        );
    }

    fn signed_notify(key: &TsigKey, at: u64) -> Vec<u8> {
        let mut m = notify("example.com.");
        let (sig, _) = signer(key).unwrap().sign_message(&m, at).unwrap();
        m.set_signature(sig);
        m.to_vec().unwrap()
    }

    #[test]
    fn tsig_is_checked_on_every_notify() {
        let s = settings(Some(key()));
        let now = 1_800_000_000;
        let (v, bytes) = handle(&signed_notify(&key(), now), LOCAL, &s, now);
        assert!(matches!(v, Verdict::Accepted(_)), "{v:?}");
        let a = answer(bytes);
        assert_eq!(a.metadata.response_code, ResponseCode::NoError);
        assert!(a.signature().is_some(), "the answer is signed too");

        let (v, bytes) = handle(&notify("example.com.").to_vec().unwrap(), LOCAL, &s, now);
        assert_eq!(v, Verdict::BadTsig("not signed"));
        let without_key = settings(None);
        assert_eq!(
            handle(&signed_notify(&key(), now), LOCAL, &without_key, now).0,
            Verdict::BadTsig("signed, but srvd has no key configured")
        );
        assert_eq!(answer(bytes).metadata.response_code, ResponseCode::NotAuth);

        let mut wrong = key();
        wrong.secret = b"another secret, another secret!!".to_vec();
        assert_eq!(
            handle(&signed_notify(&wrong, now), LOCAL, &s, now).0,
            Verdict::BadTsig("bad signature")
        );

        let mut other_name = key();
        other_name.name = Name::from_str("intruder.").unwrap();
        assert_eq!(
            handle(&signed_notify(&other_name, now), LOCAL, &s, now).0,
            Verdict::BadTsig("unknown key")
        );

        assert_eq!(
            handle(&signed_notify(&key(), now - 3600), LOCAL, &s, now).0,
            Verdict::BadTsig("time outside the fudge window")
        );
    }

    #[test]
    fn the_inbox_keeps_one_entry_per_zone() {
        let inbox = Inbox::default();
        let n = |z: &str| ZoneChanged {
            zone: Name::from_str(z).unwrap(),
            servers: vec![],
        };
        for _ in 0..10_000 {
            inbox.put(n("example.com."));
        }
        inbox.put(n("example.net."));
        let mut got: Vec<String> = inbox.take().iter().map(|n| n.zone.to_string()).collect();
        got.sort();
        assert_eq!(got, ["example.com.", "example.net."]);
        assert!(inbox.take().is_empty());
        for i in 0..2000 {
            inbox.put(n(&format!("z{i}.example.")));
        }
        assert_eq!(inbox.take().len(), INBOX_ZONES, "bounded");
    }

    #[test]
    fn a_notify_the_full_inbox_cannot_hold_is_counted_as_dropped() {
        let (_tx, rx) = watch::channel(Arc::new(settings(None)));
        let shared = Shared {
            settings: rx,
            inbox: Arc::new(Inbox::default()),
            counters: Arc::new(Mutex::new(DnsNotifyCounters::default())),
            counted: Arc::default(),
            logged: Mutex::new(HashMap::new()),
        };
        let from = SocketAddr::new(LOCAL, 5300);
        for i in 0..INBOX_ZONES {
            let packet = notify(&format!("z{i}.example.")).to_vec().unwrap();
            assert!(shared.on_packet(&packet, from).is_some());
        }
        assert_eq!(shared.counters.lock().unwrap().dropped, 0);
        let again = notify("z0.example.").to_vec().unwrap();
        shared.on_packet(&again, from);
        assert_eq!(
            shared.counters.lock().unwrap().dropped,
            0,
            "a zone already waiting is replaced, not dropped"
        );
        let new = notify("example.com.").to_vec().unwrap();
        assert!(shared.on_packet(&new, from).is_some(), "still answered");
        let c = shared.counters.lock().unwrap();
        assert_eq!((c.accepted, c.dropped), (INBOX_ZONES as u64 + 2, 1));
    }

    #[test]
    fn primaries_come_from_config_or_the_sender() {
        let s = settings(None);
        assert_eq!(
            s.primaries_for(&Name::from_str("example.com.").unwrap(), LOCAL),
            vec!["127.0.0.1:5300".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            s.primaries_for(
                &Name::from_str("example.net.").unwrap(),
                "10.1.2.3".parse().unwrap()
            ),
            vec!["10.1.2.3:53".parse::<SocketAddr>().unwrap()]
        );
    }
}
