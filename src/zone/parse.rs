//! Parsing an RFC 1035 master file into records by owner name, in time
//! linear in its size.
//!
//! hickory-proto's own zone parser (`serialize::txt::Parser`) puts
//! every record into a `RecordSet`, whose insert compares the new record with
//! each one already in the set: 10,000 SRV records for one name took seconds.
//! Its lexer is private, but `RData::try_from_str` is public and runs that
//! lexer and the record data parsers on one record's text. So this file cuts
//! the master file into entries with the same lexical rules as hickory-proto's
//! lexer (`serialize/txt/zone_lex.rs`), follows the same entry grammar as its
//! parser (`serialize/txt/zone.rs`: $ORIGIN, $TTL, $INCLUDE, owner, TTL,
//! class, type), hands each record's data to `RData::try_from_str`, and
//! removes duplicates with a hash of the record data: the same records as
//! hickory-proto's parser, in time linear in the file's size. A test compares
//! both parsers on the same files.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

use hickory_proto::ProtoError;
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::parse_ttl;

use super::Zone;
use super::lex::{Lexer, Token};

/// An `$INCLUDE` with more than this many files open (the top one and those
/// it includes, nested) is an error, as in hickory-proto.
const MAX_INCLUDE_DEPTH: usize = 256;

/// Parses the text of the master file at `path` (used for messages and to
/// resolve a relative `$INCLUDE`) into records by owner name.
///
/// Errors: the first fault, as "zone_file PATH: line N: what", where PATH is
/// the file holding the fault (an included file's own path); a file with no
/// `$ORIGIN` at all is an error, as with hickory-proto.
pub(super) fn parse(text: &str, path: &Path) -> Result<Zone, String> {
    let mut cx = Context::default();
    parse_file(text, path, 1, &mut cx)?;
    if cx.origin.is_none() {
        return Err(format!(
            "zone_file {}: $ORIGIN was not specified",
            path.display()
        ));
    }
    Ok(cx.into_zone())
}

/// What one entry may change for the entries after it, across included files.
#[derive(Default)]
struct Context {
    origin: Option<Name>,
    /// The owner of the last entry that named one (RFC 1035 5.1: an entry
    /// that starts with a blank belongs to the last stated owner).
    owner: Option<Name>,
    /// The class of the last entry that gave one; IN before any.
    class: Option<DNSClass>,
    ttl: Ttl,
    /// Records by owner name, in file order, duplicates still in.
    by_name: HashMap<LowerName, Vec<Record>>,
    /// The owners with an SOA record: a second one is an error.
    soa: HashSet<LowerName>,
}

/// The TTL rules of hickory-proto's parser: a record's own TTL, else `$TTL`,
/// else the last TTL a record gave.
#[derive(Default)]
struct Ttl {
    dollar: Option<u32>,
    last: Option<u32>,
    this: Option<u32>,
}

impl Ttl {
    fn take(&mut self) -> Option<u32> {
        if let Some(ttl) = self.this.take() {
            self.last = Some(ttl);
            return Some(ttl);
        }
        self.dollar.or(self.last)
    }
}

/// Where the entry grammar stands after the last token.
enum State {
    StartLine,
    TtlClassType,
    Ttl,
    Origin,
    Include(Option<String>),
    /// The type is read; its data start at byte `start`, on line `line`.
    Record {
        rtype: RecordType,
        start: usize,
        line: usize,
    },
}

