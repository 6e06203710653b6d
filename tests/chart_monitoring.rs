//! The chart's Grafana dashboard and PrometheusRule (charts/inference-operator/files/): the
//! dashboard's structure, the alerts the chart promises, every metric they query being one the
//! operator exports, and the objects the chart renders with both values on. PromQL syntax and
//! the alerts' behaviour are checked by promtool in `.ci/monitoring.sh`.
//!
//! helm is found through `$HELM`, the cache `.ci/manifests.sh` fills, or `PATH`; without it the
//! rendering test prints a loud SKIP.

#[path = "support/helm.rs"]
mod helm;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use std::time::Duration;

use inference_operator::elasticsearch::EsError;
use inference_operator::metrics::{EsOperation, Metrics, ReconcileResult};
use serde_json::Value;

/// Series Prometheus itself makes.
const PROMETHEUS_OWN: &[&str] = &["up"];

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/inference-operator")
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(chart().join("files/grafana-dashboard.json")).unwrap();
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

fn rules() -> Value {
    let text = std::fs::read_to_string(chart().join("files/prometheus-rules.yaml")).unwrap();
    serde_saphyr::from_str(&text).expect("the rule file is YAML")
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    panels(dashboard)
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| str_of(t, "expr").to_owned())
        .collect()
}

fn alerts(rules: &Value) -> Vec<&Value> {
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect()
}

/// The series names an expression reads: identifiers that are neither functions, keywords,
/// label names (inside braces or `by (...)`), nor strings or durations.
fn series_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "sum",
        "rate",
        "increase",
        "by",
        "without",
        "and",
        "or",
        "unless",
        "on",
        "ignoring",
        "histogram_quantile",
        "absent",
        "time",
        "le",
        "offset",
        "bool",
    ];
    let mut names = BTreeSet::new();
    let (mut depth_braces, mut in_string, mut after_grouping) = (0, false, false);
    let mut chars = expr.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '{' => depth_braces += 1,
            '}' => depth_braces -= 1,
            '[' => {
                // A range: skip the duration.
                for (_, d) in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                }
            }
            ')' => after_grouping = false,
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = i + 1;
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '_' || d == ':' {
                        end = j + 1;
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = &expr[i..end];
                if [
                    "by",
                    "without",
                    "on",
                    "ignoring",
                    "group_left",
                    "group_right",
                ]
                .contains(&word)
                {
                    after_grouping = true;
                } else if depth_braces == 0 && !after_grouping && !KEYWORDS.contains(&word) {
                    names.insert(word.to_owned());
                }
            }
            _ => {}
        }
    }
    names
}

/// The series names the operator's registry exposes (a counter `x` as `x_total`, a histogram
/// as `x_bucket`, `x_sum`, `x_count`), read from its `# TYPE` lines. A family is rendered
/// once it has a series: one of each is recorded first.
fn exported() -> BTreeSet<String> {
    let metrics = Metrics::default();
    metrics.reconciled(ReconcileResult::Ready, Duration::from_millis(1));
    let answered: Result<(), EsError> = Ok(());
    metrics.elasticsearch(EsOperation::Get, &answered, Duration::from_millis(1));
    metrics.set_endpoints(1, 0, 0);
    metrics.endpoint_state("ns", "iep", true, Some(1));
    metrics.probed("ns", "iep", "healthy", Duration::from_millis(1));
    metrics.rotated("ns", "iep", true);
    let text = metrics.encode();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        match kind {
            "counter" => names.extend([format!("{name}_total")]),
            "histogram" => {
                names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")))
            }
            _ => names.extend([name.to_owned()]),
        }
    }
    names
}

#[test]
fn the_expression_reader_finds_series_and_only_series() {
    let names = series_names(
        r#"histogram_quantile(0.95, sum by (le, operation) (rate(a_bucket{operation="get", x=~"y|z"}[5m]))) / on (job) b and absent(up{job="j"} == 1) - time()"#,
    );
    assert_eq!(
        names,
        ["a_bucket", "b", "up"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}

#[test]
fn every_queried_metric_is_one_the_operator_exports() {
    let exported = exported();
    assert!(
        exported.contains("inference_operator_reconciliations_total")
            && exported.contains("inference_operator_endpoints"),
        "the registry renders its families without samples: {exported:?}"
    );
    let known = |name: &str| exported.contains(name) || PROMETHEUS_OWN.contains(&name);
    let rules = rules();
    let exprs = dashboard_exprs(&dashboard()).into_iter().chain(
        alerts(&rules)
            .into_iter()
            .map(|r| str_of(r, "expr").to_owned()),
    );
    let mut unknown = Vec::new();
    for expr in exprs {
        let names = series_names(&expr);
        assert!(!names.is_empty(), "{expr}: reads no series");
        unknown.extend(
            names
                .into_iter()
                .filter(|n| !known(n))
                .map(|n| format!("{n} in {expr}")),
        );
    }
    assert!(
        unknown.is_empty(),
        "not exported by the operator:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn the_dashboard_is_a_grafana_dashboard_with_the_promised_panels() {
    let d = dashboard();
    assert_eq!(str_of(&d, "uid"), "inference-operator");
    assert!(!str_of(&d, "title").is_empty());
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a Prometheus data source variable"
    );
    let all = panels(&d);
    let ids: BTreeSet<u64> = all.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "panel ids are unique");
    for p in &all {
        let title = str_of(p, "title");
        let grid = &p["gridPos"];
        for key in ["h", "w", "x", "y"] {
            assert!(grid[key].is_u64(), "{title}: gridPos.{key}");
        }
        assert!(
            grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24,
            "{title}: fits 24 columns"
        );
        let kind = str_of(p, "type");
        assert!(
            ["row", "timeseries", "table", "stat"].contains(&kind),
            "{title}: type {kind}"
        );
        if kind == "row" {
            continue;
        }
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "{title}: uses the variable"
        );
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: targets"));
        assert!(!targets.is_empty(), "{title}: no targets");
        let refs: BTreeSet<&str> = targets.iter().map(|t| str_of(t, "refId")).collect();
        assert_eq!(refs.len(), targets.len(), "{title}: refIds unique");
        for t in targets {
            assert!(!str_of(t, "expr").is_empty(), "{title}: empty expr");
            assert!(
                !str_of(t, "expr").contains('$'),
                "{title}: Grafana variables are not PromQL (promtool checks every expr)"
            );
        }
    }
    let exprs = dashboard_exprs(&d).join("\n");
    for (what, series) in [
        ("objects by state", "inference_operator_endpoints"),
        (
            "reconcile rate and errors",
            "inference_operator_reconciliations_total",
        ),
        (
            "Elasticsearch request latency",
            "inference_operator_elasticsearch_request_duration_seconds_bucket",
        ),
        (
            "probe health per endpoint",
            "inference_operator_endpoint_healthy",
        ),
    ] {
        assert!(
            exprs.contains(series),
            "the dashboard shows {what} ({series})"
        );
    }
}

