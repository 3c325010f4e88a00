//! The functions a Go srvd template could call (text/template's, sigil's and
//! the Go srvd's own), the SRV record's fields and printf, in Tera.

use super::emit::Emitter;
use super::parse::Expr;
use super::value::{Prec, R, Tx, Ty, tera_str};

impl Emitter<'_> {
    pub(super) fn call(&mut self, name: &str, args: &[Expr]) -> R<Tx> {
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!("{name} takes {n} argument(s), here {}", args.len()))
            }
        };
        match name {
            // --- the Go srvd's functions
            "fetchsrvs" => {
                arity(2)?;
                let m = self.expr(&args[0])?;
                let k = self.expr(&args[1])?;
                Ok(Tx::new(
                    format!("{}[{}]", m.at_least(Prec::Atom), k.s),
                    Prec::Atom,
                    Ty::Srvs,
                ))
            }
            "rotatesrvs" => {
                arity(2)?;
                let l = self.expr(&args[0])?;
                let n = self.expr(&args[1])?;
                Ok(l.filter(&format!("rotate(n={})", n.s), Ty::Srvs))
            }
            "shufflesrvs" => {
                arity(2)?;
                let seed = self.expr(&args[0])?;
                let l = self.expr(&args[1])?;
                self.note(
                    "srvd's shuffle gives another order than Go's math/rand for the same seed \
                     (the same on every host and every srvd release): expect one reload at the switch",
                );
                Ok(l.filter(&format!("shuffle(seed={})", seed.s), Ty::Srvs))
            }
            "ipv4toi" => {
                arity(1)?;
                Ok(self.expr(&args[0])?.filter("ipv4_to_int", Ty::Int))
            }
            "hextoi" => {
                arity(1)?;
                Ok(self.expr(&args[0])?.filter("hex_to_int", Ty::Int))
            }
            "hostname" => {
                arity(0)?;
                Ok(Tx::new("hostname()", Prec::Atom, Ty::Str))
            }
            "ifaddrs" => {
                arity(0)?;
                Ok(Tx::new("interface_addrs()", Prec::Atom, Ty::StrList))
            }
            "ipv4sbyif" => {
                arity(0)?;
                Ok(Tx::new("ipv4s_by_interface()", Prec::Atom, Ty::StrListMap))
            }
            "ipv4byif" => {
                arity(0)?;
                Ok(Tx::new("ipv4_by_interface()", Prec::Atom, Ty::StrMap))
            }
            "interfaces" | "ifbyname" => Err(format!(
                "{name} returned Go's net.Interface structs, which srvd has no form of: \
                 use interface_addrs(), ipv4s_by_interface() or ipv4_by_interface()"
            )),
            // --- text/template's functions
            "index" => {
                if args.is_empty() {
                    return Err("index needs a value".into());
                }
                let mut v = self.expr(&args[0])?;
                for k in &args[1..] {
                    let key = self.expr(k)?;
                    let ty = match v.ty {
                        Ty::Domains => Ty::Srvs,
                        Ty::Srvs => Ty::Srv,
                        Ty::StrList | Ty::StrMap => Ty::Str,
                        Ty::StrListMap => Ty::StrList,
                        _ => Ty::Unknown,
                    };
                    v = Tx::new(
                        format!("{}[{}]", v.at_least(Prec::Atom), key.s),
                        Prec::Atom,
                        ty,
                    );
                }
                Ok(v)
            }
            "len" => {
                arity(1)?;
                Ok(self.expr(&args[0])?.filter("length", Ty::Int))
            }
            "not" => {
                arity(1)?;
                Ok(Tx::new(
                    format!("not {}", paren_op(&self.cond(&args[0])?)),
                    Prec::Op,
                    Ty::Bool,
                ))
            }
            "and" | "or" => {
                if args.len() < 2 {
                    return Err(format!("{name} takes two or more arguments"));
                }
                // Go returns the deciding argument, not a boolean:
                // `or .a "x"` prints .a when it is set, else "x".
                let vals = args.iter().map(|a| self.expr(a)).collect::<R<Vec<_>>>()?;
                let mut acc = vals.last().expect("two or more").clone();
                for v in vals.iter().rev().skip(1) {
                    let a = v.at_least(Prec::Filter);
                    let rest = acc.at_least(Prec::Filter);
                    let s = if name == "or" {
                        format!("{a} if {a} else {rest}")
                    } else {
                        format!("{rest} if {a} else {a}")
                    };
                    acc = Tx::new(s, Prec::Op, if v.ty == acc.ty { v.ty } else { Ty::Unknown });
                }
                Ok(acc)
            }
            "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
                if args.len() < 2 || (name != "eq" && args.len() != 2) {
                    return Err(format!("{name} takes two arguments"));
                }
                let op = match name {
                    "eq" => "==",
                    "ne" => "!=",
                    "lt" => "<",
                    "le" => "<=",
                    "gt" => ">",
                    _ => ">=",
                };
                let a = self.expr(&args[0])?.at_least(Prec::Filter);
                let parts = args[1..]
                    .iter()
                    .map(|b| Ok(format!("{a} {op} {}", self.expr(b)?.at_least(Prec::Filter))))
                    .collect::<R<Vec<_>>>()?;
                Ok(Tx::new(parts.join(" or "), Prec::Op, Ty::Bool))
            }
            "print" | "println" => {
                let vals = args.iter().map(|a| self.expr(a)).collect::<R<Vec<_>>>()?;
                let mut parts: Vec<(String, Ty)> = Vec::new();
                for (k, v) in vals.iter().enumerate() {
                    if k > 0 {
                        // Sprint puts a space between operands when neither
                        // is a string; Sprintln always.
                        let prev = vals[k - 1].ty;
                        if prev == Ty::Unknown || v.ty == Ty::Unknown {
                            return Err(format!(
                                "{name} spaces its arguments by their Go types, unknown here: \
                                 write the text with ~"
                            ));
                        }
                        if name == "println" || (prev != Ty::Str && v.ty != Ty::Str) {
                            parts.push(("\" \"".into(), Ty::Str));
                        }
                    }
                    parts.push((v.at_least(Prec::Filter), v.ty));
                }
                if name == "println" {
                    parts.push(("\"\\n\"".into(), Ty::Str));
                }
                concat(parts)
            }
            "printf" => {
                let Some(Expr::Str(format)) = args.first() else {
                    return Err("printf's format must be a string literal".into());
                };
                let vals = args[1..]
                    .iter()
                    .map(|a| self.expr(a))
                    .collect::<R<Vec<_>>>()?;
                printf(format, &vals)
            }
            "html" | "js" | "urlquery" | "call" | "slice" => Err(format!(
                "text/template's {name} has no Tera equivalent in srvd: write the text as it should appear"
            )),
            // --- sigil's string helpers
            "lower" | "upper" => {
                arity(1)?;
                Ok(self.expr(&args[0])?.filter(name, Ty::Str))
            }
            "capitalize" => {
                arity(1)?;
                self.note(
                    "sigil's capitalize upper-cases each word's first letter and keeps the rest; \
                     Tera's title also lower-cases the rest",
                );
                Ok(self.expr(&args[0])?.filter("title", Ty::Str))
            }
            "trim" => {
                arity(1)?;
                self.note("sigil's trim removes spaces and newlines; Tera's trim also tabs and other white space");
                Ok(self.expr(&args[0])?.filter("trim", Ty::Str))
            }
            "replace" => {
                arity(3)?;
                let from = self.expr(&args[0])?;
                let to = self.expr(&args[1])?;
                let s = self.expr(&args[2])?;
                Ok(s.filter(&format!("replace(from={}, to={})", from.s, to.s), Ty::Str))
            }
            "join" => {
                arity(2)?;
                let sep = self.expr(&args[0])?;
                let l = self.expr(&args[1])?;
                Ok(l.filter(&format!("join(sep={})", sep.s), Ty::Str))
            }
            "split" => {
                arity(2)?;
                let sep = self.expr(&args[0])?;
                let s = self.expr(&args[1])?;
                Ok(s.filter(&format!("split(pat={})", sep.s), Ty::StrList))
            }
            "default" => {
                arity(2)?;
                let d = self.expr(&args[0])?;
                let v = self.expr(&args[1])?;
                Ok(v.filter(&format!("default(value={}, boolean=true)", d.s), v.ty))
            }
            "indent" => {
                arity(2)?;
                let Expr::Str(ind) = &args[0] else {
                    return Err("indent's indentation must be a string literal".into());
                };
                let s = self.expr(&args[1])?;
                let mut chars = ind.chars();
                let Some(c) = chars.next().filter(|c| ind.chars().all(|d| d == *c)) else {
                    return Err(
                        "Tera's indent repeats one character: use spaces or tabs only".into(),
                    );
                };
                let f = if c == ' ' {
                    format!("indent(width={})", ind.chars().count())
                } else {
                    format!(
                        "indent(width={}, indentation={})",
                        ind.chars().count(),
                        tera_str(&c.to_string())
                    )
                };
                Ok(s.filter(&f, Ty::Str))
            }
            "seq" => {
                arity(1)?;
                let n = self.expr(&args[0])?;
                Ok(Tx::new(
                    format!("range(end={})", n.s),
                    Prec::Atom,
                    Ty::Unknown,
                ))
            }
            "var" => Err(
                "srvd does not pass its environment to templates: write the value in the template"
                    .into(),
            ),
            "include" | "file" | "text" | "json" | "yaml" | "exists" | "dir" | "dirs" | "files"
            | "stdin" | "render" | "sh" | "httpget" => Err(format!(
                "sigil's {name} reads files, commands or URLs; srvd templates read only the \
                 records and this host's addresses: write the content in the template"
            )),
            "tojson" | "toyaml" | "pointer" | "uniq" | "drop" | "append" | "joinkv" | "splitkv"
            | "match" => Err(format!(
                "sigil's {name} has no Tera equivalent in srvd: write the result in the template"
            )),
            _ => Err(format!(
                "{name} is not a function of text/template, sigil or the Go srvd"
            )),
        }
    }
}

