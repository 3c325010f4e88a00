//! Records from an RFC 1035 master file instead of DNS (`zone_file`): the
//! bundled example runs with no DNS server, and `srvd render --zone FILE`
//! previews a template against records written by hand. The file is parsed
//! again whenever it changes on disk (see `Stamp`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use crate::records::{self, Answer, LookupError};
use crate::stamp::Stamp;

mod lex;
mod parse;

pub struct ZoneFile {
    path: PathBuf,
    stamp: Option<Stamp>,
    /// A hash of the bytes last parsed: a file read again for want of a
    /// trusted stamp is parsed again only when its content changed.
    digest: Option<u64>,
    zone: Result<Zone, String>,
}

/// Every record of the file, by lower-case owner name.
#[derive(Default)]
struct Zone {
    by_name: HashMap<LowerName, Vec<Record>>,
}

impl ZoneFile {
    /// Reads `path` now; a missing or broken file is reported by lookups.
    pub fn open(path: &Path) -> Self {
        let mut z = ZoneFile {
            path: path.to_owned(),
            stamp: None,
            digest: None,
            zone: Err("not read yet".into()),
        };
        z.refresh();
        z
    }

    /// Re-reads the file if it may have changed on disk (its stamp moved, or
    /// is too recent to be trusted, see `Stamp`). Returns true when its
    /// content changed.
    pub fn refresh(&mut self) -> bool {
        let stamp = Stamp::of(&self.path);
        if stamp.is_some() && stamp == self.stamp {
            return false;
        }
        self.stamp = stamp;
        let bytes = std::fs::read(&self.path);
        let digest = bytes.as_ref().ok().map(|b| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            b.hash(&mut h);
            h.finish()
        });
        if digest.is_some() && digest == self.digest {
            return false;
        }
        self.digest = digest;
        self.zone = read(&self.path, bytes);
        // Not logged here: the lookups that fail with it are, once per new
        // error text, with the template that needs the file.
        if let Err(e) = &self.zone {
            log::debug!("{e}");
        }
        true
    }

    /// The SRV records of `domain`, following CNAMEs inside the file.
    pub fn srv(&self, domain: &Name) -> Result<Answer, LookupError> {
        let zone = self
            .zone
            .as_ref()
            .map_err(|e| LookupError::Other(e.clone()))?;
        let mut found = Vec::new();
        let mut name = domain.clone();
        // The domain itself, then one name per hop.
        for _ in 0..=records::MAX_CNAME_HOPS {
            let Some(recs) = zone.by_name.get(&LowerName::new(&name)) else {
                break;
            };
            found.extend(
                recs.iter()
                    .filter(|r| matches!(r.record_type(), RecordType::SRV | RecordType::CNAME)),
            );
            match recs.iter().find_map(|r| match &r.data {
                RData::CNAME(c) => Some(c.0.clone()),
                _ => None,
            }) {
                Some(next) => name = next,
                None => break,
            }
        }
        if found.is_empty() && !zone.by_name.contains_key(&LowerName::new(domain)) {
            return Err(LookupError::NxDomain);
        }
        Ok(records::answer_from(domain, found))
    }

    /// The A and AAAA addresses of `host` in the file.
    pub fn addrs(&self, host: &Name) -> Result<(Vec<IpAddr>, u32), LookupError> {
        let zone = self
            .zone
            .as_ref()
            .map_err(|e| LookupError::Other(e.clone()))?;
        let mut ttl = u32::MAX;
        let mut addrs: Vec<IpAddr> = zone
            .by_name
            .get(&LowerName::new(host))
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let ip = match &r.data {
                    RData::A(a) => IpAddr::V4(a.0),
                    RData::AAAA(a) => IpAddr::V6(a.0),
                    _ => return None,
                };
                ttl = ttl.min(records::ttl_of(r));
                Some(ip)
            })
            .collect();
        addrs.sort();
        addrs.dedup();
        Ok((addrs, if ttl == u32::MAX { 0 } else { ttl }))
    }
}

