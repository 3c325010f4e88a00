//! srvd.toml exactly as written: every key optional, nothing checked beyond its
//! type. Unknown keys are refused here, by serde, so that toml can name the
//! key and its line. `settings.rs` turns this into values the daemon can trust.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::duration;

/// Declares a struct with srvd's template keys between its own fields, and
/// `take_template_keys`, which moves them into a `TemplateTable`. The keys are
/// listed here once, for the top level (the Go srvd's single template, and the
/// defaults of `[[template]]` tables) and for `[[template]]` alike.
///
/// Why not one `TemplateKeys` struct and `#[serde(flatten)]`: serde does not
/// support `flatten` together with `deny_unknown_fields` (the flattened
/// struct cannot tell its keys from the outer struct's), and refusing unknown
/// keys, with toml naming the key and its line, is what catches typos.
macro_rules! with_template_keys {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $($before:tt)*
        }
        then {
            $($after:tt)*
        }
    ) => {
        with_template_keys! {
            @declare [$(#[$attr])*] $name [$($before)*] [$($after)*]
            src: Option<PathBuf>,
            dest: Option<PathBuf>,
            domain: Option<String>,
            domains: Option<Vec<String>>,
            check_cmd: Option<String>,
            reload_cmd: Option<String>,
            mode: Option<String>,
            owner: Option<Id>,
            group: Option<Id>,
            allow_empty: Option<bool>,
            min_records: Option<u32>,
            resolve_targets: Option<bool>,
            write: Option<WriteMode>,
            #[serde(default, deserialize_with = "duration::deserialize")]
            interval: Option<Duration>,
            #[serde(default, deserialize_with = "duration::deserialize")]
            timeout: Option<Duration>,
            #[serde(default, deserialize_with = "duration::deserialize")]
            cooldown: Option<Duration>,
            wait: Option<Wait>,
            haproxy_socket: Option<String>,
            haproxy_master_socket: Option<String>,
            #[serde(default, deserialize_with = "duration::deserialize")]
            drain: Option<Duration>,
        }
    };
    (
        @declare [$($attr:tt)*] $name:ident [$($before:tt)*] [$($after:tt)*]
        $($(#[$kattr:meta])* $key:ident: $kty:ty,)*
    ) => {
        $($attr)*
        pub struct $name {
            $($before)*
            $($(#[$kattr])* pub $key: $kty,)*
            $($after)*
        }

        impl $name {
            /// The template keys, moved out into a table without a name.
            pub fn take_template_keys(&mut self) -> TemplateTable {
                TemplateTable {
                    name: None,
                    $($key: std::mem::take(&mut self.$key),)*
                }
            }
        }
    };
}

with_template_keys! {
    /// The whole file. The template keys at top level describe the Go srvd's
    /// single template and, for `[[template]]` tables, their defaults.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FileConfig {
    }
    then {
        pub resolv_conf: Option<PathBuf>,
        pub nameservers: Option<Vec<String>>,
        #[serde(default, deserialize_with = "duration::deserialize")]
        pub dns_timeout: Option<Duration>,
        pub dns_attempts: Option<u32>,
        pub edns0_size: Option<u16>,
        pub net: Option<Net>,
        pub zone_file: Option<PathBuf>,
        #[serde(default, deserialize_with = "duration::deserialize")]
        pub splay: Option<Duration>,

        pub status_port: Option<u16>,
        pub status_addr: Option<IpAddr>,

        pub disable_rollback_on_reload_failure: Option<bool>,
        pub dryrun: Option<bool>,
        pub noreload: Option<bool>,
        pub nocheck: Option<bool>,
        pub nohttpd: Option<bool>,
        pub oneshot: Option<bool>,
        pub sdnotify: Option<bool>,

        #[serde(default)]
        pub template: Vec<TemplateTable>,

        pub notify: Option<DnsNotifyTable>,
    }
}

/// `[notify]`: listen for DNS NOTIFY from the zones' primaries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsNotifyTable {
    /// Addresses to listen on, UDP and TCP: "127.0.0.1:5353", "[::]:53".
    pub listen: Vec<String>,
    /// Sources allowed to send NOTIFY: addresses or networks. Empty: none.
    #[serde(default)]
    pub allow: Vec<String>,
    /// TSIG key every NOTIFY must be signed with, when set.
    pub key_name: Option<String>,
    pub algorithm: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// Where to fetch a zone's records after its NOTIFY, when not from the
    /// sender: zone name to addresses.
    #[serde(default)]
    pub primaries: std::collections::BTreeMap<String, Vec<String>>,
    /// The shortest time between two NOTIFY-driven refreshes of a template.
    #[serde(default, deserialize_with = "duration::deserialize")]
    pub debounce: Option<Duration>,
}

with_template_keys! {
    /// One `[[template]]` table: the template keys, plus `name`.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TemplateTable {
        pub name: Option<String>,
    }
    then {}
}

/// `net = "udp" | "tcp"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Net {
    Udp,
    Tcp,
}

/// `write = "rename" | "in-place"`: how a new dest takes the old one's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    /// A staged file renamed over dest: readers see the old or the new file,
    /// never a mix. Refused when dest shares its inode with another path
    /// (a hard link, a bind mount), which the rename would split off.
    Rename,
    /// The new content written into dest's own inode, so that every path
    /// to it sees the change; a reader may see a partial file meanwhile.
    InPlace,
}

