//! The image, the chart and the install docs agree, checked without a container engine (CI has
//! none): the Dockerfile is well formed and builds the binary the chart runs, and the chart's
//! default image is the tag the documented `docker build` gives and `kind load` loads.

mod support;

use std::path::Path;

use inference_testenv::{EnvOptions, TestEnv, ES_PASSWORD};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::Value;
use support::*;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Dockerfile's instructions: comments dropped, `\` continuations joined.
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut continued = false;
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && !continued) {
            continue;
        }
        let (text, next) = match trimmed.strip_suffix('\\') {
            Some(text) => (text.trim(), true),
            None => (trimmed, false),
        };
        if continued {
            let last = out.last_mut().expect("a continued instruction");
            last.push(' ');
            last.push_str(text);
        } else {
            out.push(text.to_owned());
        }
        continued = next;
    }
    assert!(!continued, "the Dockerfile ends inside a continued line");
    out
}

fn keyword(instruction: &str) -> &str {
    instruction.split_whitespace().next().unwrap_or_default()
}

#[test]
fn the_dockerfile_is_well_formed() {
    let all = instructions(&read("Dockerfile"));
    const KNOWN: &[&str] = &[
        "FROM",
        "ARG",
        "WORKDIR",
        "COPY",
        "RUN",
        "LABEL",
        "USER",
        "EXPOSE",
        "ENTRYPOINT",
        "CMD",
        "ENV",
    ];
    for i in &all {
        assert!(KNOWN.contains(&keyword(i)), "unknown instruction: {i}");
    }
    // Only ARG may come before the first FROM.
    let first_from = all
        .iter()
        .position(|i| keyword(i) == "FROM")
        .expect("a FROM");
    assert!(all[..first_from].iter().all(|i| keyword(i) == "ARG"));
    // Every COPY --from names a stage defined before it.
    let mut stages = Vec::new();
    for i in &all {
        if keyword(i) == "FROM" {
            if let Some((_, name)) = i.split_once(" AS ") {
                stages.push(name.trim().to_owned());
            }
        }
        if let Some(rest) = i.strip_prefix("COPY --from=") {
            let stage = rest.split_whitespace().next().unwrap();
            assert!(stages.iter().any(|s| s == stage), "{i}: no stage {stage}");
        }
    }
    // Exec form, so SIGTERM reaches the operator (docs/lifecycle.md, "Stopping").
    let entrypoint = all.iter().find(|i| keyword(i) == "ENTRYPOINT").unwrap();
    assert!(entrypoint.contains("[\""), "{entrypoint}");
}

#[test]
fn the_image_holds_the_binary_the_chart_runs() {
    let all = instructions(&read("Dockerfile"));
    let build = all
        .iter()
        .find(|i| i.contains("cargo build"))
        .expect("a cargo build");
    assert!(
        build.contains("--release --locked --package inference-operator --bin inference-operator"),
        "{build}"
    );
    assert!(build
        .contains("install -D -m 0755 target/release/inference-operator /out/inference-operator"));
    assert!(all
        .iter()
        .any(|i| i == "COPY --from=builder /out/inference-operator /inference-operator"));
    assert!(all
        .iter()
        .any(|i| i == "ENTRYPOINT [\"/inference-operator\"]"));
    // The chart's container passes `run` as args (the image's CMD is the same).
    assert!(all.iter().any(|i| i == "CMD [\"run\"]"));
    let deployment = read("charts/inference-operator/templates/deployment.yaml");
    assert!(deployment.contains("- run"), "the chart runs `run`");
}

#[test]
fn the_builder_toolchain_is_at_least_the_minimum_rust_version() {
    let all = instructions(&read("Dockerfile"));
    let arg = all
        .iter()
        .find_map(|i| i.strip_prefix("ARG RUST_VERSION="))
        .expect("ARG RUST_VERSION=");
    let cargo = read("Cargo.toml");
    let msrv = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("rust-version")
        .trim_matches('"');
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap()).collect() };
    assert!(
        parse(arg) >= parse(msrv),
        "builder {arg} < rust-version {msrv}"
    );
}

