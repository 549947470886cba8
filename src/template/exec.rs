//! Execution: walking a tree against the dot, variables, pipelines, calls.

use super::*;

/// A value plus whether it is held in an `interface{}` (a map or slice
/// element); that changes the type named in field errors and makes a nil a
/// "nil interface" rather than "no value".
#[derive(Clone, Debug)]
pub(super) struct Val {
    pub(super) v: Value,
    pub(super) boxed: bool,
}

impl Val {
    pub(super) fn new(v: Value) -> Val {
        Val { v, boxed: false }
    }

    pub(super) fn type_name(&self) -> String {
        if self.boxed {
            "interface {}".into()
        } else {
            self.v.type_name()
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Normal,
    Break,
    Continue,
}

#[derive(Clone, Copy)]
pub(super) enum At<'t> {
    Node(&'t Node),
    Pipe(&'t Pipe),
    Cmd(&'t Command),
    Op(&'t Operand),
}

pub(super) fn at_pos(at: At<'_>) -> usize {
    match at {
        At::Node(n) => match n {
            Node::Action { pos, .. }
            | Node::Template { pos, .. }
            | Node::Break { pos }
            | Node::Continue { pos } => *pos,
            Node::If(c) | Node::Range(c) | Node::With(c) => c.pipe.pos,
            _ => 0,
        },
        At::Pipe(p) => p.pos,
        At::Cmd(c) => c.pos,
        At::Op(o) => o.pos(),
    }
}

pub(super) fn at_string(at: At<'_>) -> String {
    match at {
        At::Node(n) => node_string(n),
        At::Pipe(p) => pipe_string(p),
        At::Cmd(c) => command_string(c),
        At::Op(o) => operand_string(o),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum PT {
    Any,
    Refl,
    Str,
    QueryResult,
    Sample,
    StrSlice,
    TimeT,
}

impl PT {
    pub(super) fn name(self) -> &'static str {
        match self {
            PT::Any => "interface {}",
            PT::Refl => "reflect.Value",
            PT::Str => "string",
            PT::QueryResult => T_QUERY_RESULT,
            PT::Sample => T_SAMPLE,
            PT::StrSlice => T_STR_LIST,
            PT::TimeT => "time.Time",
        }
    }

    pub(super) fn can_be_nil(self) -> bool {
        !matches!(self, PT::Str | PT::TimeT)
    }

    pub(super) fn accepts(self, v: &Value) -> bool {
        match self {
            PT::Any | PT::Refl => true,
            PT::Str => matches!(v, Value::Str(_)),
            PT::QueryResult => matches!(v, Value::List(l) if l.type_name == T_QUERY_RESULT),
            PT::Sample => matches!(v, Value::Struct(s) if s.type_name == T_SAMPLE),
            PT::StrSlice => {
                matches!(v, Value::List(l) if l.type_name == T_STR_LIST || l.items.iter().all(|i| matches!(i, Value::Str(_))))
            }
            PT::TimeT => matches!(v, Value::Time(_)),
        }
    }
}

#[derive(Clone, Copy)]
pub(super) struct Sig {
    pub(super) fixed: &'static [PT],
    pub(super) variadic: Option<PT>,
}

pub(super) const fn sig(fixed: &'static [PT]) -> Sig {
    Sig {
        fixed,
        variadic: None,
    }
}

pub(super) const fn vsig(fixed: &'static [PT], v: PT) -> Sig {
    Sig {
        fixed,
        variadic: Some(v),
    }
}

pub(super) fn builtin_sig(name: &str) -> Option<Sig> {
    use PT::*;
    Some(match name {
        "and" | "or" | "index" | "slice" | "call" | "eq" => vsig(&[Refl], Refl),
        "not" | "len" => sig(&[Refl]),
        "print" | "println" | "html" | "js" | "urlquery" => vsig(&[], Any),
        "printf" => vsig(&[Str], Any),
        "ne" | "lt" | "le" | "gt" | "ge" => sig(&[Refl, Refl]),
        _ => return None,
    })
}

pub(super) fn prometheus_sig(name: &str) -> Option<Sig> {
    use PT::*;
    Some(match name {
        "query" | "safeHtml" | "title" | "toUpper" | "toLower" | "graphLink" | "tableLink"
        | "stripPort" | "stripDomain" | "parseDuration" => sig(&[Str]),
        "first" => sig(&[QueryResult]),
        "label" => sig(&[Str, Sample]),
        "value" | "strvalue" => sig(&[Sample]),
        "args" => vsig(&[], Any),
        "reReplaceAll" => sig(&[Str, Str, Str]),
        "match" => sig(&[Str, Str]),
        "sortByLabel" => sig(&[Str, QueryResult]),
        "humanize" | "humanize1024" | "humanizeDuration" | "humanizePercentage"
        | "humanizeTimestamp" | "toTime" => sig(&[Any]),
        "pathPrefix" | "externalURL" => sig(&[]),
        _ => return None,
    })
}

pub(super) fn alertmanager_sig(name: &str) -> Option<Sig> {
    use PT::*;
    Some(match name {
        "toUpper" | "toLower" | "title" | "trimSpace" | "safeHtml" | "safeUrl" | "urlUnescape" => {
            sig(&[Str])
        }
        "join" => sig(&[Str, StrSlice]),
        "match" => sig(&[Str, Str]),
        "reReplaceAll" => sig(&[Str, Str, Str]),
        "stringSlice" => vsig(&[], Str),
        "date" | "tz" => sig(&[Str, TimeT]),
        "since" => sig(&[TimeT]),
        "humanizeDuration" | "toJson" => sig(&[Any]),
        _ => return None,
    })
}

pub(super) fn func_sig(dialect: Dialect, name: &str) -> Option<Sig> {
    builtin_sig(name).or_else(|| match dialect {
        Dialect::Prometheus => prometheus_sig(name),
        Dialect::Alertmanager => alertmanager_sig(name),
    })
}

pub(super) fn method_sig(v: &Value, name: &str) -> Option<Sig> {
    match v {
        Value::Time(_) => match name {
            "Format" => Some(sig(&[PT::Str])),
            "Unix" | "UnixMilli" | "UnixMicro" | "UnixNano" | "UTC" | "Local" | "String"
            | "Year" | "Month" | "Day" | "Hour" | "Minute" | "Second" | "Nanosecond"
            | "YearDay" | "Weekday" | "IsZero" => Some(sig(&[])),
            _ => None,
        },
        Value::Duration(_) => match name {
            "Seconds" | "Minutes" | "Hours" | "Milliseconds" | "Microseconds" | "Nanoseconds"
            | "String" => Some(sig(&[])),
            _ => None,
        },
        Value::StrMap(m) if m.kv => match name {
            "SortedPairs" | "Names" | "Values" | "String" => Some(sig(&[])),
            "Remove" => Some(sig(&[PT::StrSlice])),
            _ => None,
        },
        Value::List(l) if l.type_name == T_PAIRS => match name {
            "Names" | "Values" | "String" => Some(sig(&[])),
            _ => None,
        },
        Value::List(l) if l.type_name == T_ALERTS => match name {
            "Firing" | "Resolved" => Some(sig(&[])),
            _ => None,
        },
        _ => None,
    }
}

pub(super) enum Callee<'a> {
    Func,
    Method(&'a Value),
}

pub(super) type EResult<T> = Result<T, String>;

pub(super) struct State<'t, 'e> {
    pub(super) set: &'t Template,
    pub(super) tree: &'t Tree,
    pub(super) env: &'t Env<'e>,
    pub(super) vars: Vec<(&'t str, Val)>,
    pub(super) node: Option<At<'t>>,
    pub(super) out: String,
    pub(super) depth: usize,
    pub(super) steps: u64,
    pub(super) regexes: std::collections::HashMap<String, Result<regex::Regex, String>>,
}

impl<'t> State<'t, '_> {
    pub(super) fn at(&mut self, at: At<'t>) {
        self.node = Some(at);
    }

    pub(super) fn errorf(&self, msg: impl std::fmt::Display) -> String {
        let name = quote(&self.tree.name);
        match self.node {
            None => format!("template: {}: {}", self.tree.name, msg),
            Some(at) => {
                let pos = at_pos(at);
                let text = self.tree.text.get(..pos).unwrap_or(&self.tree.text);
                let col = match text.rfind('\n') {
                    None => pos,
                    Some(i) => pos - (i + 1),
                };
                let line = 1 + text.matches('\n').count();
                format!(
                    "template: {}:{}:{}: executing {} at <{}>: {}",
                    self.tree.parse_name,
                    line,
                    col,
                    name,
                    at_string(at),
                    msg
                )
            }
        }
    }

    /// Enters a nested template call, control structure or pipeline.
    pub(super) fn enter(&mut self) -> EResult<()> {
        let max = self.set.limits.max_depth;
        if self.depth >= max {
            return Err(self.errorf(format!("exceeded maximum template depth ({max})")));
        }
        self.depth += 1;
        Ok(())
    }

    pub(super) fn step(&mut self) -> EResult<()> {
        self.steps += 1;
        if let Some(max) = self.set.limits.max_steps {
            if self.steps > max {
                return Err(self.errorf("execution step limit exceeded"));
            }
        }
        Ok(())
    }

    pub(super) fn check_size(&self, len: usize) -> EResult<()> {
        if let Some(max) = self.set.limits.max_output {
            if len > max {
                return Err(self.errorf("output limit exceeded"));
            }
        }
        Ok(())
    }

    pub(super) fn write(&mut self, s: &str) -> EResult<()> {
        self.out.push_str(s);
        self.check_size(self.out.len())
    }

    pub(super) fn walk_list(&mut self, dot: &Val, list: &'t [Node]) -> EResult<Flow> {
        for n in list {
            let f = self.walk(dot, n)?;
            if f != Flow::Normal {
                return Ok(f);
            }
        }
        Ok(Flow::Normal)
    }

    pub(super) fn walk(&mut self, dot: &Val, node: &'t Node) -> EResult<Flow> {
        self.at(At::Node(node));
        self.step()?;
        match node {
            Node::Action { pipe, .. } => {
                let val = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.at(At::Node(node));
                    let s = if val.v.is_nil() {
                        "<no value>".to_string()
                    } else {
                        let mut s = String::new();
                        print_arg(&mut s, &val.v, 'v', &Fl::default(), 0, true);
                        s
                    };
                    self.write(&s)?;
                }
                Ok(Flow::Normal)
            }
            Node::Break { .. } => Ok(Flow::Break),
            Node::Continue { .. } => Ok(Flow::Continue),
            Node::If(c) => self.walk_if_or_with(false, dot, c),
            Node::With(c) => self.walk_if_or_with(true, dot, c),
            Node::Range(c) => self.walk_range(dot, node, c),
            Node::Template { name, pipe, .. } => self.walk_template(dot, node, name, pipe.as_ref()),
            Node::Text { text } => {
                self.write(text)?;
                Ok(Flow::Normal)
            }
            Node::End | Node::Else => Ok(Flow::Normal),
        }
    }

    pub(super) fn walk_if_or_with(
        &mut self,
        with: bool,
        dot: &Val,
        c: &'t Control,
    ) -> EResult<Flow> {
        self.enter()?;
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &c.pipe)?;
        let r = if truth(&val.v) {
            if with {
                self.walk_list(&val, &c.list)
            } else {
                self.walk_list(dot, &c.list)
            }
        } else if let Some(e) = &c.else_list {
            self.walk_list(dot, e)
        } else {
            Ok(Flow::Normal)
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        r
    }

    pub(super) fn walk_range(
        &mut self,
        dot: &Val,
        node: &'t Node,
        c: &'t Control,
    ) -> EResult<Flow> {
        self.enter()?;
        let r = self.walk_range_inner(dot, node, c);
        self.depth -= 1;
        r
    }

    pub(super) fn walk_range_inner(
        &mut self,
        dot: &Val,
        node: &'t Node,
        c: &'t Control,
    ) -> EResult<Flow> {
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &c.pipe)?;
        let mut iterated = false;
        let mut elems: Vec<(Value, Val)> = Vec::new();
        match &val.v {
            Value::List(l) => {
                let boxed = l.type_name == T_ANY_LIST;
                for (i, e) in l.items.iter().enumerate() {
                    elems.push((
                        Value::Int(i as i64),
                        Val {
                            v: e.clone(),
                            boxed,
                        },
                    ));
                }
            }
            Value::Map(m) => {
                for (k, v) in m.iter() {
                    elems.push((
                        Value::str(k),
                        Val {
                            v: v.clone(),
                            boxed: true,
                        },
                    ));
                }
            }
            Value::StrMap(m) => {
                for (k, v) in m.map.iter() {
                    elems.push((Value::str(k), Val::new(Value::str(v))));
                }
            }
            Value::Int(_) | Value::Uint(_) => {
                if c.pipe.decl.len() > 1 {
                    let mut s = String::new();
                    print_arg(&mut s, &val.v, 'v', &Fl::default(), 0, true);
                    return Err(self.errorf(format!(
                        "can't use {s} to iterate over more than one variable"
                    )));
                }
                let n = match val.v {
                    Value::Int(i) => i.max(0) as u64,
                    Value::Uint(u) => u,
                    _ => 0,
                };
                // Lazily: a large count must not allocate.
                let mut i = 0u64;
                while i < n {
                    iterated = true;
                    let v = if matches!(val.v, Value::Int(_)) {
                        Value::Int(i as i64)
                    } else {
                        Value::Uint(i)
                    };
                    if self.range_iteration(c, v.clone(), Val::new(v))? == Flow::Break {
                        break;
                    }
                    i += 1;
                }
            }
            Value::Nil => {}
            other => {
                let mut s = String::new();
                print_arg(&mut s, other, 'v', &Fl::default(), 0, true);
                self.at(At::Node(node));
                return Err(self.errorf(format!("range can't iterate over {s}")));
            }
        }
        for (k, e) in elems {
            iterated = true;
            if self.range_iteration(c, k, e)? == Flow::Break {
                break;
            }
        }
        let r = if !iterated {
            match &c.else_list {
                Some(e) => self.walk_list(dot, e),
                None => Ok(Flow::Normal),
            }
        } else {
            Ok(Flow::Normal)
        };
        self.vars.truncate(mark);
        r.map(|_| Flow::Normal)
    }

    pub(super) fn range_iteration(
        &mut self,
        c: &'t Control,
        index: Value,
        elem: Val,
    ) -> EResult<Flow> {
        self.step()?;
        let decl = &c.pipe.decl;
        if !decl.is_empty() {
            if c.pipe.is_assign {
                if decl.len() > 1 {
                    self.set_var(&decl[0], Val::new(index.clone()))?;
                } else {
                    self.set_var(&decl[0], elem.clone())?;
                }
            } else {
                self.set_top_var(1, elem.clone());
            }
        }
        if decl.len() > 1 {
            if c.pipe.is_assign {
                self.set_var(&decl[1], elem.clone())?;
            } else {
                self.set_top_var(2, Val::new(index));
            }
        }
        let mark = self.vars.len();
        let f = self.walk_list(&elem, &c.list);
        self.vars.truncate(mark);
        f
    }

    pub(super) fn walk_template(
        &mut self,
        dot: &Val,
        node: &'t Node,
        name: &str,
        pipe: Option<&'t Pipe>,
    ) -> EResult<Flow> {
        self.at(At::Node(node));
        let Some(tree) = self.set.trees.get(name) else {
            return Err(self.errorf(format!("template {} not defined", quote(name))));
        };
        self.enter()?;
        let new_dot = match pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Val::new(Value::Nil),
        };
        let saved_tree = std::mem::replace(&mut self.tree, tree);
        let saved_vars = std::mem::replace(&mut self.vars, vec![("$", new_dot.clone())]);
        let saved_node = self.node;
        let r = self.walk_list(&new_dot, &tree.root);
        self.depth -= 1;
        self.tree = saved_tree;
        self.vars = saved_vars;
        self.node = saved_node;
        r.map(|_| Flow::Normal)
    }

    pub(super) fn set_var(&mut self, name: &str, v: Val) -> EResult<()> {
        for i in (0..self.vars.len()).rev() {
            if self.vars[i].0 == name {
                self.vars[i].1 = v;
                return Ok(());
            }
        }
        Err(self.errorf(format!("undefined variable: {name}")))
    }

    pub(super) fn set_top_var(&mut self, n: usize, v: Val) {
        let len = self.vars.len();
        if n <= len {
            self.vars[len - n].1 = v;
        }
    }

    pub(super) fn var_value(&self, name: &str) -> EResult<Val> {
        for (n, v) in self.vars.iter().rev() {
            if *n == name {
                return Ok(v.clone());
            }
        }
        Err(self.errorf(format!("undefined variable: {name}")))
    }

    pub(super) fn eval_pipeline(&mut self, dot: &Val, pipe: &'t Pipe) -> EResult<Val> {
        self.enter()?;
        let r = self.eval_pipeline_inner(dot, pipe);
        self.depth -= 1;
        r
    }

    pub(super) fn eval_pipeline_inner(&mut self, dot: &Val, pipe: &'t Pipe) -> EResult<Val> {
        self.at(At::Pipe(pipe));
        let mut value: Option<Val> = None;
        for cmd in &pipe.cmds {
            let v = self.eval_command(dot, cmd, value.take())?;
            // Dig into interface{}: the result is the value itself.
            value = Some(Val::new(v.v));
        }
        let value = value.unwrap_or_else(|| Val::new(Value::Nil));
        if let Some(v) = &value.v.as_str_len() {
            self.check_size(*v)?;
        }
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, value.clone())?;
            } else {
                self.vars.push((name.as_str(), value.clone()));
            }
        }
        Ok(value)
    }

