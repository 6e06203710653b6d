//! The subset of Kubernetes' JSONPath dialect (`k8s.io/client-go/util/jsonpath`) that CRD
//! `additionalPrinterColumns` use, evaluated like the apiserver's CRD table convertor does:
//! missing keys are allowed (no result rather than an error).
//!
//! Supported: an optional `{…}` wrapper and leading `$`; `.field`; `['field']`/`["field"]`;
//! `..field` (recursive descent); `.*` and `[*]`; `[n]` with negative `n`; `[start:end]`;
//! filters `[?(@.a.b OP literal)]` with `==`, `!=`, `<`, `<=`, `>`, `>=` against a quoted
//! string, a number, `true`/`false` or another `@` path, and `[?(@.a)]` (the field exists).
//!
//! Not supported (rejected at parse time): unions (`[a,b]`), `range`/`end` templates, text
//! between `{}` blocks and `&&`/`||` in filters.
//!
//! Why not a crate: `serde_json_path` and `jsonpath-rust` implement RFC 9535, whose grammar
//! and comparison rules differ from Kubernetes' (paths must start with `$`, no `{}`
//! template, different filter semantics), and no maintained crate implements the Kubernetes
//! dialect. Printer columns need only this small subset.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Recursive(String),
    Wildcard,
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Path(Vec<Step>),
    Lit(Value),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    left: Vec<Step>,
    /// `None`: existence test.
    cmp: Option<(String, Operand)>,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c == b' ' || c == b'\t') {
            self.i += 1;
        }
    }
    fn err<T>(&self, msg: &str) -> Result<T, String> {
        Err(format!(
            "{msg} at position {} in {:?}",
            self.i,
            String::from_utf8_lossy(self.s)
        ))
    }
    fn ident(&mut self) -> String {
        let start = self.i;
        while self.peek().is_some_and(|c| {
            !matches!(
                c,
                b'.' | b'['
                    | b']'
                    | b' '
                    | b'('
                    | b')'
                    | b'='
                    | b'!'
                    | b'<'
                    | b'>'
                    | b'}'
                    | b'{'
                    | b','
            )
        }) {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    fn quoted(&mut self) -> Result<String, String> {
        let q = self.peek().unwrap_or(b'\'');
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return self.err("unterminated string"),
                Some(b'\\') => {
                    self.i += 1;
                    if let Some(c) = self.peek() {
                        out.push(c);
                        self.i += 1;
                    }
                }
                Some(c) if c == q => {
                    self.i += 1;
                    break;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
    fn int(&mut self) -> Option<i64> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|t| t.parse().ok())
    }

    /// Steps until a character that cannot continue a path.
    fn steps(&mut self, in_filter: bool) -> Result<Vec<Step>, String> {
        let mut steps = Vec::new();
        loop {
            match self.peek() {
                Some(b'.') => {
                    self.i += 1;
                    if self.eat(b'.') {
                        let name = self.ident();
                        if name.is_empty() {
                            return self.err("expected a field name after '..'");
                        }
                        steps.push(Step::Recursive(name));
                    } else if self.eat(b'*') {
                        steps.push(Step::Wildcard);
                    } else if matches!(self.peek(), Some(b'[') | None) || self.peek() == Some(b'}')
                    {
                        // `.` alone (the current object) or `.[...]`
                    } else {
                        let name = self.ident();
                        if name.is_empty() {
                            return self.err("expected a field name");
                        }
                        steps.push(Step::Field(name));
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    self.skip_ws();
                    let step = match self.peek() {
                        Some(b'\'' | b'"') => Step::Field(self.quoted()?),
                        Some(b'*') => {
                            self.i += 1;
                            Step::Wildcard
                        }
                        Some(b'?') => {
                            self.i += 1;
                            if !self.eat(b'(') {
                                return self.err("expected '(' after '?'");
                            }
                            let f = self.filter()?;
                            if !self.eat(b')') {
                                return self.err("expected ')' to close the filter");
                            }
                            Step::Filter(f)
                        }
                        _ => {
                            let a = self.int();
                            self.skip_ws();
                            if self.eat(b':') {
                                self.skip_ws();
                                let b = self.int();
                                Step::Slice(a, b)
                            } else {
                                match a {
                                    Some(n) => Step::Index(n),
                                    None => return self.err("unsupported subscript"),
                                }
                            }
                        }
                    };
                    self.skip_ws();
                    if !self.eat(b']') {
                        return self.err("expected ']'");
                    }
                    steps.push(step);
                }
                Some(b'@' | b'$') if steps.is_empty() && !in_filter => {
                    self.i += 1;
                }
                _ => return Ok(steps),
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        self.skip_ws();
        match self.peek() {
            Some(b'@') => {
                self.i += 1;
                Ok(Operand::Path(self.steps(true)?))
            }
            Some(b'\'' | b'"') => Ok(Operand::Lit(Value::String(self.quoted()?))),
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                while self.peek().is_some_and(|c| {
                    c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')
                }) {
                    self.i += 1;
                }
                match serde_json::from_slice::<Value>(&self.s[start..self.i]) {
                    Ok(n @ Value::Number(_)) => Ok(Operand::Lit(n)),
                    _ => self.err("invalid number"),
                }
            }
            _ => {
                let t = self.ident();
                let v = match t.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "" => return self.err("expected a value"),
                    _ => return self.err("unsupported literal"),
                };
                Ok(Operand::Lit(v))
            }
        }
    }

    fn filter(&mut self) -> Result<Filter, String> {
        self.skip_ws();
        if !self.eat(b'@') {
            return self.err("a filter must start with '@'");
        }
        let left = self.steps(true)?;
        self.skip_ws();
        let op = ["==", "!=", "<=", ">=", "<", ">"]
            .into_iter()
            .find(|op| self.s[self.i..].starts_with(op.as_bytes()));
        let cmp = match op {
            Some(op) => {
                self.i += op.len();
                Some((op.to_string(), self.operand()?))
            }
            None => None,
        };
        self.skip_ws();
        Ok(Filter { left, cmp })
    }
}

impl JsonPath {
    /// Parse a path such as `.status.conditions[?(@.type=="Ready")].status`.
    pub fn parse(src: &str) -> Result<JsonPath, String> {
        let mut t = src.trim();
        if let Some(inner) = t.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
            t = inner.trim();
        }
        let mut p = Parser {
            s: t.as_bytes(),
            i: 0,
        };
        let steps = p.steps(false)?;
        if p.i != p.s.len() {
            return p.err("unexpected character");
        }
        Ok(JsonPath { steps })
    }

    /// Every result, in document order.
    pub fn find<'v>(&self, root: &'v Value) -> Vec<&'v Value> {
        eval(&self.steps, vec![root])
    }

    /// The first result, if any.
    pub fn first<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        self.find(root).into_iter().next()
    }
}

