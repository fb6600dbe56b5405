"""deploy/k8s: valid core kinds and custom resources, real settings, probes that hit real paths."""

from __future__ import annotations

import copy
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from worker.config.settings import Settings, load_settings, variables
from worker.observability.metrics import HealthServer, WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
CPU = K8S / "overlays" / "cpu"
SCHEMAS = K8S / "schemas"
CORE_KINDS = {"ConfigMap", "Secret", "Deployment", "PodDisruptionBudget", "Service"}
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobject.yaml",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_triggerauthentication.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitor.yaml",
}
# librdkafka's SASL mechanism names, as KEDA's Kafka scaler spells them.
KEDA_SASL = {
    "PLAIN": "plaintext",
    "SCRAM-SHA-256": "scram_sha256",
    "SCRAM-SHA-512": "scram_sha512",
    "OAUTHBEARER": "oauthbearer",
}
# The oldest Kubernetes still in common support, and the newest the package knows.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def _resources(directory: Path) -> list[dict[str, Any]]:
    """The documents a kustomization lists (files only: the base is plain YAML)."""
    kustomization = _yaml(directory / "kustomization.yaml")
    docs = []
    for name in kustomization["resources"]:
        docs.extend(d for d in YAML(typ="safe").load_all((directory / name).read_text()) if d)
    return docs


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = {doc["kind"]: doc for doc in docs}
    assert len(kinds) == len(docs), "one resource of each kind is expected"
    return kinds


def _pointer(path: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def _json_patch(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 `add`, `replace` and `remove`, as kustomize applies a patch file's ops."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = _pointer(op["path"])
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) and last != "-" else last
        if op["op"] == "remove":
            del node[key]
        elif op["op"] == "replace":
            assert key in node if isinstance(node, dict) else key < len(node), op
            node[key] = op["value"]
        elif op["op"] == "add":
            if isinstance(node, list):
                node.insert(len(node) if key == "-" else key, op["value"])
            else:
                node[key] = op["value"]
        else:
            pytest.fail(f"unsupported patch op {op['op']!r}")
    return doc


def _overlay(directory: Path) -> list[dict[str, Any]]:
    """The overlay's output: its base's resources with its JSON 6902 patches applied."""
    kustomization = _yaml(directory / "kustomization.yaml")
    docs: list[dict[str, Any]] = []
    for ref in kustomization["resources"]:
        base = (directory / ref).resolve()
        assert (base / "kustomization.yaml").is_file(), f"{ref} is not a kustomization"
        docs.extend(_resources(base))
    for patch in kustomization["patches"]:
        target, ops = patch["target"], _yaml(directory / patch["path"])
        hits = [
            n
            for n, doc in enumerate(docs)
            if doc["kind"] == target["kind"] and doc["metadata"]["name"] == target["name"]
        ]
        assert len(hits) == 1, f"patch {patch['path']} matches {len(hits)} resources"
        docs[hits[0]] = _json_patch(docs[hits[0]], ops)
    return docs


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever an object lists its properties."""
    if isinstance(schema, dict):
        out = {key: _strict(value) for key, value in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(value) for value in schema]
    return schema


def _validate(doc: dict[str, Any]) -> None:
    """A core kind against Kubernetes' schemas, a custom resource against its CRD's."""
    crd = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if crd is not None:
        jsonschema.validate(doc, _strict(_yaml(SCHEMAS / crd)))
        return
    assert doc["kind"] in CORE_KINDS, f"no schema for {doc['apiVersion']} {doc['kind']}"
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("directory", [BASE, CPU], ids=["base", "cpu"])
def test_every_resource_validates(directory: Path) -> None:
    """Core kinds pass kubernetes-validate (strict); KEDA and ServiceMonitor pass their CRDs."""
    docs = _overlay(directory) if directory == CPU else _resources(directory)
    assert {doc["kind"] for doc in docs} == CORE_KINDS | {k for _, k in CRD_SCHEMAS}
    for doc in docs:
        _validate(doc)


def test_the_crd_schemas_catch_a_misspelt_field() -> None:
    """A ScaledObject with an unknown field fails: the schemas are strict, not decorative."""
    scaled = copy.deepcopy(_by_kind(_resources(BASE))["ScaledObject"])
    scaled["spec"]["maxReplicas"] = 3
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        _validate(scaled)


def test_every_yaml_file_is_listed_in_its_kustomization() -> None:
    """No manifest in the base or the overlay is left out of (or missing from) its kustomization."""
    for directory in (BASE, CPU):
        kustomization = _yaml(directory / "kustomization.yaml")
        listed = set(kustomization.get("resources", []))
        listed |= {patch["path"] for patch in kustomization.get("patches", [])}
        files = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
        assert files == {name for name in listed if not name.startswith("..")}


def _config(docs: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = _by_kind(docs)["ConfigMap"]["data"]
    return data


def _worker(docs: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = _by_kind(docs)["Deployment"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def test_the_configmap_and_secret_name_only_real_settings_and_they_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each RECSTREAM_* key is a setting of worker/config/settings.py; together they validate."""
    docs = _resources(BASE)
    config = _config(docs)
    secret = _by_kind(docs)["Secret"]["stringData"]
    env = {item["name"]: item for item in _worker(docs)["env"]}
    known = set(variables())
    assert set(config) <= known, f"not settings: {sorted(set(config) - known)}"
    secrets = {key for key in secret if key.startswith("RECSTREAM_")}
    assert secrets <= known
    assert secrets == set(env), "every secret setting reaches the worker, and only those"
    for name, item in env.items():
        assert item["valueFrom"]["secretKeyRef"] == {"name": "recstream-credentials", "key": name}
    for key in [k for k in os.environ if k.startswith("RECSTREAM_")]:
        monkeypatch.delenv(key)
    for key, value in {**config, **{k: secret[k] for k in secrets}}.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.scale.scale_out
    assert settings.kafka.sasl_password is not None
    assert settings.device == "cuda"


def test_probes_use_the_metrics_port_and_paths_the_worker_serves() -> None:
    """The probes' named port is RECSTREAM_METRICS_PORT, and each path is answered, not 404."""
    docs = _resources(BASE)
    container = _worker(docs)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    port = int(_config(docs).get("RECSTREAM_METRICS_PORT", Settings().metrics_port))
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert ports[probe["port"]] == port
    service = _by_kind(docs)["Service"]["spec"]["ports"][0]
    monitor = _by_kind(docs)["ServiceMonitor"]["spec"]["endpoints"][0]
    assert service["targetPort"] in ports
    assert monitor["port"] == service["name"]
    paths = {probe["path"] for probe in probes.values()} | {monitor["path"]}

    server = HealthServer(0, WorkerMetrics(), host="127.0.0.1")
    server.start(live=lambda: True, ready=lambda: False)
    try:
        answers = {}
        for path in sorted(paths):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5):
                    answers[path] = 200
            except urllib.error.HTTPError as exc:
                answers[path] = exc.code
    finally:
        server.close()
    assert answers == {"/healthz": 200, "/metrics": 200, "/readyz": 503}