    pub(super) fn not_a_function(&self, args: &'t [Operand], fin: &Option<Val>) -> EResult<()> {
        if args.len() > 1 || fin.is_some() {
            return Err(self.errorf(format!(
                "can't give argument to non-function {}",
                operand_string(&args[0])
            )));
        }
        Ok(())
    }

    pub(super) fn eval_command(
        &mut self,
        dot: &Val,
        cmd: &'t Command,
        fin: Option<Val>,
    ) -> EResult<Val> {
        self.step()?;
        let first = &cmd.args[0];
        match first {
            Operand::Field { .. } => return self.eval_field_node(dot, first, &cmd.args, fin),
            Operand::Chain { .. } => return self.eval_chain_node(dot, first, &cmd.args, fin),
            Operand::Ident { .. } => {
                return self.eval_function(dot, first, At::Cmd(cmd), &cmd.args, fin)
            }
            Operand::Pipe(p) => {
                self.not_a_function(&cmd.args, &fin)?;
                return self.eval_pipeline(dot, p);
            }
            Operand::Var { .. } => return self.eval_variable_node(dot, first, &cmd.args, fin),
            _ => {}
        }
        self.at(At::Op(first));
        self.not_a_function(&cmd.args, &fin)?;
        match first {
            Operand::Bool { val, .. } => Ok(Val::new(Value::Bool(*val))),
            Operand::Dot { .. } => Ok(dot.clone()),
            Operand::Nil { .. } => Err(self.errorf("nil is not a command")),
            Operand::Number { .. } => self.ideal_constant(first).map(Val::new),
            Operand::Str { val, .. } => Ok(Val::new(Value::str(val))),
            _ => Err(self.errorf(format!(
                "can't evaluate command {}",
                quote(&operand_string(first))
            ))),
        }
    }

