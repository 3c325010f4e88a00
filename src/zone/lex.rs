//! Cutting a master file into tokens by the rules of hickory-proto's zone
//! lexer, keeping where each token is so that a record's data can be handed
//! to hickory-proto as text.

use std::borrow::Cow;

/// A token of a master file. Only what the entry grammar needs is kept: the
/// text of a word, not the contents of a parenthesised list (record data
/// are parsed again from their text).
#[derive(Debug)]
pub(super) enum Token<'a> {
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
pub(super) struct Lexer<'a> {
    text: &'a str,
    /// Byte offset of the next character.
    pub(super) pos: usize,
    /// Line of the next character, from 1.
    pub(super) line: usize,
    /// Byte offset and line where the last token began.
    pub(super) token_start: usize,
    pub(super) token_line: usize,
    at: At,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Lexer {
            text,
            pos: 0,
            line: 1,
            token_start: 0,
            token_line: 1,
            at: At::StartLine,
        }
    }

    /// The next character, not consumed.
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    /// Consumes the next character, counting lines.
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Marks the next character as the start of a token.
    fn begin(&mut self) {
        self.token_start = self.pos;
        self.token_line = self.line;
    }

    /// The next token; `None` at the end of the text. Errors: a fault in
    /// the text (one that hickory-proto's lexer refuses too), as a message;
    /// `line` is where it stands.
    pub(super) fn next_token(&mut self) -> Result<Option<Token<'a>>, String> {
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
