//! The Go template's tree → Tera text: tags, scopes of variables, what `.`
//! is in each block, and the type of each value where it decides the form.

use std::collections::HashSet;

use super::Problem;
use super::funcs::{field, paren_op, what};
use super::lex::{Trim, number, problem_at};
use super::parse::{Branch, Expr, Node, Pipeline};
use super::value::{Prec, R, Tx, Ty, is_tera_ident, tera_str};
/// Names Tera reserves or parses as keywords; a Go variable with one of
/// these names gets a trailing underscore.
pub(super) const RESERVED: &[&str] = &[
    "true",
    "True",
    "false",
    "False",
    "loop",
    "self",
    "and",
    "or",
    "not",
    "is",
    "in",
    "continue",
    "break",
    "none",
    "None",
    "null",
    "if",
    "else",
    "elif",
    "endif",
    "for",
    "endfor",
    "set",
    "set_global",
    "raw",
    "endraw",
    "include",
    "import",
    "extends",
    "block",
    "endblock",
    "macro",
    "filter",
    "component",
    "range",
    "throw",
    "super",
];

/// The values srvd's Tera context gives every template (render.rs).
pub(super) const CONTEXT: &[&str] = &["srvs", "domains", "hostname"];

pub(super) struct Var {
    pub(super) go: String,
    pub(super) tera: String,
    pub(super) ty: Ty,
    /// How many loops enclose its declaration: Tera keeps a `set` inside a
    /// loop in that loop.
    pub(super) loops: usize,
}

pub(super) struct Emitter<'a> {
    pub(super) src: &'a str,
    pub(super) out: String,
    pub(super) notes: Vec<Problem>,
    pub(super) problems: Vec<Problem>,
    pub(super) scopes: Vec<Vec<Var>>,
    /// What `.` is: the root, a loop's element, a with's value.
    pub(super) dots: Vec<Tx>,
    pub(super) loops: usize,
    /// Names the conversion must not give a generated variable.
    pub(super) taken: HashSet<String>,
    /// Context names a Go variable must not take (see `convert`).
    pub(super) avoid: &'a HashSet<String>,
    pub(super) context_refs: HashSet<String>,
    pub(super) user_names: HashSet<String>,
    /// Where the action being converted starts, for problems and notes.
    pub(super) at: usize,
}

impl<'a> Emitter<'a> {
    pub(super) fn new(src: &'a str, go_vars: &HashSet<String>, avoid: &'a HashSet<String>) -> Self {
        let mut taken: HashSet<String> = go_vars.clone();
        taken.extend(CONTEXT.iter().map(|s| s.to_string()));
        Emitter {
            src,
            out: String::new(),
            notes: Vec::new(),
            problems: Vec::new(),
            scopes: vec![Vec::new()],
            dots: vec![Tx::new("", Prec::Atom, Ty::Root)],
            loops: 0,
            taken,
            avoid,
            context_refs: HashSet::new(),
            user_names: HashSet::new(),
            at: 0,
        }
    }

    pub(super) fn note(&mut self, message: impl Into<String>) {
        let p = problem_at(self.src, self.at, message);
        if !self.notes.contains(&p) {
            self.notes.push(p);
        }
    }

    pub(super) fn refuse(&mut self, at: usize, message: String) {
        self.problems.push(problem_at(self.src, at, message));
    }

    /// Text between actions. A `{%` or `{#` in it would open a Tera tag,
    /// and a `{` that ends it would make `{{{` with the next tag: they are
    /// written as Tera strings.
    pub(super) fn text(&mut self, text: &str) {
        let mut rest = text;
        while let Some(k) = rest.find(['{']) {
            let next = rest.as_bytes().get(k + 1).copied();
            match next {
                Some(b'%') | Some(b'#') => {
                    self.out.push_str(&rest[..k]);
                    self.out
                        .push_str(&format!("{{{{ \"{{{}\" }}}}", next.unwrap_or(b'%') as char));
                    rest = &rest[k + 2..];
                }
                None => {
                    self.out.push_str(&rest[..k]);
                    self.out.push_str("{{ \"{\" }}");
                    rest = &rest[k + 1..];
                }
                _ => {
                    self.out.push_str(&rest[..=k]);
                    rest = &rest[k + 1..];
                }
            }
        }
        self.out.push_str(rest);
    }