/// Parentheses around a Tera expression that holds an operator.
pub(super) fn paren_op(s: &str) -> String {
    if s.contains(' ') && !(s.starts_with('(') && s.ends_with(')')) {
        format!("({s})")
    } else {
        s.to_owned()
    }
}

pub(super) fn what(ty: Ty) -> &'static str {
    match ty {
        Ty::Root => "the whole data",
        Ty::Srvs => "a list of records",
        Ty::Srv => "a whole SRV record",
        Ty::Header => "an SRV record's header",
        Ty::Domains => "the map of domains",
        Ty::Str => "a string",
        Ty::Int => "a number",
        Ty::Bool => "a boolean",
        _ => "this value",
    }
}

/// A field of a Go value, by srvd's name for it.
pub(super) fn field(base: &Tx, name: &str) -> R<Tx> {
    match base.ty {
        Ty::Srv => match name {
            "Target" | "Port" | "Priority" | "Weight" => {
                let ty = if name == "Target" { Ty::Str } else { Ty::Int };
                Ok(base.attr(&name.to_ascii_lowercase(), ty))
            }
            "Hdr" => Ok(Tx::new(base.s.clone(), base.p, Ty::Header)),
            _ => Err(format!(
                "miekg/dns's SRV has no .{name} srvd can give: its fields are .Target, .Port, \
                 .Priority, .Weight and .Hdr.Ttl"
            )),
        },
        Ty::Header => match name {
            "Ttl" => Ok(base.attr("ttl", Ty::Int)),
            "Name" => {
                Err("srvd's records do not carry their owner name: write the domain as text".into())
            }
            _ => Err(format!(
                "srvd's records have no .Hdr.{name}: only .Hdr.Ttl converts (to ttl)"
            )),
        },
        Ty::Srvs | Ty::Root | Ty::Str | Ty::Int | Ty::Bool | Ty::StrList => {
            Err(format!("{} has no field .{name}", what(base.ty)))
        }
        Ty::Domains => Ok(base.attr(name, Ty::Srvs)),
        Ty::StrListMap => Ok(base.attr(name, Ty::StrList)),
        Ty::StrMap => Ok(base.attr(name, Ty::Str)),
        Ty::Unknown => match name {
            "Target" | "Port" | "Priority" | "Weight" => {
                field(&Tx::new(base.s.clone(), base.p, Ty::Srv), name)
            }
            _ => Ok(base.attr(name, Ty::Unknown)),
        },
    }
}