/// Parses the text of one file into `cx`: the top file (`depth` 1) or one it
/// includes (`depth` files open). Each entry is read as hickory-proto's
/// parser reads it, state for state.
fn parse_file(text: &str, path: &Path, depth: usize, cx: &mut Context) -> Result<(), String> {
    let at = |line: usize, e: &dyn std::fmt::Display| {
        format!("zone_file {}: line {line}: {e}", path.display())
    };
    let mut lexer = Lexer::new(text);
    let mut state = State::StartLine;
    let mut entry_line = 1;
    while let Some(token) = lexer.next_token().map_err(|e| at(lexer.line, &e))? {
        let line = lexer.token_line;
        state = match state {
            State::StartLine => {
                entry_line = line;
                match token {
                    Token::Include => State::Include(None),
                    Token::Origin => State::Origin,
                    Token::Ttl => State::Ttl,
                    Token::CharData(data) => {
                        cx.owner =
                            Some(Name::parse(&data, cx.origin.as_ref()).map_err(|e| at(line, &e))?);
                        State::TtlClassType
                    }
                    Token::At => {
                        cx.owner.clone_from(&cx.origin);
                        State::TtlClassType
                    }
                    Token::Blank => State::TtlClassType,
                    Token::Eol => State::StartLine,
                    Token::List => return Err(at(line, &"unexpected list")),
                }
            }
            State::Ttl => match token {
                Token::CharData(data) => {
                    cx.ttl.dollar = Some(parse_ttl(&data).map_err(|e| at(line, &e))?);
                    State::StartLine
                }
                t => return Err(at(line, &format_args!("$TTL needs a TTL, not {t}"))),
            },
            State::Origin => match token {
                Token::CharData(data) => {
                    cx.origin = Some(Name::parse(&data, None).map_err(|e| at(line, &e))?);
                    State::StartLine
                }
                t => return Err(at(line, &format_args!("$ORIGIN needs a name, not {t}"))),
            },
            State::Include(file) => match (token, file) {
                (Token::CharData(data), None) => State::Include(Some(data.into_owned())),
                (Token::Eol, Some(file)) => {
                    if depth > MAX_INCLUDE_DEPTH {
                        return Err(at(line, &"$INCLUDE nested too deep"));
                    }
                    let included = match Path::new(&file) {
                        p if p.is_absolute() => p.to_owned(),
                        p => path.parent().unwrap_or(Path::new("")).join(p),
                    };
                    let text = std::fs::read_to_string(&included).map_err(|e| {
                        at(line, &format_args!("$INCLUDE {}: {e}", included.display()))
                    })?;
                    parse_file(&text, &included, depth + 1, cx)?;
                    State::StartLine
                }
                (Token::CharData(_), Some(_)) => {
                    return Err(at(line, &"a domain name after $INCLUDE is not supported"));
                }
                (t, _) => return Err(at(line, &format_args!("$INCLUDE needs a file, not {t}"))),
            },
            State::TtlClassType => match token {
                Token::CharData(data) => {
                    if let Ok(ttl) = parse_ttl(&data) {
                        cx.ttl.this = Some(ttl);
                        State::TtlClassType
                    } else {
                        let word = data.to_ascii_uppercase();
                        if let Ok(class) = DNSClass::from_str(&word) {
                            cx.class = Some(class);
                            State::TtlClassType
                        } else {
                            let rtype = RecordType::from_str(&word).map_err(|e| at(line, &e))?;
                            State::Record {
                                rtype,
                                start: lexer.pos,
                                line: entry_line,
                            }
                        }
                    }
                }
                Token::Eol => State::StartLine,
                t => {
                    return Err(at(
                        line,
                        &format_args!("expected a TTL, class or type, not {t}"),
                    ));
                }
            },
            State::Record { rtype, start, line } => match token {
                Token::Eol => {
                    let data = &text[start..lexer.token_start];
                    cx.insert(rtype, data).map_err(|e| at(line, &e))?;
                    State::StartLine
                }
                Token::CharData(_) | Token::List => State::Record { rtype, start, line },
                t => return Err(at(lexer.token_line, &format_args!("unexpected {t}"))),
            },
        };
    }
    // The last record may end without a newline.
    if let State::Record { rtype, start, line } = state {
        cx.insert(rtype, &text[start..]).map_err(|e| at(line, &e))?;
    }
    Ok(())
}