def test_gpu_requests_grace_and_disruption_budget() -> None:
    """One GPU per worker (request = limit), a grace period past a drain, one pod at a time."""
    docs = _resources(BASE)
    resources = _worker(docs)["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == 1
    spec = _by_kind(docs)["Deployment"]["spec"]
    assert "replicas" not in spec, "replicas belong to KEDA"
    config = _config(docs)
    # A drain: the batch in hand, its publish and commit, and the revoke's state flush of up
    # to RECSTREAM_STATE_FLUSH_S of changed users (docs/scaling.md, "Kubernetes").
    drain_bound_s = 3 * float(config["RECSTREAM_STATE_FLUSH_S"]) + 30
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= drain_bound_s
    assert _by_kind(docs)["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_the_scaledobject_follows_the_input_topic_of_the_workers() -> None:
    """Lag of the workers' group on their topic; min 1, max the partitions; documented threshold."""
    for directory, threshold in ((BASE, "30000"), (CPU, "12000")):
        docs = _overlay(directory) if directory == CPU else _resources(directory)
        config = _config(docs)
        spec = _by_kind(docs)["ScaledObject"]["spec"]
        assert spec["scaleTargetRef"]["name"] == _by_kind(docs)["Deployment"]["metadata"]["name"]
        assert spec["minReplicaCount"] == 1
        assert spec["maxReplicaCount"] == int(config["RECSTREAM_KAFKA_TOPIC_PARTITIONS"])
        (trigger,) = spec["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert meta["topic"] == config["RECSTREAM_KAFKA_TOPIC"]
        assert meta["consumerGroup"] == config["RECSTREAM_KAFKA_GROUP"]
        assert meta["bootstrapServers"] == config["RECSTREAM_KAFKA_BOOTSTRAP"]
        assert meta["lagThreshold"] == threshold
        assert f"`{threshold}`" in (ROOT / "docs" / "scaling.md").read_text(encoding="utf-8")


def test_keda_authenticates_as_the_worker_does() -> None:
    """KEDA's sasl and tls parameters match the worker's mechanism and protocol, same user."""
    docs = _resources(BASE)
    config, secret = _config(docs), _by_kind(docs)["Secret"]["stringData"]
    refs = {
        r["parameter"]: r
        for r in _by_kind(docs)["TriggerAuthentication"]["spec"]["secretTargetRef"]
    }
    assert (
        _by_kind(docs)["ScaledObject"]["spec"]["triggers"][0]["authenticationRef"]["name"]
        == (_by_kind(docs)["TriggerAuthentication"]["metadata"]["name"])
    )
    mechanism = config["RECSTREAM_KAFKA_SASL_MECHANISM"]
    assert secret[refs["sasl"]["key"]] == KEDA_SASL[mechanism]
    tls = config["RECSTREAM_KAFKA_SECURITY_PROTOCOL"] in ("SSL", "SASL_SSL")
    assert secret[refs["tls"]["key"]] == ("enable" if tls else "disable")
    assert refs["username"]["key"] == "RECSTREAM_KAFKA_SASL_USERNAME"
    assert refs["password"]["key"] == "RECSTREAM_KAFKA_SASL_PASSWORD"


def test_the_cpu_overlay_asks_for_no_gpu() -> None:
    """The CPU overlay's output names no nvidia.com/gpu anywhere and runs the model on the CPU."""
    docs = _overlay(CPU)
    assert "nvidia.com/gpu" not in str(docs)
    assert _config(docs)["RECSTREAM_DEVICE"] == "cpu"
    assert _by_kind(_resources(BASE))["Deployment"] != _by_kind(docs)["Deployment"]