fn children(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(m) => m.values().collect(),
        _ => vec![],
    }
}

fn descend<'v>(v: &'v Value, name: &str, out: &mut Vec<&'v Value>) {
    if let Some(x) = v.as_object().and_then(|m| m.get(name)) {
        out.push(x);
    }
    for c in children(v) {
        descend(c, name, out);
    }
}

fn eval<'v>(steps: &[Step], mut cur: Vec<&'v Value>) -> Vec<&'v Value> {
    for step in steps {
        let mut next = Vec::new();
        for v in cur {
            match step {
                Step::Field(f) => {
                    if let Some(x) = v.as_object().and_then(|m| m.get(f)) {
                        next.push(x);
                    }
                }
                Step::Recursive(f) => descend(v, f, &mut next),
                Step::Wildcard => next.extend(children(v)),
                Step::Index(i) => {
                    if let Some(a) = v.as_array() {
                        let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                        if let Some(x) = usize::try_from(idx).ok().and_then(|k| a.get(k)) {
                            next.push(x);
                        }
                    }
                }
                Step::Slice(s, e) => {
                    if let Some(a) = v.as_array() {
                        let n = a.len() as i64;
                        let norm = |x: i64| if x < 0 { (n + x).max(0) } else { x.min(n) };
                        let s = norm(s.unwrap_or(0));
                        let e = norm(e.unwrap_or(n));
                        if s < e {
                            next.extend(&a[s as usize..e as usize]);
                        }
                    }
                }
                Step::Filter(f) => {
                    let items: Vec<&Value> = match v {
                        Value::Array(a) => a.iter().collect(),
                        Value::Object(m) => m.values().collect(),
                        _ => vec![],
                    };
                    next.extend(items.into_iter().filter(|it| filter_matches(f, it)));
                }
            }
        }
        cur = next;
    }
    cur
}

