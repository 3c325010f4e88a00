//! CNAME chains inside a DNS answer: which names stand for the asked one,
//! how far srvd follows them, and the TTL the chain allows (RFC 2181).

use hickory_proto::rr::{Name, RData, Record};

/// CNAME hops srvd follows from a domain to its SRV records, wherever the
/// chain is (inside one answer, across queries, inside a zone file). RFC 1034
/// section 3.6.2 asks resolvers to follow chains but sets no length; srvd
/// stops at 8 so that a loop or a misconfigured chain ends, while any chain a
/// sane zone has (one or two hops) is followed.
pub const MAX_CNAME_HOPS: usize = 8;

/// The names that stand for `query` in an answer: itself, then each CNAME
/// target in the chain that starts at it. Also the smallest TTL of the chain.
pub fn chain(query: &Name, records: &[&Record]) -> (Vec<Name>, u32) {
    let mut owners = vec![query.clone()];
    let mut ttl = u32::MAX;
    for _ in 0..MAX_CNAME_HOPS {
        let last = owners.last().expect("never empty");
        // A name has one CNAME at most; should a server send several, take
        // the lowest target, so that the order it sends them in does not
        // matter.
        let next = records
            .iter()
            .filter_map(|r| match &r.data {
                RData::CNAME(c) if r.name == *last => Some((c.0.to_lowercase(), ttl_of(r))),
                _ => None,
            })
            .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        match next {
            Some((target, cname_ttl)) if !owners.contains(&target) => {
                ttl = ttl.min(cname_ttl);
                owners.push(target);
            }
            _ => break,
        }
    }
    (owners, ttl)
}

/// A record's TTL as RFC 2181 section 8 has it: a value with the top bit set
/// counts as zero (taken as it is, it would be cached for 68 years).
pub fn ttl_of(r: &Record) -> u32 {
    if r.ttl > i32::MAX as u32 { 0 } else { r.ttl }
}
