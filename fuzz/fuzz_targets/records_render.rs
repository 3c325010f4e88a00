//! From a DNS answer to the rendered config: whatever a server sends, only
//! plain host names reach the template, in render order, and the rendered
//! text is exactly what the template says with those records.
//!
//! The first byte picks how the rest is read: as a DNS message off the wire
//! (even), or as a list of records built field by field (odd), which reaches
//! odd label bytes, CNAME chains and extreme values faster.
#![no_main]

use std::fmt::Write as _;
use std::str::FromStr;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{CNAME, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use libfuzzer_sys::fuzz_target;
use srvd::records::{self, Srv};
use srvd::render::Renderer;

mod common;

const QUERY: &str = "_mysql._tcp.example.com.";
const ALIAS: &str = "_mysql._tcp.real.example.com.";
const OTHER: &str = "_other._tcp.example.com.";

/// Every field, one line per record.
const FIELDS: &str = "{% for s in srvs %}{{ s.priority }} {{ s.weight }} {{ s.port }} {{ s.ttl }} {{ s.host }} {{ s.target }}\n{% endfor %}";
/// The shape of the bundled example: lowest priority active, the rest backup.
const EXAMPLE: &str = "backend mysql_replicas\n  balance roundrobin\n\
{%- if srvs %}\n\
{%- set primary = srvs[0].priority %}\n\
{%- for s in srvs %}\n  server {{ s.host }} {{ s.target }}:{{ s.port }} check{% if s.priority > primary %} backup{% endif %}\n\
{%- endfor %}\n\
{%- endif %}\n";

thread_local! {
    static RENDERER: Renderer = Renderer::from_sources(vec![
        ("fields.tmpl".into(), FIELDS.into()),
        ("haproxy.cfg.tmpl".into(), EXAMPLE.into()),
    ])
    .expect("the fuzz templates compile");
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

fn name(s: &str) -> Name {
    Name::from_str(s).expect("a valid name")
}

/// Records built field by field, sent through the wire format and back as
/// srvd's resolver would receive them.
fn structured(data: &[u8]) -> Option<Vec<Record>> {
    let mut b = Bytes(data);
    let mut records = Vec::new();
    while records.len() < 64 {
        let Some(kind) = b.u8() else { break };
        let owner = match kind % 4 {
            0 | 1 => name(QUERY),
            2 => name(ALIAS),
            _ => name(OTHER),
        };
        let ttl = b.u32()?;
        if kind & 0x10 != 0 {
            let to = if kind & 0x20 != 0 {
                name(ALIAS)
            } else {
                name(QUERY)
            };
            records.push(Record::from_rdata(owner, ttl, RData::CNAME(CNAME(to))));
            continue;
        }
        let (priority, weight, port) = (b.u16()?, b.u16()?, b.u16()?);
        let count = (b.u8()? % 6) as usize;
        let mut labels: Vec<Vec<u8>> = Vec::new();
        for _ in 0..count {
            let len = b.u8()? as usize % 70;
            labels.push(b.take(len).to_vec());
        }
        let Ok(target) = Name::from_labels(labels) else {
            continue;
        };
        records.push(Record::from_rdata(
            owner,
            ttl,
            RData::SRV(SRV::new(priority, weight, port, target)),
        ));
    }
    let mut m = Message::new(0x1234, MessageType::Response, OpCode::Query);
    m.add_query(Query::query(name(QUERY), RecordType::SRV));
    m.add_answers(records);
    let wire = m.to_vec().ok()?;
    Some(Message::from_vec(&wire).ok()?.answers)
}

fn expected_fields(records: &[Srv]) -> String {
    let mut out = String::new();
    for s in records {
        writeln!(
            out,
            "{} {} {} {} {} {}",
            s.priority, s.weight, s.port, s.ttl, s.host, s.target
        )
        .unwrap();
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (query, answers) = if mode % 2 == 0 {
        let Ok(m) = Message::from_vec(rest) else {
            return;
        };
        let q = m
            .queries
            .first()
            .map(|q| q.name().clone())
            .unwrap_or_else(|| name(QUERY));
        (q, m.answers)
    } else {
        let Some(answers) = structured(rest) else {
            return;
        };
        (name(QUERY), answers)
    };

    let answer = records::answer_from(&query, &answers);
    common::check_answer(&answer);
    // The same answer in another order gives the same records: a server
    // that rotates its answers must never cause a rewrite.
    let mut reversed = answers.clone();
    reversed.reverse();
    assert_eq!(
        records::answer_from(&query, &reversed).records,
        answer.records,
        "the order of the answer changed the records"
    );
    let _ = records::usable(&answer, false, 0);

    let domain = query.to_string();
    RENDERER.with(|r| {
        let text = r
            .render(0, &[(domain.as_str(), &answer.records)], "fuzzhost")
            .expect("rendering plain records cannot fail");
        assert_eq!(text, expected_fields(&answer.records));
        let text = r
            .render(1, &[(domain.as_str(), &answer.records)], "fuzzhost")
            .expect("the example template renders any records");
        let servers: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("  server "))
            .collect();
        assert_eq!(
            servers.len(),
            answer.records.len(),
            "one server line per record"
        );
        for (line, s) in servers.iter().zip(&answer.records) {
            let mut want = format!("  server {} {}:{} check", s.host, s.target, s.port);
            if s.priority > answer.records[0].priority {
                want.push_str(" backup");
            }
            assert_eq!(*line, want);
        }
    });
});
