//! The one DNS server of the integration tests: authoritative, on real UDP
//! and TCP sockets on loopback, built on hickory-proto. Tests change its
//! records between cycles, count the queries it receives, and make it
//! misbehave per name (SERVFAIL, REFUSED, NXDOMAIN, silence, truncation,
//! garbage, a wrong ID, another port, another name), or as a whole: answers
//! delayed, rotated, forged by a racing attacker, fixed lists of records,
//! hand-encoded records hickory refuses to build, a new answer every query.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket as StdUdp};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the server answers queries for one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    ServFail,
    Refused,
    NxDomain,
    /// NOERROR without any answer.
    NoData,
    /// No answer at all: the client times out.
    Silent,
    /// UDP answers come back truncated (TC, no records); TCP answers normally.
    TruncateUdp,
    /// UDP truncated, and TCP connections are closed without an answer.
    TruncateNoTcp,
    /// Random bytes instead of a DNS message.
    Garbage,
    /// A well-formed answer with the wrong message ID.
    WrongId,
    /// A correct answer, but sent from another port than the one asked.
    OtherPort,
    /// An answer whose records are for another name.
    OtherName,
}

/// Forged UDP answers that race every real one, as an off-path attacker
/// would send them: SRV records pointing at evil.example.com.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Forge {
    #[default]
    Off,
    /// The right ID from another port, and a wrong ID from the right port:
    /// a client must ignore both.
    Race,
    /// The right ID from the right port, which a client must take for the
    /// answer: the control proving that forgeries really reach it.
    Control,
}

/// An SRV record as raw labels, encoded by hand: (priority, weight, port,
/// TTL, target labels). What hickory refuses to build (a 64-octet label, a
/// 254-octet name) can still arrive on the wire.
pub type RawSrv = (u16, u16, u16, u32, Vec<Vec<u8>>);

#[derive(Default)]
struct State {
    records: Vec<Record>,
    modes: HashMap<Name, Mode>,
    /// Answers given as they are, whatever the question's type.
    fixed: HashMap<Name, Vec<Record>>,
    /// SRV answers encoded by hand.
    raw: HashMap<Name, Vec<RawSrv>>,
    /// Names whose SRV answer is new at every query.
    changing: HashSet<Name>,
    forge: Forge,
    /// How long each UDP answer waits before it is sent.
    delay: Duration,
    /// UDP queries are kept unanswered (`hold`) until `release`.
    hold: bool,
    held: Vec<(Vec<u8>, SocketAddr)>,
    rotate: bool,
    /// Add the SRV targets' A records to the additional section.
    glue: bool,
    /// Consul's default: UDP answers shuffled and cut to what fits the
    /// client's EDNS size, without TC.
    trim_udp: bool,
    /// Zones delegated away: names in them get a referral (no answer, AA
    /// clear, the zone's NS in authority), as a parent zone's primary gives.
    delegated: Vec<Name>,
    /// The serial of the SOA in negative answers (0 is taken as 1).
    serial: u32,
    counter: usize,
    queries: Vec<(Name, RecordType, bool)>,
}

#[derive(Clone)]
pub struct DnsServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    released: Arc<tokio::sync::Notify>,
}

pub fn name(s: &str) -> Name {
    let mut n = Name::from_str(s).unwrap();
    n.set_fqdn(true);
    n
}

