"""What Katib's webhooks and collector do to civicml's Experiment, pinned against Katib's source.

Katib's controller cannot run here; each test cites the upstream file and line it encodes.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from civicml.config import ConfigError, ParamSpec, RunConfig, load_config
from civicml.tuning import katib_backend as kb
from civicml.tuning.trial import KATIB_METRICS_REGEX, MetricClock, format_metric

REPO = Path(__file__).resolve().parents[2]
S3 = "s3://civicml/registry"


def _cfg(**tuning) -> RunConfig:
    return RunConfig.model_validate({"storage": {"uri": S3}, "tuning": {"backend": "katib", **tuning}})


# --- item 6: the Experiment webhook's count rules ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("tuning", "key"),
    [
        ({"max_trials": 4, "max_failed_trials": 5}, "max_failed_trials"),
        ({"max_trials": 4, "parallel_trials": 6}, "parallel_trials"),
    ],
)
def test_counts_katib_refuses_are_refused_in_the_config(tuning, key):
    # upstream: kubeflow/katib pkg/webhook/v1beta1/experiment/validator/validator.go:104-115 @ v0.19.0
    with pytest.raises(ValueError, match=rf"tuning.{key} \(\d+\) is larger than tuning.max_trials \(4\).*Katib"):
        _cfg(**tuning)


def test_the_optuna_backend_ignores_the_katib_bounds():
    RunConfig.model_validate({"tuning": {"backend": "optuna", "max_trials": 2, "max_failed_trials": 3}})


def test_unset_counts_are_capped_so_the_webhook_accepts_them():
    # Defaults (max_failed_trials 3) with a small search must still build an Experiment Katib accepts.
    cfg = _cfg(max_trials=2)
    spec = kb.experiment_body(kb.build_experiment(cfg, "v1"))["spec"]
    assert spec["maxFailedTrialCount"] <= spec["maxTrialCount"] == 2
    assert spec["parallelTrialCount"] <= spec["maxTrialCount"]


# --- item 7: args go through `sh -c` unquoted; metrics need timestamps -------------------------------------------


def katib_wrapped_command(args: list[str]) -> str:
    """The primary container's command as Katib's pod webhook rewrites it for the StdOut collector.

    upstream: kubeflow/katib pkg/webhook/v1beta1/pod/utils.go:170-193 @ v0.19.0
    (args appended with the redirect and the completion marker, joined with " ", run by `sh -c`).
    """
    return " ".join([*args, "1>/var/log/katib/metrics.log 2>&1", "&&", "echo completed > /var/log/katib/$$$$.pid"])


def test_safe_categorical_values_survive_katibs_shell_join():
    cfg = _cfg(
        search_space={"grow_policy": {"type": "categorical", "values": ["depthwise", "lossguide"]}},
        algorithm="random",
    )
    spec = kb.experiment_body(kb.build_experiment(cfg, "v1"))["spec"]
    container = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    for value in ["depthwise", "lossguide"]:
        args = [a.replace("${trialParameters.grow_policy}", value) for a in container["command"] + container["args"]]
        # What `sh -c` would see as words, up to the redirect, is exactly the argument list.
        words = shlex.split(katib_wrapped_command(args))
        assert words[: len(args)] == args


@pytest.mark.parametrize("value", ["squared error", "a;rm -rf /", "$(id)", "x|y", "it's"])
def test_categorical_values_with_shell_characters_are_refused(value):
    with pytest.raises(ValueError, match="sh -c.*unquoted"):
        _cfg(search_space={"p": {"type": "categorical", "values": ["ok", value]}}, algorithm="random")


def test_unsafe_values_in_a_space_given_after_loading_are_refused_when_building():
    cfg = _cfg()
    cfg.tuning.search_space = {"p": ParamSpec(type="categorical", values=["a b"])}
    with pytest.raises(ConfigError, match="unquoted"):
        kb.build_experiment(cfg, "v1")


def test_metric_lines_carry_strictly_increasing_rfc3339nano_timestamps():
    # Katib takes the text before the first space as the time, if it parses as RFC3339Nano;
    # otherwise every observation gets the zero time and "latest" depends on DB order.
    # upstream: kubeflow/katib pkg/metricscollector/v1beta1/file-metricscollector/file-metricscollector.go:89-98 @ v0.19.0  # noqa: E501
    clock = MetricClock(now_ns=lambda: 1_780_000_000_000_000_000)  # a frozen wall clock
    lines = [format_metric("roc_auc", v, clock()) for v in (0.7, 0.8, 0.9)]
    stamps = [line.split(" ", 1)[0] for line in lines]
    rfc3339nano = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")
    assert all(rfc3339nano.fullmatch(s) for s in stamps), stamps
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    # Katib's default filter still finds exactly name=value on the line, and nothing in the timestamp.
    # upstream: kubeflow/katib pkg/metricscollector/v1beta1/common/const.go:47 @ v0.19.0
    for line, value in zip(lines, (0.7, 0.8, 0.9)):
        assert [(m.group(1), float(m.group(2))) for m in re.finditer(KATIB_METRICS_REGEX, line)] == [("roc_auc", value)]


def test_example_config_parses_for_katib():
    load_config(REPO / "civicml.yaml", {"tuning.backend": "katib"})


# --- item 3: early stopping cannot run under "restricted" -----------------------------------------------------


class _Core:
    """CoreV1Api.read_namespace stand-in."""

    def __init__(self, labels=None, status=None):
        self.labels, self.status = labels, status

    def read_namespace(self, name):
        from kubernetes.client import V1Namespace, V1ObjectMeta
        from kubernetes.client.exceptions import ApiException

        if self.status:
            raise ApiException(status=self.status, reason="Forbidden")
        return V1Namespace(metadata=V1ObjectMeta(name=name, labels=self.labels))


class _NoCalls:
    def __getattr__(self, name):
        raise AssertionError(f"the Experiment API must not be called ({name})")


def _early_cfg(monkeypatch):
    monkeypatch.setenv("CIVICML_STORE_URI", S3)
    return _cfg(early_stopping={"min_trials_required": 2, "start_step": 3})


def test_early_stopping_in_a_restricted_namespace_is_refused_before_anything_is_sent(monkeypatch):
    # Katib adds an `early-stopping` container with no securityContext to the suggestion pod, and
    # EarlyStoppingConfig has no field to give it one.
    # upstream: kubeflow/katib pkg/controller.v1beta1/suggestion/composer/composer.go:245-260 @ v0.19.0
    # upstream: kubeflow/katib pkg/apis/config/v1beta1/types.go:112-117 @ v0.19.0
    cfg = _early_cfg(monkeypatch)
    core = _Core({"pod-security.kubernetes.io/enforce": "restricted"})
    with pytest.raises(kb.KatibError) as info:
        kb.run_katib(cfg, "v1", api=_NoCalls(), core=core)
    message = str(info.value)
    assert "restricted" in message and "remove tuning.early_stopping" in message and '"baseline"' in message


def test_early_stopping_in_a_baseline_namespace_is_sent(monkeypatch):
    cfg = _early_cfg(monkeypatch)
    assert kb.check_pod_security(cfg, {"pod-security.kubernetes.io/enforce": "baseline"}) is None
    # No early stopping: nothing to check, whatever the namespace enforces.
    assert kb.check_pod_security(_cfg(), {"pod-security.kubernetes.io/enforce": "restricted"}) is None


def test_unreadable_namespace_labels_warn_instead_of_refusing(monkeypatch):
    cfg = _early_cfg(monkeypatch)
    from civicml.deploy.cluster import namespace_labels

    labels = namespace_labels(_Core(status=403), "civicml")
    assert labels is None
    assert "could not read namespace civicml" in kb.check_pod_security(cfg, labels)
