#!/usr/bin/env python3
"""What Flux sees: kstatus' status computation, re-implemented, run on the same fixtures.

Flux's kustomize-controller (`wait: true`, `healthChecks`) decides health with
kstatus, the `status` package of sigs.k8s.io/cli-utils (pkg/kstatus/status). This is a
line-by-line port of the part of `status.Compute` that applies to a custom resource:

  status.go   Compute(u):
                1. checkGenericProperties(u); if it decides, that is the result.
                2. GetLegacyConditionsFn(u): type-specific rules for built-in kinds only
                   (Pod, Deployment, CRD, ...); never matches esinference.io/InferenceEndpoint.
                3. checkReadyCondition(u): the first condition of type Ready decides:
                   True -> Current "Resource is Ready"; False or Unknown -> InProgress with the
                   condition's message; any other value -> keep looking.
                4. otherwise Current "Resource is current".
  generic.go  checkGenericProperties(u):
                a. metadata.deletionTimestamp set (non-empty) -> Terminating
                   "Resource scheduled for deletion".
                b. checkGeneration: if metadata.generation AND status.observedGeneration are both
                   present and differ -> InProgress
                   "<Kind> generation is <g>, but latest observed generation is <o>".
                   A missing observedGeneration skips this check (it does not mean InProgress).
                c. status.conditions in order: the first of Reconciling=True (-> InProgress) or
                   Stalled=True (-> Failed) decides, with that condition's message.
  util.go     GetObjectWithConditions: status.conditions read as {type, status, reason, message}.

Source: kubernetes-sigs/cli-utils, pkg/kstatus/status/{status.go,generic.go,util.go} and the
table in status_compute_test.go (TestCRDGenericStatus), reproduced in UPSTREAM_CASES below.
The consequence worth knowing (kubernetes-sigs/cli-utils#632, fluxcd/kustomize-controller#387):
an object whose controller has not written status yet is Current.

Usage: kstatus_check.py CASE.json...   Prints "N passed, M failed"; exit status 1 on failure.
"""

import json
import sys

CURRENT = "Current"
IN_PROGRESS = "InProgress"
FAILED = "Failed"
TERMINATING = "Terminating"

# core.go legacyTypes: built-in kinds with their own rules. Keys are "group/Kind" ("Kind" for the
# core group). Listed to show the InferenceEndpoint falls through them; their rules are not ported.
LEGACY_TYPES = {
    "Service", "Pod", "Secret", "PersistentVolumeClaim", "apps/StatefulSet", "apps/DaemonSet",
    "extensions/DaemonSet", "apps/Deployment", "extensions/Deployment", "apps/ReplicaSet",
    "extensions/ReplicaSet", "policy/PodDisruptionBudget", "batch/CronJob", "ConfigMap",
    "batch/Job", "apiextensions.k8s.io/CustomResourceDefinition",
}


class KstatusError(Exception):
    """Compute returned an error (a field of the wrong type)."""


def _nested(obj, *path):
    """unstructured.NestedFieldNoCopy: (value, found)."""
    cur = obj
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None, False
        cur = cur[key]
    return cur, True


def _nested_int64(obj, *path):
    """unstructured.NestedInt64: found only for an integer; another type is an error."""
    value, found = _nested(obj, *path)
    if not found or value is None:
        return None, False
    if isinstance(value, bool) or not isinstance(value, int):
        raise KstatusError(f"{'.'.join(path)} accessor error: {value!r} is of the type "
                           f"{type(value).__name__}, expected int64")
    return value, True


def _nested_string(obj, *path):
    """unstructured.NestedString: found only for a string; another type is an error."""
    value, found = _nested(obj, *path)
    if not found or value is None:
        return None, False
    if not isinstance(value, str):
        raise KstatusError(f"{'.'.join(path)} accessor error: {value!r} is not a string")
    return value, True


def _conditions(obj):
    """GetObjectWithConditions: status.conditions as {type, status, reason, message}."""
    status = obj.get("status")
    if status is None:
        return []
    if not isinstance(status, dict):
        raise KstatusError("status is not an object")
    conditions = status.get("conditions")
    if conditions is None:
        return []
    if not isinstance(conditions, list):
        raise KstatusError("status.conditions is not a list")
    out = []
    for c in conditions:
        if not isinstance(c, dict):
            raise KstatusError("a condition is not an object")
        out.append({k: c.get(k) or "" for k in ("type", "status", "reason", "message")})
    return out


