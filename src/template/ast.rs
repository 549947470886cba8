//! The parse tree and its printing (as Go prints nodes in error messages).

use super::*;

#[derive(Debug)]
pub(super) enum Node {
    Text {
        text: String,
    },
    Action {
        pos: usize,
        pipe: Pipe,
    },
    If(Box<Control>),
    Range(Box<Control>),
    With(Box<Control>),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break {
        pos: usize,
    },
    Continue {
        pos: usize,
    },
    // Only while parsing.
    End,
    Else,
}

#[derive(Debug)]
pub(super) struct Control {
    pub(super) pipe: Pipe,
    pub(super) list: Vec<Node>,
    pub(super) else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub(super) struct Pipe {
    pub(super) pos: usize,
    pub(super) is_assign: bool,
    pub(super) decl: Vec<String>,
    pub(super) cmds: Vec<Command>,
}

#[derive(Debug)]
pub(super) struct Command {
    pub(super) pos: usize,
    pub(super) args: Vec<Operand>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Num {
    Int(i64),
    Float(f64),
    Overflow,
    Complex,
}

#[derive(Debug)]
pub(super) enum Operand {
    Ident {
        pos: usize,
        name: String,
    },
    Dot {
        pos: usize,
    },
    Nil {
        pos: usize,
    },
    Var {
        pos: usize,
        name: String,
        fields: Vec<String>,
    },
    Field {
        pos: usize,
        fields: Vec<String>,
    },
    Chain {
        pos: usize,
        node: Box<Operand>,
        fields: Vec<String>,
    },
    Bool {
        pos: usize,
        val: bool,
    },
    Number {
        pos: usize,
        text: String,
        num: Num,
    },
    Str {
        pos: usize,
        quoted: String,
        val: String,
    },
    Pipe(Box<Pipe>),
}

impl Operand {
    pub(super) fn pos(&self) -> usize {
        match self {
            Operand::Ident { pos, .. }
            | Operand::Dot { pos }
            | Operand::Nil { pos }
            | Operand::Var { pos, .. }
            | Operand::Field { pos, .. }
            | Operand::Chain { pos, .. }
            | Operand::Bool { pos, .. }
            | Operand::Number { pos, .. }
            | Operand::Str { pos, .. } => *pos,
            Operand::Pipe(p) => p.pos,
        }
    }
}

pub(super) fn pipe_string(p: &Pipe) -> String {
    let mut s = String::new();
    if !p.decl.is_empty() {
        s.push_str(&p.decl.join(", "));
        s.push_str(if p.is_assign { " = " } else { " := " });
    }
    let cmds: Vec<String> = p.cmds.iter().map(command_string).collect();
    s.push_str(&cmds.join(" | "));
    s
}

pub(super) fn command_string(c: &Command) -> String {
    let args: Vec<String> = c
        .args
        .iter()
        .map(|a| match a {
            Operand::Pipe(p) => format!("({})", pipe_string(p)),
            a => operand_string(a),
        })
        .collect();
    args.join(" ")
}

pub(super) fn operand_string(o: &Operand) -> String {
    match o {
        Operand::Ident { name, .. } => name.clone(),
        Operand::Dot { .. } => ".".into(),
        Operand::Nil { .. } => "nil".into(),
        Operand::Var { name, fields, .. } => {
            let mut s = name.clone();
            for f in fields {
                s.push('.');
                s.push_str(f);
            }
            s
        }
        Operand::Field { fields, .. } => fields.iter().map(|f| format!(".{f}")).collect(),
        Operand::Chain { node, fields, .. } => {
            let mut s = match node.as_ref() {
                Operand::Pipe(p) => format!("({})", pipe_string(p)),
                n => operand_string(n),
            };
            for f in fields {
                s.push('.');
                s.push_str(f);
            }
            s
        }
        Operand::Bool { val, .. } => val.to_string(),
        Operand::Number { text, .. } => text.clone(),
        Operand::Str { quoted, .. } => quoted.clone(),
        Operand::Pipe(p) => pipe_string(p),
    }
}

pub(super) fn list_string(l: &[Node]) -> String {
    l.iter().map(node_string).collect()
}

pub(super) fn node_string(n: &Node) -> String {
    match n {
        Node::Text { text } => text.clone(),
        Node::Action { pipe, .. } => format!("{{{{{}}}}}", pipe_string(pipe)),
        Node::If(c) | Node::Range(c) | Node::With(c) => {
            let kw = match n {
                Node::If(_) => "if",
                Node::Range(_) => "range",
                _ => "with",
            };
            let mut s = format!(
                "{{{{{kw} {}}}}}{}",
                pipe_string(&c.pipe),
                list_string(&c.list)
            );
            if let Some(e) = &c.else_list {
                s.push_str("{{else}}");
                s.push_str(&list_string(e));
            }
            s.push_str("{{end}}");
            s
        }
        Node::Template { name, pipe, .. } => match pipe {
            None => format!("{{{{template {}}}}}", quote(name)),
            Some(p) => format!("{{{{template {} {}}}}}", quote(name), pipe_string(p)),
        },
        Node::Break { .. } => "{{break}}".into(),
        Node::Continue { .. } => "{{continue}}".into(),
        Node::End => "{{end}}".into(),
        Node::Else => "{{else}}".into(),
    }
}

pub(super) fn is_empty_tree(list: &[Node]) -> bool {
    list.iter().all(|n| matches!(n, Node::Text { text } if text.trim_matches(|c: char| c.is_ascii_whitespace()).is_empty()))
}