/// A user or group: a name, or a numeric id given as a number or a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Id {
    Name(String),
    Number(u32),
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a user or group name, or a numeric id")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
                u32::try_from(v)
                    .map(Id::Number)
                    .map_err(|_| E::custom(format!("{v} is not a valid id")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
                u32::try_from(v)
                    .map(Id::Number)
                    .map_err(|_| E::custom(format!("{v} is not a valid id")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
                if v.is_empty() {
                    return Err(E::custom("empty user or group name"));
                }
                Ok(match v.parse::<u32>() {
                    Ok(n) => Id::Number(n),
                    Err(_) => Id::Name(v.to_owned()),
                })
            }
        }
        d.deserialize_any(IdVisitor)
    }
}

/// Quiescence, as consul-template has it: `wait = "2s"`, `wait = "2s:10s"` or
/// `wait = { min = "2s", max = "10s" }`. Without a max, max is 4 × min.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub min: Duration,
    pub max: Duration,
}

impl Wait {
    fn new<E: de::Error>(min: Duration, max: Option<Duration>) -> Result<Self, E> {
        let max = max.unwrap_or(min * 4);
        if max < min {
            return Err(E::custom(format!(
                "wait: max ({}) is shorter than min ({})",
                duration::display(max),
                duration::display(min)
            )));
        }
        Ok(Wait { min, max })
    }
}

impl<'de> Deserialize<'de> for Wait {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct WaitVisitor;
        impl<'de> Visitor<'de> for WaitVisitor {
            type Value = Wait;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration, \"MIN:MAX\", or a table { min = \"2s\", max = \"10s\" }")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Wait, E> {
                Wait::new(duration::DurationVisitor.visit_i64(v)?, None)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Wait, E> {
                Wait::new(duration::DurationVisitor.visit_u64(v)?, None)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Wait, E> {
                Wait::new(duration::DurationVisitor.visit_f64(v)?, None)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Wait, E> {
                let (min, max) = match v.split_once(':') {
                    Some((min, max)) => (min, Some(max)),
                    None => (v, None),
                };
                let min = duration::parse(min).map_err(E::custom)?;
                let max = max.map(duration::parse).transpose().map_err(E::custom)?;
                Wait::new(min, max)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wait, A::Error> {
                #[derive(Deserialize)]
                struct D(#[serde(deserialize_with = "duration::deserialize")] Option<Duration>);
                let mut min = None;
                let mut max = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "min" => min = map.next_value::<D>()?.0,
                        "max" => max = map.next_value::<D>()?.0,
                        other => {
                            return Err(de::Error::unknown_field(other, &["min", "max"]));
                        }
                    }
                }
                let min = min.ok_or_else(|| de::Error::missing_field("min"))?;
                Wait::new(min, max)
            }
        }
        d.deserialize_any(WaitVisitor)
    }
}
