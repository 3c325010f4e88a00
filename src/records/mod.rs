//! From a DNS answer to the records a template may see: follow CNAMEs, keep
//! only SRV records for the asked name, refuse any target that is not a plain
//! host name (DNS data must never inject text into a config file), and put the
//! rest in one deterministic order so that a rotating server causes no rewrite.
//!
//! Everything here is a pure function over hickory's types.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde::Serialize;

mod chain;

pub use chain::{MAX_CNAME_HOPS, chain, ttl_of};

/// One SRV record, as templates see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Srv {
    /// The target as DNS gives it, lower case, with the trailing dot.
    pub target: String,
    /// The target without the trailing dot.
    pub host: String,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
    pub ttl: u32,
    /// Where to connect, ready for a config line: "10.0.0.11:3306" or
    /// "[2001:db8::11]:3306" with the first resolved address, else
    /// "db-001.example.com.:3306".
    pub endpoint: String,
    /// The target's A/AAAA addresses, when the template asks for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addrs: Option<Vec<String>>,
}

impl Srv {
    /// The record for HOST (no trailing dot) at PORT, with the priority and
    /// weight of RFC 2782 and a TTL in seconds, before any address is known:
    /// its endpoint is the target itself ("db-001.example.com.:3306").
    pub fn new(host: &str, port: u16, priority: u16, weight: u16, ttl: u32) -> Srv {
        Srv {
            target: format!("{host}."),
            host: host.to_owned(),
            port,
            priority,
            weight,
            ttl,
            endpoint: format!("{host}.:{port}"),
            addrs: None,
        }
    }

    /// Gives the record its addresses (sorted, non-empty); the endpoint
    /// then uses the first one.
    pub fn set_addrs(&mut self, addrs: &[IpAddr]) {
        if let Some(first) = addrs.first() {
            self.endpoint = match first {
                IpAddr::V4(a) => format!("{a}:{}", self.port),
                IpAddr::V6(a) => format!("[{a}]:{}", self.port),
            };
        }
        self.addrs = Some(addrs.iter().map(|a| a.to_string()).collect());
    }
}

impl Srv {
    /// The order srvd renders in: priority ascending, weight descending, then
    /// target and port ascending.
    pub fn render_order(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then(other.weight.cmp(&self.weight))
            .then_with(|| self.target.cmp(&other.target))
            .then(self.port.cmp(&other.port))
    }
}

/// A record left out of the answer, and why. Logged once, never rendered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rejected {
    /// The target in DNS presentation form, with unsafe bytes escaped.
    pub target: String,
    pub port: u16,
    pub reason: String,
}

/// The usable part of one SRV answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    pub records: Vec<Srv>,
    pub rejected: Vec<Rejected>,
    /// The smallest TTL among the records used (SRV and CNAME): how long the
    /// answer may be reused without asking again.
    pub ttl: u32,
    /// True when the answer had SRV records but none usable, or only ".",
    /// as opposed to no SRV record at all.
    pub had_records: bool,
    /// True when the server said the name does not exist (NXDOMAIN): no
    /// instances, ruled by `allow_empty` and `min_records` like an empty
    /// answer (Kubernetes answers so for a headless service scaled to 0).
    pub nxdomain: bool,
    /// Something the operator should fix about the servers, with the fix,
    /// shown in /status (the cause itself is logged once where found).
    pub warning: Option<String>,
    /// The targets' addresses that the answer's additional section carried
    /// (RFC 2782 asks servers to add them), sorted by target as in
    /// `Srv::target`; see [`Answer::glue_of`].
    pub glue: Box<[Glue]>,
}

/// The addresses an answer's additional section gave for one of its
/// targets. A boxed slice, not a map: an answer is kept for its TTL, once
/// per name, and a map's node is several times these few entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glue {
    /// As in `Srv::target`: lower case, with the trailing dot.
    pub target: String,
    /// Sorted, without duplicates.
    pub addrs: Box<[IpAddr]>,
    /// The smallest TTL of the address records, in seconds.
    pub ttl: u32,
}

impl Answer {
    /// The glue for `target` (as in `Srv::target`), if the answer carried any.
    pub fn glue_of(&self, target: &str) -> Option<&Glue> {
        (self.glue)
            .binary_search_by(|g| g.target.as_str().cmp(target))
            .ok()
            .map(|i| &self.glue[i])
    }
}