    /// Tags standing for one Go action: its left trim on the first, its
    /// right trim on the last.
    pub(super) fn tags(&mut self, trim: Trim, tags: &[String]) {
        let n = tags.len();
        for (k, t) in tags.iter().enumerate() {
            let (open, close) = if t.starts_with('=') {
                ("{{", "}}")
            } else if t.starts_with('#') {
                ("{#", "#}")
            } else {
                ("{%", "%}")
            };
            let inner = t.trim_start_matches(['=', '#']);
            self.out.push_str(open);
            self.out
                .push_str(if k == 0 && trim.left { "- " } else { " " });
            self.out.push_str(inner);
            self.out
                .push_str(if k + 1 == n && trim.right { " -" } else { " " });
            self.out.push_str(close);
        }
    }

    pub(super) fn nodes(&mut self, nodes: &[Node]) {
        for n in nodes {
            match n {
                Node::Text(t) => self.text(t),
                Node::Comment { text, trim } => {
                    let clean = text.replace("#}", "# }");
                    let inner = if clean.trim().is_empty() {
                        "#".to_owned()
                    } else {
                        format!("#{}", clean.trim())
                    };
                    self.tags(*trim, &[inner]);
                }
                Node::Action { at, pipe, trim } => {
                    self.at = *at;
                    match self.action(pipe) {
                        Ok(t) => self.tags(*trim, &[t]),
                        Err(m) => self.refuse(*at, m),
                    }
                }
                Node::Jump { at, word, trim } => {
                    if self.loops == 0 {
                        self.refuse(*at, format!("{word} outside a range"));
                    } else {
                        self.tags(*trim, &[word.to_string()]);
                    }
                }
                Node::If {
                    branches,
                    otherwise,
                    end,
                } => self.if_(branches, otherwise, *end),
                Node::Range {
                    branch,
                    otherwise,
                    end,
                } => self.range(branch, otherwise, *end),
                Node::With {
                    branch,
                    otherwise,
                    end,
                } => self.with(branch, otherwise, *end),
            }
        }
    }

    pub(super) fn otherwise(&mut self, otherwise: &Option<(usize, Trim, Vec<Node>)>) {
        if let Some((_, trim, body)) = otherwise {
            self.tags(*trim, &["else".into()]);
            self.scopes.push(Vec::new());
            self.nodes(body);
            self.scopes.pop();
        }
    }

    pub(super) fn if_(
        &mut self,
        branches: &[Branch],
        otherwise: &Option<(usize, Trim, Vec<Node>)>,
        end: Trim,
    ) {
        self.scopes.push(Vec::new());
        for (k, b) in branches.iter().enumerate() {
            self.at = b.at;
            let word = if k == 0 { "if" } else { "elif" };
            let head = if b.pipe.vars.is_empty() {
                self.cond(&b.pipe.expr).map(|c| vec![format!("{word} {c}")])
            } else if k == 0 && !b.pipe.assign && b.pipe.vars.len() == 1 {
                self.expr(&b.pipe.expr).map(|e| {
                    let name = self.declare(&b.pipe.vars[0], e.ty);
                    vec![format!("set {name} = {}", e.s), format!("if {name}")]
                })
            } else {
                Err("a variable in `else if` has no Tera form: declare it before the if".into())
            };
            match head {
                Ok(tags) => self.tags(b.trim, &tags),
                Err(m) => self.refuse(b.at, m),
            }
            self.scopes.push(Vec::new());
            self.nodes(&b.body);
            self.scopes.pop();
        }
        self.otherwise(otherwise);
        self.scopes.pop();
        self.tags(end, &["endif".into()]);
    }

    pub(super) fn with(
        &mut self,
        b: &Branch,
        otherwise: &Option<(usize, Trim, Vec<Node>)>,
        end: Trim,
    ) {
        self.at = b.at;
        self.scopes.push(Vec::new());
        let head = self.expr(&b.pipe.expr).and_then(|e| {
            if b.pipe.assign || b.pipe.vars.len() > 1 {
                return Err("`with` declares one variable with :=".into());
            }
            // A plain name or path is used as is; anything else is computed
            // once into a variable.
            if b.pipe.vars.is_empty() && e.p == Prec::Atom && !e.s.contains('(') {
                let tag = format!("if {}", e.s);
                return Ok((vec![tag], e));
            }
            let name = match b.pipe.vars.first() {
                Some(v) => self.declare(v, e.ty),
                None => self.generated("it"),
            };
            let dot = Tx::new(name.clone(), Prec::Atom, e.ty);
            Ok((
                vec![format!("set {name} = {}", e.s), format!("if {name}")],
                dot,
            ))
        });
        let dot = match head {
            Ok((tags, dot)) => {
                self.tags(b.trim, &tags);
                dot
            }
            Err(m) => {
                self.refuse(b.at, m);
                Tx::new("", Prec::Atom, Ty::Unknown)
            }
        };
        self.dots.push(dot);
        self.scopes.push(Vec::new());
        self.nodes(&b.body);
        self.scopes.pop();
        self.dots.pop();
        self.otherwise(otherwise);
        self.scopes.pop();
        self.tags(end, &["endif".into()]);
    }

