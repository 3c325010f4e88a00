//! The names and addresses srvd.toml gives as text: SRV domains and name
//! server addresses, parsed once for the whole config (`[notify]` included).

use std::net::{IpAddr, SocketAddr};

use hickory_proto::rr::Name;

/// A configured SRV domain: as written (the key templates use) and as a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Domain {
    pub text: String,
    pub name: Name,
}

impl Domain {
    /// `text` as a fully qualified name. Refused, with a message quoting
    /// the text: empty, spaces around it, the root ".", or not a DNS name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed != text {
            return Err(format!("{text:?} is not a domain name"));
        }
        let mut name =
            Name::from_ascii(trimmed).map_err(|e| format!("{text:?} is not a domain name: {e}"))?;
        if name.is_root() {
            return Err(format!("{text:?} is not a domain name"));
        }
        name.set_fqdn(true);
        Ok(Domain {
            text: text.to_owned(),
            name,
        })
    }
}

/// "127.0.0.1:5353", "[::1]:53", or a bare address for port 53.
pub fn parse_nameserver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(format!(
        "{text:?} is not an address such as \"127.0.0.1:53\" or \"[::1]:5353\""
    ))
}
