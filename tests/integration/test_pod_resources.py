"""Item 10: every pod civicml creates sets CPU/memory requests and limits, from the config.

A namespace with a ResourceQuota on cpu/memory refuses pods that set none
(kubernetes plugin/pkg/admission/resourcequota: "must specify limits.cpu ..."); Kubeflow
Profiles create exactly such quotas when an admin sets resourceQuotaSpec.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from civicml.config import RunConfig
from civicml.deploy.kubernetes import build_objects
from civicml.serving.routing import Routing
from civicml.tuning.katib_backend import trial_job

REPO = Path(__file__).resolve().parents[2]


def test_every_compiled_step_has_requests_and_limits_from_the_config():
    steps = RunConfig().steps
    for path in sorted((REPO / "pipelines" / "compiled").glob("*.yaml")):
        spec = next(iter(yaml.safe_load_all(path.read_text())))
        executors = spec["deploymentSpec"]["executors"]
        assert executors, path
        for name, executor in executors.items():
            res = executor["container"].get("resources")
            assert res, f"{path.name}: {name} has no resources"
            assert (res["resourceCpuRequest"], res["resourceCpuLimit"]) == (steps.cpu, steps.cpu_limit), name
            assert (res["resourceMemoryRequest"], res["resourceMemoryLimit"]) == (steps.memory, steps.memory_limit)


def test_step_resources_follow_the_config(tmp_path):
    from pipelines.training_pipeline import compile_training_pipeline

    cfg = RunConfig.model_validate(
        {"steps": {"cpu": "250m", "memory": "512Mi", "cpu_limit": "1", "memory_limit": "1Gi"}}
    )
    out = compile_training_pipeline(tmp_path / "p.yaml", image="img:1", default_config_json=cfg.to_json())
    spec = next(iter(yaml.safe_load_all(out.read_text())))
    for executor in spec["deploymentSpec"]["executors"].values():
        res = executor["container"]["resources"]
        assert (res["resourceCpuRequest"], res["resourceMemoryLimit"]) == ("250m", "1Gi")


def test_trial_and_server_pods_have_requests_and_limits():
    cfg = RunConfig.model_validate({"storage": {"uri": "s3://b/p"}})
    pods = [
        trial_job(cfg, "v1", {})["spec"]["template"]["spec"],
        build_objects(cfg, Routing(champion="v1"))[-1]["spec"]["template"]["spec"],
    ]
    for pod in pods:
        for container in pod["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), container["name"]
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), container["name"]