    pub(super) fn ideal_constant(&self, n: &Operand) -> EResult<Value> {
        let Operand::Number { text, num, .. } = n else {
            return Ok(Value::Nil);
        };
        match num {
            Num::Int(i) => Ok(Value::Int(*i)),
            Num::Float(f) => Ok(Value::Float(*f)),
            Num::Overflow => Err(self.errorf(format!("{text} overflows int"))),
            Num::Complex => Err(self.errorf(format!("complex constant {text} is not supported"))),
        }
    }

    pub(super) fn eval_field_node(
        &mut self,
        dot: &Val,
        field: &'t Operand,
        args: &'t [Operand],
        fin: Option<Val>,
    ) -> EResult<Val> {
        self.at(At::Op(field));
        let Operand::Field { fields, .. } = field else {
            return Ok(Val::new(Value::Nil));
        };
        self.eval_field_chain(dot, dot.clone(), field, fields, args, fin)
    }

    pub(super) fn eval_chain_node(
        &mut self,
        dot: &Val,
        chain: &'t Operand,
        args: &'t [Operand],
        fin: Option<Val>,
    ) -> EResult<Val> {
        self.at(At::Op(chain));
        let Operand::Chain { node, fields, .. } = chain else {
            return Ok(Val::new(Value::Nil));
        };
        if matches!(node.as_ref(), Operand::Nil { .. }) {
            return Err(self.errorf(format!(
                "indirection through explicit nil in {}",
                operand_string(chain)
            )));
        }
        let recv = self.eval_arg_untyped(dot, node)?;
        self.eval_field_chain(dot, recv, chain, fields, args, fin)
    }

