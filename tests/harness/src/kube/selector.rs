//! Label and field selectors (docs/reference/kubernetes-api.md#selectors-and-pagination).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq,
    NotEq,
    In,
    NotIn,
    Exists,
    NotExists,
    Gt,
    Lt,
}

#[derive(Debug, Clone)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Split on commas that are not inside parentheses.
fn split_top(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unexpected ')'".into());
                }
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if depth != 0 {
        return Err("unclosed '('".into());
    }
    out.push(cur);
    Ok(out)
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let mut reqs = Vec::new();
        if s.is_empty() {
            return Ok(LabelSelector { reqs });
        }
        for part in split_top(s)? {
            let p = part.trim();
            if p.is_empty() {
                return Err(format!(
                    "unable to parse requirement: found '', expected: identifier in {s:?}"
                ));
            }
            reqs.push(parse_requirement(p)?);
        }
        Ok(LabelSelector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        self.reqs.iter().all(|r| {
            let v = labels.and_then(|l| l.get(&r.key)).and_then(|v| v.as_str());
            match r.op {
                Op::Eq | Op::In => v.is_some_and(|v| r.values.iter().any(|x| x == v)),
                Op::NotEq | Op::NotIn => v.is_none_or(|v| !r.values.iter().any(|x| x == v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
                Op::Gt | Op::Lt => {
                    let Some(lv) = v.and_then(|v| v.parse::<i64>().ok()) else {
                        return false;
                    };
                    let rv: i64 = r.values[0].parse().unwrap_or(0);
                    if r.op == Op::Gt {
                        lv > rv
                    } else {
                        lv < rv
                    }
                }
            }
        })
    }
}

fn parse_requirement(p: &str) -> Result<Requirement, String> {
    let err = |m: &str| Err(format!("unable to parse requirement: {m}"));
    if let Some(rest) = p.strip_prefix('!') {
        let key = rest.trim();
        if !valid_key(key) {
            return err(&format!("invalid label key {key:?}"));
        }
        return Ok(Requirement {
            key: key.into(),
            op: Op::NotExists,
            values: vec![],
        });
    }
    // set-based: key in (..) / key notin (..)
    let key_end = p
        .find(|c: char| c.is_whitespace() || matches!(c, '=' | '!' | '<' | '>'))
        .unwrap_or(p.len());
    let key = &p[..key_end];
    if !valid_key(key) {
        return err(&format!("invalid label key {key:?}"));
    }
    let rest = p[key_end..].trim_start();
    if rest.is_empty() {
        return Ok(Requirement {
            key: key.into(),
            op: Op::Exists,
            values: vec![],
        });
    }
    let (op, vals): (Op, &str) = if let Some(r) = rest.strip_prefix("==") {
        (Op::Eq, r)
    } else if let Some(r) = rest.strip_prefix("!=") {
        (Op::NotEq, r)
    } else if let Some(r) = rest.strip_prefix('=') {
        (Op::Eq, r)
    } else if let Some(r) = rest.strip_prefix('>') {
        (Op::Gt, r)
    } else if let Some(r) = rest.strip_prefix('<') {
        (Op::Lt, r)
    } else if let Some(r) = rest.strip_prefix("notin") {
        (Op::NotIn, r)
    } else if let Some(r) = rest.strip_prefix("in") {
        (Op::In, r)
    } else {
        return err(&format!(
            "found '{rest}', expected: in, notin, =, ==, !=, gt, lt"
        ));
    };
    let vals = vals.trim();
    match op {
        Op::In | Op::NotIn => {
            let inner = vals
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| "unable to parse requirement: expected '(' and ')'".to_string())?;
            let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
            if values.iter().any(|v| !valid_value(v)) {
                return err(&format!("invalid label value in {inner:?}"));
            }
            Ok(Requirement {
                key: key.into(),
                op,
                values,
            })
        }
        Op::Gt | Op::Lt => {
            if vals.parse::<i64>().is_err() {
                return err(&format!(
                    "for 'Gt', 'Lt' operators, the value must be an integer: {vals:?}"
                ));
            }
            Ok(Requirement {
                key: key.into(),
                op,
                values: vec![vals.into()],
            })
        }
        _ => {
            if !valid_value(vals) {
                return err(&format!("invalid label value: {vals:?}"));
            }
            Ok(Requirement {
                key: key.into(),
                op,
                values: vec![vals.into()],
            })
        }
    }
}

/// A parsed field selector over a fixed set of supported fields.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>, // (field, equal?, value)
}

impl FieldSelector {
    /// `supported` lists the allowed field labels, e.g. `metadata.name`.
    pub fn parse(s: &str, supported: &[&str]) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let p = part.trim();
            if p.is_empty() {
                continue;
            }
            let (field, eq, value) = if let Some((f, v)) = p.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = p.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = p.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!("invalid selector: '{s}'; can't understand '{p}'"));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            reqs.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Rewrite each field label into the path it is evaluated at (for resources served as a
    /// view of another resource's store).
    pub fn map_fields(mut self, f: impl Fn(&str) -> String) -> Self {
        for r in &mut self.reqs {
            r.0 = f(&r.0);
        }
        self
    }

    /// The name an exact `metadata.name=` requirement selects, if there is one: the apiserver
    /// then reads that one key instead of the whole resource (`SelectionPredicate.MatchesSingle`,
    /// used by `Store.ListPredicate` in apiserver `pkg/registry/generic/registry/store.go`).
    pub fn single_name(&self) -> Option<&str> {
        self.reqs
            .iter()
            .find(|(f, eq, _)| *eq && f == "metadata.name")
            .map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(f, eq, v)| {
            let mut cur = obj;
            for seg in f.split('.') {
                cur = cur.get(seg).unwrap_or(&Value::Null);
            }
            let actual = match cur {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == *v) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn an_exact_name_selects_one_key() {
        let fs = |s: &str| FieldSelector::parse(s, &["metadata.name", "type"]).unwrap();
        assert_eq!(fs("type=Opaque,metadata.name=a").single_name(), Some("a"));
        assert_eq!(fs("metadata.name==a").single_name(), Some("a"));
        assert_eq!(fs("metadata.name!=a").single_name(), None);
        assert_eq!(fs("type=Opaque").single_name(), None);
    }

    #[test]
    fn label_selector_syntax() {
        let l = labels(json!({"app": "a", "tier": "web", "n": "7"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(Some(&l));
        assert!(m("app=a"));
        assert!(m("app==a,tier=web"));
        assert!(!m("app!=a"));
        assert!(m("app in (a,b)"));
        assert!(!m("app notin (a,b)"));
        assert!(m("missing notin (a)"));
        assert!(m("missing!=x"));
        assert!(m("app"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m("n>5"));
        assert!(!m("n<5"));
        assert!(LabelSelector::parse("app in (a").is_err());
        assert!(LabelSelector::parse("a b c").is_err());
    }

    #[test]
    fn field_selector() {
        let obj = json!({"metadata": {"name": "x", "namespace": "ns"}});
        let sup = ["metadata.name", "metadata.namespace"];
        assert!(FieldSelector::parse("metadata.name=x", &sup)
            .unwrap()
            .matches(&obj));
        assert!(!FieldSelector::parse("metadata.name!=x", &sup)
            .unwrap()
            .matches(&obj));
        assert_eq!(
            FieldSelector::parse("spec.x=1", &sup).unwrap_err(),
            "field label not supported: spec.x"
        );
    }
}