    pub(super) fn range(
        &mut self,
        b: &Branch,
        otherwise: &Option<(usize, Trim, Vec<Node>)>,
        end: Trim,
    ) {
        self.at = b.at;
        self.scopes.push(Vec::new());
        self.loops += 1;
        let head = self.expr(&b.pipe.expr).and_then(|e| {
            if b.pipe.assign {
                return Err("range declares its variables with :=".into());
            }
            let (key_ty, elem_ty, key_base, elem_base) = match e.ty {
                Ty::Srvs => (None, Ty::Srv, "", "s"),
                Ty::StrList => (None, Ty::Str, "", "item"),
                Ty::Domains => {
                    self.note(
                        "Go ranges over a map in sorted key order, srvd over `domains` \
                         in config order: list the domains in srvd.toml sorted to keep the output",
                    );
                    (Some(Ty::Str), Ty::Srvs, "name", "recs")
                }
                Ty::StrListMap => (Some(Ty::Str), Ty::StrList, "ifname", "addrs"),
                Ty::StrMap => (Some(Ty::Str), Ty::Str, "ifname", "addr"),
                Ty::Unknown => (None, Ty::Unknown, "", "item"),
                Ty::Int | Ty::Str | Ty::Bool | Ty::Root | Ty::Srv | Ty::Header => {
                    return Err(format!("cannot range over {}", what(e.ty)));
                }
            };
            let (key_var, elem_var) = match b.pipe.vars.as_slice() {
                [] => (None, None),
                [elem] => (None, Some(elem)),
                [key, elem] => (Some(key), Some(elem)),
                _ => return Err("too many range variables".into()),
            };
            let elem = match elem_var {
                Some(v) => self.declare(v, elem_ty),
                None => self.generated(elem_base),
            };
            let mut tags = Vec::new();
            match key_ty {
                Some(kt) => {
                    let key = match key_var {
                        Some(v) => self.declare(v, kt),
                        None => self.generated(key_base),
                    };
                    tags.push(format!("for {key}, {elem} in {}", e.s));
                }
                None => {
                    tags.push(format!("for {elem} in {}", e.s));
                    if let Some(k) = key_var {
                        let key = self.declare(k, Ty::Int);
                        tags.push(format!("set {key} = loop.index0"));
                    }
                }
            }
            Ok((tags, Tx::new(elem, Prec::Atom, elem_ty)))
        });
        let dot = match head {
            Ok((tags, dot)) => {
                self.tags(b.trim, &tags);
                dot
            }
            Err(m) => {
                self.refuse(b.at, m);
                Tx::new("", Prec::Atom, Ty::Unknown)
            }
        };
        self.dots.push(dot);
        self.nodes(&b.body);
        self.dots.pop();
        self.loops -= 1;
        self.scopes.pop();
        self.otherwise(otherwise);
        self.tags(end, &["endfor".into()]);
    }

    /// `{{ pipeline }}` or `{{ $x := pipeline }}` as the inside of a tag
    /// (`=...` for an output).
    pub(super) fn action(&mut self, pipe: &Pipeline) -> R<String> {
        let e = self.expr(&pipe.expr)?;
        match pipe.vars.as_slice() {
            [] => {
                if matches!(
                    e.ty,
                    Ty::Root | Ty::Srvs | Ty::Srv | Ty::Header | Ty::Domains
                ) {
                    return Err(format!(
                        "the Go srvd printed {} in Go's own format; print the fields \
                         (target, port, priority, weight, ttl) instead",
                        what(e.ty)
                    ));
                }
                Ok(format!("={}", e.s))
            }
            [v] if !pipe.assign => {
                let name = self.declare(v, e.ty);
                Ok(format!("set {name} = {}", e.s))
            }
            [v] => {
                let var = self
                    .lookup(v)
                    .ok_or_else(|| format!("undefined variable ${v}"))?;
                let (tera, loops) = (var.tera.clone(), var.loops);
                if loops == self.loops {
                    Ok(format!("set {tera} = {}", e.s))
                } else if loops == 0 {
                    Ok(format!("set_global {tera} = {}", e.s))
                } else {
                    Err(format!(
                        "Tera cannot assign ${v} of an outer range from an inner one: \
                         compute the value before the loops"
                    ))
                }
            }
            _ => Err("two variables are declared only by range".into()),
        }
    }

