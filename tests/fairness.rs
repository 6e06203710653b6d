//! One slow cluster cannot starve the others (issue 15, docs/reliability.md#fair-reconcile-slots):
//! 40 objects in one namespace point at a server that hangs on PUT, so their reconciles hold
//! every slot for the PUT's time-box (45 s); an unrelated object in another namespace, on a
//! healthy Elasticsearch, still gets Ready at once. Counted at the hanging server: the slow
//! namespace never holds more reconciles than when it was alone, and none of its slots was freed
//! for the newcomer (no preemption: a lent slot, docs/lifecycle.md#fair-reconcile-slots).

mod support;

use std::time::{Duration, Instant};

use inference_operator::controller::Config;
use inference_testenv::hostile::{elasticsearch_hanging_on_put, HostileServer};
use inference_testenv::{eventually, TestEnv, ES_CREDENTIALS_SECRET, ES_PASSWORD, ES_USER};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use support::{Iep, OpaqueSecret};

const SLOW: &str = "slow";
const SLOW_OBJECTS: usize = 40;
const CONCURRENCY: u16 = 8;
/// Far below the hung PUTs' time-box (45 s): the newcomer must not wait for one to end.
const READY_WITHIN: Duration = Duration::from_secs(15);

async fn slow_namespace(env: &TestEnv) {
    env.kube.create_namespace(SLOW);
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), SLOW);
    for secret in [
        OpaqueSecret::labelled(ES_CREDENTIALS_SECRET)
            .pairs(&[("username", ES_USER), ("password", ES_PASSWORD)]),
        OpaqueSecret::labelled("azure").data("apiKey", "azure-key-0123456789"),
    ] {
        let secret = secret.namespace(SLOW).build();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("create Secret");
    }
}

/// Create `name` in the env's namespace on the healthy double; how long until it is Ready.
async fn time_to_ready(env: &TestEnv, name: &str) -> Duration {
    let started = Instant::now();
    support::create(env, Iep::embedding(name).secret("azure").es(env)).await;
    support::wait_ready_within(
        env,
        name,
        ("True", "Created"),
        READY_WITHIN,
        Duration::from_millis(20),
    )
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_whose_elasticsearch_hangs_cannot_starve_another() {
    let env = TestEnv::start().await;
    env.es.azure().accept_credential("azure-key-0123456789");
    env.put_secret("azure", &[("apiKey", "azure-key-0123456789")])
        .await;
    slow_namespace(&env).await;
    let hanging = HostileServer::start(elasticsearch_hanging_on_put).await;
    let _operator = support::start_operator(
        &env,
        Config {
            concurrency: CONCURRENCY,
            ..support::test_config()
        },
    );
    let alone = time_to_ready(&env, "calm-alone").await;

    for i in 0..SLOW_OBJECTS {
        let iep = Iep::embedding(&format!("slow-{i}"))
            .namespace(SLOW)
            .secret("azure")
            .es_url(hanging.url(), ES_CREDENTIALS_SECRET);
        support::create(&env, iep).await;
    }
    // Alone, the slow namespace takes every slot: all of them wait on a PUT.
    let slots = usize::from(CONCURRENCY);
    eventually(READY_WITHIN, "every slot held by a hung PUT", || async {
        (hanging.in_flight() == slots).then_some(())
    })
    .await;

    let loaded = time_to_ready(&env, "calm-loaded").await;
    println!(
        "time to Ready of an unrelated object: {alone:?} alone, {loaded:?} while {SLOW_OBJECTS} \
         objects of another namespace hang on PUT ({slots} slots)"
    );
    let puts = || {
        hanging
            .requests()
            .iter()
            .filter(|r| r.method == "PUT")
            .count()
    };
    assert_eq!(
        hanging.in_flight(),
        slots,
        "the newcomer did not wait for a slow reconcile to end"
    );
    assert_eq!(
        hanging.max_in_flight(),
        slots,
        "the slow namespace never held more than all the slots"
    );
    // While others wait (and after: it is above its share), no new slot goes to it.
    let calm = ["calm-a", "calm-b", "calm-c"];
    for name in calm {
        time_to_ready(&env, name).await;
    }
    assert_eq!(
        puts(),
        slots,
        "no slow object started beyond those first slots"
    );
}