#[test]
fn the_rules_carry_the_promised_alerts_with_severity_and_wording() {
    let rules = rules();
    let alerts = alerts(&rules);
    let names: BTreeSet<&str> = alerts.iter().map(|r| str_of(r, "alert")).collect();
    for promised in [
        "InferenceEndpointNotReady",
        "InferenceEndpointUnhealthy",
        "InferenceEndpointRotationRejected",
        "InferenceOperatorDown",
        "InferenceOperatorReconcileErrorsRising",
    ] {
        assert!(names.contains(promised), "{promised} missing: {names:?}");
    }
    let not_ready = alerts
        .iter()
        .find(|r| r["alert"] == "InferenceEndpointNotReady")
        .unwrap();
    assert_eq!(str_of(not_ready, "for"), "15m");
    for r in &alerts {
        let name = str_of(r, "alert");
        assert!(
            ["warning", "critical"].contains(&str_of(&r["labels"], "severity")),
            "{name}: severity"
        );
        assert!(
            !str_of(&r["annotations"], "summary").is_empty(),
            "{name}: summary"
        );
        assert!(
            !str_of(&r["annotations"], "description").is_empty(),
            "{name}: description"
        );
    }
}

fn render(helm: &Path, args: &[&str]) -> Vec<Value> {
    helm::render(helm, "monitoring-test", args)
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

#[test]
fn the_chart_renders_the_dashboard_and_the_rule_only_when_asked() {
    let Some(helm) = helm::helm() else {
        let bar = "!".repeat(80);
        eprintln!("\n{bar}\n!! SKIPPING chart rendering: no helm (set $HELM, or run .ci/manifests.sh)\n{bar}\n");
        return;
    };
    let default = render(&helm, &[]);
    assert!(
        kind(&default, "PrometheusRule").is_empty() && kind(&default, "ConfigMap").is_empty(),
        "off by default"
    );

    let on = render(
        &helm,
        &[
            "--set",
            "metrics.grafanaDashboard.enabled=true",
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set",
            "metrics.prometheusRule.labels.release=kube-prometheus-stack",
            "--set",
            "metrics.grafanaDashboard.annotations.grafana_folder=Elasticsearch",
        ],
    );
    let config_map = kind(&on, "ConfigMap");
    assert_eq!(config_map.len(), 1);
    let cm = config_map[0];
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        cm["metadata"]["annotations"]["grafana_folder"],
        "Elasticsearch"
    );
    assert_eq!(cm["metadata"]["namespace"], "monitoring-test");
    let shipped: Value =
        serde_json::from_str(cm["data"]["inference-operator.json"].as_str().unwrap()).unwrap();
    assert_eq!(shipped, dashboard(), "the dashboard ships unchanged");

    let rule = kind(&on, "PrometheusRule");
    assert_eq!(rule.len(), 1);
    let rule = rule[0];
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        rule["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let mut expected = rules();
    let service = kind(&on, "Service")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    for group in expected["groups"].as_array_mut().unwrap() {
        for r in group["rules"].as_array_mut().unwrap() {
            let expr = r["expr"].as_str().unwrap().replace(
                r#"job="inference-operator-metrics""#,
                &format!(r#"job="{service}""#),
            );
            r["expr"] = Value::String(expr);
        }
    }
    assert_eq!(
        rule["spec"]["groups"], expected["groups"],
        "the rule groups ship as in the file, the job pointed at this release's metrics Service"
    );
    assert!(serde_json::to_string(&rule["spec"])
        .unwrap()
        .contains(&format!(r#"job=\"{service}\""#)));

    let relabelled = render(
        &helm,
        &[
            "--set",
            "metrics.grafanaDashboard.enabled=true",
            "--set",
            "metrics.grafanaDashboard.labels.grafana_dashboard=yes",
        ],
    );
    assert_eq!(
        kind(&relabelled, "ConfigMap")[0]["metadata"]["labels"]["grafana_dashboard"],
        "yes"
    );
}
