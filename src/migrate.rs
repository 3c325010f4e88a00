//! `srvd migrate-template`: converts a Go srvd template (Go text/template)
//! into the Tera template srvd renders to the same bytes.
//!
//! The Go srvd (github.com/winebarrel/srvd) ran its templates through
//! gliderlabs/sigil 0.4, which is Go's text/template plus string helpers,
//! predefined `$srvs`/`$domains` variables and the `\}}` line join; records
//! were miekg/dns `SRV` structs (`.Target` keeps the trailing dot, as srvd's
//! `target` does). The first release gave templates `.srvs`, later ones
//! `.domains` and `fetchsrvs`.
//!
//! The conversion is lexical: each Go action becomes Tera tags at the same
//! place, and the text between actions is kept byte for byte. Neither Go nor
//! Tera removes the newline after a tag, so the blank lines come out as the
//! Go srvd wrote them; Go's `{{-`/`-}}` become Tera's `{%-`/`-%}` where both
//! trim the same characters, and are applied to the text here where they
//! would not (Go trims only space, tab, CR and LF; Tera any Unicode space).
//!
//! What has no Tera equivalent (reading files, running commands, named
//! templates, printf widths...) is refused with the line and column of the
//! action and what to write instead; what converts with a visible
//! difference (a shuffle's order, the order of a map) comes with a note.

use std::collections::HashSet;
use std::fmt;

/// A converted template.
#[derive(Debug)]
pub struct Converted {
    /// The Tera template.
    pub text: String,
    /// Where srvd's output may differ from the Go srvd's, in source order.
    pub notes: Vec<Problem>,
}

/// A place in the Go template and what is wrong or different there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the action in the Go template.
    pub line: usize,
    /// 1-based column (in characters) of the action's `{{`.
    pub column: usize,
    /// The action as written (its first line, shortened).
    pub action: String,
    /// Why, and what to write instead.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: `{}`: {}",
            self.line, self.column, self.action, self.message
        )
    }
}

/// Converts the text of a Go srvd template. Errors: every action that
/// cannot be converted, in source order (a structural error such as an
/// unclosed action or a missing `{{ end }}` stops at the first).
pub fn convert(src: &str) -> Result<Converted, Vec<Problem>> {
    let pieces = lex(src).map_err(|p| vec![p])?;
    let pieces = apply_trims(pieces);
    let mut parser = Parser {
        src,
        pieces,
        next: 0,
    };
    let (nodes, end) = parser.list().map_err(|p| vec![p])?;
    if let Some(stray) = end {
        return Err(vec![parser.problem(
            stray.at,
            format!(
                "`{{{{ {} }}}}` without an open if, range or with",
                stray.word
            ),
        )]);
    }
    let go_vars = collect_vars(&nodes);
    // A Go variable named like a context value (`$srvs := ...`) keeps its
    // name unless the template also reads that context value; then it is
    // renamed, which needs a second pass.
    let mut avoid = HashSet::new();
    loop {
        let mut e = Emitter::new(src, &go_vars, &avoid);
        e.nodes(&nodes);
        let clash: HashSet<String> = e
            .context_refs
            .intersection(&e.user_names)
            .cloned()
            .collect();
        if !clash.is_empty() && !clash.is_subset(&avoid) {
            avoid.extend(clash);
            continue;
        }
        return if e.problems.is_empty() {
            Ok(Converted {
                text: e.out,
                notes: e.notes,
            })
        } else {
            Err(e.problems)
        };
    }
}

// ---------------------------------------------------------------- lexing

#[derive(Debug, Clone, Copy, Default)]
struct Trim {
    left: bool,
    right: bool,
}

#[derive(Debug)]
enum Piece {
    Text(String),
    Action {
        /// Offset of `{{`.
        at: usize,
        body: String,
        trim: Trim,
        /// The text of a `{{/* */}}` comment.
        comment: Option<String>,
    },
}

fn is_go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Splits the template into text and actions, as Go's text/template lexer
/// does (strings and raw strings may hold `}}`).
fn lex(src: &str) -> Result<Vec<Piece>, Problem> {
    let mut pieces = Vec::new();
    let mut pos = 0;
    while let Some(found) = src[pos..].find("{{") {
        let at = pos + found;
        pieces.push(Piece::Text(src[pos..at].to_owned()));
        let mut i = at + 2;
        let mut trim = Trim::default();
        let rest = &src[i..];
        if rest.starts_with('-') && rest[1..].starts_with(is_go_space) {
            trim.left = true;
            i += 1;
        }
        let after_ws = i + src[i..].len() - src[i..].trim_start_matches(is_go_space).len();
        if src[after_ws..].starts_with("/*") {
            let Some(end) = src[after_ws + 2..].find("*/") else {
                return Err(problem_at(src, at, "the comment is not closed with */"));
            };
            let text_end = after_ws + 2 + end;
            let mut j = text_end + 2;
            if src[j..].starts_with(" -}}") {
                trim.right = true;
                j += 2;
            }
            if !src[j..].starts_with("}}") {
                return Err(problem_at(
                    src,
                    at,
                    "a comment must end with */}} (text/template's rule)",
                ));
            }
            pieces.push(Piece::Action {
                at,
                body: String::new(),
                trim,
                comment: Some(src[after_ws + 2..text_end].to_owned()),
            });
            pos = j + 2;
            continue;
        }
        let close = find_close(src, i).ok_or_else(|| {
            problem_at(src, at, "the action is not closed with }} (text/template)")
        })?;
        let mut body_end = close;
        let b = src.as_bytes();
        if close >= i + 2 && b[close - 1] == b'-' && is_go_space(b[close - 2] as char) {
            trim.right = true;
            body_end = close - 1;
        }
        pos = close + 2;
        // sigil joins `\}}` + newline + `{{`: the newline is not output.
        if body_end > i && b[body_end - 1] == b'\\' && src[close..].starts_with("}}\n{{") {
            body_end -= 1;
            pos = close + 3;
        }
        pieces.push(Piece::Action {
            at,
            body: src[i..body_end].to_owned(),
            trim,
            comment: None,
        });
    }
    pieces.push(Piece::Text(src[pos..].to_owned()));
    Ok(pieces)
}

