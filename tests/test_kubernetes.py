"""The Kubernetes manifests (deploy/kubernetes/), checked offline on every test run.

Each manifest is validated strictly (an unknown field is an error) against the
API schemas of the oldest Kubernetes release the manifests support and of the
newest that ``kubernetes-validate`` ships; then what the schemas cannot know is
checked against the repository itself: the probes' paths are the app's health
routes on the port the image listens on, the user is the image's, every
variable set is one the service reads, and the grace period covers the drain.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.guard.server import build_parser
from app.guard.shutdown import AFTER_DRAIN_S
from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "deploy" / "kubernetes"
DOCKERFILE = (ROOT / "Dockerfile").read_text()
# 1.30: the first release with the preStop sleep action on by default; 1.37: the newest schemas kubernetes-validate has
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
EXIT_S = AFTER_DRAIN_S + 1  # the most from the drain's end to the exit, and the interpreter's own (about 2 s measured)


def resources() -> dict[str, dict[str, Any]]:
    """``kind -> manifest`` of every resource kustomization.yaml lists."""
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    found: dict[str, dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for document in yaml.safe_load_all((MANIFESTS / name).read_text()):
            found[document["kind"]] = document
    return found


def container() -> dict[str, Any]:
    (app,) = resources()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(app)


def cpus(quantity: str) -> float:
    """A CPU quantity (``"2"``, ``"1500m"``) in CPUs."""
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def environment() -> dict[str, str]:
    """The container's variables: a value, or for ``resourceFieldRef`` what the kubelet sets (ceil(limit / divisor))."""
    limit = cpus(container()["resources"]["limits"]["cpu"])
    values: dict[str, str] = {}
    for variable in container()["env"]:
        if "value" in variable:
            values[variable["name"]] = variable["value"]
        else:
            reference = variable["valueFrom"]["resourceFieldRef"]
            assert reference["resource"] == "limits.cpu", variable
            values[variable["name"]] = str(math.ceil(limit / cpus(reference["divisor"])))
    return values


def dockerfile(pattern: str) -> str:
    match = re.search(pattern, DOCKERFILE, re.MULTILINE)
    assert match, f"the Dockerfile has no {pattern!r}"
    return match.group(1)


def test_kustomization_lists_every_manifest_in_the_folder() -> None:
    listed = set(yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"])
    assert listed == {path.name for path in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(resources()) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_strictly(version: str) -> None:
    for kind, manifest in resources().items():
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{kind} is not valid for Kubernetes {version}: {error.path}: {error.message}")


def test_strict_validation_rejects_a_misspelt_field() -> None:
    deployment = resources()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["periodSecond"] = 10
    with pytest.raises(kubernetes_validate.ValidationError, match="periodSecond"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_probes_ask_the_apps_health_routes_on_the_port_the_image_listens_on() -> None:
    app = container()
    routes = {path for path, operations in create_app().openapi()["paths"].items() if "get" in operations}
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert app["startupProbe"]["httpGet"]["path"] == "/healthz"  # answers once the models are self-tested
    assert {"/readyz", "/healthz"} <= routes
    ports = {port["name"]: port["containerPort"] for port in app["ports"]}
    image_port = int(dockerfile(r"^EXPOSE (\d+)"))
    assert int(dockerfile(r"UVICORN_PORT=(\d+)")) == image_port == ports["http"] == int(environment()["UVICORN_PORT"])
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert app[probe]["httpGet"]["port"] in (ports["http"], "http")
    service = resources()["Service"]["spec"]
    assert service["ports"][0]["targetPort"] in (ports["http"], "http")
    assert "command" not in app and "args" not in app, "the image's CMD (python -m app.guard.server) runs"


def test_the_pod_runs_as_the_images_user_unprivileged_on_a_read_only_root() -> None:
    pod = resources()["Deployment"]["spec"]["template"]["spec"]
    assert dockerfile(r"^USER (\w+)") == "app"
    uid, gid = int(dockerfile(r"--uid (\d+)")), int(dockerfile(r"--gid (\d+)"))
    assert pod["securityContext"]["runAsUser"] == uid == 10001
    assert pod["securityContext"]["runAsGroup"] == gid
    assert pod["securityContext"]["runAsNonRoot"] is True
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    (tmp,) = (mount for mount in container()["volumeMounts"] if mount["mountPath"] == "/tmp")
    (volume,) = (volume for volume in pod["volumes"] if volume["name"] == tmp["name"])
    assert "emptyDir" in volume


def test_every_variable_set_is_one_the_service_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    variables = environment()
    service_settings = {name: value for name, value in variables.items() if name.startswith("GCNN_")}
    fields = {f"GCNN_{field.upper()}" for field in Settings.model_fields}
    assert set(service_settings) <= fields, set(service_settings) - fields
    for name, value in service_settings.items():
        monkeypatch.setenv(name, value)
    settings = Settings()  # as the service reads them: from the environment
    limit = cpus(container()["resources"]["limits"]["cpu"])
    # torch: half the CPU limit, rounded up (the event loop needs a core); a decode process per CPU
    assert settings.resolved_torch_threads() == math.ceil(limit / 2) == int(variables["OMP_NUM_THREADS"])
    assert settings.resolved_decode_processes() == math.ceil(limit)
    server = {"UVICORN_HOST", "UVICORN_PORT", "WEB_CONCURRENCY", "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN"}
    assert set(variables) - set(service_settings) == server | {"OMP_NUM_THREADS"}


def test_the_server_reads_the_manifests_server_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    variables = environment()
    for name in ("UVICORN_HOST", "UVICORN_PORT", "WEB_CONCURRENCY", "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN"):
        monkeypatch.setenv(name, variables[name])
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.workers) == ("0.0.0.0", 8000, 1)
    assert args.timeout_graceful_shutdown == float(variables["UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN"])


def test_the_grace_period_covers_the_pre_stop_pause_the_drain_and_the_exit() -> None:
    pod = resources()["Deployment"]["spec"]["template"]["spec"]
    pause = container()["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(environment()["UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN"])
    assert pod["terminationGracePeriodSeconds"] >= pause + drain + EXIT_S


def test_selectors_and_targets_name_the_deployments_pods() -> None:
    found = resources()
    labels = found["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert found["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert found["Service"]["spec"]["selector"].items() <= labels.items()
    assert found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = found["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", found["Deployment"]["metadata"]["name"])
    assert found["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == found["Deployment"]["spec"]["replicas"] == 2
