"""`civicml doctor`: a preflight a platform admin runs against a real cluster.

Each check is one line: passed or not, what was found, and the fix. The checks read the
cluster through the `kubernetes` client as the caller (an admin); what the ServiceAccounts
may do is asked with SubjectAccessReviews, the same answer `kubectl auth can-i --as=...` gives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from civicml.config import RunConfig
from civicml.deploy.cluster import ENFORCE_LABEL, explain, is_cluster_failure

RUNNER = "civicml-pipeline-runner"
SERVER = "civicml-model-server"
KATIB_INJECTION_LABEL = "katib.kubeflow.org/metrics-collector-injection"
KATIB_CRDS = ("experiments.kubeflow.org", "trials.kubeflow.org", "suggestions.kubeflow.org")
KFP_CRDS = ("workflows.argoproj.io", "scheduledworkflows.kubeflow.org")
KFP_NON_ROOT_ENV = "DEFAULT_SECURITY_CONTEXT_RUN_AS_NON_ROOT"
STORE_KEYS = ("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY")
#: What the runner must NOT be able to do (least privilege; item 12 of issue 17).
RUNNER_DENIED = [
    ("", "configmaps", "patch", "civicml-settings"),
    ("", "configmaps", "patch", "kfp-launcher"),
    ("", "secrets", "list", ""),
    ("apps", "deployments", "patch", "some-other-deployment"),
    ("", "pods/exec", "create", ""),
]


@dataclass
class Check:
    """One line of the report."""

    ok: bool
    name: str
    detail: str
    fix: str = ""
    #: Passes, but something should be tightened (shown with "!", does not fail the run).
    warn: bool = False

    def line(self) -> str:
        """`✓ name: detail`, `! name: detail — fix: ...` or `✗ name: detail — fix: ...`."""
        mark = "✗" if not self.ok else ("!" if self.warn else "✓")
        show_fix = (not self.ok or self.warn) and self.fix
        return f"{mark} {self.name}: {self.detail}" + (f" — fix: {self.fix}" if show_fix else "")


def runner_permissions(cfg: RunConfig) -> list[tuple[str, str, str, str]]:
    """(group, resource, verb, name or "") the runner needs: civicml's own calls plus KFP's runtime.

    The TrainJob calls (manifests/base/trainer-role.yaml, which a namespace without Kubeflow Trainer
    leaves out) are needed only with `training.backend: trainjob`.
    """
    from civicml.deploy import kubernetes as k8s_deploy
    from civicml.deploy import trainjob
    from civicml.orchestration.kfp_client import KFP_RUNTIME_PERMISSIONS
    from civicml.tuning import katib_backend

    names = k8s_deploy.owned_object_names(cfg)
    out = [(g, r, v, "") for g, r, verbs in katib_backend.K8S_PERMISSIONS for v in verbs]
    out += [(g, r, v, names.get(r, "")) for g, r, verbs in k8s_deploy.K8S_PERMISSIONS for v in verbs]
    out += [(g, r, v, n) for g, r, verbs, ns in KFP_RUNTIME_PERMISSIONS for v in verbs for n in (ns or ("",))]
    if cfg.training.backend == "trainjob":
        out += [(g, r, v, "") for g, r, verbs in trainjob.K8S_PERMISSIONS for v in verbs]
    return out


def _fmt(perm: tuple[str, str, str, str]) -> str:
    group, resource, verb, name = perm
    return f"{verb} {resource}{'.' + group if group else ''}{'/' + name if name else ''}"


class Doctor:
    """Runs the checks against one namespace with an admin's `ApiClient`."""

    def __init__(self, cfg: RunConfig, namespace: str, api_client: Any, s3_endpoint: str | None = None):
        from kubernetes import client

        self.cfg, self.ns, self.s3_endpoint = cfg, namespace, s3_endpoint
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.crds = client.ApiextensionsV1Api(api_client)
        self.authz = client.AuthorizationV1Api(api_client)
        self.version = client.VersionApi(api_client)
        self.labels: dict[str, str] = {}

    def run(self) -> Iterator[Check]:
        """Every check, in order; stops after the first when the API server cannot be reached."""
        reach = self._guard("API server", self.check_api)
        yield from reach
        if not all(check.ok for check in reach):
            return
        for fn in (
            self.check_crds,
            self.check_namespace,
            self.check_service_accounts,
            self.check_runner_can,
            self.check_runner_cannot,
            self.check_config_maps,
            self.check_secrets,
            self.check_kfp_security,
            self.check_early_stopping,
            self.check_api_egress,
            self.check_store,
        ):
            yield from self._guard(fn.__name__.removeprefix("check_").replace("_", " "), fn)

    def _guard(self, name: str, fn: Callable[[], Check | list[Check]]) -> list[Check]:
        """The checks `fn` makes, or one failed check saying why the cluster could not answer."""
        try:
            result = fn()
        except Exception as err:
            if not is_cluster_failure(err):
                raise
            return [Check(False, name, explain(err, f"check {name}"), "run as a cluster admin; see the message")]
        return result if isinstance(result, list) else [result]

    def _read(self, fn: Callable[..., Any], *args: Any) -> Any | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    # --- the checks ---------------------------------------------------------------------------------------

    def check_api(self) -> Check:
        info = self.version.get_code(_request_timeout=10)
        return Check(True, "API server", f"reachable, Kubernetes {info.git_version}")

    def check_crds(self) -> list[Check]:
        out = []
        for what, names, fix in (
            ("Katib CRDs", KATIB_CRDS, "install Katib (kubectl apply -k github.com/kubeflow/katib/manifests/...)"),
            ("KFP CRDs", KFP_CRDS, "install Kubeflow Pipelines (it brings Argo Workflows)"),
        ):
            missing = [n for n in names if self._read(self.crds.read_custom_resource_definition, n) is None]
            out.append(Check(not missing, what, f"missing {', '.join(missing)}" if missing else "present", fix))
        return out

    def check_namespace(self) -> list[Check]:
        ns = self._read(self.core.read_namespace, self.ns)
        apply = "kubectl apply -k manifests/overlays/prod"
        if ns is None:
            return [Check(False, "namespace", f"{self.ns} does not exist", apply)]
        self.labels = dict(ns.metadata.labels or {})
        enforce = self.labels.get(ENFORCE_LABEL)
        out = [
            Check(
                enforce in ("restricted", "baseline"),
                "pod security",
                f"{self.ns} enforces {enforce or 'nothing (no label)'}",
                f"kubectl label ns {self.ns} {ENFORCE_LABEL}=restricted",
            ),
            Check(
                self.labels.get(KATIB_INJECTION_LABEL) == "enabled",
                "katib injection",
                f"{KATIB_INJECTION_LABEL}={self.labels.get(KATIB_INJECTION_LABEL, '(unset)')}",
                f"kubectl label ns {self.ns} {KATIB_INJECTION_LABEL}=enabled (trials report no metrics without it)",
            ),
        ]
        istio = self.labels.get("istio-injection") == "enabled" or "istio.io/rev" in self.labels
        out.append(
            Check(
                True,
                "istio",
                "sidecar injection on: egress to istiod:15012 is allowed (allow-egress-istiod); trial pods opt out"
                if istio
                else "no sidecar injection",
            )
        )
        return out

    def check_service_accounts(self) -> list[Check]:
        out = []
        for name in (RUNNER, SERVER):
            sa = self._read(self.core.read_namespaced_service_account, name, self.ns)
            out.append(
                Check(
                    sa is not None,
                    f"serviceaccount {name}",
                    "present" if sa is not None else "missing",
                    "kubectl apply -k manifests/overlays/prod",
                )
            )
        return out

    def _can(self, perm: tuple[str, str, str, str], sa: str) -> bool:
        from kubernetes import client

        group, resource, verb, name = perm
        resource, _, sub = resource.partition("/")
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=f"system:serviceaccount:{self.ns}:{sa}",
                groups=["system:serviceaccounts", f"system:serviceaccounts:{self.ns}", "system:authenticated"],
                resource_attributes=client.V1ResourceAttributes(
                    namespace=self.ns,
                    group=group,
                    resource=resource,
                    subresource=sub or None,
                    verb=verb,
                    name=name or None,
                ),
            )
        )
        return bool(self.authz.create_subject_access_review(review).status.allowed)

    def check_runner_can(self) -> Check:
        needed = runner_permissions(self.cfg)
        missing = [p for p in needed if not self._can(p, RUNNER)]
        detail = f"may do all {len(needed)} things KFP and civicml need"
        if missing:
            detail = "may NOT " + "; ".join(_fmt(p) for p in missing)
        return Check(not missing, f"can-i {RUNNER}", detail, "kubectl apply -k manifests/overlays/prod (role.yaml)")

    def check_runner_cannot(self) -> Check:
        allowed = [p for p in RUNNER_DENIED if self._can(p, RUNNER)]
        detail = (
            "cannot touch settings, other objects or Secrets"
            if not allowed
            else ("may also " + "; ".join(_fmt(p) for p in allowed))
        )
        return Check(
            not allowed, f"least privilege {RUNNER}", detail, "remove the extra RoleBindings/ClusterRoleBindings"
        )

    def check_config_maps(self) -> list[Check]:
        out = []
        for name in ("civicml-settings", "kfp-launcher"):
            cm = self._read(self.core.read_namespaced_config_map, name, self.ns)
            out.append(
                Check(
                    cm is not None,
                    f"configmap {name}",
                    "present" if cm else "missing",
                    "kubectl apply -k manifests/overlays/prod",
                )
            )
        return out

    def check_secrets(self) -> list[Check]:
        out = []
        for name, fix in (
            (self.cfg.storage.secret_name, "kubectl create secret generic ... (README step 2)"),
            (self.cfg.storage.server_secret_name, "create the server's read-only credential (docs/run-on-kubeflow.md)"),
        ):
            secret = self._read(self.core.read_namespaced_secret, name, self.ns)
            keys = set((secret.data or {}) if secret else ())
            missing = [k for k in STORE_KEYS if k not in keys]
            detail = "missing" if secret is None else (f"lacks {', '.join(missing)}" if missing else "present")
            out.append(Check(secret is not None and not missing, f"secret {name}", detail, fix))
        return out

    def check_kfp_security(self) -> Check:
        dep = self._read(self.apps.read_namespaced_deployment, "ml-pipeline", "kubeflow")
        fix = f"KFP >= 2.16 and env {KFP_NON_ROOT_ENV}=true on deploy/ml-pipeline -n kubeflow"
        if dep is None:
            return Check(False, "KFP restricted pods", "deployment kubeflow/ml-pipeline not found", fix)
        container = dep.spec.template.spec.containers[0]
        tag = (container.image or "").rpartition(":")[2]
        env = {e.name: e.value for e in container.env or []}
        version = tuple(int(x) for x in re.findall(r"\d+", tag)[:2]) if re.match(r"v?\d", tag) else None
        new_enough = version is None or version >= (2, 16)
        on = str(env.get(KFP_NON_ROOT_ENV, "")).lower() == "true"
        detail = f"ml-pipeline {tag or '?'}, {KFP_NON_ROOT_ENV}={env.get(KFP_NON_ROOT_ENV, '(unset)')}"
        return Check(new_enough and on, "KFP restricted pods", detail, fix)

    def check_early_stopping(self) -> Check:
        es = self.cfg.tuning.early_stopping
        tuning_ns = self.cfg.tuning.katib.namespace
        if es is None:
            return Check(True, "early stopping", "off (runs under restricted)")
        if tuning_ns == self.ns:
            labels = self.labels
        else:
            found = self._read(self.core.read_namespace, tuning_ns)
            if found is None:
                return Check(
                    False,
                    "early stopping",
                    f"tuning namespace {tuning_ns} does not exist",
                    "create it (docs/run-on-kubeflow.md) or fix tuning.katib.namespace",
                )
            labels = dict(found.metadata.labels or {})
        restricted = labels.get(ENFORCE_LABEL) == "restricted"
        return Check(
            not restricted,
            "early stopping",
            f"{es.algorithm} in {tuning_ns}, which enforces {labels.get(ENFORCE_LABEL, 'nothing')}",
            "remove tuning.early_stopping, or set tuning.katib.namespace to a namespace at baseline",
        )

    def check_api_egress(self) -> Check:
        from kubernetes import client

        net = client.NetworkingV1Api(self.core.api_client)
        policy = self._read(net.read_namespaced_network_policy, "allow-egress-kube-apiserver", self.ns)
        if policy is None:
            return Check(
                False, "api egress", "NetworkPolicy allow-egress-kube-apiserver missing", "kubectl apply -k ..."
            )
        narrowed = all(rule.to for rule in policy.spec.egress or [])
        return Check(
            True,
            "api egress",
            "limited to the API server's addresses" if narrowed else "443/6443 to any address",
            "add `to: [{ipBlock: {cidr: IP/32}}]` per address of `kubectl get endpoints kubernetes -n default`",
            warn=not narrowed,
        )

    def check_store(self) -> Check:
        import base64

        from civicml.storage.store import resolve_store_uri

        name = self.cfg.storage.secret_name
        secret = self._read(self.core.read_namespaced_secret, name, self.ns)
        settings = self._read(self.core.read_namespaced_config_map, "civicml-settings", self.ns)
        data = (settings.data or {}) if settings else {}
        uri = data.get("CIVICML_STORE_URI") or resolve_store_uri(self.cfg.storage.uri)
        endpoint = self.s3_endpoint or data.get("CIVICML_S3_ENDPOINT")
        if secret is None or not endpoint or not uri.startswith("s3://"):
            return Check(
                False, "object store", f"cannot test: secret {name} / endpoint / s3:// URI missing", "see above"
            )
        creds = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items() if k in STORE_KEYS}
        return _probe_store(uri, endpoint, data.get("CIVICML_S3_SECURE", "false").lower() == "true", creds)


