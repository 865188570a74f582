"""What every civicml pipeline does to its tasks and how it is compiled."""

from collections.abc import Callable
from pathlib import Path

from kfp import compiler, dsl

SETTINGS_CONFIGMAP = "civicml-settings"
SETTINGS_KEYS = ("CIVICML_STORE_URI", "CIVICML_S3_ENDPOINT", "CIVICML_S3_SECURE")
SIGNING_KEY_DIR = "/var/run/secrets/civicml-audit"


def signing_key_mount(task: dsl.PipelineTask, secret_name: str) -> dsl.PipelineTask:
    """Mount the audit signing key (a Secret, never a parameter) where this task writes records."""
    from kfp import kubernetes

    from civicml.governance.signing import ENV_KEY_FILE

    kubernetes.use_secret_as_volume(task, secret_name=secret_name, mount_path=SIGNING_KEY_DIR)
    task.set_env_variable(ENV_KEY_FILE, f"{SIGNING_KEY_DIR}/signing-key.pem")
    return task


def cluster_env(task: dsl.PipelineTask, secret_name: str) -> dsl.PipelineTask:
    """Store settings from a ConfigMap and credentials from a Secret: never pipeline parameters."""
    from kfp import kubernetes

    from civicml.deploy.security import NON_ROOT_GID, NON_ROOT_UID
    from civicml.storage.s3 import secret_env_mapping

    kubernetes.use_secret_as_env(task, secret_name=secret_name, secret_key_to_env=secret_env_mapping())
    # KFP 2.17 hardens the user container only to PSS baseline (no runAsNonRoot): without this a
    # namespace enforcing "restricted" refuses every step's pod. The image runs as this user.
    # upstream: kubeflow/pipelines backend/src/v2/compiler/argocompiler/security_context.go:84-91,163-174 @ 2.17.0
    kubernetes.set_security_context(task, run_as_user=NON_ROOT_UID, run_as_group=NON_ROOT_GID, run_as_non_root=True)
    kubernetes.use_config_map_as_env(
        task, config_map_name=SETTINGS_CONFIGMAP, config_map_key_to_env={k: k for k in SETTINGS_KEYS}
    )
    return task


def task_preparer(
    secret_name: str | None, default_config_json: str | None = None
) -> Callable[[dsl.PipelineTask, str], dsl.PipelineTask]:
    """A function that names a task, turns caching off, sets its CPU/memory and, for a cluster build,
    wires the store env.

    Requests and limits come from the config's `steps` section (a namespace with a ResourceQuota
    refuses pods without them); they are fixed at compile time, as KFP needs them in the spec.
    """
    from civicml.config import RunConfig

    cfg = RunConfig.from_json(default_config_json) if default_config_json else RunConfig()
    res = cfg.steps

    def prepare(task: dsl.PipelineTask, name: str) -> dsl.PipelineTask:
        # Every run must look at its own data and make its own record: never reuse a cached result.
        task.set_caching_options(False)
        task.set_display_name(name)
        task.set_cpu_request(res.cpu).set_cpu_limit(res.cpu_limit)
        task.set_memory_request(res.memory).set_memory_limit(res.memory_limit)
        if secret_name:
            cluster_env(task, secret_name)
            if cfg.audit.signing_secret_name:
                signing_key_mount(task, cfg.audit.signing_secret_name)
        return task

    return prepare


def compile_pipeline(pipeline, output: str | Path) -> Path:
    """Compile a pipeline function to YAML at `output` (parent directories created)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline, str(output))
    return output