impl Context {
    /// Adds the record whose type is `rtype` and whose data are `data` (the
    /// text after the type, comments and parentheses included).
    fn insert(&mut self, rtype: RecordType, data: &str) -> Result<(), String> {
        let mut rdata = RData::try_from_str(rtype, data).map_err(|e| e.to_string())?;
        if let Some(origin) = &self.origin {
            absolute_names(&mut rdata, origin).map_err(|e| e.to_string())?;
        }
        let mut name = self.owner.clone().ok_or("record name not specified")?;
        let ttl = self.ttl.take().ok_or("record ttl not specified")?;
        name.set_fqdn(true);
        let mut record = Record::from_rdata(name, ttl, rdata);
        record.dns_class = self.class.unwrap_or(DNSClass::IN);
        let key = LowerName::new(&record.name);
        if rtype == RecordType::SOA && !self.soa.insert(key.clone()) {
            return Err("SOA is already specified".into());
        }
        self.by_name.entry(key).or_default().push(record);
        Ok(())
    }

    /// The records by owner name, each name's records as RRsets.
    fn into_zone(mut self) -> Zone {
        for records in self.by_name.values_mut() {
            into_rrsets(records);
        }
        Zone {
            by_name: self.by_name,
        }
    }
}

/// Turns one name's records, in file order, into its RRsets as
/// hickory-proto's parser left them: grouped by type in type order, and in
/// each group the records in file order with the rules of its
/// `RecordSet::insert`. RFC 2181 5: an RRset holds no two records with the
/// same data; the first of equal records stays where it was, with its TTL,
/// and a later one with the same data in another class takes its place.
/// RFC 1034 3.6.2 (and the ANAME draft): one CNAME (ANAME) per name, the
/// last one written. A hash of the data finds equal records, so a name with
/// n records costs O(n), not the O(n²) of comparing each with the others.
fn into_rrsets(records: &mut Vec<Record>) {
    if records.len() < 2 {
        return;
    }
    if !records.is_sorted_by_key(Record::record_type) {
        // Stable: file order within each type.
        records.sort_by_key(Record::record_type);
    }
    // Positions in `records` of the records kept, in order; where in
    // `kept` each data of the current type is.
    let mut kept: Vec<usize> = Vec::with_capacity(records.len());
    let mut by_data: HashMap<&RData, usize> = HashMap::new();
    for (i, record) in records.iter().enumerate() {
        let rtype = record.record_type();
        let same_type = i > 0 && records[i - 1].record_type() == rtype;
        if !same_type {
            by_data.clear();
        }
        match rtype {
            RecordType::CNAME | RecordType::ANAME if same_type => {
                if let Some(last) = kept.last_mut() {
                    *last = i;
                }
            }
            _ => match by_data.entry(&record.data) {
                Entry::Occupied(k) => {
                    let k = *k.get();
                    if records[kept[k]].dns_class != record.dns_class {
                        kept[k] = i;
                    }
                }
                Entry::Vacant(slot) => {
                    slot.insert(kept.len());
                    kept.push(i);
                }
            },
        }
    }
    if kept.len() == records.len() {
        return;
    }
    drop(by_data);
    let mut slots: Vec<Option<Record>> = std::mem::take(records).into_iter().map(Some).collect();
    *records = kept.into_iter().filter_map(|i| slots[i].take()).collect();
}

/// Makes the names in `rdata` absolute, as hickory-proto's parser does by
/// handing the origin to the data parsers (`try_from_str` has no origin).
fn absolute_names(rdata: &mut RData, origin: &Name) -> Result<(), ProtoError> {
    let name = match rdata {
        RData::SRV(srv) => &mut srv.target,
        RData::CNAME(c) => &mut c.0,
        RData::ANAME(a) => &mut a.0,
        RData::NS(ns) => &mut ns.0,
        RData::PTR(ptr) => &mut ptr.0,
        RData::MX(mx) => &mut mx.exchange,
        RData::NAPTR(naptr) => &mut naptr.replacement,
        RData::SOA(soa) => {
            absolute(&mut soa.mname, origin)?;
            &mut soa.rname
        }
        _ => return Ok(()),
    };
    absolute(name, origin)
}

