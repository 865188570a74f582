"""Render and check every kustomization under ``manifests/``.

There is no cluster to reject a bad manifest before it reaches production, so
this script applies the checks an API server and its admission controllers
would, offline:

* render ``manifests/base`` and every ``manifests/overlays/*`` with
  ``kubectl kustomize`` (each must build on its own);
* validate every rendered object against the official OpenAPI schemas with
  ``kubernetes-validate`` in strict mode (unknown fields are errors), for each
  target Kubernetes version;
* check every pod template against the Pod Security Standard "restricted"
  profile (:func:`civicml.deploy.security.restricted_violations`);
* check overlays pin every image to a tag or digest (no ``:latest``);
* check no credential values are committed: no rendered Secret carries data,
  ConfigMaps hold references (``secretRef``) rather than keys, and container
  env never sets a credential-looking variable to a literal value.

Usage::

    .venv/bin/python tools/check_manifests.py [--k8s-version 1.30 ...] [--root manifests]

Exit status: 0 when everything passes, 1 when any check fails, 2 when the
checks could not run (``kubectl`` missing, kustomize build error).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, latest_version, major_minor

from civicml.deploy.security import pod_spec_of, restricted_violations

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Oldest Kubernetes minor civicml supports (Kubeflow 1.10's floor) plus the
#: newest schema kubernetes-validate ships, so both removals and additions show.
DEFAULT_K8S_VERSIONS = ("1.30", major_minor(latest_version()))

# Names that suggest a credential. Matched against ConfigMap keys, env var
# names and nested keys of YAML embedded in ConfigMaps.
_CREDENTIAL_NAME = re.compile(
    r"(password|passwd|secret|token|access[_-]?key|private[_-]?key|credential)", re.IGNORECASE
)
# Keys whose values name *where* a credential lives, not the credential itself.
_REFERENCE_KEYS = frozenset(
    {"secretName", "secretRef", "accessKeyKey", "secretKeyKey", "tokenKey", "credentials", "fromEnv"}
)


class KubectlMissingError(RuntimeError):
    """Raised when ``kubectl`` is not on PATH."""


@dataclass
class Report:
    """Problems found in one kustomization target."""

    target: str
    objects: int = 0
    problems: list[str] = field(default_factory=list)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        # Outside the working directory: an absolute path is the clearest.
        return str(path)


def find_targets(root: Path) -> list[Path]:
    """Return the base and every overlay directory that holds a kustomization.

    Args:
        root: The ``manifests`` directory.

    Returns:
        ``root/base`` followed by ``root/overlays/*`` in name order.
    """
    candidates = [root / "base", *sorted((root / "overlays").glob("*"))]
    return [p for p in candidates if (p / "kustomization.yaml").is_file()]


def render(target: Path) -> list[dict[str, Any]]:
    """Build one kustomization with ``kubectl kustomize``.

    Args:
        target: Directory containing ``kustomization.yaml``.

    Returns:
        The rendered objects, in kustomize's output order.

    Raises:
        KubectlMissingError: ``kubectl`` is not installed.
        subprocess.CalledProcessError: kustomize failed to build the target.
    """
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise KubectlMissingError(
            "kubectl not found on PATH; it is needed to render manifests with `kubectl kustomize` "
            "(install kubectl >= 1.27, which bundles kustomize v5)."
        )
    result = subprocess.run(
        [kubectl, "kustomize", str(target)], check=True, capture_output=True, text=True, timeout=120
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def object_name(obj: dict[str, Any]) -> str:
    """Return ``Kind/namespace/name`` for messages."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{meta.get('name')}"


def schema_problems(obj: dict[str, Any], versions: Iterable[str]) -> list[str]:
    """Validate one object strictly against the official schemas.

    Args:
        obj: A Kubernetes object.
        versions: Kubernetes versions (``"1.30"``) to validate against.

    Returns:
        One message per failed version; a kind with no schema is a failure,
        because every civicml manifest uses built-in kinds.
    """
    problems = []
    for version in versions:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except ValidationError as exc:
            path = ".".join(str(p) for p in exc.path) or "(root)"
            problems.append(f"schema (k8s {exc.version}, strict): {path}: {exc.message}")
        except SchemaNotFoundError as exc:
            problems.append(f"schema (k8s {version}): {exc.message}")
    return problems


def image_problems(obj: dict[str, Any]) -> list[str]:
    """Report container images that are not pinned to a tag or digest."""
    spec = pod_spec_of(obj)
    if spec is None:
        return []
    problems = []
    for field_name in ("initContainers", "containers"):
        for container in spec.get(field_name) or []:
            image = str(container.get("image", ""))
            if "@sha256:" in image:
                continue
            # A ':' after the last '/' is a tag; one before it is a registry port.
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if not tag:
                problems.append(f"image {image!r} in {container.get('name')} has no tag")
            elif tag == "latest":
                problems.append(f"image {image!r} in {container.get('name')} uses :latest")
    return problems


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}" if path else str(key), str(key), value
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def _embedded_yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        # Plain text values are fine; only structured config is searched.
        return None


def credential_problems(obj: dict[str, Any]) -> list[str]:
    """Report credential values committed in an object.

    Args:
        obj: A Kubernetes object.

    Returns:
        Findings for a Secret with ``data``/``stringData``, a ConfigMap key or
        nested YAML key that looks like a credential and holds a literal value,
        or a container env var that looks like a credential with a literal
        ``value`` instead of ``valueFrom``.
    """
    problems = []
    kind = obj.get("kind")
    if kind == "Secret" and (obj.get("data") or obj.get("stringData")):
        problems.append("Secret carries data: credentials must be created in the cluster, not committed")
    if kind == "ConfigMap":
        for key, value in (obj.get("data") or {}).items():
            if _CREDENTIAL_NAME.search(key) and str(value).strip():
                problems.append(f"ConfigMap key {key!r} looks like a credential")
            for path, leaf_key, leaf in _walk(_embedded_yaml(str(value))):
                if leaf_key in _REFERENCE_KEYS or isinstance(leaf, (dict, list)):
                    continue
                if _CREDENTIAL_NAME.search(leaf_key) and leaf not in (None, "", False):
                    problems.append(f"ConfigMap {key}: {path} holds a literal credential value")
    spec = pod_spec_of(obj)
    for field_name in ("initContainers", "containers"):
        for container in (spec or {}).get(field_name) or []:
            for env in container.get("env") or []:
                if _CREDENTIAL_NAME.search(env.get("name", "")) and "value" in env:
                    problems.append(
                        f"{container.get('name')}: env {env['name']} is a literal; use valueFrom.secretKeyRef"
                    )
    return problems


def check_objects(objects: list[dict[str, Any]], versions: Iterable[str], require_pinned_images: bool) -> list[str]:
    """Run every check on a rendered kustomization.

    Args:
        objects: Rendered Kubernetes objects.
        versions: Kubernetes versions to validate the schemas against.
        require_pinned_images: Whether unpinned images are errors (overlays).

    Returns:
        ``"Kind/ns/name: message"`` for every problem found.
    """
    versions = tuple(versions)
    problems = []
    for obj in objects:
        where = object_name(obj)
        found = schema_problems(obj, versions)
        spec = pod_spec_of(obj)
        if spec is not None:
            found += [f"pod security (restricted): {v}" for v in restricted_violations(spec)]
            if require_pinned_images:
                found += image_problems(obj)
        found += credential_problems(obj)
        problems += [f"{where}: {message}" for message in found]
    return problems


def check_target(target: Path, versions: Iterable[str]) -> Report:
    """Render one kustomization and check it.

    Args:
        target: The kustomization directory.
        versions: Kubernetes versions to validate against.

    Returns:
        A report; a build failure is reported as a problem, not raised.
    """
    report = Report(target=_display(target))
    try:
        objects = render(target)
    except subprocess.CalledProcessError as exc:
        report.problems.append(f"kubectl kustomize failed: {exc.stderr.strip()}")
        return report
    report.objects = len(objects)
    if not objects:
        report.problems.append("renders no objects")
    # Only overlays are meant to be applied; the base keeps a bare image name
    # that each overlay pins.
    report.problems += check_objects(objects, versions, require_pinned_images=target.parent.name == "overlays")
    return report


def check_secret_template(path: Path, versions: Iterable[str]) -> Report:
    """Check the unapplied Secret template: valid, and free of values."""
    report = Report(target=_display(path))
    if not path.is_file():
        report.problems.append("missing")
        return report
    objects = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    report.objects = len(objects)
    report.problems += check_objects(objects, versions, require_pinned_images=False)
    return report


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO_ROOT / "manifests", help="manifests directory")
    parser.add_argument(
        "--k8s-version",
        action="append",
        dest="versions",
        help=f"Kubernetes version to validate against (repeatable; default {', '.join(DEFAULT_K8S_VERSIONS)})",
    )
    args = parser.parse_args(argv)
    versions = tuple(args.versions or DEFAULT_K8S_VERSIONS)

    if shutil.which("kubectl") is None:
        print(
            "ERROR: kubectl not found on PATH. `make check-manifests` renders the kustomizations with "
            "`kubectl kustomize`; install kubectl (>= 1.27) and re-run.",
            file=sys.stderr,
        )
        return 2

    targets = find_targets(args.root)
    if not targets:
        print(f"ERROR: no kustomization.yaml under {args.root}", file=sys.stderr)
        return 2

    reports = [check_target(t, versions) for t in targets]
    reports.append(check_secret_template(args.root / "base" / "secret.yaml", versions))

    print(f"Checking manifests against Kubernetes {', '.join(versions)} (strict) and PSS restricted")
    failed = 0
    for report in reports:
        status = "ok" if not report.problems else f"{len(report.problems)} problem(s)"
        print(f"  {report.target}: {report.objects} object(s), {status}")
        for problem in report.problems:
            print(f"    - {problem}")
        failed += bool(report.problems)
    if failed:
        print(f"FAILED: {failed} of {len(reports)} target(s) have problems")
        return 1
    print(f"OK: {len(reports)} target(s) pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