impl DnsServer {
    /// Starts a server on 127.0.0.1, UDP and TCP on the same free port.
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let (udp, tcp) = loop {
            let udp = StdUdp::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        udp.set_nonblocking(true).unwrap();
        tcp.set_nonblocking(true).unwrap();
        let st = state.clone();
        let released = Arc::new(tokio::sync::Notify::new());
        let release = released.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let udp = Arc::new(tokio::net::UdpSocket::from_std(udp).unwrap());
                let tcp = tokio::net::TcpListener::from_std(tcp).unwrap();
                let st2 = st.clone();
                tokio::spawn(async move {
                    loop {
                        let Ok((mut conn, _)) = tcp.accept().await else {
                            continue;
                        };
                        let st = st2.clone();
                        tokio::spawn(async move {
                            loop {
                                let mut len = [0u8; 2];
                                if conn.read_exact(&mut len).await.is_err() {
                                    return;
                                }
                                let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
                                if conn.read_exact(&mut buf).await.is_err() {
                                    return;
                                }
                                match answer(&st, &buf, true) {
                                    Reply::Bytes(out) => {
                                        let mut framed = (out.len() as u16).to_be_bytes().to_vec();
                                        framed.extend(out);
                                        if conn.write_all(&framed).await.is_err() {
                                            return;
                                        }
                                    }
                                    _ => return,
                                }
                            }
                        });
                    }
                });
                let mut buf = vec![0u8; 65535];
                let other = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                loop {
                    let received = tokio::select! {
                        r = udp.recv_from(&mut buf) => r,
                        _ = release.notified() => {
                            let held = std::mem::take(&mut st.lock().unwrap().held);
                            for (packet, peer) in held {
                                if let Reply::Bytes(out) = answer(&st, &packet, false) {
                                    let _ = udp.send_to(&out, peer).await;
                                }
                            }
                            continue;
                        }
                    };
                    let Ok((n, peer)) = received else {
                        continue;
                    };
                    let (forge, delay) = {
                        let mut st = st.lock().unwrap();
                        if st.hold {
                            st.held.push((buf[..n].to_vec(), peer));
                            continue;
                        }
                        (st.forge, st.delay)
                    };
                    let forged = match forge {
                        Forge::Off => None,
                        _ => forgeries(&buf[..n]),
                    };
                    if let Some((right_id, wrong_id)) = forged {
                        let from = if forge == Forge::Control {
                            &*udp
                        } else {
                            &other
                        };
                        let _ = from.send_to(&right_id, peer).await;
                        let _ = udp.send_to(&wrong_id, peer).await;
                    }
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    match answer(&st, &buf[..n], false) {
                        Reply::Bytes(out) => {
                            let _ = udp.send_to(&out, peer).await;
                        }
                        Reply::FromOtherPort(out) => {
                            let _ = other.send_to(&out, peer).await;
                        }
                        Reply::Nothing => {}
                    }
                }
            });
        });
        DnsServer {
            addr,
            state,
            released,
        }
    }

    /// The `nameservers = [...]` entry for srvd.toml.
    pub fn toml_addr(&self) -> String {
        format!("\"{}\"", self.addr)
    }

    /// Replaces the SRV records of `domain`: (priority, weight, port, target).
    pub fn set_srv(&self, domain: &str, ttl: u32, records: &[(u16, u16, u16, &str)]) {
        let owner = name(domain);
        let mut st = self.state.lock().unwrap();
        st.records
            .retain(|r| !(r.name == owner && r.record_type() == RecordType::SRV));
        for &(p, w, port, target) in records {
            let target = if target == "." {
                Name::root()
            } else {
                name(target)
            };
            st.records.push(Record::from_rdata(
                owner.clone(),
                ttl,
                RData::SRV(SRV::new(p, w, port, target)),
            ));
        }
    }

    /// Adds an SRV record whose target is raw labels (hostile data).
    pub fn add_srv_raw_target(&self, domain: &str, ttl: u32, port: u16, labels: &[&[u8]]) {
        let target = Name::from_labels(labels.iter().copied()).unwrap();
        self.add_record(Record::from_rdata(
            name(domain),
            ttl,
            RData::SRV(SRV::new(0, 0, port, target)),
        ));
    }

    pub fn set_a(&self, host: &str, ttl: u32, ip: Ipv4Addr) {
        let owner = name(host);
        let mut st = self.state.lock().unwrap();
        st.records
            .retain(|r| !(r.name == owner && r.record_type() == RecordType::A));
        st.records
            .push(Record::from_rdata(owner, ttl, RData::A(A(ip))));
    }

    pub fn set_cname(&self, from: &str, to: &str, ttl: u32) {
        self.add_record(Record::from_rdata(
            name(from),
            ttl,
            RData::CNAME(CNAME(name(to))),
        ));
    }

    pub fn add_record(&self, r: Record) {
        self.state.lock().unwrap().records.push(r);
    }

    pub fn remove_name(&self, domain: &str) {
        let owner = name(domain);
        self.state
            .lock()
            .unwrap()
            .records
            .retain(|r| r.name != owner);
    }

    /// Answers every query for `domain` with `records` as they are (CNAMEs,
    /// duplicates and all), rotated when `set_rotate` is on.
    pub fn set_answer(&self, domain: &str, records: Vec<Record>) {
        self.state
            .lock()
            .unwrap()
            .fixed
            .insert(name(domain), records);
    }

    /// Answers every query for `domain` with SRV records encoded by hand.
    pub fn set_raw_srv(&self, domain: &str, records: Vec<RawSrv>) {
        self.state.lock().unwrap().raw.insert(name(domain), records);
    }

    /// Answers SRV queries for `domain` with three records whose targets
    /// (`v{N}-{i}.example.com.`, TTL 0) change with every query N.
    pub fn set_changing(&self, domain: &str) {
        self.state.lock().unwrap().changing.insert(name(domain));
    }

    pub fn set_forge(&self, forge: Forge) {
        self.state.lock().unwrap().forge = forge;
    }

    /// Keeps every UDP query unanswered from now on, until `release`.
    pub fn hold(&self) {
        self.state.lock().unwrap().hold = true;
    }

    /// The UDP queries kept unanswered so far.
    pub fn held(&self) -> usize {
        self.state.lock().unwrap().held.len()
    }

    /// Answers the queries kept by `hold`, and every query after them.
    pub fn release(&self) {
        self.state.lock().unwrap().hold = false;
        self.released.notify_one();
    }

    /// Holds every UDP answer back for `delay` (forgeries go out at once).
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    pub fn set_mode(&self, domain: &str, mode: Mode) {
        self.state.lock().unwrap().modes.insert(name(domain), mode);
    }

    /// Answers in a different order on every query.
    pub fn set_rotate(&self, on: bool) {
        self.state.lock().unwrap().rotate = on;
    }

    /// Adds the targets' A records to SRV answers' additional section, as
    /// Knot and BIND do for targets in their zones.
    pub fn set_glue(&self, on: bool) {
        self.state.lock().unwrap().glue = on;
    }

    /// Answers like Consul DNS by default: over UDP, the records shuffled
    /// and only as many as fit the client's EDNS payload size (512 without
    /// EDNS), with TC clear; over TCP, all of them (shuffled too).
    pub fn set_trim_udp(&self, on: bool) {
        self.state.lock().unwrap().trim_udp = on;
    }

    /// Makes `zone` a child zone delegated elsewhere: queries for names in
    /// it get a referral (NOERROR, no answer, AA clear, `NS ns.{zone}` in
    /// authority with its glue), as the parent zone's primary answers.
    pub fn set_delegated(&self, zone: &str) {
        self.state.lock().unwrap().delegated.push(name(zone));
    }

    /// Sets the zone's SOA serial, as given in the authority section of
    /// negative answers (an SOA query for any existing name gets one).
    pub fn set_serial(&self, serial: u32) {
        self.state.lock().unwrap().serial = serial;
    }

    /// Queries received for `domain` of type `rtype` (UDP and TCP).
    pub fn queries(&self, domain: &str, rtype: RecordType) -> usize {
        self.count_queries(domain, |t, _| t == rtype)
    }

    /// Waits until `n` more queries for `domain` of type `rtype` than
    /// `since` have arrived: proof that srvd kept polling meanwhile.
    pub fn wait_queries(
        &self,
        domain: &str,
        rtype: RecordType,
        since: usize,
        n: usize,
        limit: Duration,
    ) -> bool {
        super::wait_until(limit, || self.queries(domain, rtype) >= since + n)
    }

    /// Queries received over TCP for `domain`.
    pub fn tcp_queries(&self, domain: &str) -> usize {
        self.count_queries(domain, |_, tcp| tcp)
    }

    /// Queries for `domain` whose (type, came over TCP) pass `keep`.
    fn count_queries(&self, domain: &str, keep: impl Fn(RecordType, bool) -> bool) -> usize {
        let owner = name(domain);
        self.state
            .lock()
            .unwrap()
            .queries
            .iter()
            .filter(|(n, t, tcp)| *n == owner && keep(*t, *tcp))
            .count()
    }
}

