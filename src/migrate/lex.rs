//! Go template text → text pieces and actions, and an action's body → tokens
//! (text/template's lexer, with sigil's line join and Go's trim markers).

use super::Problem;

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Trim {
    pub(super) left: bool,
    pub(super) right: bool,
}

#[derive(Debug)]
pub(super) enum Piece {
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

pub(super) fn is_go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Splits the template into text and actions, as Go's text/template lexer
/// does (strings and raw strings may hold `}}`).
pub(super) fn lex(src: &str) -> Result<Vec<Piece>, Problem> {
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
pub(super) fn find_close(src: &str, from: usize) -> Option<usize> {
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
pub(super) fn apply_trims(mut pieces: Vec<Piece>) -> Vec<Piece> {
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

pub(super) fn line_col(src: &str, at: usize) -> (usize, usize) {
    let before = &src[..at.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// The action starting at `at`, as written: its first line, shortened.
pub(super) fn action_text(src: &str, at: usize) -> String {
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

pub(super) fn problem_at(src: &str, at: usize, message: impl Into<String>) -> Problem {
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
pub(super) enum Tok {
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
pub(super) struct Token {
    pub(super) tok: Tok,
    /// Whether white space comes right before it: `$x.A` is one operand,
    /// `$x .A` two.
    pub(super) spaced: bool,
}

pub(super) fn tokenize(body: &str) -> Result<Vec<Token>, String> {
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
                let body = lit
                    .strip_prefix('\'')
                    .and_then(|l| l.strip_suffix('\''))
                    .ok_or_else(|| format!("unterminated character constant {lit}"))?;
                let ch = unquote(&format!("\"{body}\""))
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
pub(super) fn unquote(lit: &str) -> Option<String> {
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
pub(super) fn number(text: &str) -> Option<String> {
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
