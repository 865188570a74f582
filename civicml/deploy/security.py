"""Pod Security Standard "restricted" helpers shared by every pod civicml creates.

civicml runs in a namespace that enforces the Kubernetes Pod Security Standard
"restricted" profile, so every pod it builds (Katib trial Jobs, the model-server
Deployment, the manifests under ``manifests/``) must pass that admission check.
There is no API server on a developer machine to reject a bad pod, so this module
both *builds* compliant security contexts and *checks* pod specs offline against
the same rules the admission controller applies (Kubernetes v1.30 policy set).

All objects are plain dicts in the Kubernetes JSON (camelCase) shape, the same
form the ``kubernetes`` client accepts and ``kubectl kustomize`` emits, so the
checker can run on rendered manifests and on objects built in Python alike.

Reference: https://kubernetes.io/docs/concepts/security/pod-security-standards/
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

#: Numeric UID/GID of the ``civicml`` user baked into the image. Numeric (not a
#: name) because kubelet can only verify ``runAsNonRoot`` against a number.
NON_ROOT_UID = 10001
NON_ROOT_GID = 10001

#: Volume types the restricted profile allows; anything else (hostPath, nfs,
#: iscsi, ...) can reach node or network storage outside the pod's sandbox.
ALLOWED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)

#: The only capability restricted lets a container add back after dropping ALL.
ALLOWED_ADDED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})

ALLOWED_SECCOMP_TYPES = frozenset({"RuntimeDefault", "Localhost"})

# Baseline (and therefore restricted) only allows namespaced, safe sysctls.
_SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)

_ALLOWED_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})

_CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")

# Kinds whose pod template lives at a known path; used to find pod specs in
# rendered manifests without hard-coding each caller's object layout.
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def restricted_pod_security_context() -> dict[str, Any]:
    """Return a pod-level ``securityContext`` that satisfies "restricted".

    A fresh dict is returned on every call so callers may extend it (for
    example with ``supplementalGroups``) without affecting other pods.

    Returns:
        A ``PodSecurityContext`` as a camelCase dict: non-root UID/GID 10001,
        ``fsGroup`` 10001 so mounted volumes are writable by that user, and the
        container runtime's default seccomp profile.
    """
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "runAsGroup": NON_ROOT_GID,
        "fsGroup": NON_ROOT_GID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_container_security_context() -> dict[str, Any]:
    """Return a container-level ``securityContext`` that satisfies "restricted".

    The settings repeat the pod-level identity on purpose: a container context
    overrides the pod's, and a container copied into another pod spec (e.g. a
    Katib trial template) must stay compliant on its own.

    Returns:
        A ``SecurityContext`` as a camelCase dict: non-root UID/GID 10001, no
        privilege escalation, every Linux capability dropped, a read-only root
        filesystem (mount an ``emptyDir`` at ``/tmp`` for scratch space) and the
        runtime's default seccomp profile.
    """
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "runAsGroup": NON_ROOT_GID,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_spec_of(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the pod spec embedded in a workload object, if it has one.

    Args:
        obj: A Kubernetes object as a camelCase dict (Pod, Deployment, Job,
            CronJob, StatefulSet, DaemonSet, ReplicaSet, ...).

    Returns:
        The ``PodSpec`` dict, or ``None`` for kinds that carry no pod template
        (Service, ConfigMap, ...) or when the template is missing.
    """
    path = _POD_SPEC_PATHS.get(str(obj.get("kind", "")))
    if path is None:
        return None
    node: Any = obj
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, dict) else None


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for field in _CONTAINER_FIELDS:
        for index, container in enumerate(pod_spec.get(field) or []):
            name = container.get("name") or f"#{index}"
            yield f"{field}[{name}]", container


def _seccomp_type(context: Mapping[str, Any] | None) -> str | None:
    profile = (context or {}).get("seccompProfile") or {}
    return profile.get("type")


def _check_baseline_context(where: str, ctx: Mapping[str, Any], out: list[str]) -> None:
    """Checks shared by the pod- and container-level security contexts."""
    selinux = ctx.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in _ALLOWED_SELINUX_TYPES:
        out.append(f"{where}: seLinuxOptions.type {selinux['type']!r} is not allowed")
    for field in ("user", "role"):
        if selinux.get(field):
            out.append(f"{where}: seLinuxOptions.{field} must not be set")
    apparmor = (ctx.get("appArmorProfile") or {}).get("type")
    if apparmor is not None and apparmor not in ("RuntimeDefault", "Localhost"):
        out.append(f"{where}: appArmorProfile.type {apparmor!r} is not allowed")
    if (ctx.get("windowsOptions") or {}).get("hostProcess"):
        out.append(f"{where}: windowsOptions.hostProcess must not be true")
    if ctx.get("runAsUser") == 0:
        out.append(f"{where}: runAsUser must not be 0 (root)")
    if _seccomp_type(ctx) == "Unconfined":
        out.append(f"{where}: seccompProfile.type Unconfined is not allowed")