/// The offset of the `}}` closing the action whose body starts at `from`.
fn find_close(src: &str, from: usize) -> Option<usize> {
    let b = src.as_bytes();
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' => {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    if b[i.min(b.len() - 1)] == b'\n' {
                        return None;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Applies Go's trim markers to the neighbouring text where Tera's markers
/// would trim something else, and drops the marker there.
fn apply_trims(mut pieces: Vec<Piece>) -> Vec<Piece> {
    for k in 0..pieces.len() {
        let (before, rest) = pieces.split_at_mut(k);
        let (current, after) = rest.split_first_mut().expect("k < len");
        let Piece::Action { trim, .. } = current else {
            continue;
        };
        if trim.left {
            if let Some(Piece::Text(text)) = before.last_mut() {
                let go = text.trim_end_matches(is_go_space);
                if go.len() != text.trim_end().len() {
                    *text = go.to_owned();
                    trim.left = false;
                }
            }
        }
        if trim.right {
            if let Some(Piece::Text(text)) = after.first_mut() {
                let go = text.trim_start_matches(is_go_space);
                if go.len() != text.trim_start().len() {
                    *text = go.to_owned();
                    trim.right = false;
                }
            }
        }
    }
    pieces
}

fn line_col(src: &str, at: usize) -> (usize, usize) {
    let before = &src[..at.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// The action starting at `at`, as written: its first line, shortened.
fn action_text(src: &str, at: usize) -> String {
    let rest = &src[at..];
    let end = rest
        .find("}}")
        .map(|e| e + 2)
        .unwrap_or(rest.len())
        .min(rest.find('\n').unwrap_or(rest.len()));
    let text = &rest[..end];
    if text.chars().count() > 70 {
        let cut: String = text.chars().take(67).collect();
        format!("{cut}...")
    } else {
        text.to_owned()
    }
}

fn problem_at(src: &str, at: usize, message: impl Into<String>) -> Problem {
    let (line, column) = line_col(src, at);
    Problem {
        line,
        column,
        action: action_text(src, at),
        message: message.into(),
    }
}

// ------------------------------------------------------- action bodies

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Dot,
    Field(String),
    Var(String),
    Ident(String),
    Str(String),
    Num(String),
    LParen,
    RParen,
    Pipe,
    Comma,
    Declare,
    Assign,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Whether white space comes right before it: `$x.A` is one operand,
    /// `$x .A` two.
    spaced: bool,
}

fn tokenize(body: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    let mut spaced = true;
    let ident = |chars: &[char], mut j: usize| {
        let s = j;
        while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
            j += 1;
        }
        (chars[s..j].iter().collect::<String>(), j)
    };
    while i < chars.len() {
        let c = chars[i];
        if is_go_space(c) {
            spaced = true;
            i += 1;
            continue;
        }
        let tok = match c {
            '.' if chars
                .get(i + 1)
                .is_some_and(|c| c.is_alphabetic() || *c == '_') =>
            {
                let (name, j) = ident(&chars, i + 1);
                i = j;
                Tok::Field(name)
            }
            '.' if chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) => {
                let s = i;
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                Tok::Num(chars[s..i].iter().collect())
            }
            '.' => {
                i += 1;
                Tok::Dot
            }
            '$' => {
                let (name, j) = ident(&chars, i + 1);
                i = j;
                Tok::Var(name)
            }
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            '|' => {
                i += 1;
                Tok::Pipe
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                i += 2;
                Tok::Declare
            }
            '=' => {
                i += 1;
                Tok::Assign
            }
            '"' => {
                let s = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                let lit: String = chars[s..i.min(chars.len())].iter().collect();
                Tok::Str(unquote(&lit).ok_or_else(|| format!("bad string {lit}"))?)
            }
            '`' => {
                let s = i + 1;
                i = s;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                let raw: String = chars[s..i].iter().filter(|c| **c != '\r').collect();
                i += 1;
                Tok::Str(raw)
            }
            '\'' => {
                let s = i;
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                let lit: String = chars[s..i.min(chars.len())].iter().collect();
                let inner = format!("\"{}\"", &lit[1..lit.len().saturating_sub(1)]);
                let ch = unquote(&inner)
                    .and_then(|s| s.chars().next())
                    .ok_or_else(|| format!("bad character constant {lit}"))?;
                Tok::Num((ch as u32).to_string())
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+')
                    && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let s = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_alphanumeric()
                        || chars[i] == '.'
                        || chars[i] == '_'
                        || ((chars[i] == '-' || chars[i] == '+')
                            && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                Tok::Num(chars[s..i].iter().collect())
            }
            c if c.is_alphabetic() || c == '_' => {
                let (name, j) = ident(&chars, i);
                i = j;
                Tok::Ident(name)
            }
            other => return Err(format!("unexpected {other:?}")),
        };
        out.push(Token { tok, spaced });
        spaced = false;
    }
    Ok(out)
}

/// A Go interpreted string literal (with its quotes) as its value.
fn unquote(lit: &str) -> Option<String> {
    let inner = lit.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut it = inner.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = it.next()?;
        let hex = |it: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| {
            let s: String = (0..n).filter_map(|_| it.next()).collect();
            u32::from_str_radix(&s, 16).ok().and_then(char::from_u32)
        };
        out.push(match e {
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0b',
            '\\' | '"' | '\'' => e,
            'x' => hex(&mut it, 2)?,
            'u' => hex(&mut it, 4)?,
            'U' => hex(&mut it, 8)?,
            '0'..='7' => {
                let s: String = std::iter::once(e)
                    .chain((0..2).filter_map(|_| it.next()))
                    .collect();
                char::from_u32(u32::from_str_radix(&s, 8).ok()?)?
            }
            _ => return None,
        });
    }
    Some(out)
}