/// Parses the file at `path` from `bytes` (its content as read); the error
/// names the file and, for a fault in its text, the line.
fn read(path: &Path, bytes: std::io::Result<Vec<u8>>) -> Result<Zone, String> {
    let text = bytes
        .and_then(|b| String::from_utf8(b).map_err(std::io::Error::other))
        .map_err(|e| format!("zone_file {}: {e}", path.display()))?;
    parse::parse(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    const ZONE: &str = "$ORIGIN example.com.\n$TTL 30\n\
        @ IN SOA ns1 hostmaster 1 3600 600 86400 30\n\
        _mysql._tcp IN SRV 10 5 3306 db-002\n\
        _mysql._tcp IN SRV 10 5 3306 db-001\n\
        _alias._tcp IN CNAME _mysql._tcp\n\
        _gone._tcp IN SRV 0 0 0 .\n\
        db-001 IN A 10.0.0.1\n\
        db-001 IN AAAA 2001:db8::1\n";

    fn zone() -> (tempfile::TempDir, ZoneFile) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("example.com.zone");
        std::fs::write(&path, ZONE).unwrap();
        let z = ZoneFile::open(&path);
        (dir, z)
    }

    #[test]
    fn a_syntax_error_names_its_line_even_after_a_record_in_parentheses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.zone");
        // Line 4 opens a record that ends on line 7; line 9 is broken.
        let text = "$ORIGIN example.com.\n$TTL 30\n\n\
            @ IN SOA ns1 hostmaster (\n 1 3600\n 600 86400\n 30 )\n\
            _a._tcp IN SRV 10 5 3306 db-001\n\
            _a._tcp IN SRV 10 5 notaport db-002\n\
            db-001 IN A 10.0.0.1\n";
        std::fs::write(&path, text).unwrap();
        let e = read(&path, std::fs::read(&path))
            .err()
            .expect("a broken file is refused");
        assert!(e.contains("bad.zone: line 9: "), "{e}");
        // Without a final newline, and on the last line.
        std::fs::write(&path, "$ORIGIN example.com.\n_a._tcp IN SRV 1 2 x y").unwrap();
        let e = read(&path, std::fs::read(&path)).err().expect("refused");
        assert!(e.contains(": line 2: "), "{e}");
    }

    #[test]
    fn srv_records_come_sorted_with_targets_made_absolute() {
        let (_d, z) = zone();
        let a = z
            .srv(&Name::from_str("_mysql._tcp.example.com.").unwrap())
            .unwrap();
        let hosts: Vec<_> = a.records.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(hosts, ["db-001.example.com.", "db-002.example.com."]);
        assert_eq!(a.ttl, 30);
    }

    #[test]
    fn cnames_are_followed_and_unknown_names_are_nxdomain() {
        let (_d, z) = zone();
        let a = z
            .srv(&Name::from_str("_alias._tcp.example.com.").unwrap())
            .unwrap();
        assert_eq!(a.records.len(), 2);
        let missing = z.srv(&Name::from_str("_nope._tcp.example.com.").unwrap());
        assert_eq!(missing, Err(LookupError::NxDomain));
        let gone = z
            .srv(&Name::from_str("_gone._tcp.example.com.").unwrap())
            .unwrap();
        assert!(gone.records.is_empty() && gone.had_records);
    }

    #[test]
    fn addresses_of_a_target() {
        let (_d, z) = zone();
        let (addrs, _) = z
            .addrs(&Name::from_str("db-001.example.com.").unwrap())
            .unwrap();
        assert_eq!(addrs.len(), 2);
    }

    #[test]
    fn an_edit_is_seen_and_a_broken_file_is_an_error() {
        let (d, mut z) = zone();
        assert!(!z.refresh());
        let path = d.path().join("example.com.zone");
        std::fs::write(&path, format!("{ZONE}_new._tcp IN SRV 0 0 1 db-001\n")).unwrap();
        assert!(z.refresh());
        assert!(
            z.srv(&Name::from_str("_new._tcp.example.com.").unwrap())
                .is_ok()
        );
        std::fs::write(&path, "$ORIGIN example.com.\n@ IN SRV garbage\n").unwrap();
        assert!(z.refresh());
        let err = z
            .srv(&Name::from_str("_mysql._tcp.example.com.").unwrap())
            .unwrap_err();
        assert!(
            matches!(err, LookupError::Other(ref m) if m.contains("zone_file")),
            "{err:?}"
        );
    }
}
