use super::*;
use crate::elasticsearch::EsVersion;

fn v(s: &str) -> EsVersion {
    EsVersion::parse(s).unwrap()
}

#[test]
fn azure_table() {
    let p = ServiceProfile::lookup("azureopenai").unwrap();
    assert_eq!(p.default_rpm(TaskType::TextEmbedding), Some(1440));
    assert_eq!(p.default_rpm(TaskType::Completion), Some(120));
    assert_eq!(p.default_rpm(TaskType::ChatCompletion), Some(120));
    assert_eq!(
        (p.filled_in)(TaskType::TextEmbedding),
        &["dimensions", "similarity"]
    );
    assert!((p.filled_in)(TaskType::Completion).is_empty());
    assert_eq!(
        p.min_version_for(TaskType::ChatCompletion),
        Some(Since::release(9, 3))
    );
    assert_eq!(p.min_version_for(TaskType::Rerank), None);
    assert!(is_secret_field("azureopenai", "entra_id"));
    assert!(!is_secret_field("azureopenai", "deployment_id"));
    assert!(is_secret_field("amazonbedrock", "secret_key"));
    assert!(is_secret_field("some-future-service", "secret_key"));
    assert!(!is_secret_field("some-future-service", "model_id"));
}

#[test]
fn azure_version_gates() {
    let p = ServiceProfile::lookup("azureopenai").unwrap();
    let offers = |s: &str, task| p.min_version_for(task).unwrap().contains(&v(s));
    assert!(!offers("8.13.4", TaskType::TextEmbedding));
    assert!(offers("8.14.0", TaskType::TextEmbedding));
    assert!(!offers("8.14.3", TaskType::Completion));
    assert!(offers("8.15.0", TaskType::Completion));
    assert!(!offers("8.19.0", TaskType::ChatCompletion));
    assert!(!offers("9.2.9", TaskType::ChatCompletion));
    assert!(offers("9.3.0", TaskType::ChatCompletion));
    let headers = p.gate("task_settings.headers").unwrap();
    let oauth2 = p.oauth2.unwrap().since;
    for (s, on) in [("9.3.5", false), ("9.4.0", true), ("8.19.9", false)] {
        assert_eq!(headers.contains(&v(s)), on, "{s}");
        assert_eq!(oauth2.contains(&v(s)), on, "{s}");
    }
    assert_eq!(p.updatable_since("rate_limit"), Some(Since::release(9, 5)));
    assert_eq!(p.updatable_since("deployment_id"), None);
}

#[test]
fn every_service_is_listed_once_with_a_task_and_consistent_secrets() {
    let mut names: Vec<&str> = KNOWN.iter().map(|p| p.service).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "a service is listed twice");
    for p in KNOWN {
        assert!(!p.tasks.is_empty(), "{} offers no task type", p.service);
        let has_secrets = !p.secrets.names().is_empty();
        if p.secrets == SecretKeys::None {
            assert!(!has_secrets);
            assert!(!p.rotates_in_place, "{}: nothing to rotate", p.service);
        }
        if let Some(oauth2) = p.oauth2 {
            assert!(p.secrets.names().contains(&oauth2.secret), "{}", p.service);
        }
        for task in p.task_types() {
            for key in (p.filled_in)(task) {
                assert!(!p.secrets.names().contains(key), "{}: {key}", p.service);
            }
        }
    }
}

#[test]
fn secret_shapes_say_what_they_need() {
    let aws = SecretKeys::AllOf(&["access_key", "secret_key"]);
    assert!(aws.check(&["access_key", "secret_key"]).is_ok());
    assert_eq!(
        aws.check(&["access_key"]).unwrap_err(),
        "secretSettings access_key and secret_key"
    );
    let openai = SecretKeys::OneOf(&["api_key", "client_secret"]);
    assert!(openai.check(&["client_secret"]).is_ok());
    assert_eq!(
        openai.check(&["api_key", "client_secret"]).unwrap_err(),
        "exactly one of secretSettings api_key or client_secret"
    );
    assert!(openai.check(&["token"]).is_err());
    assert!(SecretKeys::None.check(&[]).is_ok());
    assert_eq!(
        SecretKeys::None.check(&["api_key"]).unwrap_err(),
        "no secretSettings"
    );
    let llama = SecretKeys::Optional(&["api_key"]);
    assert!(llama.check(&[]).is_ok() && llama.check(&["api_key"]).is_ok());
    let custom = SecretKeys::Map("secret_parameters");
    assert!(custom.check(&["secret_parameters"]).is_ok());
    assert!(custom.is_map("secret_parameters") && !custom.is_map("api_key"));
    assert!(
        custom.check(&[]).is_ok(),
        "custom may have no secret parameters"
    );
    assert!(custom.check(&["secret_parameters", "api_key"]).is_err());
    assert!(same_service("elser", "elasticsearch") && !same_service("elser", "elastic"));
}

#[test]
fn known_secret_names_cover_every_service() {
    let names = known_secret_names();
    for key in [
        "api_key",
        "entra_id",
        "client_secret",
        "access_key",
        "secret_key",
        "service_account_json",
        "secret_parameters",
    ] {
        assert!(names.contains(&key), "{key}");
    }
    assert!(!names.contains(&"model_id"));
}

#[test]
fn in_cluster_services_deploy_models_and_hold_no_secret() {
    for name in ["elasticsearch", "elser"] {
        let p = ServiceProfile::lookup(name).unwrap();
        assert!(p.deploys_model);
        assert_eq!(p.secrets, SecretKeys::None);
    }
    assert!(!ServiceProfile::lookup("elastic").unwrap().deploys_model);
    let bedrock = ServiceProfile::lookup("amazonbedrock").unwrap();
    assert!(bedrock
        .min_version_for(TaskType::TextEmbedding)
        .unwrap()
        .contains(&v("8.15.0")));
    assert!(!bedrock
        .min_version_for(TaskType::TextEmbedding)
        .unwrap()
        .contains(&v("8.14.3")));
}