#[test]
fn the_default_image_is_the_tag_the_documented_build_gives() {
    let image = format!("inference-operator:{VERSION}");
    let chart = read("charts/inference-operator/Chart.yaml");
    assert!(
        chart.contains(&format!("appVersion: \"{VERSION}\"")),
        "the chart's appVersion (the default tag) is the crate version {VERSION}"
    );
    let values = read("charts/inference-operator/values.yaml");
    assert!(
        values.contains("  repository: inference-operator\n"),
        "values.yaml image.repository"
    );
    assert!(
        values.contains("  tag: \"\"\n"),
        "values.yaml image.tag defaults to appVersion"
    );
    let deploy = read("deploy/inference-operator.yaml");
    assert!(
        deploy.contains(&format!("image: \"{image}\"")),
        "deploy/ runs {image}"
    );
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains(&format!("docker build -t {image} .")));
    let readme = read("README.md");
    for command in [
        format!("docker build -t {image} ."),
        format!("kind load docker-image {image}"),
    ] {
        assert!(readme.contains(&command), "README.md shows `{command}`");
    }
    assert!(
        !readme.contains("kustomize edit set image"),
        "README.md uses the documented overlay, not kustomize edit"
    );
    let overlay = read("docs/install/kustomization.yaml");
    assert!(
        overlay.contains("  - ../../deploy\n")
            && overlay.contains("  - name: inference-operator\n")
    );
}

#[test]
fn instructions_join_continuations_and_drop_comments() {
    let parsed =
        instructions("# c\nARG A=1\n\nRUN a \\\n    b \\\n # inside\n    c\nCMD [\"x\"]\n");
    assert_eq!(parsed, vec!["ARG A=1", "RUN a b c", "CMD [\"x\"]"]);
}

/// `docs/examples/eck-text-embedding.yaml` as a user applies it, next to an ECK cluster
/// `quickstart` (ECK's Secrets, as tests/eck.rs makes them): the endpoint is created. (Not in
/// `examples/`: the sandbox applies every file there and has no ECK.)
#[tokio::test]
async fn the_eck_example_becomes_ready_next_to_an_eck_cluster() {
    let env = TestEnv::start_with(EnvOptions {
        es_tls: true,
        ..EnvOptions::default()
    })
    .await;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&read("docs/examples/eck-text-embedding.yaml")).unwrap();
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.namespace);
    let ca = env.es.ca_pem().expect("the double serves TLS");
    for (name, key, value) in [
        (
            "quickstart-es-elastic-user",
            "elastic",
            ES_PASSWORD.to_owned(),
        ),
        ("quickstart-es-http-certs-public", "ca.crt", ca),
    ] {
        let secret = OpaqueSecret::eck(name, "quickstart").data(key, &value);
        secrets
            .create(&PostParams::default(), &secret.build())
            .await
            .expect("create ECK Secret");
    }
    let mut name = String::new();
    for doc in docs {
        match doc["kind"].as_str() {
            Some("Secret") => {
                let key = doc["stringData"]["apiKey"].as_str().unwrap();
                env.es.azure().accept_credential(key);
                let secret: Secret = serde_json::from_value(doc).unwrap();
                secrets
                    .create(&PostParams::default(), &secret)
                    .await
                    .unwrap();
            }
            Some("InferenceEndpoint") => {
                name = doc["metadata"]["name"].as_str().unwrap().to_owned();
                let object: DynamicObject = serde_json::from_value(doc).unwrap();
                let resource = kube::api::ApiResource::erase::<
                    inference_operator::api::InferenceEndpoint,
                >(&());
                let api: Api<DynamicObject> =
                    Api::namespaced_with(env.client.clone(), &env.namespace, &resource);
                api.create(&PostParams::default(), &object)
                    .await
                    .expect("the example is accepted");
            }
            other => panic!("unexpected document {other:?}"),
        }
    }
    let mut config = test_config();
    // The double's certificate names localhost; ECK's names the service.
    config.connection.eck_url_template = format!("https://localhost:{}", env.es.addr().port());
    let _operator = start_operator(&env, config);
    wait_ready(&env, &name, "True", "Created").await;
}