/// A Go number literal as a Tera literal.
fn number(text: &str) -> Option<String> {
    let t = text.replace('_', "");
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(&t)),
    };
    let lower = digits.to_ascii_lowercase();
    let value = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(bin) = lower.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|c| c.is_ascii_digit())
    {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else {
        lower.parse::<i64>().ok()
    };
    match value {
        Some(v) => Some(if neg { (-v).to_string() } else { v.to_string() }),
        None => lower
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| format!("{}{f:?}", if neg { "-" } else { "" })),
    }
}

// ------------------------------------------------------------- parsing

#[derive(Debug, Clone)]
enum Expr {
    Dot,
    Field(Box<Expr>, String),
    Var(String),
    Str(String),
    Num(String),
    Bool(bool),
    Nil,
    Call(String, Vec<Expr>),
}

#[derive(Debug, Clone)]
struct Pipeline {
    /// Variables declared (`:=`) or assigned (`=`), without `$`.
    vars: Vec<String>,
    assign: bool,
    expr: Expr,
}

#[derive(Debug)]
enum Node {
    Text(String),
    Comment {
        text: String,
        trim: Trim,
    },
    /// `{{ pipeline }}`: output, or a declaration that outputs nothing.
    Action {
        at: usize,
        pipe: Pipeline,
        trim: Trim,
    },
    If {
        branches: Vec<Branch>,
        otherwise: Option<(usize, Trim, Vec<Node>)>,
        end: Trim,
    },
    Range {
        branch: Branch,
        otherwise: Option<(usize, Trim, Vec<Node>)>,
        end: Trim,
    },
    With {
        branch: Branch,
        otherwise: Option<(usize, Trim, Vec<Node>)>,
        end: Trim,
    },
    Jump {
        at: usize,
        word: &'static str,
        trim: Trim,
    },
}

#[derive(Debug)]
struct Branch {
    at: usize,
    pipe: Pipeline,
    trim: Trim,
    body: Vec<Node>,
}

/// How a list of nodes ended: `{{ else ... }}` or `{{ end }}`.
struct Stop {
    at: usize,
    word: &'static str,
    trim: Trim,
    /// The pipeline of `{{ else if p }}`.
    else_if: Option<Pipeline>,
}

struct Parser<'a> {
    src: &'a str,
    pieces: Vec<Piece>,
    next: usize,
}

