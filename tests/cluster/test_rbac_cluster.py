"""RBAC as the API server evaluates it: each ServiceAccount in the manifests may do exactly what
civicml's code uses (K8S_PERMISSIONS) and what the KFP runtime needs, and nothing more.

The rules are read back from the real authorizer with a SelfSubjectRulesReview sent with the
account's own token (what `kubectl auth can-i --list` does) and every permission the code uses
is checked with a SelfSubjectAccessReview (what `kubectl auth can-i` sends).
upstream: kubernetes/kubernetes staging/src/k8s.io/kubectl/pkg/cmd/auth/cani.go (RunAccessList) @ v1.36.3
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from civicml.config import RunConfig
from civicml.deploy import trainjob
from civicml.orchestration.doctor import runner_permissions

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
RUNNER = "civicml-pipeline-runner"
#: ServiceAccounts in the manifests that must not be able to do anything beyond the baseline.
NO_RIGHTS = ["civicml-model-server", "civicml-review"]


def code_permissions() -> set[tuple[str, str, str, str]]:
    """(apiGroup, resource, verb, resourceName or "") that civicml's code and the KFP runtime call as
    the runner: `civicml doctor`'s list (tuning, deploy, KFP runtime) plus the TrainJob backend."""
    out = set(runner_permissions(RunConfig()))
    for group, resource, verbs in trainjob.K8S_PERMISSIONS:
        out |= {(group, resource, verb, "") for verb in verbs}
    return out


def rules_of(kubectl, namespace: str) -> set[tuple[str, str, str, str]]:
    """The caller's effective resource rules in `namespace`, flattened, from a SelfSubjectRulesReview."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    }
    # --validate=false: client-side validation would list CRDs, which a plain account may not.
    out = kubectl("create", "--validate=false", "-f", "-", "-o", "json", input=json.dumps(review)).stdout
    status = json.loads(out)["status"]
    assert not status.get("incomplete"), status.get("evaluationError")
    return {
        (group, resource, verb, name)
        for rule in status["resourceRules"]
        for group in rule.get("apiGroups", [""])
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for name in (rule.get("resourceNames") or [""])
    }


def allowed(kubectl, namespace: str, group: str, resource: str, verb: str, name: str) -> bool:
    """A SelfSubjectAccessReview, the request `kubectl auth can-i VERB RESOURCE[/NAME]` sends. Sent
    directly because kubectl first resolves the resource by discovery, and the Katib/Argo CRDs are
    not installed here (the authorizer does not need them)."""
    attrs = {"namespace": namespace, "group": group, "resource": resource, "verb": verb, "name": name}
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attrs},
    }
    out = kubectl("create", "--validate=false", "-f", "-", "-o", "json", input=json.dumps(review)).stdout
    return json.loads(out)["status"].get("allowed", False)


def check_account(kubectl, namespace: str, account: str, expected: set, baseline: set) -> None:
    """AssertionError naming each verb the account lacks or holds beyond `expected`."""
    as_account = kubectl
    missing = []
    for group, resource, verb, name in sorted(expected):
        target = f"{resource}.{group}" if group else resource
        if name:
            target += f"/{name}"
        if not allowed(as_account, namespace, group, resource, verb, name):
            missing.append(f"{verb} {target}")
    extra = rules_of(as_account, namespace) - baseline - expected
    problems = []
    if missing:
        problems.append(
            f"{account} may not: " + ", ".join(missing) + " (the code uses these verbs; add them to the Role)"
        )
    if extra:
        problems.append(
            f"{account} may also: " + ", ".join(f"{v} {r}.{g}{'/' + n if n else ''}" for g, r, v, n in sorted(extra))
        )
    assert not problems, "; ".join(problems)


@pytest.fixture(scope="module")
def installed(install_overlay):
    return install_overlay("overlays/prod")


@pytest.fixture(scope="module")
def baseline(installed, control_plane, sa_kubectl):
    """What every authenticated ServiceAccount may do anyway (system:basic-user etc.)."""
    ns = installed[0]
    control_plane.kubectl("create", "serviceaccount", "nobody", "-n", ns)
    return rules_of(sa_kubectl(ns, "nobody"), ns)


def test_pipeline_runner_may_do_exactly_what_the_code_uses(installed, baseline, sa_kubectl):
    ns = installed[0]
    check_account(sa_kubectl(ns, RUNNER), ns, RUNNER, code_permissions(), baseline)


@pytest.mark.parametrize("account", NO_RIGHTS)
def test_accounts_without_api_needs_may_do_nothing(account, installed, baseline, sa_kubectl):
    ns = installed[0]
    check_account(sa_kubectl(ns, account), ns, account, set(), baseline)


def test_a_role_missing_one_verb_fails_naming_the_verb(control_plane, make_namespace, sa_kubectl, baseline):
    """The check above is not vacuous: drop "patch" on deployments from the Role and it fails, naming it.
    (This is the "deliberately broken Role" of issue 14: the real authorizer answers "no".)"""
    ns = make_namespace(prefix="broken-rbac")
    rendered = yaml.safe_load_all(control_plane.kubectl("kustomize", str(MANIFESTS / "base")).stdout)
    broken = [copy.deepcopy(d) for d in rendered if d and d["kind"] in ("Role", "RoleBinding")]
    for doc in broken:
        doc["metadata"]["namespace"] = ns
        for subject in doc.get("subjects", []):
            subject["namespace"] = ns
        for rule in doc.get("rules", []):
            if rule["resources"] == ["deployments"]:
                rule["verbs"] = [v for v in rule["verbs"] if v != "patch"]
    control_plane.kubectl("create", "serviceaccount", RUNNER, "-n", ns)
    control_plane.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in broken))
    with pytest.raises(
        AssertionError, match=r"civicml-pipeline-runner may not: patch deployments\.apps/civicml-model-server"
    ):
        check_account(sa_kubectl(ns, RUNNER), ns, RUNNER, code_permissions(), baseline)
