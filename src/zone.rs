//! Records from an RFC 1035 master file instead of DNS (`zone_file`): the
//! bundled example runs with no DNS server, and `srvd render --zone FILE`
//! previews a template against records written by hand. The file is parsed
//! again whenever its size, mtime or inode changes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use std::borrow::Cow;
use std::str::FromStr;

use hickory_proto::ProtoError;
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::parse_ttl;

use crate::records::{self, Answer, LookupError};

/// What identifies one version of the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

pub struct ZoneFile {
    path: PathBuf,
    stamp: Option<Stamp>,
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
            zone: Err("not read yet".into()),
        };
        z.refresh();
        z
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file if it changed on disk. Returns true when it did.
    pub fn refresh(&mut self) -> bool {
        let stamp = std::fs::metadata(&self.path).ok().map(|m| Stamp {
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        });
        if stamp.is_some() && stamp == self.stamp {
            return false;
        }
        self.stamp = stamp;
        self.zone = read(&self.path);
        if let Err(e) = &self.zone {
            log::warn!("{e}");
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
        for _ in 0..8 {
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

/// Reads and parses the file at `path`; the error names the file and, for a
/// fault in its text, the line.
fn read(path: &Path) -> Result<Zone, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("zone_file {}: {e}", path.display()))?;
    parse(&text, path)
}

// Parsing. hickory-proto's own zone parser (`serialize::txt::Parser`) puts
// every record into a `RecordSet`, whose insert compares the new record with
// each one already in the set: 10,000 SRV records for one name took seconds.
// Its lexer is private, but `RData::try_from_str` is public and runs that
// lexer and the record data parsers on one record's text. So this file cuts
// the master file into entries with the same lexical rules as hickory-proto's
// lexer (`serialize/txt/zone_lex.rs`), follows the same entry grammar as its
// parser (`serialize/txt/zone.rs`: $ORIGIN, $TTL, $INCLUDE, owner, TTL,
// class, type), hands each record's data to `RData::try_from_str`, and
// removes duplicates with a hash of the record data: the same records as
// hickory-proto's parser, in time linear in the file's size. A test compares
// both parsers on the same files.

/// $INCLUDE nesting beyond this many files is an error (as in hickory-proto).
const MAX_INCLUDE_DEPTH: usize = 256;

/// Parses the text of the master file at `path` (used for messages and to
/// resolve a relative `$INCLUDE`) into records by owner name.
///
/// Errors: the first fault, as "zone_file PATH: line N: what", where PATH is
/// the file holding the fault (an included file's own path); a file with no
/// `$ORIGIN` at all is an error, as with hickory-proto.
fn parse(text: &str, path: &Path) -> Result<Zone, String> {
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
    /// Records by owner and type, in file order, duplicates still in.
    sets: HashMap<(LowerName, RecordType), Vec<Record>>,
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
enum Entry {
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

fn parse_file(text: &str, path: &Path, depth: usize, cx: &mut Context) -> Result<(), String> {
    let at = |line: usize, e: &dyn std::fmt::Display| {
        format!("zone_file {}: line {line}: {e}", path.display())
    };
    let mut lexer = Lexer::new(text);
    let mut state = Entry::StartLine;
    let mut entry_line = 1;
    while let Some(token) = lexer.next_token().map_err(|e| at(lexer.line, &e))? {
        let line = lexer.token_line;
        state = match state {
            Entry::StartLine => {
                entry_line = line;
                match token {
                    Token::Include => Entry::Include(None),
                    Token::Origin => Entry::Origin,
                    Token::Ttl => Entry::Ttl,
                    Token::CharData(data) => {
                        cx.owner =
                            Some(Name::parse(&data, cx.origin.as_ref()).map_err(|e| at(line, &e))?);
                        Entry::TtlClassType
                    }
                    Token::At => {
                        cx.owner.clone_from(&cx.origin);
                        Entry::TtlClassType
                    }
                    Token::Blank => Entry::TtlClassType,
                    Token::Eol => Entry::StartLine,
                    Token::List => return Err(at(line, &"unexpected list")),
                }
            }
            Entry::Ttl => match token {
                Token::CharData(data) => {
                    cx.ttl.dollar = Some(parse_ttl(&data).map_err(|e| at(line, &e))?);
                    Entry::StartLine
                }
                t => return Err(at(line, &format_args!("$TTL needs a TTL, not {t}"))),
            },
            Entry::Origin => match token {
                Token::CharData(data) => {
                    cx.origin = Some(Name::parse(&data, None).map_err(|e| at(line, &e))?);
                    Entry::StartLine
                }
                t => return Err(at(line, &format_args!("$ORIGIN needs a name, not {t}"))),
            },
            Entry::Include(file) => match (token, file) {
                (Token::CharData(data), None) => Entry::Include(Some(data.into_owned())),
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
                    Entry::StartLine
                }
                (Token::CharData(_), Some(_)) => {
                    return Err(at(line, &"a domain name after $INCLUDE is not supported"));
                }
                (t, _) => return Err(at(line, &format_args!("$INCLUDE needs a file, not {t}"))),
            },
            Entry::TtlClassType => match token {
                Token::CharData(data) => {
                    if let Ok(ttl) = parse_ttl(&data) {
                        cx.ttl.this = Some(ttl);
                        Entry::TtlClassType
                    } else {
                        let word = data.to_ascii_uppercase();
                        if let Ok(class) = DNSClass::from_str(&word) {
                            cx.class = Some(class);
                            Entry::TtlClassType
                        } else {
                            let rtype = RecordType::from_str(&word).map_err(|e| at(line, &e))?;
                            Entry::Record {
                                rtype,
                                start: lexer.pos,
                                line: entry_line,
                            }
                        }
                    }
                }
                Token::Eol => Entry::StartLine,
                t => {
                    return Err(at(
                        line,
                        &format_args!("expected a TTL, class or type, not {t}"),
                    ));
                }
            },
            Entry::Record { rtype, start, line } => match token {
                Token::Eol => {
                    let data = &text[start..lexer.token_start];
                    cx.insert(rtype, data).map_err(|e| at(line, &e))?;
                    Entry::StartLine
                }
                Token::CharData(_) | Token::List => Entry::Record { rtype, start, line },
                t => return Err(at(lexer.token_line, &format_args!("unexpected {t}"))),
            },
        };
    }
    // The last record may end without a newline.
    if let Entry::Record { rtype, start, line } = state {
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
        let key = (LowerName::new(&record.name), record.record_type());
        let set = self.sets.entry(key).or_default();
        match rtype {
            RecordType::SOA if !set.is_empty() => return Err("SOA is already specified".into()),
            // RFC 1034 3.6.2 (and the ANAME draft): one per name, the last wins.
            RecordType::CNAME | RecordType::ANAME => set.clear(),
            _ => {}
        }
        set.push(record);
        Ok(())
    }

    /// The records by owner name: each owner's records grouped by type in
    /// type order, each group without duplicates.
    fn into_zone(self) -> Zone {
        let mut groups: HashMap<LowerName, Vec<(RecordType, Vec<Record>)>> = HashMap::new();
        for ((name, rtype), set) in self.sets {
            groups
                .entry(name)
                .or_default()
                .push((rtype, without_duplicates(set)));
        }
        let by_name = groups
            .into_iter()
            .map(|(name, mut sets)| {
                sets.sort_by_key(|(rtype, _)| *rtype);
                (name, sets.into_iter().flat_map(|(_, set)| set).collect())
            })
            .collect();
        Zone { by_name }
    }
}

/// One record per distinct data (RFC 2181 5: an RRset holds no two records
/// with the same data), as hickory-proto's `RecordSet::insert` keeps them:
/// the first of equal records stays where it was, with its TTL; a later one
/// with the same data in another class takes its place.
fn without_duplicates(set: Vec<Record>) -> Vec<Record> {
    if set.len() < 2 {
        return set;
    }
    // Positions in `set` of the records kept, and where each data is kept.
    let mut kept: Vec<usize> = Vec::with_capacity(set.len());
    let mut by_data: HashMap<&RData, usize> = HashMap::with_capacity(set.len());
    for (i, record) in set.iter().enumerate() {
        match by_data.get(&record.data) {
            Some(&k) if set[kept[k]].dns_class == record.dns_class => {}
            Some(&k) => kept[k] = i,
            None => {
                by_data.insert(&record.data, kept.len());
                kept.push(i);
            }
        }
    }
    if kept.len() == set.len() {
        return set;
    }
    drop(by_data);
    let mut slots: Vec<Option<Record>> = set.into_iter().map(Some).collect();
    kept.into_iter().filter_map(|i| slots[i].take()).collect()
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

/// A token of a master file. Only what the entry grammar needs is kept: the
/// text of a word, not the contents of a parenthesised list (record data
/// are parsed again from their text).
#[derive(Debug)]
enum Token<'a> {
    /// White space at the start of a line: the entry keeps the last owner.
    Blank,
    /// `( ... )`, over any number of lines.
    List,
    /// A word, or a quoted string with its escapes resolved.
    CharData(Cow<'a, str>),
    /// `@`: the origin.
    At,
    Include,
    Origin,
    Ttl,
    Eol,
}

impl std::fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Blank => f.write_str("a blank"),
            Token::List => f.write_str("a list in parentheses"),
            Token::CharData(word) => write!(f, "{word:?}"),
            Token::At => f.write_str("@"),
            Token::Include => f.write_str("$INCLUDE"),
            Token::Origin => f.write_str("$ORIGIN"),
            Token::Ttl => f.write_str("$TTL"),
            Token::Eol => f.write_str("the end of the line"),
        }
    }
}