fn filter_matches(f: &Filter, item: &Value) -> bool {
    let lefts = eval(&f.left, vec![item]);
    let Some((op, right)) = &f.cmp else {
        return !lefts.is_empty();
    };
    let rights: Vec<&Value> = match right {
        Operand::Lit(v) => vec![v],
        Operand::Path(p) => eval(p, vec![item]),
    };
    let (Some(l), Some(r)) = (lefts.first(), rights.first()) else {
        return false;
    };
    compare(l, op, r)
}

fn compare(l: &Value, op: &str, r: &Value) -> bool {
    use std::cmp::Ordering;
    let ord = match (l, r) {
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        _ => None,
    };
    match (op, ord) {
        ("==", Some(o)) => o == Ordering::Equal,
        ("!=", Some(o)) => o != Ordering::Equal,
        ("!=", None) => true,
        ("<", Some(o)) => o == Ordering::Less,
        ("<=", Some(o)) => o != Ordering::Greater,
        (">", Some(o)) => o == Ordering::Greater,
        (">=", Some(o)) => o != Ordering::Less,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({
            "metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}},
            "spec": {"taskType": "completion", "replicas": 3, "ratio": 1.5},
            "status": {"conditions": [
                {"type": "Reconciling", "status": "False", "reason": "Idle"},
                {"type": "Ready", "status": "True", "reason": "Synced", "observedGeneration": 2}
            ]}
        })
    }

    fn first(p: &str) -> Option<Value> {
        let o = obj();
        JsonPath::parse(p).unwrap().first(&o).cloned()
    }

    #[test]
    fn fields_and_filters() {
        assert_eq!(first(".spec.taskType"), Some(json!("completion")));
        assert_eq!(first("{.spec.replicas}"), Some(json!(3)));
        assert_eq!(first("$.spec.ratio"), Some(json!(1.5)));
        assert_eq!(
            first(r#".status.conditions[?(@.type=="Ready")].status"#),
            Some(json!("True"))
        );
        assert_eq!(
            first(".status.conditions[?(@.type == 'Reconciling')].reason"),
            Some(json!("Idle"))
        );
        assert_eq!(
            first(".status.conditions[?(@.observedGeneration>1.5)].type"),
            Some(json!("Ready"))
        );
        assert_eq!(
            first(".status.conditions[?(@.observedGeneration)].reason"),
            Some(json!("Synced"))
        );
        assert_eq!(
            first(r#".status.conditions[?(@.type!="Ready")].type"#),
            Some(json!("Reconciling"))
        );
        assert_eq!(first(".status.conditions[-1].type"), Some(json!("Ready")));
        assert_eq!(first(".status.conditions[1:].type"), Some(json!("Ready")));
        assert_eq!(
            first(".status.conditions[*].type"),
            Some(json!("Reconciling"))
        );
        assert_eq!(
            first(".metadata.labels['app.kubernetes.io/name']"),
            Some(json!("x"))
        );
        assert_eq!(first("..reason"), Some(json!("Idle")));
        assert_eq!(first(".spec"), Some(obj()["spec"].clone()));
    }

    #[test]
    fn missing_keys_give_no_result() {
        assert_eq!(first(".status.inferenceId"), None);
        assert_eq!(first(".spec.taskType.deeper"), None);
        assert_eq!(
            first(r#".status.conditions[?(@.type=="Stalled")].status"#),
            None
        );
        assert_eq!(first(".status.conditions[7]"), None);
        let empty = json!({});
        let p = JsonPath::parse(r#".status.conditions[?(@.type=="Ready")].status"#).unwrap();
        assert!(p.find(&empty).is_empty());
    }

    #[test]
    fn rejects_unsupported_syntax() {
        assert!(JsonPath::parse(".a[0,1]").is_err());
        assert!(JsonPath::parse(".a[?(@.b==)]").is_err());
        assert!(JsonPath::parse(".a[").is_err());
        assert!(JsonPath::parse(".a[?(@.b==1 && @.c==2)]").is_err());
    }
}
