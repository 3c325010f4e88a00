//! A converted expression: Tera text, how tightly it binds, and the Go type
//! of its value (which decides field names and how a range iterates).

/// What a value is, as far as the conversion needs to know: records get
/// their fields renamed, maps iterate with two names, lists with one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    /// The Go template's data: `.srvs` and `.domains`.
    Root,
    /// A list of miekg/dns SRV records.
    Srvs,
    Srv,
    /// An SRV record's `Hdr`.
    Header,
    /// `.domains`: domain → records.
    Domains,
    Str,
    Int,
    Bool,
    StrList,
    /// Interface → its IPv4 addresses.
    StrListMap,
    /// Interface → its first IPv4 address.
    StrMap,
    Unknown,
}

/// How tightly a Tera expression holds together: an atom takes `.field`
/// and `[key]`, a filtered value takes another filter, anything else goes
/// in parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Prec {
    Op,
    Filter,
    Atom,
}

#[derive(Debug, Clone)]
pub(super) struct Tx {
    pub(super) s: String,
    pub(super) p: Prec,
    pub(super) ty: Ty,
}

impl Tx {
    pub(super) fn new(s: impl Into<String>, p: Prec, ty: Ty) -> Self {
        Tx { s: s.into(), p, ty }
    }
    pub(super) fn at_least(&self, p: Prec) -> String {
        if self.p >= p {
            self.s.clone()
        } else {
            format!("({})", self.s)
        }
    }
    pub(super) fn filter(&self, f: &str, ty: Ty) -> Tx {
        Tx::new(
            format!("{} | {f}", self.at_least(Prec::Filter)),
            Prec::Filter,
            ty,
        )
    }
    /// `base.name` or, on a parenthesised base, `(base)["name"]` (Tera 2
    /// takes no attribute after a parenthesis).
    pub(super) fn attr(&self, name: &str, ty: Ty) -> Tx {
        if self.p == Prec::Atom && is_tera_ident(name) {
            Tx::new(format!("{}.{name}", self.s), Prec::Atom, ty)
        } else {
            Tx::new(
                format!("{}[{}]", self.at_least(Prec::Atom), tera_str(name)),
                Prec::Atom,
                ty,
            )
        }
    }
}

pub(super) fn is_tera_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A Tera string literal with this value.
pub(super) fn tera_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(super) type R<T> = Result<T, String>;