fn absolute(name: &mut Name, origin: &Name) -> Result<(), ProtoError> {
    if !name.is_fqdn() {
        *name = std::mem::replace(name, Name::root()).append_domain(origin)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    // The parser against hickory-proto's own (`Parser`, which srvd used
    // before and which stays in hickory-proto): the same records, or an
    // error from both.

    /// What hickory-proto's parser makes of `text`, indexed as srvd did.
    fn hickory_parse(text: &str, path: &Path) -> Result<Zone, String> {
        use hickory_proto::serialize::txt::Parser;
        let (_origin, sets) = Parser::new(text, Some(path.to_owned()), None)
            .parse()
            .map_err(|e| e.to_string())?;
        let mut zone = Zone::default();
        for (key, set) in sets {
            zone.by_name
                .entry(key.name.clone())
                .or_default()
                .extend(set.records_without_rrsigs().cloned());
        }
        Ok(zone)
    }

    /// Every record of each name, in order, as zone-file text: owner (with
    /// its case), TTL, class, type and data.
    fn shown(zone: &Zone) -> BTreeMap<String, Vec<String>> {
        zone.by_name
            .iter()
            .map(|(name, recs)| {
                (
                    name.to_string(),
                    recs.iter().map(|r| r.to_string()).collect(),
                )
            })
            .collect()
    }

    /// Parses `text` (as the file `dir/z.zone`) with both parsers and
    /// asserts they agree; returns what they made of it.
    fn both(dir: &Path, text: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
        let path = dir.join("z.zone");
        let ours = parse(text, &path);
        let theirs = hickory_parse(text, &path);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(shown(a), shown(b), "for {text:?}"),
            (Err(_), Err(_)) => {}
            _ => panic!(
                "the parsers disagree on {text:?}:\nsrvd: {:?}\nhickory-proto: {:?}",
                ours.as_ref().map(shown),
                theirs.as_ref().map(shown)
            ),
        }
        ours.map(|z| shown(&z))
    }

    #[test]
    fn many_names_with_duplicates_give_the_records_hickory_proto_gave() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from(
            "$ORIGIN example.com.\n$TTL 1h\n\
             @ IN SOA ( ns1 hostmaster ; the primary\n 1 3600 600 86400 30 )\n",
        );
        for i in 0..400 {
            let name = format!("_s{i}._tcp");
            // Two copies of each record, the second with another TTL and the
            // target in upper case: one record stays, with the first TTL.
            for j in 0..3 {
                text += &format!("{name} 30 IN SRV 10 5 3306 db-{j:03}\n");
                text += &format!(" 60 SRV 10 5 3306 DB-{j:03}\n");
            }
            text += &format!("{name} IN SRV 20 1 3306 db-{i:03}.example.net.\n");
            if i % 7 == 0 {
                // Two CNAMEs for one name: the last one stays.
                text += &format!("_a{i}._tcp IN CNAME {name}\n_a{i}._tcp IN CNAME _s0._tcp\n");
            }
            if i % 11 == 0 {
                text += &format!("db-{i:03} 300 IN A 10.0.{}.{}\n", i / 256, i % 256);
                text += &format!("db-{i:03} IN A 10.0.{}.{}\n", i / 256, i % 256);
                text += &format!("db-{i:03} IN AAAA 2001:db8::{i:x}\n");
                text += &format!("db-{i:03} IN TXT \"a b\" \"c\\\"d\"\n");
            }
            if i == 200 {
                text += "$ORIGIN sub.example.com.\n$TTL 5m\n";
            }
        }
        let records = both(dir.path(), &text).unwrap();
        assert_eq!(records.len(), 400 + 58 + 37 + 1, "{:?}", records.keys());
        let srvs = &records["_s3._tcp.example.com."];
        assert_eq!(srvs.len(), 4, "{srvs:?}");
        assert!(srvs[0].contains(" 30 IN SRV"), "{srvs:?}");
        assert_eq!(records["_a7._tcp.example.com."].len(), 1);
        assert!(records["_a7._tcp.example.com."][0].ends_with("_s0._tcp.example.com."));
        assert_eq!(records["db-011.example.com."].len(), 3);
    }

    #[test]
    fn each_rule_of_the_master_file_format_as_hickory_proto_applies_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("inc.zone"),
            "inc IN SRV 1 1 1 t\n$ORIGIN other.example.\nin2 IN A 10.0.0.9",
        )
        .unwrap();
        let o = "$ORIGIN example.com.\n";
        let ok = [
            format!("{o}$TTL 30\n_x IN SRV 1 2 3 a\n_x IN SRV 1 2 3 A.example.com.\n"),
            format!("{o}_x 1h2m IN SRV 1 2 3 a\n  IN SRV 1 2 4 a\n"),
            format!("{o}_x IN 30 SRV 1 2 3 a\n_x CH SRV 1 2 3 a\n"),
            format!("{o}$TTL 30\n_x IN SRV 1 2 3 a\n_x CH SRV 1 2 3 a\n_x IN SRV 1 2 3 a\n"),
            format!("{o}$TTL 30\n@ SRV ( 1 2\n 3 ; the port\n a )\n"),
            format!("{o}$TTL 30\r\n_x SRV 1 2 3 a ; comment\r\n; only a comment\r\n\r\n"),
            format!("{o}$TTL 30\n_x SRV 1 2 3 a"),
            format!("{o}$TTL 30\n_x SRV 1 2 3 a ; no newline"),
            format!("{o}$TTL 30\n_x SRV 1 2 3 \"a\"\n\"_y\" SRV 1 2 3 b\n"),
            format!("{o}$TTL 30\n_x TXT \"a\\\"b\" \"\\065\" \"two\nlines\"\n"),
            format!("{o}$TTL 30\n_x CNAME a\n_x CNAME b\nb A 10.0.0.1\n"),
            format!("{o}$TTL 30 40\n_x SRV 1 2 3 a\n"),
            format!("{o}_x 50\n_y SRV 1 2 3 a\n"),
            format!("{o}$TTL 30\n_x SRV 1 2 3 a\n$INCLUDE inc.zone\n_z SRV 1 2 3 a\n"),
            format!("{o}$TTL 30\n_x SRV 1 2 3 a\n$INCLUDE inc.zone"),
            format!("{o}$TTL 30\n_x SRV 1 2 3 ( a"),
            format!("{o}$TTL 30\n_x TXT a(b \"c\"d\n"),
            format!("{o}$TTL 30\n_x SRV 1 2 3 a\n$ORIGIN"),
            format!("{o}$TTL 30\n_x MX 10 mail\n_x NS ns\n_x PTR p\n_x ANAME q\n"),
            format!("{o}$TTL 30\n@ SOA ns1 h 1 2 3 4 5\nsub SOA ns1 h 1 2 3 4 5\n"),
            format!("{o}$TTL 30\n_x NAPTR 100 50 \"a\" \"z\" \"\" r\n"),
            format!("{o}$TTL 30\nWeIrD.CaSe SRV 1 2 3 Target\nweird.case SRV 1 2 3 target\n"),
            "$ORIGIN example.com\n$TTL 30\n_x SRV 1 2 3 a\n".into(),
            format!("$TTL 30\n_x.example.com. SRV 1 2 3 a.example.com.\n{o}"),
        ];
        for text in &ok {
            both(dir.path(), text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        }
        let broken = [
            "$TTL 30\n_x.example.com. SRV 1 2 3 a.example.com.\n".to_string(),
            format!("{o}_x SRV 1 2 3 a\n"),
            format!("{o}$TTL 30\n SRV 1 2 3 a\n"),
            format!("{o}$ttl 30\n_x SRV 1 2 3 a\n"),
            format!("{o}$TTL 30\n_x SRV 1 2 3 a\r"),
            format!("{o}$TTL 30\n_x SRV 1 2 3 a\rb\n"),
            format!("{o}$TTL 30\n_x SRV 1 2 3 a )\n"),
            format!("{o}$TTL 30\n_x SRV ( 1 2 3 a\n"),
            format!("{o}$TTL 30\n_x TXT \"open\n"),
            format!("{o}$TTL 30\n_x TXT \"\\\x01\"\n"),
            format!("{o}$TTL 30\n_x CNAME @\n"),
            format!("{o}$TTL 30\n_x SRV 1 2 3 $ORIGIN\n"),
            format!("{o}$TTL 30\n@ SOA ns1 h 1 2 3 4 5\n@ SOA ns1 h 2 2 3 4 5\n"),
            format!("{o}$TTL 30\n_x SRVX 1 2 3 a\n"),
            format!("{o}$TTL 30\n_x SRV 1 2 a\n"),
            format!("{o}$TTL 30\n( _x ) SRV 1 2 3 a\n"),
            format!("{o}$TTL 30\n_x SRV 1 2 3 a\n$INCLUDE missing.zone\n"),
            format!("{o}$TTL 30\n_x SRV 1 2 3 a\n$INCLUDE inc.zone other.\n"),
            format!("{o}$TTL 30\n_x \x01 SRV 1 2 3 a\n"),
            format!("{o}$TTL x\n"),
            // A list cut short by a comment at the end of the file is lost.
            format!("{o}$TTL 30\n_x SRV 1 2 3 ( a ; cut short"),
        ];
        for text in &broken {
            assert!(both(dir.path(), text).is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn random_files_give_what_hickory_proto_gives() {
        // Lines put together from pieces, some of them wrong: both parsers
        // must make the same records of each file, or both refuse it.
        const PIECES: &[&str] = &[
            "$ORIGIN example.com.\n",
            "$TTL 30\n",
            "$TTL 1m\n",
            "_x",
            "_y.example.com.",
            "@",
            " ",
            "\t",
            "30",
            "2h",
            "IN",
            "CH",
            "SRV",
            "A",
            "CNAME",
            "TXT",
            "1 2 3 a",
            "1 2 3 b.",
            "10.0.0.1",
            "\"q s\"",
            "(",
            ")",
            "( 1 2\n 3 a )",
            ";c",
            "\n",
            "\r\n",
            "\"",
            "\\",
            "x",
            "$INCLUDE",
            "$ORIGIN",
            "0 0 0 .",
            "db-001",
            "_x IN SRV 1 2 3 a\n",
        ];
        let dir = tempfile::tempdir().unwrap();
        let mut seed: u64 = 0x5eed_5eed;
        let mut next = move |n: usize| {
            // xorshift64: deterministic, so a failure can be replayed.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut parsed = 0;
        for _ in 0..3000 {
            let mut text = String::from("$ORIGIN example.com.\n");
            for _ in 0..next(24) {
                text += PIECES[next(PIECES.len())];
                if next(3) == 0 {
                    text.push(' ');
                }
            }
            parsed += usize::from(both(dir.path(), &text).is_ok());
        }
        // Both outcomes must be common, or the comparison proves little.
        assert!((300..2700).contains(&parsed), "{parsed} of 3000 parsed");
    }

    #[test]
    fn a_fault_names_its_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.zone");
        let text = "$ORIGIN example.com.\n$TTL 30\n\n_x SRV 1 2 3 a\n_x SRV 1 2 x a\n";
        let err = parse(text, &path).err().unwrap();
        assert!(
            err.starts_with(&format!("zone_file {}: line 5: ", path.display())),
            "{err}"
        );
        // Data over several lines: the line where the record starts.
        let text = "$ORIGIN example.com.\n$TTL 30\n_x SRV ( 1\n 2\n x a )\n";
        let err = parse(text, &path).err().unwrap();
        assert!(err.contains(": line 3: "), "{err}");
        // In an included file, that file and its line.
        let inc = dir.path().join("inc.zone");
        std::fs::write(&inc, "_y SRV 1 2 3 a\n_y SRV 1 2 3 a )\n").unwrap();
        let text = "$ORIGIN example.com.\n$TTL 30\n$INCLUDE inc.zone\n";
        let err = parse(text, &path).err().unwrap();
        assert!(
            err.starts_with(&format!("zone_file {}: line 2: ", inc.display())),
            "{err}"
        );
    }
}