enum Reply {
    Bytes(Vec<u8>),
    FromOtherPort(Vec<u8>),
    Nothing,
}

fn soa(serial: u32) -> Record {
    Record::from_rdata(
        name("example.com."),
        1,
        RData::SOA(SOA::new(
            name("ns1.example.com."),
            name("hostmaster.example.com."),
            serial.max(1),
            3600,
            600,
            86400,
            1,
        )),
    )
}

fn answer(state: &Arc<Mutex<State>>, packet: &[u8], tcp: bool) -> Reply {
    let Ok(query) = Message::from_vec(packet) else {
        return Reply::Nothing;
    };
    let Some(q) = query.queries.first().cloned() else {
        return Reply::Nothing;
    };
    let qname = q.name().clone();
    let qtype = q.query_type();
    let mut st = state.lock().unwrap();
    st.queries.push((qname.clone(), qtype, tcp));
    st.counter += 1;
    let mode = st.modes.get(&qname).cloned().unwrap_or(Mode::Normal);

    let mut resp = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    resp.metadata.authoritative = true;
    resp.metadata.recursion_desired = query.metadata.recursion_desired;
    resp.add_query(q.clone());
    if let Some(edns) = &query.edns {
        let mut e = Edns::new();
        e.set_max_payload(edns.max_payload().max(512));
        resp.set_edns(e);
    }
    let code = |resp: &mut Message, code| {
        resp.metadata.response_code = code;
        Reply::Bytes(resp.to_vec().unwrap())
    };
    match mode {
        Mode::Silent => return Reply::Nothing,
        Mode::ServFail => return code(&mut resp, ResponseCode::ServFail),
        Mode::Refused => return code(&mut resp, ResponseCode::Refused),
        Mode::NxDomain => {
            resp.add_authority(soa(st.serial));
            return code(&mut resp, ResponseCode::NXDomain);
        }
        Mode::NoData => {
            resp.add_authority(soa(st.serial));
            return code(&mut resp, ResponseCode::NoError);
        }
        Mode::Garbage => {
            let mut junk = packet[..2.min(packet.len())].to_vec();
            junk.extend_from_slice(&[
                0x81, 0x80, 0xff, 0xff, 0, 1, 0xde, 0xad, 0xbe, 0xef, 7, 7, 7,
            ]);
            return Reply::Bytes(junk);
        }
        Mode::TruncateUdp | Mode::TruncateNoTcp if !tcp => {
            resp.metadata.truncation = true;
            return Reply::Bytes(resp.to_vec().unwrap());
        }
        Mode::TruncateNoTcp => return Reply::Nothing,
        _ => {}
    }

    if let Some(zone) = st.delegated.iter().find(|z| z.zone_of(&qname)) {
        let ns = name(&format!("ns.{zone}"));
        resp.metadata.authoritative = false;
        resp.add_authority(Record::from_rdata(
            zone.clone(),
            300,
            RData::NS(hickory_proto::rr::rdata::NS(ns.clone())),
        ));
        resp.add_additional(Record::from_rdata(
            ns,
            300,
            RData::A(A(Ipv4Addr::LOCALHOST)),
        ));
        return Reply::Bytes(resp.to_vec().unwrap());
    }
    if let Some(records) = st.raw.get(&qname) {
        return Reply::Bytes(encode_raw(packet, records));
    }
    if st.changing.contains(&qname) && qtype == RecordType::SRV {
        let v = st.counter;
        for i in 0..3u16 {
            resp.add_answer(Record::from_rdata(
                qname.clone(),
                0,
                RData::SRV(SRV::new(
                    i,
                    5,
                    3306 + i,
                    name(&format!("v{v}-{i}.example.com.")),
                )),
            ));
        }
        return Reply::Bytes(resp.to_vec().unwrap());
    }
    if let Some(records) = st.fixed.get(&qname) {
        let mut records = records.clone();
        if st.rotate && !records.is_empty() {
            let k = st.counter % records.len();
            records.rotate_left(k);
        }
        resp.add_answers(records);
        return Reply::Bytes(resp.to_vec().unwrap());
    }

    // The CNAME chain, then the records of the final name.
    let mut owner = qname.clone();
    let mut answers = Vec::new();
    for _ in 0..8 {
        let cname = st.records.iter().find(|r| {
            r.name == owner && r.record_type() == RecordType::CNAME && qtype != RecordType::CNAME
        });
        match cname {
            Some(c) => {
                answers.push(c.clone());
                if let RData::CNAME(t) = &c.data {
                    owner = t.0.clone();
                }
            }
            None => break,
        }
    }
    let mut found: Vec<Record> = st
        .records
        .iter()
        .filter(|r| {
            r.name == owner && (r.record_type() == qtype || r.record_type() == RecordType::RRSIG)
        })
        .cloned()
        .collect();
    if st.rotate && !found.is_empty() {
        let k = st.counter % found.len();
        found.rotate_left(k);
    }
    if st.trim_udp {
        shuffle(&mut found, st.counter as u64);
    }
    let exists = !answers.is_empty() || st.records.iter().any(|r| r.name == owner);
    if !exists {
        resp.add_authority(soa(st.serial));
        return code(&mut resp, ResponseCode::NXDomain);
    }
    if mode == Mode::OtherName {
        let other = name("_evil._tcp.example.com.");
        for r in &mut found {
            r.name = other.clone();
        }
    }
    answers.extend(found);
    if answers.is_empty() {
        resp.add_authority(soa(st.serial));
    }
    if st.glue && qtype == RecordType::SRV {
        for a in &answers {
            let RData::SRV(srv) = &a.data else { continue };
            for r in &st.records {
                if r.name == srv.target && r.record_type() == RecordType::A {
                    resp.add_additional(r.clone());
                }
            }
        }
    }
    resp.add_answers(answers);
    let mut bytes = resp.to_vec().unwrap();
    let limit = query
        .edns
        .as_ref()
        .map_or(512, |e| e.max_payload().max(512)) as usize;
    if st.trim_udp && !tcp {
        while bytes.len() > limit && !resp.answers.is_empty() {
            resp.answers.pop();
            resp.additionals.clear();
            bytes = resp.to_vec().unwrap();
        }
    }
    if !tcp && bytes.len() > limit {
        resp.answers.clear();
        resp.additionals.clear();
        resp.metadata.truncation = true;
        bytes = resp.to_vec().unwrap();
    }
    if mode == Mode::WrongId {
        let id = u16::from_be_bytes([bytes[0], bytes[1]]).wrapping_add(1);
        bytes[..2].copy_from_slice(&id.to_be_bytes());
    }
    if mode == Mode::OtherPort {
        return Reply::FromOtherPort(bytes);
    }
    Reply::Bytes(bytes)
}

