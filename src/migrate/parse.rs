//! Tokens → the tree of a Go template: text, actions, if/range/with blocks,
//! with each pipeline desugared to nested calls (text/template's grammar).

use std::collections::HashSet;

use super::Problem;
use super::lex::{Piece, Tok, Token, Trim, problem_at, tokenize};

#[derive(Debug, Clone)]
pub(super) enum Expr {
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
pub(super) struct Pipeline {
    /// Variables declared (`:=`) or assigned (`=`), without `$`.
    pub(super) vars: Vec<String>,
    pub(super) assign: bool,
    pub(super) expr: Expr,
}

#[derive(Debug)]
pub(super) enum Node {
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
pub(super) struct Branch {
    pub(super) at: usize,
    pub(super) pipe: Pipeline,
    pub(super) trim: Trim,
    pub(super) body: Vec<Node>,
}

/// How a list of nodes ended: `{{ else ... }}` or `{{ end }}`.
pub(super) struct Stop {
    pub(super) at: usize,
    pub(super) word: &'static str,
    pub(super) trim: Trim,
    /// The pipeline of `{{ else if p }}`.
    pub(super) else_if: Option<Pipeline>,
}

pub(super) struct Parser<'a> {
    pub(super) src: &'a str,
    pub(super) pieces: Vec<Piece>,
    pub(super) next: usize,
}

impl Parser<'_> {
    pub(super) fn problem(&self, at: usize, message: impl Into<String>) -> Problem {
        problem_at(self.src, at, message)
    }

    /// Nodes up to `{{ else }}`, `{{ end }}` or the end of the template.
    pub(super) fn list(&mut self) -> Result<(Vec<Node>, Option<Stop>), Problem> {
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

    pub(super) fn expect_stop(
        &self,
        at: usize,
        keyword: &str,
        stop: Option<Stop>,
    ) -> Result<Stop, Problem> {
        stop.ok_or_else(|| self.problem(at, format!("this {keyword} has no {{{{ end }}}}")))
    }

    pub(super) fn pipeline(&self, at: usize, toks: &[Token]) -> Result<Pipeline, Problem> {
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
    pub(super) fn pipe_expr(
        &self,
        at: usize,
        toks: &[Token],
        p: &mut usize,
    ) -> Result<Expr, Problem> {
        let mut value = self.command(at, toks, p, None)?;
        while *p < toks.len() && toks[*p].tok == Tok::Pipe {
            *p += 1;
            value = self.command(at, toks, p, Some(value))?;
        }
        Ok(value)
    }

    pub(super) fn command(
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

    pub(super) fn operand(
        &self,
        at: usize,
        toks: &[Token],
        p: &mut usize,
    ) -> Result<Expr, Problem> {
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
pub(super) fn collect_vars(nodes: &[Node]) -> HashSet<String> {
    pub(super) fn walk(nodes: &[Node], out: &mut HashSet<String>) {
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