impl Parser<'_> {
    fn problem(&self, at: usize, message: impl Into<String>) -> Problem {
        problem_at(self.src, at, message)
    }

    /// Nodes up to `{{ else }}`, `{{ end }}` or the end of the template.
    fn list(&mut self) -> Result<(Vec<Node>, Option<Stop>), Problem> {
        let mut nodes = Vec::new();
        while self.next < self.pieces.len() {
            let piece = std::mem::replace(&mut self.pieces[self.next], Piece::Text(String::new()));
            self.next += 1;
            let (at, body, trim) = match piece {
                Piece::Text(t) => {
                    if !t.is_empty() {
                        nodes.push(Node::Text(t));
                    }
                    continue;
                }
                Piece::Action {
                    comment: Some(text),
                    trim,
                    ..
                } => {
                    nodes.push(Node::Comment { text, trim });
                    continue;
                }
                Piece::Action { at, body, trim, .. } => (at, body, trim),
            };
            let toks = tokenize(&body)
                .map_err(|e| self.problem(at, format!("not text/template syntax: {e}")))?;
            let keyword = match toks.first() {
                Some(Token {
                    tok: Tok::Ident(w), ..
                }) => w.as_str(),
                None => return Err(self.problem(at, "an empty action")),
                _ => "",
            };
            match keyword {
                "if" | "range" | "with" => {
                    let pipe = self.pipeline(at, &toks[1..])?;
                    let (body, stop) = self.list()?;
                    let mut branches = vec![Branch {
                        at,
                        pipe,
                        trim,
                        body,
                    }];
                    let mut stop = self.expect_stop(at, keyword, stop)?;
                    while let Some(p) = stop.else_if.take() {
                        if keyword != "if" {
                            return Err(self.problem(
                                stop.at,
                                format!("`else if` inside `{keyword}`: close the {keyword} and open an if"),
                            ));
                        }
                        let (body, next) = self.list()?;
                        branches.push(Branch {
                            at: stop.at,
                            pipe: p,
                            trim: stop.trim,
                            body,
                        });
                        stop = self.expect_stop(at, keyword, next)?;
                    }
                    let mut otherwise = None;
                    if stop.word == "else" {
                        let (body, next) = self.list()?;
                        otherwise = Some((stop.at, stop.trim, body));
                        stop = self.expect_stop(at, keyword, next)?;
                        if stop.word != "end" {
                            return Err(self.problem(stop.at, "a second else"));
                        }
                    }
                    let end = stop.trim;
                    nodes.push(match keyword {
                        "if" => Node::If {
                            branches,
                            otherwise,
                            end,
                        },
                        "range" => Node::Range {
                            branch: branches.remove(0),
                            otherwise,
                            end,
                        },
                        _ => Node::With {
                            branch: branches.remove(0),
                            otherwise,
                            end,
                        },
                    });
                }
                "else" => {
                    let else_if = match toks.get(1).map(|t| &t.tok) {
                        None => None,
                        Some(Tok::Ident(w)) if w == "if" => Some(self.pipeline(at, &toks[2..])?),
                        Some(_) => {
                            return Err(self.problem(
                                at,
                                "only `else` and `else if` are text/template of the Go srvd's time",
                            ));
                        }
                    };
                    return Ok((
                        nodes,
                        Some(Stop {
                            at,
                            word: "else",
                            trim,
                            else_if,
                        }),
                    ));
                }
                "end" => {
                    return Ok((
                        nodes,
                        Some(Stop {
                            at,
                            word: "end",
                            trim,
                            else_if: None,
                        }),
                    ));
                }
                "break" | "continue" => nodes.push(Node::Jump {
                    at,
                    word: if keyword == "break" {
                        "break"
                    } else {
                        "continue"
                    },
                    trim,
                }),
                "define" | "template" | "block" => {
                    return Err(self.problem(
                        at,
                        "named templates have no equivalent: a srvd template is one file; \
                         write the named template's text where it is used",
                    ));
                }
                _ => {
                    let pipe = self.pipeline(at, &toks)?;
                    nodes.push(Node::Action { at, pipe, trim });
                }
            }
        }
        Ok((nodes, None))
    }

    fn expect_stop(&self, at: usize, keyword: &str, stop: Option<Stop>) -> Result<Stop, Problem> {
        stop.ok_or_else(|| self.problem(at, format!("this {keyword} has no {{{{ end }}}}")))
    }

    fn pipeline(&self, at: usize, toks: &[Token]) -> Result<Pipeline, Problem> {
        let err = |m: &str| self.problem(at, m.to_owned());
        let mut vars = Vec::new();
        let mut assign = false;
        let mut rest = toks;
        // `$x :=`, `$x =`, `$i, $e :=`
        let decl_end = toks
            .iter()
            .position(|t| matches!(t.tok, Tok::Declare | Tok::Assign));
        if let Some(d) = decl_end {
            let head = &toks[..d];
            let ok = head.iter().enumerate().all(|(k, t)| {
                if k % 2 == 0 {
                    matches!(t.tok, Tok::Var(_))
                } else {
                    t.tok == Tok::Comma
                }
            });
            if ok && !head.is_empty() && head.len() % 2 == 1 {
                for t in head {
                    if let Tok::Var(v) = &t.tok {
                        vars.push(v.clone());
                    }
                }
                assign = toks[d].tok == Tok::Assign;
                rest = &toks[d + 1..];
            }
        }
        if vars.len() > 2 {
            return Err(err("too many variables in a declaration"));
        }
        let mut p = 0;
        let expr = self.pipe_expr(at, rest, &mut p)?;
        if p != rest.len() {
            return Err(err("unexpected text after the pipeline"));
        }
        Ok(Pipeline { vars, assign, expr })
    }

    /// `command ( '|' command )*`, with the pipe's value as the last argument
    /// of the next command (text/template's rule).
    fn pipe_expr(&self, at: usize, toks: &[Token], p: &mut usize) -> Result<Expr, Problem> {
        let mut value = self.command(at, toks, p, None)?;
        while *p < toks.len() && toks[*p].tok == Tok::Pipe {
            *p += 1;
            value = self.command(at, toks, p, Some(value))?;
        }
        Ok(value)
    }

    fn command(
        &self,
        at: usize,
        toks: &[Token],
        p: &mut usize,
        piped: Option<Expr>,
    ) -> Result<Expr, Problem> {
        let mut operands = Vec::new();
        let mut first_ident = None;
        while *p < toks.len() && !matches!(toks[*p].tok, Tok::Pipe | Tok::RParen) {
            if operands.is_empty() && first_ident.is_none() {
                if let Tok::Ident(name) = &toks[*p].tok {
                    if !matches!(name.as_str(), "true" | "false" | "nil") {
                        first_ident = Some(name.clone());
                        *p += 1;
                        continue;
                    }
                }
            }
            operands.push(self.operand(at, toks, p)?);
        }
        if let Some(v) = piped {
            operands.push(v);
        }
        match first_ident {
            Some(name) => Ok(Expr::Call(name, operands)),
            None if operands.len() == 1 => Ok(operands.pop().expect("one operand")),
            None if operands.is_empty() => Err(self.problem(at, "a missing value")),
            None => Err(self.problem(
                at,
                "only a function takes arguments (text/template: can't give argument to non-function)",
            )),
        }
    }

    fn operand(&self, at: usize, toks: &[Token], p: &mut usize) -> Result<Expr, Problem> {
        let t = toks[*p].clone();
        *p += 1;
        let mut e = match t.tok {
            Tok::Dot => Expr::Dot,
            Tok::Field(f) => Expr::Field(Box::new(Expr::Dot), f),
            Tok::Var(v) => Expr::Var(v),
            Tok::Str(s) => Expr::Str(s),
            Tok::Num(n) => Expr::Num(n),
            Tok::Ident(w) if w == "true" || w == "false" => Expr::Bool(w == "true"),
            Tok::Ident(w) if w == "nil" => Expr::Nil,
            Tok::Ident(w) => Expr::Call(w, Vec::new()),
            Tok::LParen => {
                let inner = self.pipe_expr(at, toks, p)?;
                if toks.get(*p).map(|t| &t.tok) != Some(&Tok::RParen) {
                    return Err(self.problem(at, "an unclosed parenthesis"));
                }
                *p += 1;
                inner
            }
            other => return Err(self.problem(at, format!("unexpected {other:?}"))),
        };
        while let Some(Token {
            tok: Tok::Field(f),
            spaced: false,
        }) = toks.get(*p)
        {
            e = Expr::Field(Box::new(e), f.clone());
            *p += 1;
        }
        Ok(e)
    }
}