    pub(super) fn lookup(&self, go: &str) -> Option<&Var> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .find(|v| v.go == go)
    }

    /// The Tera name of a Go variable declared in the current scope.
    pub(super) fn declare(&mut self, go: &str, ty: Ty) -> String {
        let base = if RESERVED.contains(&go) || self.avoid.contains(go) || !is_tera_ident(go) {
            let ascii: String = go
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            format!("{ascii}_")
        } else {
            go.to_owned()
        };
        let current = self.scopes.last().expect("a scope");
        let name = if let Some(v) = current.iter().rev().find(|v| v.go == go) {
            v.tera.clone()
        } else {
            let visible: HashSet<&str> = self
                .scopes
                .iter()
                .flat_map(|s| s.iter().map(|v| v.tera.as_str()))
                .collect();
            let mut name = base.clone();
            let mut n = 2;
            while visible.contains(name.as_str()) {
                name = format!("{base}{n}");
                n += 1;
            }
            name
        };
        self.user_names.insert(name.clone());
        self.taken.insert(name.clone());
        let loops = self.loops;
        self.scopes.last_mut().expect("a scope").push(Var {
            go: go.to_owned(),
            tera: name.clone(),
            ty,
            loops,
        });
        name
    }

    /// A fresh name for a value the Go template left unnamed (a range
    /// element, a with's value).
    pub(super) fn generated(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut n = 2;
        while self.taken.contains(&name) {
            name = format!("{base}{n}");
            n += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    pub(super) fn context(&mut self, name: &str) -> R<Tx> {
        let ty = match name {
            "srvs" => Ty::Srvs,
            "domains" => Ty::Domains,
            _ => {
                return Err(format!(
                    "the Go srvd gave templates .srvs (first release) and .domains, not .{name}"
                ));
            }
        };
        self.context_refs.insert(name.to_owned());
        Ok(Tx::new(name, Prec::Atom, ty))
    }

    /// An expression in a condition: `and`/`or` become Tera's operators.
    pub(super) fn cond(&mut self, e: &Expr) -> R<String> {
        if let Expr::Call(name, args) = e {
            if (name == "and" || name == "or") && args.len() >= 2 {
                let parts = args
                    .iter()
                    .map(|a| self.cond(a).map(|c| paren_op(&c)))
                    .collect::<R<Vec<_>>>()?;
                return Ok(parts.join(&format!(" {name} ")));
            }
            if name == "not" && args.len() == 1 {
                return Ok(format!("not {}", paren_op(&self.cond(&args[0])?)));
            }
        }
        Ok(self.expr(e)?.s)
    }

    pub(super) fn expr(&mut self, e: &Expr) -> R<Tx> {
        match e {
            Expr::Dot => {
                let d = self.dots.last().expect("a dot").clone();
                if d.ty == Ty::Root {
                    return Err(
                        "`.` is the whole of the Go srvd's data; use .srvs or .domains".into(),
                    );
                }
                Ok(d)
            }
            Expr::Field(base, name) => {
                if matches!(**base, Expr::Dot) && self.dots.last().is_some_and(|d| d.ty == Ty::Root)
                {
                    return self.context(name);
                }
                if let Expr::Var(v) = &**base {
                    if v.is_empty() {
                        return self.context(name);
                    }
                }
                let b = self.expr(base)?;
                field(&b, name)
            }
            Expr::Var(v) => {
                if v.is_empty() {
                    return Err(
                        "`$` is the whole of the Go srvd's data; use $.srvs or $.domains".into(),
                    );
                }
                if let Some(var) = self.lookup(v) {
                    return Ok(Tx::new(var.tera.clone(), Prec::Atom, var.ty));
                }
                // sigil declares a variable for each value of the data.
                if v == "srvs" || v == "domains" {
                    return self.context(v);
                }
                Err(format!("undefined variable ${v}"))
            }
            Expr::Str(s) => Ok(Tx::new(tera_str(s), Prec::Atom, Ty::Str)),
            Expr::Num(n) => number(n)
                .map(|n| {
                    let p = if n.starts_with('-') {
                        Prec::Op
                    } else {
                        Prec::Atom
                    };
                    Tx::new(n, p, Ty::Int)
                })
                .ok_or_else(|| format!("{n} is not a number Tera reads")),
            Expr::Bool(b) => Ok(Tx::new(b.to_string(), Prec::Atom, Ty::Bool)),
            Expr::Nil => Err("nil has no Tera form: test the value itself".into()),
            Expr::Call(name, args) => self.call(name, args),
        }
    }
}
