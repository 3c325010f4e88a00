//! `[notify]` validated: where to listen for DNS NOTIFY, whom to believe
//! (`allow`, a TSIG key) and where to fetch a notified zone. The config step
//! calls `validate` so that its problems are listed with every other key's.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hickory_proto::rr::Name;

use crate::config::file::DnsNotifyTable;
use crate::config::names::{Domain, parse_nameserver};

/// `[notify]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsNotifySettings {
    pub listen: Vec<SocketAddr>,
    pub allow: Vec<ipnet::IpNet>,
    pub tsig: Option<TsigKey>,
    /// Zone → where to fetch its records after a NOTIFY (else: the sender, port 53).
    pub primaries: Vec<(Name, Vec<SocketAddr>)>,
    pub debounce: Duration,
}

/// A TSIG key: name, algorithm and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    pub name: Name,
    /// "hmac-sha256" or "hmac-sha512".
    pub algorithm: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl DnsNotifySettings {
    /// Whether `ip` may send NOTIFY.
    pub fn allows(&self, ip: std::net::IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.allow.iter().any(|net| net.contains(&ip))
    }

    /// Where to fetch `zone`'s records: the configured primaries of the
    /// closest enclosing zone, else the NOTIFY's sender on port 53.
    pub fn primaries_for(&self, zone: &Name, sender: std::net::IpAddr) -> Vec<SocketAddr> {
        self.primaries
            .iter()
            .filter(|(z, _)| z.zone_of(zone))
            .max_by_key(|(z, _)| z.num_labels())
            .map(|(_, addrs)| addrs.clone())
            .unwrap_or_else(|| vec![SocketAddr::new(canonical_ip(sender), 53)])
    }
}

/// An IPv4 address seen through an IPv6 socket (::ffff:a.b.c.d) as IPv4.
pub fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

/// Default shortest time between two NOTIFY-driven refreshes of a template.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Checks `[notify]` as written (`base`: the config's directory, for a
/// relative `secret_file`); every problem names its key.
pub fn validate(n: DnsNotifyTable, base: &Path) -> Result<DnsNotifySettings, Vec<String>> {
    let mut errors = Vec::new();
    let mut listen = Vec::new();
    if n.listen.is_empty() {
        errors.push(
            "[notify]: `listen` is empty: give at least one address such as \"127.0.0.1:5353\""
                .into(),
        );
    }
    for l in &n.listen {
        match l.parse::<SocketAddr>() {
            Ok(a) => listen.push(a),
            Err(_) => errors.push(format!(
                "[notify]: `listen`: {l:?} is not an address with a port such as \"127.0.0.1:5353\" or \"[::]:53\""
            )),
        }
    }
    let mut allow = Vec::new();
    for a in &n.allow {
        match a
            .parse::<ipnet::IpNet>()
            .or_else(|_| a.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        {
            Ok(net) => allow.push(net),
            Err(_) => errors.push(format!(
                "[notify]: `allow`: {a:?} is not an address or a network such as \"10.0.0.0/8\""
            )),
        }
    }
    let tsig = match (n.key_name, n.algorithm, n.secret_file) {
        (None, None, None) => None,
        (Some(name), algorithm, Some(file)) => {
            let algorithm = algorithm.unwrap_or_else(|| "hmac-sha256".into());
            if !matches!(algorithm.as_str(), "hmac-sha256" | "hmac-sha512") {
                errors.push(format!(
                    "[notify]: `algorithm`: {algorithm:?} is not supported (use \"hmac-sha256\" or \"hmac-sha512\")"
                ));
            }
            let name = Name::from_ascii(&name).map_err(|e| {
                errors.push(format!("[notify]: `key_name`: {name:?}: {e}"));
            });
            let secret = read_secret(&base.join(&file))
                .map_err(|e| errors.push(format!("[notify]: `secret_file`: {e}")));
            match (name, secret) {
                (Ok(mut name), Ok(secret)) => {
                    name.set_fqdn(true);
                    Some(TsigKey {
                        name,
                        algorithm,
                        secret,
                    })
                }
                _ => None,
            }
        }
        _ => {
            errors.push(
                "[notify]: a TSIG key needs both `key_name` and `secret_file` (and optionally `algorithm`)"
                    .into(),
            );
            None
        }
    };
    let mut primaries = Vec::new();
    for (zone, addrs) in n.primaries {
        let z = match Domain::parse(&zone) {
            Ok(d) => d.name,
            Err(e) => {
                errors.push(format!("[notify.primaries]: {e}"));
                continue;
            }
        };
        let mut list = Vec::new();
        for a in &addrs {
            match parse_nameserver(a) {
                Ok(addr) => list.push(addr),
                Err(e) => errors.push(format!("[notify.primaries] {zone:?}: {e}")),
            }
        }
        if list.is_empty() {
            errors.push(format!("[notify.primaries] {zone:?}: no address"));
        }
        primaries.push((z, list));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(DnsNotifySettings {
        listen,
        allow,
        tsig,
        primaries,
        debounce: n.debounce.unwrap_or(DEBOUNCE),
    })
}

/// A TSIG secret file: the base64 secret alone, or a BIND/Knot key file
/// (`secret "..."` / `secret: ...`).
fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    // A key file is a few hundred bytes; never read a device or a log whole.
    const MAX: u64 = 64 * 1024;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX + 1).read_to_string(&mut text))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > MAX {
        return Err(format!(
            "{}: larger than {MAX} bytes, not a key file",
            path.display()
        ));
    }
    let token = match text.find("secret") {
        Some(i) => text[i + "secret".len()..]
            .trim_start_matches([' ', '\t', ':', '"'])
            .split(['"', ';', '\n', ' '])
            .next()
            .unwrap_or(""),
        None => text.trim(),
    };
    let secret = data_encoding::BASE64
        .decode(token.trim().as_bytes())
        .map_err(|e| format!("{}: the secret is not base64: {e}", path.display()))?;
    if secret.is_empty() {
        return Err(format!("{}: the secret is empty", path.display()));
    }
    Ok(secret)
}