def _probe_store(uri: str, endpoint: str, secure: bool, creds: dict[str, str]) -> Check:
    from minio import Minio
    from minio.error import S3Error

    bucket = uri.removeprefix("s3://").split("/", 1)[0]
    fix = "check CIVICML_S3_ENDPOINT, the Secret's keys, or pass --s3-endpoint when running outside the cluster"
    import urllib3

    # A short timeout and one retry: an unreachable store must not hang the report.
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=5, read=10), retries=urllib3.Retry(total=1))
    try:
        client = Minio(
            endpoint, creds.get("MINIO_ACCESS_KEY"), creds.get("MINIO_SECRET_KEY"), secure=secure, http_client=http
        )
        exists = client.bucket_exists(bucket)
    except S3Error as err:
        return Check(False, "object store", f"{endpoint} refused the credentials: {err.code}", fix)
    except Exception as err:  # noqa: BLE001 - DNS, connection refused, TLS: all mean "not reachable from here"
        return Check(False, "object store", f"{endpoint} unreachable ({type(err).__name__})", fix)
    if not exists:
        return Check(False, "object store", f"bucket {bucket} does not exist on {endpoint}", f"mc mb {bucket}")
    return Check(True, "object store", f"{endpoint} bucket {bucket} readable with the Secret's credentials")