/// Text made of Tera expressions (each at least a filtered value) and
/// literals: Go's print functions always return a string.
pub(super) fn concat(parts: Vec<(String, Ty)>) -> R<Tx> {
    match parts.len() {
        0 => Ok(Tx::new("\"\"", Prec::Atom, Ty::Str)),
        1 if parts[0].1 == Ty::Str => Ok(Tx::new(parts[0].0.clone(), Prec::Filter, Ty::Str)),
        1 => Ok(Tx::new(
            format!("{} | str", parts[0].0),
            Prec::Filter,
            Ty::Str,
        )),
        _ => Ok(Tx::new(
            parts
                .into_iter()
                .map(|(s, _)| s)
                .collect::<Vec<_>>()
                .join(" ~ "),
            Prec::Op,
            Ty::Str,
        )),
    }
}

/// `printf` with the verbs whose output Tera gives as is: %s, %v, %d and %%
/// without flags, width or precision.
pub(super) fn printf(format: &str, vals: &[Tx]) -> R<Tx> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut next = 0;
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => lit.push('%'),
            Some(v @ ('s' | 'v' | 'd')) => {
                let Some(arg) = vals.get(next) else {
                    return Err(format!(
                        "printf has more verbs than arguments in {format:?}"
                    ));
                };
                if matches!(
                    arg.ty,
                    Ty::Srv | Ty::Srvs | Ty::Header | Ty::Domains | Ty::Root
                ) {
                    return Err(format!(
                        "printf %{v} of {} prints Go's own format: print its fields",
                        what(arg.ty)
                    ));
                }
                if v == 'd' && matches!(arg.ty, Ty::Str | Ty::Bool) {
                    return Err(format!("printf %d of {}", what(arg.ty)));
                }
                next += 1;
                if !lit.is_empty() {
                    parts.push((tera_str(&std::mem::take(&mut lit)), Ty::Str));
                }
                parts.push((arg.at_least(Prec::Filter), arg.ty));
            }
            other => {
                // The whole directive: flags, width and precision up to the verb.
                let mut spec: String = other.map(String::from).unwrap_or_default();
                if !other.is_some_and(|c| c.is_ascii_alphabetic()) {
                    for c in chars.by_ref() {
                        spec.push(c);
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
                return Err(format!(
                    "printf's %{spec} has no Tera form (only %s, %v, %d and %% convert): \
                     write the padding or the number format in the text"
                ));
            }
        }
    }
    if next != vals.len() {
        return Err(format!(
            "printf has more arguments than verbs in {format:?}"
        ));
    }
    if !lit.is_empty() {
        parts.push((tera_str(&lit), Ty::Str));
    }
    concat(parts)
}
