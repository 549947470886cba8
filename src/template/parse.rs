//! The parser: items into trees, with Go's literal syntax (numbers, quoted strings).

use super::*;

pub(super) type PResult<T> = Result<T, String>;

pub(super) struct Parser<'a> {
    pub(super) items: Vec<Item>,
    pub(super) idx: usize,
    pub(super) max_read: usize,
    pub(super) parse_name: &'a str,
    pub(super) vars: Vec<String>,
    pub(super) range_depth: usize,
    pub(super) action_line: usize,
    pub(super) depth: usize,
    pub(super) dialect: Dialect,
    pub(super) trees: Vec<(String, Vec<Node>)>,
}

/// Parses `text` into its trees: definitions in order, then the top-level one.
pub(super) fn parse_text(
    name: &str,
    text: &str,
    dialect: Dialect,
) -> PResult<Vec<(String, Vec<Node>)>> {
    let mut p = Parser {
        items: lex(text),
        idx: 0,
        max_read: 0,
        parse_name: name,
        vars: vec!["$".into()],
        range_depth: 0,
        action_line: 0,
        depth: 0,
        dialect,
        trees: Vec::new(),
    };
    let root = p.parse_top()?;
    p.add_tree(name.to_string(), root)?;
    Ok(p.trees)
}

impl Parser<'_> {
    pub(super) fn item(&self, i: usize) -> &Item {
        // The lexer always ends with an EOF or error item.
        let last = self.items.len().saturating_sub(1);
        &self.items[i.min(last)]
    }

    pub(super) fn next(&mut self) -> Item {
        let it = self.item(self.idx).clone();
        self.max_read = self
            .max_read
            .max(self.idx.min(self.items.len().saturating_sub(1)));
        self.idx += 1;
        it
    }

    pub(super) fn backup(&mut self) {
        self.idx -= 1;
    }

    pub(super) fn peek(&mut self) -> Item {
        let it = self.next();
        self.backup();
        it
    }

    pub(super) fn next_non_space(&mut self) -> Item {
        loop {
            let t = self.next();
            if t.typ != It::Space {
                return t;
            }
        }
    }

    pub(super) fn peek_non_space(&mut self) -> Item {
        let t = self.next_non_space();
        self.backup();
        t
    }

    pub(super) fn errorf(&self, msg: impl std::fmt::Display) -> String {
        let line = self.item(self.max_read).line;
        format!("template: {}:{}: {}", self.parse_name, line, msg)
    }

    pub(super) fn unexpected(&self, tok: &Item, context: &str) -> String {
        if tok.typ == It::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != tok.line {
                extra = format!(
                    " in action started at {}:{}",
                    self.parse_name, self.action_line
                );
                if tok.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format!("{}{}", tok.val, extra));
        }
        self.errorf(format!("unexpected {} in {}", item_desc(tok), context))
    }

    pub(super) fn expect(&mut self, typ: It, context: &str) -> PResult<Item> {
        let t = self.next_non_space();
        if t.typ != typ {
            return Err(self.unexpected(&t, context));
        }
        Ok(t)
    }

    pub(super) fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_PARSE_DEPTH {
            return Err(self.errorf("max expression depth exceeded"));
        }
        Ok(())
    }

    pub(super) fn add_tree(&mut self, name: String, root: Vec<Node>) -> PResult<()> {
        if let Some(i) = self.trees.iter().position(|(n, _)| *n == name) {
            if is_empty_tree(&self.trees[i].1) {
                self.trees[i].1 = root;
            } else if !is_empty_tree(&root) {
                return Err(self.errorf(format!(
                    "template: multiple definition of template {}",
                    quote(&name)
                )));
            }
            return Ok(());
        }
        self.trees.push((name, root));
        Ok(())
    }

    pub(super) fn parse_top(&mut self) -> PResult<Vec<Node>> {
        let mut root = Vec::new();
        while self.peek().typ != It::Eof {
            if self.peek().typ == It::LeftDelim {
                let save = self.idx;
                self.next();
                if self.next_non_space().typ == It::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.idx = save;
            }
            match self.text_or_action()? {
                n @ (Node::End | Node::Else) => {
                    return Err(self.errorf(format!("unexpected {}", node_string(&n))));
                }
                n => root.push(n),
            }
        }
        Ok(root)
    }

    pub(super) fn new_tree_scope(&mut self) -> (Vec<String>, usize) {
        let vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let rd = std::mem::replace(&mut self.range_depth, 0);
        (vars, rd)
    }

    pub(super) fn parse_definition(&mut self) -> PResult<()> {
        const CTX: &str = "define clause";
        let t = self.next_non_space();
        if t.typ != It::String && t.typ != It::RawString {
            return Err(self.unexpected(&t, CTX));
        }
        let name = unquote(&t.val).map_err(|e| self.errorf(e))?;
        self.expect(It::RightDelim, CTX)?;
        let saved = self.new_tree_scope();
        let (list, end) = self.item_list()?;
        if !matches!(end, Node::End) {
            return Err(self.errorf(format!("unexpected {} in {}", node_string(&end), CTX)));
        }
        (self.vars, self.range_depth) = saved;
        self.add_tree(name, list)
    }

    pub(super) fn item_list(&mut self) -> PResult<(Vec<Node>, Node)> {
        let mut list = Vec::new();
        while self.peek_non_space().typ != It::Eof {
            match self.text_or_action()? {
                n @ (Node::End | Node::Else) => return Ok((list, n)),
                n => list.push(n),
            }
        }
        Err(self.errorf("unexpected EOF"))
    }

    pub(super) fn text_or_action(&mut self) -> PResult<Node> {
        let t = self.next_non_space();
        match t.typ {
            It::Text => Ok(Node::Text { text: t.val }),
            It::LeftDelim => {
                self.action_line = t.line;
                let r = self.action();
                self.action_line = 0;
                r
            }
            _ => Err(self.unexpected(&t, "input")),
        }
    }

    pub(super) fn action(&mut self) -> PResult<Node> {
        let t = self.next_non_space();
        match t.typ {
            It::Block => return self.block_control(),
            It::Break | It::Continue => {
                let word = if t.typ == It::Break {
                    "break"
                } else {
                    "continue"
                };
                let n = self.next_non_space();
                if n.typ != It::RightDelim {
                    return Err(self.unexpected(&n, &format!("{{{{{word}}}}}")));
                }
                if self.range_depth == 0 {
                    return Err(self.errorf(format!("{{{{{word}}}}} outside {{{{range}}}}")));
                }
                return Ok(if t.typ == It::Break {
                    Node::Break { pos: t.pos }
                } else {
                    Node::Continue { pos: t.pos }
                });
            }
            It::Else => {
                let p = self.peek_non_space();
                if p.typ == It::If || p.typ == It::With {
                    return Ok(Node::Else);
                }
                self.expect(It::RightDelim, "else")?;
                return Ok(Node::Else);
            }
            It::End => {
                self.expect(It::RightDelim, "end")?;
                return Ok(Node::End);
            }
            It::If => return Ok(Node::If(Box::new(self.parse_control("if")?))),
            It::Range => return Ok(Node::Range(Box::new(self.parse_control("range")?))),
            It::With => return Ok(Node::With(Box::new(self.parse_control("with")?))),
            It::Template => return self.template_control(),
            _ => {}
        }
        self.backup();
        let pos = self.peek().pos;
        let pipe = self.pipeline("command", It::RightDelim)?;
        Ok(Node::Action { pos, pipe })
    }

    pub(super) fn parse_control(&mut self, context: &str) -> PResult<Control> {
        self.enter()?;
        let nvars = self.vars.len();
        let pipe = self.pipeline(context, It::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, next) = self.item_list()?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let else_list = match next {
            Node::Else => {
                if context == "if" && self.peek().typ == It::If {
                    self.next();
                    Some(vec![Node::If(Box::new(self.parse_control("if")?))])
                } else if context == "with" && self.peek().typ == It::With {
                    self.next();
                    Some(vec![Node::With(Box::new(self.parse_control("with")?))])
                } else {
                    let (l, n2) = self.item_list()?;
                    if !matches!(n2, Node::End) {
                        return Err(
                            self.errorf(format!("expected end; found {}", node_string(&n2)))
                        );
                    }
                    Some(l)
                }
            }
            _ => None,
        };
        self.vars.truncate(nvars);
        self.depth -= 1;
        Ok(Control {
            pipe,
            list,
            else_list,
        })
    }

    pub(super) fn parse_template_name(&mut self, t: &Item, context: &str) -> PResult<String> {
        match t.typ {
            It::String | It::RawString => unquote(&t.val).map_err(|e| self.errorf(e)),
            _ => Err(self.unexpected(t, context)),
        }
    }

    pub(super) fn block_control(&mut self) -> PResult<Node> {
        const CTX: &str = "block clause";
        let t = self.next_non_space();
        let name = self.parse_template_name(&t, CTX)?;
        let pipe = self.pipeline(CTX, It::RightDelim)?;
        let saved = self.new_tree_scope();
        let (list, end) = self.item_list()?;
        if !matches!(end, Node::End) {
            return Err(self.errorf(format!("unexpected {} in {}", node_string(&end), CTX)));
        }
        (self.vars, self.range_depth) = saved;
        self.add_tree(name.clone(), list)?;
        Ok(Node::Template {
            pos: t.pos,
            name,
            pipe: Some(pipe),
        })
    }

    pub(super) fn template_control(&mut self) -> PResult<Node> {
        const CTX: &str = "template clause";
        let t = self.next_non_space();
        let name = self.parse_template_name(&t, CTX)?;
        let pipe = if self.next_non_space().typ != It::RightDelim {
            self.backup();
            Some(self.pipeline(CTX, It::RightDelim)?)
        } else {
            None
        };
        Ok(Node::Template {
            pos: t.pos,
            name,
            pipe,
        })
    }

    pub(super) fn pipeline(&mut self, context: &str, end: It) -> PResult<Pipe> {
        let pos = self.peek_non_space().pos;
        let mut pipe = Pipe {
            pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        loop {
            let v = self.peek_non_space();
            if v.typ != It::Variable {
                break;
            }
            let v_idx = self.idx;
            self.next();
            let next = self.peek_non_space();
            if next.typ == It::Assign || next.typ == It::Declare {
                pipe.is_assign = next.typ == It::Assign;
                self.next_non_space();
                pipe.decl.push(v.val.clone());
                self.vars.push(v.val);
                break;
            } else if next.typ == It::Char && next.val == "," {
                self.next_non_space();
                pipe.decl.push(v.val.clone());
                self.vars.push(v.val);
                if context == "range" && pipe.decl.len() < 2 {
                    match self.peek_non_space().typ {
                        It::Variable | It::RightDelim | It::RightParen => continue,
                        _ => return Err(self.errorf("range can only initialize variables")),
                    }
                }
                return Err(self.errorf(format!("too many declarations in {context}")));
            } else {
                self.idx = v_idx;
                break;
            }
        }
        loop {
            let t = self.next_non_space();
            if t.typ == end {
                self.check_pipeline(&pipe, context)?;
                return Ok(pipe);
            }
            match t.typ {
                It::Bool
                | It::CharConstant
                | It::Complex
                | It::Dot
                | It::Field
                | It::Identifier
                | It::Number
                | It::Nil
                | It::RawString
                | It::String
                | It::Variable
                | It::LeftParen => {
                    self.backup();
                    let c = self.command()?;
                    pipe.cmds.push(c);
                }
                _ => return Err(self.unexpected(&t, context)),
            }
        }
    }

    pub(super) fn check_pipeline(&self, pipe: &Pipe, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return Err(self.errorf(format!("missing value for {context}")));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(
                    Operand::Bool { .. }
                        | Operand::Dot { .. }
                        | Operand::Nil { .. }
                        | Operand::Number { .. }
                        | Operand::Str { .. }
                )
            ) {
                return Err(self.errorf(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                )));
            }
        }
        Ok(())
    }

    pub(super) fn command(&mut self) -> PResult<Command> {
        let pos = self.peek_non_space().pos;
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                args.push(op);
            }
            let t = self.next();
            match t.typ {
                It::Space => continue,
                It::RightDelim | It::RightParen => self.backup(),
                It::Pipe => {}
                _ => return Err(self.unexpected(&t, "operand")),
            }
            break;
        }
        if args.is_empty() {
            return Err(self.errorf("empty command"));
        }
        Ok(Command { pos, args })
    }

    pub(super) fn operand(&mut self) -> PResult<Option<Operand>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().typ != It::Field {
            return Ok(Some(node));
        }
        let pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().typ == It::Field {
            let f = self.next();
            fields.push(f.val[1..].to_string());
        }
        Ok(Some(match node {
            Operand::Field { fields: mut f0, .. } => {
                f0.extend(fields);
                Operand::Field { pos, fields: f0 }
            }
            Operand::Var {
                name,
                fields: mut f0,
                ..
            } => {
                f0.extend(fields);
                Operand::Var {
                    pos,
                    name,
                    fields: f0,
                }
            }
            n @ (Operand::Bool { .. }
            | Operand::Str { .. }
            | Operand::Number { .. }
            | Operand::Nil { .. }
            | Operand::Dot { .. }) => {
                return Err(self.errorf(format!(
                    "unexpected . after term {}",
                    quote(&operand_string(&n))
                )));
            }
            n => Operand::Chain {
                pos,
                node: Box::new(n),
                fields,
            },
        }))
    }

    pub(super) fn term(&mut self) -> PResult<Option<Operand>> {
        let t = self.next_non_space();
        let pos = t.pos;
        Ok(Some(match t.typ {
            It::Identifier => {
                if func_sig(self.dialect, &t.val).is_none() {
                    return Err(self.errorf(format!("function {} not defined", quote(&t.val))));
                }
                Operand::Ident { pos, name: t.val }
            }
            It::Dot => Operand::Dot { pos },
            It::Nil => Operand::Nil { pos },
            It::Variable => {
                if !self.vars.contains(&t.val) {
                    return Err(self.errorf(format!("undefined variable {}", quote(&t.val))));
                }
                Operand::Var {
                    pos,
                    name: t.val,
                    fields: Vec::new(),
                }
            }
            It::Field => Operand::Field {
                pos,
                fields: vec![t.val[1..].to_string()],
            },
            It::Bool => Operand::Bool {
                pos,
                val: t.val == "true",
            },
            It::CharConstant | It::Complex | It::Number => {
                let num = parse_number_literal(&t.val, t.typ).map_err(|e| self.errorf(e))?;
                Operand::Number {
                    pos,
                    text: t.val,
                    num,
                }
            }
            It::LeftParen => {
                self.enter()?;
                let p = self.pipeline("parenthesized pipeline", It::RightParen)?;
                self.depth -= 1;
                Operand::Pipe(Box::new(p))
            }
            It::String | It::RawString => {
                let val = unquote(&t.val).map_err(|e| self.errorf(e))?;
                Operand::Str {
                    pos,
                    quoted: t.val,
                    val,
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

/// Classifies a number literal as Go's `parse.NumberNode` + `idealConstant`.
pub(super) fn parse_number_literal(text: &str, typ: It) -> Result<Num, String> {
    if typ == It::CharConstant {
        let inner = &text[1..];
        let (c, tail) = unquote_char(inner, '\'').ok_or_else(|| "invalid syntax".to_string())?;
        if tail != "'" {
            return Err(format!("malformed character constant: {text}"));
        }
        return Ok(Num::Int(c as i64));
    }
    if typ == It::Complex || text.ends_with('i') {
        return Ok(Num::Complex);
    }
    if let Some(i) = parse_int(text) {
        if let Ok(v) = i64::try_from(i) {
            return Ok(Num::Int(v));
        }
        if u64::try_from(i).is_ok() {
            return Ok(Num::Overflow);
        }
    }
    let is_hex_int = text.len() > 2
        && (text.starts_with("0x") || text.starts_with("0X"))
        && !text.contains(['p', 'P']);
    if let Ok(f) = go_parse_float(text) {
        if !text.contains(['.', 'e', 'E', 'p', 'P']) || is_hex_int {
            return Err(format!("integer overflow: {}", quote(text)));
        }
        return Ok(Num::Float(f));
    }
    Err(format!("illegal number syntax: {}", quote(text)))
}

/// Go's `strconv.ParseFloat(s, 64)` (decimal forms, `inf`, `nan`) with Go's
/// error texts.
pub(super) fn go_parse_float(s: &str) -> Result<f64, &'static str> {
    match parse_float(s.as_bytes()) {
        Ok(f) => Ok(f),
        Err(FloatError::Range) => Err("value out of range"),
        Err(_) => Err("invalid syntax"),
    }
}

pub(super) fn parse_float_err(s: &str, e: &str) -> String {
    format!("strconv.ParseFloat: parsing {}: {}", quote(s), e)
}
