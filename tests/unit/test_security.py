"""Unit tests for civicml.deploy.security (Pod Security Standard "restricted")."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from civicml.deploy.security import (
    NON_ROOT_UID,
    pod_spec_of,
    restricted_container_security_context,
    restricted_pod_security_context,
    restricted_violations,
)


def compliant_pod_spec() -> dict:
    """A minimal pod spec built only from the module's own contexts."""
    return {
        "securityContext": restricted_pod_security_context(),
        "containers": [
            {
                "name": "main",
                "image": "civicml:0.1.0",
                "securityContext": restricted_container_security_context(),
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }


def test_built_contexts_are_restricted_and_non_root():
    pod = restricted_pod_security_context()
    container = restricted_container_security_context()

    assert restricted_violations(compliant_pod_spec()) == []
    assert pod["runAsUser"] == container["runAsUser"] == NON_ROOT_UID == 10001
    assert pod["fsGroup"] == 10001
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert "fsGroup" not in container  # pod-level only field


def test_built_contexts_are_valid_kubernetes_fields():
    # Strict schema validation catches a misspelt or snake_case field name.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": compliant_pod_spec()}
    kubernetes_validate.validate(pod, "1.30", strict=True)


def test_each_call_returns_a_fresh_dict():
    first = restricted_container_security_context()
    first["capabilities"]["drop"].append("EXTRA")
    assert restricted_container_security_context()["capabilities"] == {"drop": ["ALL"]}


def test_privileged_root_pod_is_rejected():
    spec = {
        "hostNetwork": True,
        "hostPID": True,
        "securityContext": {"runAsUser": 0, "seccompProfile": {"type": "Unconfined"}},
        "containers": [
            {
                "name": "evil",
                "image": "x:1",
                "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}},
                "ports": [{"containerPort": 80, "hostPort": 80}],
            }
        ],
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
    }

    found = "\n".join(restricted_violations(spec))

    for expected in (
        "pod: hostNetwork must not be true",
        "pod: hostPID must not be true",
        "pod: volume 'root' uses hostPath",
        "pod: runAsUser must not be 0",
        "pod: seccompProfile.type Unconfined",
        "containers[evil]: privileged must not be true",
        "containers[evil]: allowPrivilegeEscalation must be false",
        "containers[evil]: runAsNonRoot must be true",
        "containers[evil]: capabilities.drop must include ALL",
        "containers[evil]: capabilities.add may only contain NET_BIND_SERVICE, found SYS_ADMIN",
        "containers[evil]: hostPort 80",
    ):
        assert expected in found


def test_empty_security_context_is_rejected():
    spec = {"containers": [{"name": "c", "image": "x:1"}]}
    found = restricted_violations(spec)
    assert any("runAsNonRoot" in v for v in found)
    assert any("seccompProfile" in v for v in found)
    assert any("allowPrivilegeEscalation" in v for v in found)


def test_init_and_ephemeral_containers_are_checked():
    spec = compliant_pod_spec()
    spec["initContainers"] = [{"name": "setup", "image": "x:1", "securityContext": {"privileged": True}}]
    spec["ephemeralContainers"] = [{"name": "debug", "image": "x:1"}]
    found = restricted_violations(spec)
    assert any(v.startswith("initContainers[setup]: privileged") for v in found)
    assert any(v.startswith("ephemeralContainers[debug]:") for v in found)


def test_net_bind_service_is_the_only_capability_allowed():
    spec = compliant_pod_spec()
    spec["containers"][0]["securityContext"]["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    assert restricted_violations(spec) == []
    spec["containers"][0]["securityContext"]["capabilities"]["add"].append("NET_RAW")
    assert restricted_violations(spec) == [
        "containers[main]: capabilities.add may only contain NET_BIND_SERVICE, found NET_RAW"
    ]


def test_pod_level_settings_are_inherited_but_containers_cannot_opt_out():
    spec = compliant_pod_spec()
    container_ctx = spec["containers"][0]["securityContext"]
    del container_ctx["runAsNonRoot"], container_ctx["seccompProfile"]
    assert restricted_violations(spec) == []  # inherited from the pod

    container_ctx["runAsNonRoot"] = False
    assert restricted_violations(spec) == [
        "containers[main]: runAsNonRoot must be true (in the pod or container securityContext)"
    ]


@pytest.mark.parametrize(
    ("volume", "allowed"),
    [
        ({"name": "v", "configMap": {"name": "c"}}, True),
        ({"name": "v", "projected": {"sources": []}}, True),
        ({"name": "v", "persistentVolumeClaim": {"claimName": "c"}}, True),
        ({"name": "v", "nfs": {"server": "s", "path": "/"}}, False),
        ({"name": "v", "gitRepo": {"repository": "r"}}, False),
    ],
)
def test_volume_types(volume, allowed):
    spec = compliant_pod_spec()
    spec["volumes"] = [volume]
    assert (restricted_violations(spec) == []) is allowed


def test_unsafe_sysctl_and_selinux_user_are_rejected():
    spec = compliant_pod_spec()
    spec["securityContext"]["sysctls"] = [{"name": "kernel.msgmax", "value": "1"}]
    spec["securityContext"]["seLinuxOptions"] = {"user": "system_u"}
    found = restricted_violations(spec)
    assert "pod: sysctl 'kernel.msgmax' is not in the safe set" in found
    assert "pod: seLinuxOptions.user must not be set" in found


def test_pod_spec_of_finds_templates():
    spec = compliant_pod_spec()
    deployment = {"kind": "Deployment", "spec": {"template": {"spec": spec}}}
    cronjob = {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}
    assert pod_spec_of(deployment) is spec
    assert pod_spec_of(cronjob) is spec
    assert pod_spec_of({"kind": "Pod", "spec": spec}) is spec
    assert pod_spec_of({"kind": "Service", "spec": {}}) is None
    assert pod_spec_of({"kind": "Job", "spec": {}}) is None


def test_checker_does_not_mutate_input():
    spec = compliant_pod_spec()
    before = copy.deepcopy(spec)
    restricted_violations(spec)
    assert spec == before
