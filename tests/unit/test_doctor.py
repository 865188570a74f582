"""`civicml doctor`'s report lines and the permission list it checks (the cluster runs are in tests/cluster)."""

from __future__ import annotations

from pathlib import Path

import yaml

from civicml.config import RunConfig
from civicml.orchestration.doctor import RUNNER_DENIED, Check, runner_permissions

ROLE = Path(__file__).resolve().parents[2] / "manifests" / "base" / "role.yaml"


def _granted() -> set[tuple[str, str, str, str]]:
    out = set()
    for role in (d for d in yaml.safe_load_all(ROLE.read_text()) if d):
        for rule in role["rules"]:
            for g in rule["apiGroups"]:
                for r in rule["resources"]:
                    for v in rule["verbs"]:
                        out |= {(g, r, v, n) for n in rule.get("resourceNames") or [""]}
    return out


def test_doctor_asks_exactly_what_the_roles_grant():
    # The can-i list doctor checks is the list the Roles grant: neither has anything the other lacks.
    assert set(runner_permissions(RunConfig())) == _granted()


def test_denied_probes_are_not_granted():
    granted = _granted()
    for group, resource, verb, name in RUNNER_DENIED:
        assert (group, resource, verb, name) not in granted and (group, resource, verb, "") not in granted


def test_report_lines():
    assert Check(True, "API server", "reachable").line() == "✓ API server: reachable"
    line = Check(False, "secret x", "missing", "kubectl create secret ...").line()
    assert line == "✗ secret x: missing — fix: kubectl create secret ..."


def test_warning_lines_pass_but_show_the_fix():
    check = Check(True, "api egress", "443/6443 to any address", "add an ipBlock", warn=True)
    assert check.ok and check.line() == "! api egress: 443/6443 to any address — fix: add an ipBlock"