/// A different order for every `seed` (Fisher-Yates over a 64-bit LCG):
/// enough randomness for a server that shuffles, without a dependency.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in (1..items.len()).rev() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        items.swap(i, ((x >> 33) % (i as u64 + 1)) as usize);
    }
}

/// Two answers forged for `query`: (the right ID, a wrong ID), each with an
/// SRV record pointing at evil.example.com.
fn forgeries(query: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let q = Message::from_vec(query).ok()?;
    let question = q.queries.first()?.clone();
    let mut forged = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    forged.metadata.authoritative = true;
    forged.metadata.recursion_desired = q.metadata.recursion_desired;
    forged.add_answer(Record::from_rdata(
        question.name().clone(),
        0,
        RData::SRV(SRV::new(0, 0, 80, name("evil.example.com."))),
    ));
    forged.add_query(question);
    let right_id = forged.to_vec().ok()?;
    forged.metadata.id = q.metadata.id.wrapping_add(1);
    let wrong_id = forged.to_vec().ok()?;
    Some((right_id, wrong_id))
}

/// A response to `query` with `records` encoded by hand, without EDNS.
fn encode_raw(query: &[u8], records: &[RawSrv]) -> Vec<u8> {
    // The question: the name's labels, then type and class.
    let mut end = 12;
    while end < query.len() && query[end] != 0 {
        end += 1 + query[end] as usize;
    }
    let question_end = (end + 5).min(query.len());
    let mut out = Vec::new();
    out.extend_from_slice(&query[..2]);
    out.extend_from_slice(&[0x84 | (query[2] & 1), 0x00, 0, 1]);
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..question_end]);
    for (priority, weight, port, ttl, labels) in records {
        let mut rdata = Vec::new();
        rdata.extend_from_slice(&priority.to_be_bytes());
        rdata.extend_from_slice(&weight.to_be_bytes());
        rdata.extend_from_slice(&port.to_be_bytes());
        for l in labels {
            rdata.push(l.len() as u8);
            rdata.extend_from_slice(l);
        }
        rdata.push(0);
        out.extend_from_slice(&[0xc0, 0x0c, 0, 33, 0, 1]);
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    out
}

/// A nameserver that is bound and silent: queries to it time out (a dead
/// server, not a refused port). Keep it alive as long as srvd may ask it.
pub fn dead_nameserver() -> StdUdp {
    StdUdp::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()
}

/// The SRV target labels of `host` ("db-001.example.com"), for `RawSrv`.
pub fn labels(host: &str) -> Vec<Vec<u8>> {
    host.split('.').map(|l| l.as_bytes().to_vec()).collect()
}