    pub(super) fn eval_variable_node(
        &mut self,
        dot: &Val,
        var: &'t Operand,
        args: &'t [Operand],
        fin: Option<Val>,
    ) -> EResult<Val> {
        self.at(At::Op(var));
        let Operand::Var { name, fields, .. } = var else {
            return Ok(Val::new(Value::Nil));
        };
        let value = self.var_value(name)?;
        if fields.is_empty() {
            if !args.is_empty() {
                self.not_a_function(args, &fin)?;
            }
            return Ok(value);
        }
        self.eval_field_chain(dot, value, var, fields, args, fin)
    }

    pub(super) fn eval_field_chain(
        &mut self,
        dot: &Val,
        receiver: Val,
        node: &'t Operand,
        idents: &[String],
        args: &'t [Operand],
        fin: Option<Val>,
    ) -> EResult<Val> {
        let n = idents.len();
        let mut r = receiver;
        for id in &idents[..n - 1] {
            r = self.eval_field(dot, id, node, &[], None, r)?;
        }
        self.eval_field(dot, &idents[n - 1], node, args, fin, r)
    }

    pub(super) fn eval_field(
        &mut self,
        dot: &Val,
        name: &str,
        node: &'t Operand,
        args: &'t [Operand],
        fin: Option<Val>,
        receiver: Val,
    ) -> EResult<Val> {
        if receiver.v.is_nil() {
            if !receiver.boxed {
                if self.set.missing_key == MissingKey::Error {
                    return Err(self.errorf(format!("nil data; no entry for key {}", quote(name))));
                }
                return Ok(Val::new(Value::Nil));
            }
            return Err(self.errorf(format!("nil pointer evaluating interface {{}}.{name}")));
        }
        if let Some(sig) = method_sig(&receiver.v, name) {
            return self.eval_call(
                dot,
                Callee::Method(&receiver.v),
                sig,
                At::Op(node),
                name,
                args,
                fin,
            );
        }
        let has_args = args.len() > 1 || fin.is_some();
        match &receiver.v {
            Value::Struct(s) => {
                if let Some((_, f)) = s.fields.iter().find(|(n, _)| n == name) {
                    if has_args {
                        return Err(self.errorf(format!(
                            "{name} has arguments but cannot be invoked as function"
                        )));
                    }
                    return Ok(Val::new(f.clone()));
                }
            }
            Value::Map(m) => {
                if has_args {
                    return Err(self.errorf(format!("{name} is not a method but has arguments")));
                }
                return match m.get(name) {
                    Some(v) => Ok(Val {
                        v: v.clone(),
                        boxed: true,
                    }),
                    None => match self.set.missing_key {
                        MissingKey::Invalid => Ok(Val::new(Value::Nil)),
                        MissingKey::Zero => Ok(Val {
                            v: Value::Nil,
                            boxed: true,
                        }),
                        MissingKey::Error => {
                            Err(self.errorf(format!("map has no entry for key {}", quote(name))))
                        }
                    },
                };
            }
            Value::StrMap(m) => {
                if has_args {
                    return Err(self.errorf(format!("{name} is not a method but has arguments")));
                }
                return match m.map.get(name) {
                    Some(v) => Ok(Val::new(Value::str(v))),
                    None => match self.set.missing_key {
                        MissingKey::Invalid => Ok(Val::new(Value::Nil)),
                        MissingKey::Zero => Ok(Val::new(Value::str(""))),
                        MissingKey::Error => {
                            Err(self.errorf(format!("map has no entry for key {}", quote(name))))
                        }
                    },
                };
            }
            _ => {}
        }
        Err(self.errorf(format!(
            "can't evaluate field {} in type {}",
            name,
            receiver.type_name()
        )))
    }