def _group_kind(obj):
    api_version = obj.get("apiVersion", "")
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    kind = obj.get("kind", "")
    return f"{group}/{kind}" if group else kind


def check_generation(obj):
    generation, found = _nested_int64(obj, "metadata", "generation")
    if not found:
        return None
    observed, found = _nested_int64(obj, "status", "observedGeneration")
    if found and observed != generation:
        kind = obj.get("kind", "")
        return (IN_PROGRESS,
                f"{kind} generation is {generation}, but latest observed generation is {observed}")
    return None


def check_generic_properties(obj):
    deletion, found = _nested_string(obj, "metadata", "deletionTimestamp")
    if found and deletion != "":
        return TERMINATING, "Resource scheduled for deletion"
    result = check_generation(obj)
    if result is not None:
        return result
    for c in _conditions(obj):
        if c["type"] == "Reconciling" and c["status"] == "True":
            return IN_PROGRESS, c["message"]
        if c["type"] == "Stalled" and c["status"] == "True":
            return FAILED, c["message"]
    return None


def check_ready_condition(obj):
    for c in _conditions(obj):
        if c["type"] != "Ready":
            continue
        if c["status"] == "True":
            return CURRENT, "Resource is Ready"
        if c["status"] in ("False", "Unknown"):
            return IN_PROGRESS, c["message"]
    return None


def compute(obj):
    """status.Compute for a custom resource: (status, message)."""
    result = check_generic_properties(obj)
    if result is not None:
        return result
    if _group_kind(obj) in LEGACY_TYPES:
        raise NotImplementedError(f"kstatus has type-specific rules for {_group_kind(obj)}")
    result = check_ready_condition(obj)
    if result is not None:
        return result
    return CURRENT, "Resource is current"


# TestCRDGenericStatus in kstatus' status_compute_test.go (statuses only; it does not assert
# messages), plus the generic Reconciling/Stalled rules: the port must agree with upstream.
def _cr(metadata, status=None):
    obj = {"apiVersion": "something/v1", "kind": "MyCR",
           "metadata": {"name": "test", "namespace": "qual", **metadata}}
    if status is not None:
        obj["status"] = status
    return obj


UPSTREAM_CASES = [
    ("crdNoStatus", _cr({"generation": 1}), CURRENT),
    ("crdMismatchStatusGeneration", _cr({"generation": 2}, {"observedGeneration": 1}),
     IN_PROGRESS),
    ("crdReady", _cr({"generation": 1}, {"conditions": [
        {"type": "Ready", "status": "True", "message": "All looks ok", "reason": "AllOk"}]}),
     CURRENT),
    ("crdNotReady", _cr({"generation": 1}, {"observedGeneration": 1, "conditions": [
        {"type": "Ready", "status": "False", "reason": "NotReadyYet"}]}), IN_PROGRESS),
    ("crdNoCondition", _cr({"generation": 1}, {"conditions": [
        {"type": "SomeCondition", "status": "False"}]}), CURRENT),
    ("reconcilingTrue", _cr({"generation": 1}, {"conditions": [
        {"type": "Reconciling", "status": "True", "reason": "Working"}]}), IN_PROGRESS),
    ("stalledTrue", _cr({"generation": 1}, {"conditions": [
        {"type": "Stalled", "status": "True", "reason": "Broken"}]}), FAILED),
    ("deletionTimestamp", _cr({"generation": 1, "deletionTimestamp": "2025-01-01T00:00:00Z"}),
     TERMINATING),
]


def main(paths):
    passed = failed = 0

    def report(ok, name, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"ok   {name}")
        else:
            failed += 1
            print(f"FAIL {name}: {detail}")

    for name, obj, want in UPSTREAM_CASES:
        got, _ = compute(obj)
        report(got == want, f"kstatus upstream {name} -> {got}", f"want {want}, got {got}")

    for path in paths:
        name = path.rsplit("/", 1)[-1].removesuffix(".json")
        try:
            with open(path, encoding="utf-8") as f:
                case = json.load(f)
            want = case["kstatus"]
            got = compute(case["object"])
        except (OSError, ValueError, KeyError, KstatusError) as e:
            report(False, name, f"{type(e).__name__}: {e}")
            continue
        if got == (want["status"], want["message"]):
            report(True, f"{name} -> {got[0]}")
        else:
            report(False, name, f"want {want['status']} {want['message']!r}, "
                                f"got {got[0]} {got[1]!r}")

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: kstatus_check.py CASE.json...", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