/// Every variable name the template declares, so that generated names
/// never take one.
fn collect_vars(nodes: &[Node]) -> HashSet<String> {
    fn walk(nodes: &[Node], out: &mut HashSet<String>) {
        for n in nodes {
            match n {
                Node::Action { pipe, .. } => out.extend(pipe.vars.iter().cloned()),
                Node::If {
                    branches,
                    otherwise,
                    ..
                } => {
                    for b in branches {
                        out.extend(b.pipe.vars.iter().cloned());
                        walk(&b.body, out);
                    }
                    if let Some((_, _, body)) = otherwise {
                        walk(body, out);
                    }
                }
                Node::Range {
                    branch, otherwise, ..
                }
                | Node::With {
                    branch, otherwise, ..
                } => {
                    out.extend(branch.pipe.vars.iter().cloned());
                    walk(&branch.body, out);
                    if let Some((_, _, body)) = otherwise {
                        walk(body, out);
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = HashSet::new();
    walk(nodes, &mut out);
    out
}

// ------------------------------------------------------------- emitting

/// What a value is, as far as the conversion needs to know: records get
/// their fields renamed, maps iterate with two names, lists with one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
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
enum Prec {
    Op,
    Filter,
    Atom,
}

#[derive(Debug, Clone)]
struct Tx {
    s: String,
    p: Prec,
    ty: Ty,
}

impl Tx {
    fn new(s: impl Into<String>, p: Prec, ty: Ty) -> Self {
        Tx { s: s.into(), p, ty }
    }
    fn at_least(&self, p: Prec) -> String {
        if self.p >= p {
            self.s.clone()
        } else {
            format!("({})", self.s)
        }
    }
    fn filter(&self, f: &str, ty: Ty) -> Tx {
        Tx::new(
            format!("{} | {f}", self.at_least(Prec::Filter)),
            Prec::Filter,
            ty,
        )
    }
    /// `base.name` or, on a parenthesised base, `(base)["name"]` (Tera 2
    /// takes no attribute after a parenthesis).
    fn attr(&self, name: &str, ty: Ty) -> Tx {
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

/// Names Tera reserves or parses as keywords; a Go variable with one of
/// these names gets a trailing underscore.
const RESERVED: &[&str] = &[
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
const CONTEXT: &[&str] = &["srvs", "domains", "hostname"];

fn is_tera_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A Tera string literal with this value.
fn tera_str(s: &str) -> String {
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

struct Var {
    go: String,
    tera: String,
    ty: Ty,
    /// How many loops enclose its declaration: Tera keeps a `set` inside a
    /// loop in that loop.
    loops: usize,
}

struct Emitter<'a> {
    src: &'a str,
    out: String,
    notes: Vec<Problem>,
    problems: Vec<Problem>,
    scopes: Vec<Vec<Var>>,
    /// What `.` is: the root, a loop's element, a with's value.
    dots: Vec<Tx>,
    loops: usize,
    /// Names the conversion must not give a generated variable.
    taken: HashSet<String>,
    /// Context names a Go variable must not take (see `convert`).
    avoid: &'a HashSet<String>,
    context_refs: HashSet<String>,
    user_names: HashSet<String>,
    /// Where the action being converted starts, for problems and notes.
    at: usize,
}

type R<T> = Result<T, String>;

impl<'a> Emitter<'a> {
    fn new(src: &'a str, go_vars: &HashSet<String>, avoid: &'a HashSet<String>) -> Self {
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

    fn note(&mut self, message: impl Into<String>) {
        let p = problem_at(self.src, self.at, message);
        if !self.notes.contains(&p) {
            self.notes.push(p);
        }
    }

    fn refuse(&mut self, at: usize, message: String) {
        self.problems.push(problem_at(self.src, at, message));
    }

    /// Text between actions. A `{%` or `{#` in it would open a Tera tag,
    /// and a `{` right before a tag would make `{{{`: they are written as
    /// Tera strings.
    fn text(&mut self, text: &str, before_tag: bool) {
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
                None if before_tag => {
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
    fn tags(&mut self, trim: Trim, tags: &[String]) {
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

    fn nodes(&mut self, nodes: &[Node]) {
        for (k, n) in nodes.iter().enumerate() {
            match n {
                Node::Text(t) => self.text(t, k + 1 < nodes.len()),
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

    fn otherwise(&mut self, otherwise: &Option<(usize, Trim, Vec<Node>)>) {
        if let Some((_, trim, body)) = otherwise {
            self.tags(*trim, &["else".into()]);
            self.scopes.push(Vec::new());
            self.nodes(body);
            self.scopes.pop();
        }
    }

    fn if_(
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

    fn with(&mut self, b: &Branch, otherwise: &Option<(usize, Trim, Vec<Node>)>, end: Trim) {
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

    fn range(&mut self, b: &Branch, otherwise: &Option<(usize, Trim, Vec<Node>)>, end: Trim) {
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
    fn action(&mut self, pipe: &Pipeline) -> R<String> {
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

    fn lookup(&self, go: &str) -> Option<&Var> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .find(|v| v.go == go)
    }

    /// The Tera name of a Go variable declared in the current scope.
    fn declare(&mut self, go: &str, ty: Ty) -> String {
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
    fn generated(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut n = 2;
        while self.taken.contains(&name) {
            name = format!("{base}{n}");
            n += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    fn context(&mut self, name: &str) -> R<Tx> {
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
    fn cond(&mut self, e: &Expr) -> R<String> {
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

    fn expr(&mut self, e: &Expr) -> R<Tx> {
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

    fn call(&mut self, name: &str, args: &[Expr]) -> R<Tx> {
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
fn paren_op(s: &str) -> String {
    if s.contains(' ') && !(s.starts_with('(') && s.ends_with(')')) {
        format!("({s})")
    } else {
        s.to_owned()
    }
}

fn what(ty: Ty) -> &'static str {
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
fn field(base: &Tx, name: &str) -> R<Tx> {
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
fn concat(parts: Vec<(String, Ty)>) -> R<Tx> {
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
fn printf(format: &str, vals: &[Tx]) -> R<Tx> {
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
                return Err(format!(
                    "printf's %{} has no Tera form (only %s, %v, %d and %% convert): \
                     write the padding or the number format in the text",
                    other.map(String::from).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Srv;
    use crate::render::Renderer;

    fn srv(host: &str, port: u16, priority: u16, weight: u16) -> Srv {
        Srv {
            target: format!("{host}."),
            host: host.into(),
            port,
            priority,
            weight,
            ttl: 30,
            endpoint: format!("{host}.:{port}"),
            addrs: None,
        }
    }

    /// The Go srvd's seed records: db-001 and db-002, `10 10 3306`.
    fn seed() -> Vec<Srv> {
        vec![
            srv("db-001.example.com", 3306, 10, 10),
            srv("db-002.example.com", 3306, 10, 10),
        ]
    }

    fn tera(go: &str) -> String {
        match convert(go) {
            Ok(c) => c.text,
            Err(p) => panic!("{go:?} did not convert: {p:?}"),
        }
    }

    /// What the converted template renders with these records for
    /// `_mysql._tcp.example.com` (and none for `_redis._tcp.example.com`).
    fn render_with(go: &str, records: &[Srv]) -> String {
        let text = tera(go);
        let r = Renderer::from_sources(vec![("t".into(), text.clone())])
            .unwrap_or_else(|e| panic!("{text:?} does not compile: {e:?}"));
        r.render(
            0,
            &[
                ("_mysql._tcp.example.com", records),
                ("_redis._tcp.example.com", &[]),
            ],
            "app-1",
        )
        .unwrap_or_else(|e| panic!("{text:?} does not render: {e}"))
    }

    fn render(go: &str) -> String {
        render_with(go, &seed())
    }

    fn refusal(go: &str) -> Problem {
        match convert(go) {
            Ok(c) => panic!("{go:?} converted to {:?}", c.text),
            Err(mut p) => p.remove(0),
        }
    }

    #[test]
    fn the_first_release_seed_converts_and_renders_the_go_bytes() {
        let go = include_str!("../tests/fixtures/go-srvd/haproxy.cfg.tmpl.go-early");
        assert_eq!(
            tera(go),
            "backend nodes\n  mode tcp\n  # see https://godoc.org/github.com/miekg/dns#SRV\n  \
             {% for s in srvs %}\n  server {{ s.target }} {{ s.target }}:{{ s.port }} check\n  \
             {% endfor %}\n"
        );
        assert_eq!(
            render(go),
            include_str!("../tests/fixtures/go-srvd/expected.go-early.cfg")
        );
    }

    #[test]
    fn the_0_3_seed_converts_and_renders_the_go_bytes() {
        let go = include_str!("../tests/fixtures/go-srvd/haproxy.cfg.tmpl.go-0.3");
        assert!(
            tera(go).contains("  {% set srvs = domains[\"_mysql._tcp.example.com\"] %}\n"),
            "{}",
            tera(go)
        );
        assert_eq!(
            render(go),
            include_str!("../tests/fixtures/go-srvd/expected.go-0.3.cfg")
        );
    }

    #[test]
    fn trim_markers_trim_what_go_trims() {
        let go = "a \n {{- range .srvs -}} \n [{{ .Port }}] \t\n {{- end }}\nz";
        assert_eq!(
            tera(go),
            "a \n {%- for s in srvs -%} \n [{{ s.port }}] \t\n {%- endfor %}\nz"
        );
        assert_eq!(render(go), "a[3306][3306]\nz");
        // Go trims only space, tab, CR and LF: a no-break space stays, so
        // the trim is done here instead of by Tera, which would remove it.
        let go = "a\u{a0} {{- \"x\" -}} \u{a0}b";
        assert_eq!(tera(go), "a\u{a0}{{ \"x\" }}\u{a0}b");
        assert_eq!(render(go), "a\u{a0}x\u{a0}b");
    }

    #[test]
    fn blank_lines_after_plain_actions_stay() {
        assert_eq!(
            render("{{ $x := 1 }}\n{{ range .srvs }}\n{{ end }}\n"),
            "\n\n\n\n"
        );
    }

    #[test]
    fn fields_map_to_srvd_record_fields() {
        let recs = [srv("db-001.example.com", 3306, 10, 5)];
        assert_eq!(
            render_with(
                "{{ range .srvs }}{{ .Target }} {{ .Port }} {{ .Priority }} {{ .Weight }} {{ .Hdr.Ttl }}{{ end }}",
                &recs
            ),
            "db-001.example.com. 3306 10 5 30"
        );
    }

    #[test]
    fn variables_declare_assign_and_shadow_as_in_go() {
        assert_eq!(
            render("{{ $p := 0 }}{{ range .srvs }}{{ $p = .Port }}{{ end }}{{ $p }}"),
            "3306"
        );
        assert!(
            tera("{{ $p := 0 }}{{ range .srvs }}{{ $p = .Port }}{{ end }}")
                .contains("set_global p")
        );
        assert_eq!(
            render("{{ $x := \"a\" }}{{ if true }}{{ $x := \"b\" }}{{ $x }}{{ end }}{{ $x }}"),
            "ba"
        );
        assert_eq!(
            render("{{ range $i, $s := .srvs }}{{ $i }}={{ $s.Target }} {{ end }}"),
            "0=db-001.example.com. 1=db-002.example.com. "
        );
        assert_eq!(
            render("{{ range $s := .srvs }}{{ range $.srvs }}{{ $s.Port }}{{ end }}{{ end }}"),
            "3306330633063306"
        );
        // sigil predefines a variable for each value of the data.
        assert_eq!(
            render(
                "{{ range $srvs }}{{ .Port }}{{ end }} {{ len (index $domains \"_mysql._tcp.example.com\") }}"
            ),
            "33063306 2"
        );
    }

    #[test]
    fn a_variable_named_like_a_context_value_is_renamed_only_when_both_are_used() {
        let go = "{{ $srvs := fetchsrvs .domains \"_redis._tcp.example.com\" }}{{ len $srvs }} {{ len .srvs }}";
        assert!(tera(go).contains("set srvs_ = "), "{}", tera(go));
        assert_eq!(render(go), "0 2");
    }

    #[test]
    fn if_else_if_else_and_comparisons() {
        let go = "{{ range .srvs }}{{ if eq .Port 1 2 }}a{{ else if and (gt .Weight 5) (not (lt .Priority 10)) }}b{{ else }}c{{ end }}{{ end }}";
        assert!(tera(go).contains("{% elif "), "{}", tera(go));
        assert_eq!(render(go), "bb");
        assert_eq!(
            render(
                "{{ if or (ne (len .srvs) 2) false }}x{{ else }}y{{ end }}{{ if $x := len .srvs }}{{ $x }}{{ end }}"
            ),
            "y2"
        );
    }

    #[test]
    fn with_and_its_else() {
        let go = "{{ with index .srvs 0 }}{{ .Target }}{{ else }}none{{ end }}|{{ with $d := index .domains \"_redis._tcp.example.com\" }}{{ len $d }}{{ else }}empty{{ end }}";
        assert_eq!(render(go), "db-001.example.com.|empty");
    }

    #[test]
    fn range_else_break_and_continue() {
        assert_eq!(
            render(
                "{{ range fetchsrvs .domains \"_redis._tcp.example.com\" }}x{{ else }}none{{ end }}"
            ),
            "none"
        );
        assert_eq!(
            render(
                "{{ range $i, $s := .srvs }}{{ if eq $i 0 }}{{ continue }}{{ end }}{{ $s.Target }}{{ break }}{{ end }}"
            ),
            "db-002.example.com."
        );
    }

    #[test]
    fn comments_become_tera_comments() {
        let go = "a{{/* one */}}b {{- /* two #} */ -}} c\n";
        assert_eq!(tera(go), "a{# one #}b {#- two # } -#} c\n");
        assert_eq!(render(go), "abc\n");
    }

    #[test]
    fn the_go_srvd_helpers_convert() {
        let go = "{{ range rotatesrvs .srvs 1 }}{{ .Target }} {{ end }}|{{ len (shufflesrvs 42 .srvs) }}|\
                  {{ ipv4toi \"10.0.0.1\" }} {{ hextoi \"ff\" }} {{ hostname }}|\
                  {{ range ifaddrs }}{{ end }}{{ range $k, $v := ipv4sbyif }}{{ end }}{{ len ipv4byif | printf \"%d\" | printf \"%s\" | lower }}{{ printf \"%d\" 42 | len }}";
        // The last two: a count of interfaces, then 2 (the length of "42").
        let out = render(go);
        let head = format!(
            "db-002.example.com. db-001.example.com. |2|167772161 255 {}|",
            crate::render::host_name()
        );
        assert!(out.starts_with(&head), "{out}");
        assert!(out.len() > head.len() + 1 && out.ends_with('2'), "{out}");
        assert!(
            out[head.len()..].bytes().all(|b| b.is_ascii_digit()),
            "{out}"
        );
        let notes = convert(go).unwrap().notes;
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].message.contains("shuffle"), "{notes:?}");
    }

    #[test]
    fn printf_print_and_pipelines() {
        let go = "{{ range .srvs }}{{ printf \"%s:%d %v%%\" .Target .Port .Weight }};{{ end }}\
                  {{ print 1 2 \"a\" 3 }}|{{ println \"x\" 1 }}|{{ .srvs | len }}|{{ \"AbC\" | lower | printf \"<%s>\" }}";
        assert_eq!(
            render(go),
            "db-001.example.com.:3306 10%;db-002.example.com.:3306 10%;1 2a3|x 1\n|2|<abc>"
        );
    }

    #[test]
    fn sigil_string_helpers_convert() {
        let go = "{{ upper \"a\" }} {{ replace \"-\" \"_\" \"a-b\" }} {{ join \",\" (split \":\" \"a:b\") }} \
                  {{ default \"d\" \"\" }} {{ or \"\" \"o\" }} {{ indent \"  \" \"a\\nb\" }}";
        assert_eq!(render(go), "A a_b a,b d o a\n  b");
    }

    #[test]
    fn text_that_looks_like_tera_stays_text() {
        let go = "log-format {%ci} {# x #} %[src] {{ \"}}\" }}\n";
        assert_eq!(render(go), "log-format {%ci} {# x #} %[src] }}\n");
    }

    #[test]
    fn sigil_line_joins_drop_the_newline() {
        assert_eq!(render("{{ $x := 7 \\}}\n{{ $x }}\n"), "7\n");
    }

    #[test]
    fn refusals_name_the_line_column_and_what_to_do() {
        let p = refusal("backend\n  {{ template \"servers\" . }}\n");
        assert_eq!((p.line, p.column), (2, 3));
        assert_eq!(p.action, "{{ template \"servers\" . }}");
        assert!(p.message.contains("one file"), "{p}");

        let p = refusal("a\nb\n{{ range .srvs }}{{ printf \"%-30s\" .Target }}{{ end }}");
        assert_eq!((p.line, p.column), (3, 18));
        assert!(p.message.contains("%-"), "{p}");

        let p = refusal("{{ sh \"hostname -f\" }}");
        assert!(
            p.message.contains("write the content in the template"),
            "{p}"
        );
        let p = refusal("{{ var \"HOME\" }}");
        assert!(p.message.contains("environment"), "{p}");
        let p = refusal("{{ range .srvs }}\n{{ .Hdr.Name }}{{ end }}");
        assert_eq!(p.line, 2);
        assert!(p.message.contains("owner name"), "{p}");
        let p = refusal("{{ range .srvs }}{{ . }}{{ end }}");
        assert!(p.message.contains("print the fields"), "{p}");
        let p = refusal("{{ interfaces }}");
        assert!(p.message.contains("interface_addrs()"), "{p}");
        let p = refusal("{{ nosuch 1 }}");
        assert!(p.message.contains("not a function"), "{p}");
        let p = refusal("{{ .nodes }}");
        assert!(p.message.contains(".srvs"), "{p}");

        let p = refusal("x\n{{ range .srvs }}\n");
        assert_eq!(p.line, 2);
        assert!(p.message.contains("no {{ end }}"), "{p}");
        let p = refusal("{{ end }}");
        assert!(p.message.contains("without an open"), "{p}");
        let p = refusal("{{ .srvs ");
        assert!(p.message.contains("not closed"), "{p}");
    }

    #[test]
    fn every_refusal_is_reported_not_just_the_first() {
        let Err(problems) = convert("{{ sh \"a\" }}\n{{ var \"b\" }}\n") else {
            panic!("converted");
        };
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 2]);
    }

    #[test]
    fn ranging_over_domains_notes_the_order() {
        let go = "{{ range $name, $recs := .domains }}{{ $name }}={{ len $recs }} {{ end }}";
        assert_eq!(
            render(go),
            "_mysql._tcp.example.com=2 _redis._tcp.example.com=0 "
        );
        let notes = convert(go).unwrap().notes;
        assert!(notes[0].message.contains("sorted"), "{notes:?}");
    }
}