    pub(super) fn eval_function(
        &mut self,
        dot: &Val,
        ident: &'t Operand,
        node: At<'t>,
        args: &'t [Operand],
        fin: Option<Val>,
    ) -> EResult<Val> {
        self.at(At::Op(ident));
        let Operand::Ident { name, .. } = ident else {
            return Ok(Val::new(Value::Nil));
        };
        let Some(sig) = func_sig(self.set.dialect, name) else {
            return Err(self.errorf(format!("{} is not a defined function", quote(name))));
        };
        self.eval_call(dot, Callee::Func, sig, node, name, args, fin)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn eval_call(
        &mut self,
        dot: &Val,
        callee: Callee<'_>,
        sig: Sig,
        node: At<'t>,
        name: &str,
        args: &'t [Operand],
        fin: Option<Val>,
    ) -> EResult<Val> {
        let args = if args.is_empty() { args } else { &args[1..] };
        let num_in = args.len() + usize::from(fin.is_some());
        let nfixed = sig.fixed.len();
        if sig.variadic.is_some() {
            if num_in < nfixed {
                return Err(self.errorf(format!(
                    "wrong number of args for {name}: want at least {nfixed} got {}",
                    args.len()
                )));
            }
        } else if num_in != nfixed {
            return Err(self.errorf(format!(
                "wrong number of args for {name}: want {nfixed} got {num_in}"
            )));
        }
        let builtin = matches!(callee, Callee::Func);
        if builtin && (name == "and" || name == "or") {
            let mut v = Value::Nil;
            for a in args {
                v = self.eval_arg(dot, PT::Refl, a)?;
                if truth(&v) == (name == "or") {
                    return Ok(Val::new(v));
                }
            }
            if let Some(f) = fin {
                v = self.validate_type(f, PT::Refl)?;
            }
            return Ok(Val::new(v));
        }
        let mut argv = Vec::with_capacity(num_in);
        let mut i = 0;
        while i < nfixed && i < args.len() {
            argv.push(self.eval_arg(dot, sig.fixed[i], &args[i])?);
            i += 1;
        }
        if let Some(vt) = sig.variadic {
            while i < args.len() {
                argv.push(self.eval_arg(dot, vt, &args[i])?);
                i += 1;
            }
        }
        if let Some(f) = fin {
            let t = match sig.variadic {
                Some(vt) if num_in > nfixed => vt,
                _ => sig.fixed[num_in - 1],
            };
            argv.push(self.validate_type(f, t)?);
        }
        let r = match callee {
            Callee::Func => self.call_func(name, argv),
            Callee::Method(recv) => call_method(recv, name, &argv),
        };
        match r {
            Ok(v) => {
                if let Some(n) = v.as_str_len() {
                    self.check_size(n)?;
                }
                Ok(Val::new(v))
            }
            Err(e) => {
                self.at(node);
                Err(self.errorf(format!("error calling {name}: {e}")))
            }
        }
    }

    pub(super) fn eval_arg_untyped(&mut self, dot: &Val, n: &'t Operand) -> EResult<Val> {
        self.at(At::Op(n));
        match n {
            Operand::Dot { .. } => Ok(dot.clone()),
            Operand::Field { .. } => self.eval_field_node(dot, n, std::slice::from_ref(n), None),
            Operand::Var { .. } => self.eval_variable_node(dot, n, &[], None),
            Operand::Pipe(p) => self.eval_pipeline(dot, p),
            Operand::Ident { .. } => self.eval_function(dot, n, At::Op(n), &[], None),
            Operand::Chain { .. } => self.eval_chain_node(dot, n, &[], None),
            Operand::Nil { .. } => Ok(Val::new(Value::Nil)),
            Operand::Bool { val, .. } => Ok(Val::new(Value::Bool(*val))),
            Operand::Number { .. } => self.ideal_constant(n).map(Val::new),
            Operand::Str { val, .. } => Ok(Val::new(Value::str(val))),
        }
    }

    pub(super) fn eval_arg(&mut self, dot: &Val, pt: PT, n: &'t Operand) -> EResult<Value> {
        self.at(At::Op(n));
        let v = match n {
            Operand::Dot { .. } => dot.clone(),
            Operand::Nil { .. } => {
                if pt.can_be_nil() {
                    return Ok(Value::Nil);
                }
                return Err(self.errorf(format!("cannot assign nil to {}", pt.name())));
            }
            Operand::Field { .. } => self.eval_field_node(dot, n, std::slice::from_ref(n), None)?,
            Operand::Var { .. } => self.eval_variable_node(dot, n, &[], None)?,
            Operand::Pipe(p) => self.eval_pipeline(dot, p)?,
            Operand::Ident { .. } => self.eval_function(dot, n, At::Op(n), &[], None)?,
            Operand::Chain { .. } => self.eval_chain_node(dot, n, &[], None)?,
            Operand::Bool { val, .. } => {
                return match pt {
                    PT::Any | PT::Refl => Ok(Value::Bool(*val)),
                    PT::Str => Err(self.errorf(format!("expected string; found {val}"))),
                    _ => {
                        Err(self
                            .errorf(format!("can't handle {val} for arg of type {}", pt.name())))
                    }
                }
            }
            Operand::Number { .. } => {
                return match pt {
                    PT::Any | PT::Refl => self.ideal_constant(n),
                    PT::Str => {
                        Err(self.errorf(format!("expected string; found {}", operand_string(n))))
                    }
                    _ => Err(self.errorf(format!(
                        "can't handle {} for arg of type {}",
                        operand_string(n),
                        pt.name()
                    ))),
                }
            }
            Operand::Str { val, .. } => {
                return match pt {
                    PT::Any | PT::Refl | PT::Str => Ok(Value::str(val)),
                    _ => Err(self.errorf(format!(
                        "can't handle {} for arg of type {}",
                        operand_string(n),
                        pt.name()
                    ))),
                }
            }
        };
        self.validate_type(v, pt)
    }

    pub(super) fn validate_type(&self, v: Val, pt: PT) -> EResult<Value> {
        if v.v.is_nil() {
            if !v.boxed || matches!(pt, PT::Any | PT::Refl) {
                if pt.can_be_nil() {
                    return Ok(Value::Nil);
                }
                return Err(self.errorf(format!("invalid value; expected {}", pt.name())));
            }
            // A nil held in an interface{} is not assignable to a concrete
            // parameter type.
            return Err(self.errorf(format!(
                "wrong type for value; expected {}; got interface {{}}",
                pt.name()
            )));
        }
        if pt.accepts(&v.v) {
            return Ok(v.v);
        }
        Err(self.errorf(format!(
            "wrong type for value; expected {}; got {}",
            pt.name(),
            v.v.type_name()
        )))
    }
}

impl Value {
    pub(super) fn as_str_len(&self) -> Option<usize> {
        match self {
            Value::Str(s) => Some(s.len()),
            _ => None,
        }
    }
}

/// Go's `isTrue`.
pub(super) fn truth(v: &Value) -> bool {
    match v {
        Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Uint(u) => *u != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::List(l) => !l.items.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::StrMap(m) => !m.map.is_empty(),
        Value::Struct(_) | Value::Time(_) => true,
        Value::Duration(d) => *d != 0,
    }
}
