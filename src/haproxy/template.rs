//! The `haproxy_servers` template filter: SRV records as HAProxy `server`
//! lines that mean what the records say (unique names, weights, backups).
//!
//! Written once here, not in each template, because every hand-written
//! template got it wrong the same ways: two instances of one node on two
//! ports got one server name (`haproxy -c` refuses duplicates, so no file
//! was ever written), weights were ignored (a replica drained with weight 0
//! kept a full share), and HAProxy's weight range is not SRV's.
//!
//! The rules, for records sorted as srvd gives them (priority ascending):
//!
//! - **Name**: `host:port`, unique per endpoint and stable across renders
//!   (HAProxy's server-state file and runtime API address servers by name).
//!   A second record for the same host and port (at another priority) is
//!   the same server: only the first, of the lowest priority value, is kept.
//! - **Backup**: HAProxy has two tiers, so the records of the lowest
//!   priority value are the active servers and every other record is a
//!   `backup` (RFC 2782: lower values are tried first). Templates add
//!   `option allbackups` so that backups share the load by weight.
//! - **Weight**: RFC 2782 weights (0-65535) are relative within a priority;
//!   HAProxy's (`weight`, 0-256, configuration.txt 5.2) are relative within
//!   a tier. Each tier is scaled so that its largest weight becomes 256:
//!   `round(w × 256 / max)`, at least 1 for a weight above 0, so ratios
//!   survive (10 and 20 become 128 and 256; a fixed 256/65535 scale would
//!   turn every weight under 128 into 0 or 1, the flaw of HAProxy's own SRV
//!   resolution). Weight 0 stays 0, "a very small chance" in RFC 2782 and
//!   the way operators drain a server: HAProxy sends it no new connections.
//!   When every weight of a tier is 0, RFC 2782 selects them evenly: each
//!   gets 1, not 0 (which would send no traffic at all).

use std::collections::HashSet;

use tera::value::Key;
use tera::{Kwargs, State, TeraResult, Value};

/// One record as the filter reads it, and the server line it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `host:port`: HAProxy server names allow letters, digits, `-`, `_`,
    /// `.` and `:`, which is all a validated target holds.
    pub name: String,
    pub host: String,
    pub port: u16,
    pub priority: u16,
    /// The record's weight, 0-65535.
    pub srv_weight: u16,
    /// HAProxy's weight, 0-256.
    pub weight: u16,
    pub backup: bool,
}

/// The largest weight HAProxy takes (configuration.txt, `weight`).
pub const HAPROXY_MAX_WEIGHT: u32 = 256;

/// Names, tiers and weights for `records` (host, port, priority, weight),
/// in their order, by the rules in the module doc. A repeated host:port is
/// dropped; the result is empty only when `records` is.
pub fn servers(records: &[(String, u16, u16, u16)]) -> Vec<Server> {
    let mut seen = HashSet::new();
    let mut out: Vec<Server> = records
        .iter()
        .filter(|(host, port, _, _)| seen.insert((host.clone(), *port)))
        .map(|(host, port, priority, weight)| Server {
            name: format!("{host}:{port}"),
            host: host.clone(),
            port: *port,
            priority: *priority,
            srv_weight: *weight,
            weight: 0,
            backup: false,
        })
        .collect();
    let Some(lowest) = out.iter().map(|s| s.priority).min() else {
        return out;
    };
    for s in &mut out {
        s.backup = s.priority > lowest;
    }
    for tier in [false, true] {
        let max = out
            .iter()
            .filter(|s| s.backup == tier)
            .map(|s| u32::from(s.srv_weight))
            .max()
            .unwrap_or(0);
        for s in out.iter_mut().filter(|s| s.backup == tier) {
            s.weight = scale(s.srv_weight, max);
        }
    }
    out
}

/// One weight scaled against the largest of its tier (module doc).
fn scale(weight: u16, max: u32) -> u16 {
    match (weight, max) {
        (_, 0) => 1,
        (0, _) => 0,
        (w, m) => {
            let scaled = (u32::from(w) * HAPROXY_MAX_WEIGHT + m / 2) / m;
            scaled.clamp(1, HAPROXY_MAX_WEIGHT) as u16
        }
    }
}

/// Item `i`'s field `key`, or the error naming them.
fn field<'v>(i: usize, key: &str, found: Option<&'v Value>) -> TeraResult<&'v Value> {
    found.ok_or_else(|| {
        tera::Error::message(format!(
            "haproxy_servers: item {i} has no `{key}`; give it srvs or a domain's records"
        ))
    })
}

/// Item `i`'s field `key` as a number of 0-65535, or the error naming them.
fn num(i: usize, key: &str, found: Option<&Value>) -> TeraResult<u16> {
    field(i, key, found)?
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| {
            tera::Error::message(format!("haproxy_servers: item {i}: `{key}` is not 0-65535"))
        })
}