/// Where the lexer stands between tokens.
#[derive(Clone, Copy, PartialEq)]
enum At {
    StartLine,
    RestOfLine,
    Eof,
}

/// hickory-proto's zone lexer (`serialize/txt/zone_lex.rs`), rule for rule,
/// over byte offsets so that a record's data can be handed on as text: the
/// same token boundaries, the same faults.
struct Lexer<'a> {
    text: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    /// Line of the next character, from 1.
    line: usize,
    /// Byte offset and line where the last token began.
    token_start: usize,
    token_line: usize,
    at: At,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            text,
            pos: 0,
            line: 1,
            token_start: 0,
            token_line: 1,
            at: At::StartLine,
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn begin(&mut self) {
        self.token_start = self.pos;
        self.token_line = self.line;
    }

    fn next_token(&mut self) -> Result<Option<Token<'a>>, String> {
        loop {
            match self.at {
                At::Eof => return Ok(None),
                At::StartLine => match self.peek() {
                    Some('\r' | '\n') => {
                        self.begin();
                        return self.eol().map(Some);
                    }
                    Some(c) if c.is_whitespace() => {
                        self.begin();
                        self.bump();
                        self.at = At::RestOfLine;
                        return Ok(Some(Token::Blank));
                    }
                    Some(_) => self.at = At::RestOfLine,
                    None => self.at = At::Eof,
                },
                At::RestOfLine => {
                    self.begin();
                    match self.peek() {
                        Some('@') => {
                            self.bump();
                            return Ok(Some(Token::At));
                        }
                        Some('(') => {
                            self.bump();
                            return self.list();
                        }
                        Some(')') => return Err("unexpected ')'".into()),
                        Some('$') => {
                            self.bump();
                            return self.dollar().map(Some);
                        }
                        Some('\r' | '\n') => return self.eol().map(Some),
                        Some('"') => {
                            self.bump();
                            return self.quoted().map(Some);
                        }
                        Some(';') => self.comment(),
                        Some(c) if c.is_whitespace() => {
                            self.bump();
                        }
                        Some(c) if !c.is_control() => {
                            return self.word(false).map(|w| Some(Token::CharData(w)));
                        }
                        Some(c) => return Err(format!("unrecognized character {c:?}")),
                        None => self.at = At::Eof,
                    }
                }
            }
        }
    }

    /// `\n` or `\r\n`; a `\r` before anything else is a fault.
    fn eol(&mut self) -> Result<Token<'a>, String> {
        loop {
            match self.bump() {
                Some('\r') => {}
                Some('\n') => {
                    self.at = At::StartLine;
                    return Ok(Token::Eol);
                }
                Some(c) => return Err(format!("unexpected {c:?} after a carriage return")),
                None => return Err("the file ends in a carriage return".into()),
            }
        }
    }

    /// Skips a comment up to (not over) the end of its line.
    fn comment(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\r' || c == '\n' {
                return;
            }
            self.bump();
        }
        self.at = At::Eof;
    }

    /// A word: ends at white space, `;`, or (inside a list) `)`.
    fn word(&mut self, in_list: bool) -> Result<Cow<'a, str>, String> {
        let start = self.pos;
        loop {
            match self.peek() {
                Some(')') if !in_list => return Err("unexpected ')'".into()),
                Some(c) if c.is_whitespace() || c == ')' || c == ';' => break,
                Some(c) if !c.is_control() => {
                    self.bump();
                }
                Some(c) => return Err(format!("unrecognized character {c:?}")),
                None => {
                    self.at = At::Eof;
                    break;
                }
            }
        }
        if self.at != At::Eof && !in_list {
            self.at = At::RestOfLine;
        }
        Ok(Cow::Borrowed(&self.text[start..self.pos]))
    }

    /// After `(`: the list up to its `)`. As in hickory-proto, a list cut
    /// short by the end of the file ends the file: a word there is returned
    /// as a word, a comment there ends with nothing.
    fn list(&mut self) -> Result<Option<Token<'a>>, String> {
        loop {
            match self.peek() {
                Some(';') => {
                    self.bump();
                    self.comment();
                    if self.at == At::Eof {
                        return Ok(None);
                    }
                }
                Some(')') => {
                    self.bump();
                    self.at = At::RestOfLine;
                    return Ok(Some(Token::List));
                }
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some(c) if !c.is_control() => {
                    let word = self.word(true)?;
                    if self.at == At::Eof {
                        return Ok(Some(Token::CharData(word)));
                    }
                }
                Some(c) => return Err(format!("unrecognized character {c:?}")),
                None => return Err("unclosed list: '(' without ')'".into()),
            }
        }
    }

    /// After `"`: the string up to the closing `"`, escapes resolved.
    fn quoted(&mut self) -> Result<Token<'a>, String> {
        let mut s = String::new();
        loop {
            match self.peek() {
                Some('"') => {
                    self.bump();
                    self.at = At::RestOfLine;
                    return Ok(Token::CharData(Cow::Owned(s)));
                }
                Some('\\') => {
                    self.bump();
                    s.push(self.escape()?);
                }
                Some(c) => {
                    self.bump();
                    s.push(c);
                }
                None => return Err("unclosed quoted string".into()),
            }
        }
    }

    /// After `\` in a quoted string: `\X`, or `\DDD` decoded as
    /// hickory-proto decodes it.
    fn escape(&mut self) -> Result<char, String> {
        let c = self.peek().ok_or("the file ends in an escape")?;
        if c.is_control() {
            return Err(format!("illegal character {c:?} after '\\'"));
        }
        if !c.is_numeric() {
            self.bump();
            return Ok(c);
        }
        let mut digit = || {
            let c = self.bump().ok_or("the file ends in an escape")?;
            c.to_digit(10)
                .ok_or_else(|| format!("illegal character {c:?} in an escape"))
        };
        let (d1, d2, d3) = (digit()?, digit()?, digit()?);
        let val = (d1 << 16) + (d2 << 8) + d3;
        char::from_u32(val).ok_or_else(|| format!("unrecognized octet {val} in an escape"))
    }

    /// After `$`: the upper-case word that follows names the control entry.
    fn dollar(&mut self) -> Result<Token<'a>, String> {
        let start = self.pos;
        while let Some('A'..='Z') = self.peek() {
            self.bump();
        }
        self.at = At::RestOfLine;
        match &self.text[start..self.pos] {
            "INCLUDE" => Ok(Token::Include),
            "ORIGIN" => Ok(Token::Origin),
            "TTL" => Ok(Token::Ttl),
            other => Err(format!("unrecognized control entry ${other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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
