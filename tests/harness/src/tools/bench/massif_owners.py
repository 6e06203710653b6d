"""Heap per owner and per object from two massif detailed snapshots (idle, at N objects).

usage: massif_owners.py IDLE.massif AT_N.massif N

Each allocation is charged to the first frame, from the allocation site towards main, that
names an owner below (massif lists callers below their callees). Stacks deeper than massif's
--depth end in "other". Used by profile-heap.sh (docs/benchmarks.md#memory-issue-16).
"""
import sys, re, collections
OWNERS = [
    ('Event cache (kube Recorder)', r'kube_runtime::events::'),
    ('reflector store (objects)', r'kube_runtime::reflector::store|Reflect<'),
    ('secret index', r'controller::secret_index'),
    ('ownership index', r'controller::ownership'),
    ('scheduler / runner (kube Controller)', r'kube_runtime::scheduler|kube_runtime::controller'),
    ('predicate cache', r'kube_runtime::utils::predicate'),
    ('per-object metrics', r'prometheus_client|inference_operator::metrics'),
    ('usage clock', r'controller::usage'),
    ('probes', r'controller::health'),
    ('backoff / accepted secrets', r'controller::Context|backoff_delay|accepted_secrets'),
    ('watch decode (transient)', r'kube_client::client::Client::request_events|watcher::|serde_json::de::|Decoded as serde::de::Deserialize'),
    ('HTTP connections (hyper buffers, channels)', r'hyper::|hyper_util::|h2::|hyper_timeout|tower'),
    ('TLS roots', r'rustls'),
    ('tracing', r'tracing_subscriber|tracing_core'),
    ('reconcile in flight', r'controller::reconcile|controller::connection'),
]
def owners(path):
    lines = open(path).read().splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith('heap_tree=detailed'))
    node_re = re.compile(r'^( *)n(\d+): (\d+) (.*)$')
    stack = []; agg = collections.Counter(); total = 0
    for l in lines[start+1:]:
        m = node_re.match(l)
        if not m: continue
        depth = len(m.group(1)); kids = int(m.group(2)); size = int(m.group(3))
        stack = stack[:depth]; stack.append(m.group(4))
        if kids: continue
        total += size
        owner = 'other'
        for frame in stack[1:]:
            hit = next((o for o, rx in OWNERS if re.search(rx, frame)), None)
            if hit: owner = hit; break
        agg[owner] += size
    return total, agg
if __name__ == '__main__':
    base, at, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    t0, a0 = owners(base); t1, a1 = owners(at)
    print(f'{"owner":45} {"idle B":>10} {"at N B":>10} {"per object B":>12}')
    for o in sorted(set(a0) | set(a1), key=lambda o: -(a1[o] - a0[o])):
        print(f'{o:45} {a0[o]:>10} {a1[o]:>10} {(a1[o]-a0[o])/n:>12.0f}')
    print(f'{"total heap (useful)":45} {t0:>10} {t1:>10} {(t1-t0)/n:>12.0f}')