/// The A and AAAA records among `additionals` that belong to a target of
/// `answer`, for `Answer::glue`. Records for any other name are ignored.
pub fn glue(answer: &Answer, additionals: &[Record]) -> Box<[Glue]> {
    let targets: HashSet<&str> = answer.records.iter().map(|s| s.target.as_str()).collect();
    let mut glue: BTreeMap<String, (Vec<IpAddr>, u32)> = BTreeMap::new();
    for r in additionals {
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        let Ok(host) = host_name(&r.name) else {
            continue;
        };
        let target = format!("{host}.");
        if !targets.contains(target.as_str()) {
            continue;
        }
        let entry = glue.entry(target).or_insert((Vec::new(), u32::MAX));
        entry.0.push(ip);
        entry.1 = entry.1.min(ttl_of(r));
    }
    (glue.into_iter())
        .map(|(target, (mut addrs, ttl))| {
            addrs.sort();
            addrs.dedup();
            Glue {
                target,
                addrs: addrs.into(),
                ttl,
            }
        })
        .collect()
}

/// Longest host name, in octets, without the trailing dot (RFC 1035 2.3.4).
pub const MAX_NAME: usize = 253;
/// Longest label (RFC 1035 2.3.4).
pub const MAX_LABEL: usize = 63;
/// Builds the answer for `query` from the records of a DNS response.
pub fn answer_from<'a>(query: &Name, records: impl IntoIterator<Item = &'a Record>) -> Answer {
    let records: Vec<&Record> = records.into_iter().collect();
    let (owners, mut ttl) = chain(query, &records);

    let mut answer = Answer::default();
    let mut srvs = Vec::new();
    for r in records {
        let RData::SRV(srv) = &r.data else { continue };
        if r.record_type() != RecordType::SRV || !owners.contains(&r.name) {
            continue;
        }
        ttl = ttl.min(ttl_of(r));
        srvs.push((srv.priority, srv.weight, srv.port, &srv.target, ttl_of(r)));
    }
    answer.had_records = !srvs.is_empty();
    answer.ttl = if ttl == u32::MAX { 0 } else { ttl };

    // RFC 2782: a single record with target "." means "service not available here".
    if srvs.len() == 1 && srvs[0].3.is_root() {
        return answer;
    }
    for (priority, weight, port, target, ttl) in srvs {
        match host_name(target) {
            Ok(host) if port == 0 => answer.rejected.push(Rejected {
                target: format!("{host}."),
                port,
                reason: "port 0".into(),
            }),
            Ok(host) => answer
                .records
                .push(Srv::new(&host, port, priority, weight, ttl)),
            Err(reason) => answer.rejected.push(Rejected {
                target: escaped(target),
                port,
                reason,
            }),
        }
    }
    sort_dedup(&mut answer.records);
    // Kept until the TTL runs out, once per name: no spare capacity.
    answer.records.shrink_to_fit();
    answer
}

/// Sorts into render order and drops exact duplicates, keeping the smallest
/// TTL of a record given twice (RFC 2181 section 5.2), whatever the order.
pub fn sort_dedup(records: &mut Vec<Srv>) {
    records.sort_by(|a, b| a.render_order(b).then(a.ttl.cmp(&b.ttl)));
    records.dedup_by(|a, b| {
        a.target == b.target && a.port == b.port && a.priority == b.priority && a.weight == b.weight
    });
}

/// The host name of a target, lower case, without the trailing dot, if every
/// label is letters, digits, hyphens and underscores only.
pub fn host_name(target: &Name) -> Result<String, String> {
    if target.is_root() {
        return Err("\".\" (no service) among other records".into());
    }
    let mut host = String::with_capacity(target.len());
    for label in target.iter() {
        if label.is_empty() {
            return Err("empty label".into());
        }
        if label.len() > MAX_LABEL {
            return Err(format!(
                "a label of {} octets (at most {MAX_LABEL})",
                label.len()
            ));
        }
        if let Some(&bad) = label
            .iter()
            .find(|b| !(b.is_ascii_alphanumeric() || **b == b'-' || **b == b'_'))
        {
            return Err(format!(
                "byte {} is not allowed in a host name",
                describe_byte(bad)
            ));
        }
        if !host.is_empty() {
            host.push('.');
        }
        host.extend(label.iter().map(|b| b.to_ascii_lowercase() as char));
    }
    if host.len() > MAX_NAME {
        return Err(format!(
            "a name of {} octets (at most {MAX_NAME})",
            host.len()
        ));
    }
    Ok(host)
}

fn describe_byte(b: u8) -> String {
    match b {
        b'\n' => "newline".into(),
        b'\r' => "carriage return".into(),
        b'\t' => "tab".into(),
        b' ' => "space".into(),
        0x21..=0x7e => format!("{:?}", b as char),
        _ => format!("0x{b:02x}"),
    }
}