/// `srvs | haproxy_servers`: the records with `name`, `weight` (HAProxy's),
/// `srv_weight` (the record's) and `backup` added; every other field of the
/// record (`endpoint`, `addrs`, `target`...) stays. Errors name a record that
/// lacks `host`, `port`, `priority` or `weight`.
pub fn filter(list: Vec<Value>, _: Kwargs, _: &State) -> TeraResult<Vec<Value>> {
    let mut records = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        // One pass over the record's fields (a handful, in a map Tera
        // would otherwise hash each key of).
        let (mut host, mut port, mut priority, mut weight) = (None, None, None, None);
        for (k, val) in v.as_map().into_iter().flatten() {
            match k.as_str() {
                Some("host") => host = Some(val),
                Some("port") => port = Some(val),
                Some("priority") => priority = Some(val),
                Some("weight") => weight = Some(val),
                _ => {}
            }
        }
        let host = field(i, "host", host)?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        records.push((
            host,
            num(i, "port", port)?,
            num(i, "priority", priority)?,
            num(i, "weight", weight)?,
        ));
    }
    let servers = servers(&records);
    let mut out = Vec::with_capacity(servers.len());
    // `servers` keeps the records' order and drops repeats only, so each
    // server is matched to the first record of its host and port.
    let mut items = list.into_iter().zip(records);
    for s in servers {
        let Some((item, _)) = items.find(|(_, r)| r.0 == s.host && r.1 == s.port) else {
            continue;
        };
        // The record's map is shared with the context: this copies it, with
        // room for the four fields so that it grows once.
        let mut map = item.into_map().unwrap_or_default();
        map.reserve(4);
        map.insert(Key::Str("name"), Value::from(s.name));
        map.insert(Key::Str("weight"), Value::from(s.weight));
        map.insert(Key::Str("srv_weight"), Value::from(s.srv_weight));
        map.insert(Key::Str("backup"), Value::from(s.backup));
        out.push(Value::from(map));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(host: &str, port: u16, priority: u16, weight: u16) -> (String, u16, u16, u16) {
        (host.to_owned(), port, priority, weight)
    }

    fn weights(s: &[Server]) -> Vec<(String, u16, bool)> {
        s.iter()
            .map(|s| (s.name.clone(), s.weight, s.backup))
            .collect()
    }

    #[test]
    fn one_node_on_two_ports_gets_two_names() {
        let s = servers(&[rec("db-001", 3306, 10, 10), rec("db-001", 3307, 10, 10)]);
        assert_eq!(s[0].name, "db-001:3306");
        assert_eq!(s[1].name, "db-001:3307");
    }

    #[test]
    fn a_repeated_endpoint_is_one_server_at_its_lowest_priority() {
        let s = servers(&[rec("a", 1, 10, 5), rec("b", 1, 10, 5), rec("a", 1, 20, 5)]);
        assert_eq!(
            weights(&s),
            [("a:1".into(), 256, false), ("b:1".into(), 256, false)]
        );
    }

    #[test]
    fn a_weight_zero_replica_gets_no_share() {
        let s = servers(&[
            rec("a", 1, 10, 100),
            rec("b", 1, 10, 100),
            rec("c", 1, 10, 0),
        ]);
        assert_eq!(
            s.iter().map(|s| s.weight).collect::<Vec<_>>(),
            [256, 256, 0]
        );
    }

    #[test]
    fn all_zero_weights_share_evenly() {
        let s = servers(&[rec("a", 1, 10, 0), rec("b", 1, 10, 0), rec("c", 1, 20, 0)]);
        assert_eq!(
            weights(&s),
            [
                ("a:1".into(), 1, false),
                ("b:1".into(), 1, false),
                ("c:1".into(), 1, true)
            ]
        );
    }

    #[test]
    fn weights_scale_per_tier_keeping_ratios() {
        let s = servers(&[
            rec("a", 1, 10, 20),
            rec("b", 1, 10, 10),
            rec("c", 1, 10, 1),
            rec("d", 1, 20, 65535),
            rec("e", 1, 30, 1),
        ]);
        assert_eq!(
            s.iter().map(|s| (s.weight, s.backup)).collect::<Vec<_>>(),
            [
                (256, false),
                (128, false),
                (13, false),
                (256, true),
                (1, true)
            ]
        );
    }

    #[test]
    fn the_full_range_maps_to_haprox_range() {
        for (w, want) in [
            (0, 0),
            (1, 1),
            (127, 1),
            (256, 1),
            (32768, 128),
            (65535, 256),
        ] {
            let s = servers(&[rec("a", 1, 0, 65535), rec("b", 1, 0, w)]);
            assert_eq!(s[1].weight, want, "weight {w}");
        }
    }

    #[test]
    fn no_records_no_servers() {
        assert!(servers(&[]).is_empty());
    }
}