def restricted_violations(pod_spec: Mapping[str, Any]) -> list[str]:
    """Check a pod spec against the Pod Security Standard "restricted" profile.

    Applies the baseline and restricted controls of the Kubernetes v1.30 policy
    set to the pod and to every container, init container and ephemeral
    container: host namespaces, privileged mode, capabilities, hostPath and
    other disallowed volume types, host ports, SELinux/AppArmor/seccomp,
    ``/proc`` mount, sysctls, privilege escalation and running as non-root.

    Args:
        pod_spec: A ``PodSpec`` as a camelCase dict (the ``spec`` of a Pod, or
            ``spec.template.spec`` of a Deployment/Job; see :func:`pod_spec_of`).

    Returns:
        Human-readable violations such as
        ``"containers[server]: allowPrivilegeEscalation must be false"``; an
        empty list means the pod would be admitted by a namespace enforcing
        "restricted".
    """
    out: list[str] = []
    pod_ctx: Mapping[str, Any] = pod_spec.get("securityContext") or {}
    _check_pod(pod_spec, pod_ctx, out)
    if not pod_spec.get("containers"):
        out.append("pod: has no containers")
    for where, container in _containers(pod_spec):
        _check_container(where, container, pod_ctx, out)
    return out


def _check_pod(pod_spec: Mapping[str, Any], pod_ctx: Mapping[str, Any], out: list[str]) -> None:
    """Pod-level controls: host namespaces, volume types, the pod security context and its sysctls."""
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            out.append(f"pod: {field} must not be true")

    for volume in pod_spec.get("volumes") or []:
        name = volume.get("name", "?")
        sources = set(volume) - {"name"}
        if "hostPath" in sources:
            out.append(f"pod: volume {name!r} uses hostPath")
        disallowed = sorted(sources - ALLOWED_VOLUME_TYPES - {"hostPath"})
        if disallowed:
            out.append(f"pod: volume {name!r} uses disallowed type(s) {', '.join(disallowed)}")

    _check_baseline_context("pod", pod_ctx, out)
    for sysctl in pod_ctx.get("sysctls") or []:
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            out.append(f"pod: sysctl {sysctl.get('name')!r} is not in the safe set")


def _check_container(where: str, container: Mapping[str, Any], pod_ctx: Mapping[str, Any], out: list[str]) -> None:
    """Container-level controls; `pod_ctx` supplies what a container may inherit (non-root, seccomp)."""
    ctx: Mapping[str, Any] = container.get("securityContext") or {}
    _check_baseline_context(where, ctx, out)

    if ctx.get("privileged"):
        out.append(f"{where}: privileged must not be true")
    if ctx.get("procMount", "Default") != "Default":
        out.append(f"{where}: procMount must be Default")
    for port in container.get("ports") or []:
        if port.get("hostPort"):
            out.append(f"{where}: hostPort {port['hostPort']} is not allowed")

    # restricted: privilege escalation must be explicitly disabled.
    if ctx.get("allowPrivilegeEscalation") is not False:
        out.append(f"{where}: allowPrivilegeEscalation must be false")

    # restricted: non-root, either inherited from the pod or set here, and
    # a container may not opt back out of a pod-level guarantee.
    container_non_root = ctx.get("runAsNonRoot")
    pod_non_root = pod_ctx.get("runAsNonRoot") is True
    if container_non_root is False or not (container_non_root is True or pod_non_root):
        out.append(f"{where}: runAsNonRoot must be true (in the pod or container securityContext)")

    seccomp = _seccomp_type(ctx)
    if seccomp is None and _seccomp_type(pod_ctx) not in ALLOWED_SECCOMP_TYPES:
        out.append(f"{where}: seccompProfile.type must be RuntimeDefault or Localhost")
    elif seccomp is not None and seccomp not in ALLOWED_SECCOMP_TYPES and seccomp != "Unconfined":
        # Unconfined was already reported by the baseline check.
        out.append(f"{where}: seccompProfile.type {seccomp!r} is not allowed")

    capabilities = ctx.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        out.append(f"{where}: capabilities.drop must include ALL")
    added = sorted(set(capabilities.get("add") or []) - ALLOWED_ADDED_CAPABILITIES)
    if added:
        out.append(f"{where}: capabilities.add may only contain NET_BIND_SERVICE, found {', '.join(added)}")