/// A name in presentation form with every byte outside printable ASCII (and
/// the backslash) escaped as \DDD, safe to write in a log line.
pub fn escaped(name: &Name) -> String {
    let mut out = String::new();
    for label in name.iter() {
        for &b in label {
            if b.is_ascii_graphic() && b != b'\\' && b != b'.' {
                out.push(b as char);
            } else {
                out.push_str(&format!("\\{b:03}"));
            }
        }
        out.push('.');
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// Why a domain's records cannot be used this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// No server answered: the servers asked (in order), the rounds over
    /// them, and how long each query waited.
    Timeout {
        servers: String,
        attempts: usize,
        timeout: std::time::Duration,
    },
    /// A server answered with a referral to the zone named (RFC 1034
    /// 4.3.2): it neither holds the name nor recurses. Not an answer.
    Referral(String),
    ServFail,
    Refused,
    NxDomain,
    /// NOERROR without any SRV record.
    NoRecords,
    /// Only "." or only unusable records: nothing to render.
    Empty,
    /// Fewer records than `min_records`.
    TooFew {
        got: usize,
        min: usize,
    },
    /// Looking up a target's addresses failed (`resolve_targets`).
    Target {
        host: String,
        rtype: &'static str,
        error: Box<LookupError>,
    },
    /// Anything else: another response code, a network error, a bad zone file.
    Other(String),
}

impl LookupError {
    /// A short stable name, for metrics labels and the STATUS line.
    pub fn kind(&self) -> &'static str {
        match self {
            LookupError::Timeout { .. } => "timeout",
            LookupError::Referral(_) => "referral",
            LookupError::ServFail => "servfail",
            LookupError::Refused => "refused",
            LookupError::NxDomain => "nxdomain",
            LookupError::NoRecords => "noanswer",
            LookupError::Empty => "empty",
            LookupError::TooFew { .. } => "too_few",
            LookupError::Target { error, .. } => error.kind(),
            LookupError::Other(_) => "other",
        }
    }
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::Timeout {
                servers,
                attempts,
                timeout,
            } => write!(
                f,
                "timeout: no answer from {servers} ({attempts} attempt{} of {}s each{})",
                if *attempts == 1 { "" } else { "s" },
                timeout.as_secs_f64(),
                if servers.contains(',') {
                    ", per server"
                } else {
                    ""
                }
            ),
            LookupError::Referral(zone) => write!(
                f,
                "referral to {zone}: the server does not hold the name and does not recurse; \
                 list a server that answers for it"
            ),
            LookupError::ServFail => f.write_str("SERVFAIL"),
            LookupError::Refused => f.write_str("REFUSED"),
            LookupError::NxDomain => f.write_str("NXDOMAIN"),
            LookupError::NoRecords => f.write_str("no SRV records in the answer"),
            LookupError::Empty => f.write_str("no usable records"),
            LookupError::TooFew { got, min } => {
                write!(f, "{got} records, fewer than min_records = {min}")
            }
            LookupError::Target { host, rtype, error } => write!(f, "{host} {rtype}: {error}"),
            LookupError::Other(s) => f.write_str(s),
        }
    }
}

/// Whether a template may render a domain's answer, under its
/// `allow_empty` and `min_records` rules. NXDOMAIN on the SRV name counts
/// as no records: the same rule with or without `resolve_targets`.
pub fn usable(answer: &Answer, allow_empty: bool, min_records: usize) -> Result<(), LookupError> {
    let n = answer.records.len();
    if n == 0 && !allow_empty {
        return Err(if answer.nxdomain {
            LookupError::NxDomain
        } else if answer.had_records {
            LookupError::Empty
        } else {
            LookupError::NoRecords
        });
    }
    if n < min_records {
        return Err(LookupError::TooFew {
            got: n,
            min: min_records,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{CNAME, SRV};
    use std::str::FromStr;

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap()
    }

    fn srv(owner: &str, prio: u16, weight: u16, port: u16, target: Name, ttl: u32) -> Record {
        Record::from_rdata(
            name(owner),
            ttl,
            RData::SRV(SRV::new(prio, weight, port, target)),
        )
    }

    fn srv_to(owner: &str, prio: u16, weight: u16, port: u16, target: &str) -> Record {
        srv(owner, prio, weight, port, name(target), 30)
    }

    #[test]
    fn glue_keeps_the_targets_addresses_only() {
        use hickory_proto::rr::rdata::{A, AAAA};
        let d = "_mysql._tcp.example.com.";
        let answer = answer_from(
            &name(d),
            &[
                srv_to(d, 10, 5, 3306, "db-001.Example.com."),
                srv_to(d, 10, 5, 3306, "db-002.example.com."),
            ],
        );
        let a = |host: &str, ip: &str, ttl| {
            Record::from_rdata(name(host), ttl, RData::A(A(ip.parse().unwrap())))
        };
        let additionals = [
            a("DB-001.example.com.", "10.0.0.11", 30),
            a("db-001.example.com.", "10.0.0.11", 20),
            Record::from_rdata(
                name("db-001.example.com."),
                40,
                RData::AAAA(AAAA("2001:db8::11".parse().unwrap())),
            ),
            a("evil.example.net.", "192.0.2.66", 30),
            a("db-003.example.com.", "10.0.0.13", 30),
        ];
        let answer = Answer {
            glue: glue(&answer, &additionals),
            ..answer
        };
        assert_eq!(
            answer.glue.len(),
            1,
            "only db-001 has addresses here: {:?}",
            answer.glue
        );
        assert!(answer.glue_of("db-002.example.com.").is_none());
        let Glue { addrs, ttl, .. } = answer.glue_of("db-001.example.com.").unwrap();
        assert_eq!(
            &addrs[..],
            &[
                "10.0.0.11".parse::<IpAddr>().unwrap(),
                "2001:db8::11".parse().unwrap()
            ]
        );
        assert_eq!(*ttl, 20);
    }

    const Q: &str = "_mysql._tcp.example.com.";

    #[test]
    fn orders_by_priority_then_weight_desc_then_target_then_port() {
        let recs = [
            srv_to(Q, 20, 5, 3306, "b.example.com."),
            srv_to(Q, 10, 1, 3306, "c.example.com."),
            srv_to(Q, 10, 9, 3307, "d.example.com."),
            srv_to(Q, 10, 9, 3306, "d.example.com."),
            srv_to(Q, 10, 9, 3306, "a.example.com."),
        ];
        let a = answer_from(&name(Q), &recs);
        let got: Vec<_> = a
            .records
            .iter()
            .map(|r| format!("{}:{}", r.host, r.port))
            .collect();
        assert_eq!(
            got,
            [
                "a.example.com:3306",
                "d.example.com:3306",
                "d.example.com:3307",
                "c.example.com:3306",
                "b.example.com:3306"
            ]
        );
    }

    #[test]
    fn rotated_answers_give_the_same_records() {
        let mut recs = vec![
            srv_to(Q, 10, 5, 3306, "db-001.example.com."),
            srv_to(Q, 10, 5, 3306, "db-002.example.com."),
            srv_to(Q, 10, 5, 3306, "db-003.example.com."),
        ];
        let first = answer_from(&name(Q), &recs);
        for _ in 0..3 {
            recs.rotate_left(1);
            assert_eq!(answer_from(&name(Q), &recs), first);
        }
    }

    #[test]
    fn target_keeps_the_trailing_dot_and_host_drops_it() {
        let a = answer_from(&name(Q), &[srv_to(Q, 0, 0, 3306, "DB-001.Example.com.")]);
        assert_eq!(a.records[0].target, "db-001.example.com.");
        assert_eq!(a.records[0].host, "db-001.example.com");
    }

    #[test]
    fn follows_cnames_and_ignores_other_types_and_names() {
        let alias = "_mysql._tcp.real.example.com.";
        let recs = [
            Record::from_rdata(name(Q), 60, RData::CNAME(CNAME(name(alias)))),
            srv_to(alias, 0, 0, 3306, "db-001.example.com."),
            srv_to("_other._tcp.example.com.", 0, 0, 1, "evil.example.com."),
            Record::from_rdata(name(alias), 5, RData::A("10.0.0.1".parse().unwrap())),
        ];
        let a = answer_from(&name(Q), &recs);
        assert_eq!(a.records.len(), 1);
        assert_eq!(a.records[0].host, "db-001.example.com");
        assert_eq!(a.ttl, 30, "min of the CNAME (60) and SRV (30) TTLs");
    }

    #[test]
    fn a_single_root_target_means_no_service() {
        let a = answer_from(&name(Q), &[srv(Q, 0, 0, 0, Name::root(), 30)]);
        assert!(a.records.is_empty() && a.rejected.is_empty() && a.had_records);
        assert_eq!(usable(&a, false, 0), Err(LookupError::Empty));
        assert_eq!(usable(&a, true, 0), Ok(()));
    }

    #[test]
    fn hostile_targets_are_rejected_with_a_reason() {
        let hostile: Vec<Vec<u8>> = vec![
            b"db\nserver evil 1.2.3.4:80".to_vec(),
            b"db 1".to_vec(),
            b"db\"1".to_vec(),
            b"{{x}}".to_vec(),
            b"{%x%}".to_vec(),
            b"a;b".to_vec(),
            b"a#b".to_vec(),
            b"a\\b".to_vec(),
            b"a\0b".to_vec(),
            "d\u{e9}j\u{e0}".as_bytes().to_vec(),
        ];
        for label in hostile {
            let target = Name::from_labels([label.as_slice(), b"example", b"com"]).unwrap();
            let a = answer_from(&name(Q), &[srv(Q, 0, 0, 3306, target, 30)]);
            assert!(a.records.is_empty(), "{label:?} must not be rendered");
            assert_eq!(a.rejected.len(), 1);
            assert!(!a.rejected[0].target.contains('\n'));
        }
    }

    #[test]
    fn a_ttl_with_the_top_bit_set_counts_as_zero() {
        let a = answer_from(
            &name(Q),
            &[srv(Q, 0, 0, 1, name("a.example.com."), 0x8000_0000)],
        );
        assert_eq!((a.ttl, a.records[0].ttl), (0, 0));
    }

    #[test]
    fn invalid_answers_give_the_same_records_in_any_order() {
        let mut recs = vec![
            Record::from_rdata(
                name(Q),
                60,
                RData::CNAME(CNAME(name("_b._tcp.example.com."))),
            ),
            Record::from_rdata(
                name(Q),
                60,
                RData::CNAME(CNAME(name("_a._tcp.example.com."))),
            ),
            srv("_a._tcp.example.com.", 0, 0, 1, name("x.example.com."), 30),
            srv("_b._tcp.example.com.", 0, 0, 1, name("y.example.com."), 30),
            srv_to(Q, 1, 1, 1, "z.example.com."),
            srv(Q, 1, 1, 1, name("z.example.com."), 5),
        ];
        let first = answer_from(&name(Q), &recs);
        assert_eq!(
            first
                .records
                .iter()
                .find(|r| r.host == "z.example.com")
                .unwrap()
                .ttl,
            5
        );
        for _ in 0..recs.len() {
            recs.rotate_left(1);
            assert_eq!(answer_from(&name(Q), &recs), first);
        }
    }

    #[test]
    fn the_longest_legal_name_is_accepted() {
        let label = [b'a'; 63];
        let max = Name::from_labels([&label[..], &label, &label, &label[..61]]).unwrap();
        assert_eq!(host_name(&max).unwrap().len(), MAX_NAME);
        // One octet more does not fit in a DNS message at all.
        assert!(Name::from_labels([&label[..], &label, &label, &label[..62]]).is_err());
    }

    #[test]
    fn port_zero_is_rejected_and_extremes_are_kept() {
        let a = answer_from(
            &name(Q),
            &[
                srv_to(Q, 0, 0, 0, "zero.example.com."),
                srv_to(Q, 65535, 65535, 65535, "max.example.com."),
            ],
        );
        assert_eq!(a.records.len(), 1);
        assert_eq!(a.records[0].port, 65535);
        assert_eq!(a.rejected[0].reason, "port 0");
    }

    #[test]
    fn min_records_and_empty_rules() {
        let a = answer_from(&name(Q), &[srv_to(Q, 0, 0, 1, "a.example.com.")]);
        assert_eq!(usable(&a, false, 1), Ok(()));
        assert_eq!(
            usable(&a, false, 2),
            Err(LookupError::TooFew { got: 1, min: 2 })
        );
        let none = answer_from(&name(Q), &[]);
        assert_eq!(usable(&none, false, 0), Err(LookupError::NoRecords));
        assert_eq!(usable(&none, true, 0), Ok(()));
        let gone = Answer {
            nxdomain: true,
            ..Answer::default()
        };
        assert_eq!(usable(&gone, false, 0), Err(LookupError::NxDomain));
        assert_eq!(usable(&gone, true, 0), Ok(()));
        assert_eq!(
            usable(&gone, true, 1),
            Err(LookupError::TooFew { got: 0, min: 1 })
        );
    }

    #[test]
    fn escaped_names_are_single_line() {
        let n = Name::from_labels([&b"a\nb c"[..], b"com"]).unwrap();
        assert_eq!(escaped(&n), "a\\010b\\032c.com.");
    }
}
