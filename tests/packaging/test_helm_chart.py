"""deploy/helm/modelyard: rendered by Helm's own Go engine (helm-python-sdk, no helm binary),
linted, every manifest validated against the Kubernetes schemas (kubernetes-validate, strict),
plus what the chart promises: Pod Security "restricted" everywhere, engines reachable only from
gateway pods, no secret in a ConfigMap, an HPA on the gateway's queue-depth gauge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from modelyard.gateway.metrics import GatewayMetrics

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "modelyard"
RELEASE, NAMESPACE = "prod", "ml"
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
"""The oldest Kubernetes the chart claims (Chart.yaml kubeVersion) and the newest
kubernetes-validate 1.37.0 ships schemas for."""
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor")}
"""CRDs: not in the Kubernetes schemas; checked by our own assertions."""

DB_URL = "postgresql+psycopg://modelyard:db-s3cret-9f2@db.internal:5432/modelyard"
REDIS_URL = "redis://:redis-s3cret-77a@redis.internal:6379/0"
OIDC_SECRET = "oidc-client-s3cret-41c"
PG_PASSWORD = "pg-s3cret-1d8"
REDIS_PASSWORD = "rd-s3cret-5e0"
SECRETS = (DB_URL, REDIS_URL, OIDC_SECRET, PG_PASSWORD, REDIS_PASSWORD, "s3cret")

GPU_ENGINES: list[dict[str, Any]] = [
    {
        "name": "llama-70b",
        "servedModel": "llama-3.3-70b-instruct",
        "image": {"repository": "registry.example.com/llama-server-cuda", "tag": "b6000"},
        "command": ["/app/llama-server"],
        "args": ["--model", "/models/llama-3.3-70b-q4_k_m.gguf", "--n-gpu-layers", 999],
        "gpus": 2,
        "modelVolume": {"persistentVolumeClaim": {"claimName": "llama-70b", "readOnly": True}},
        "resources": {"requests": {"cpu": "8", "memory": "64Gi"}, "limits": {"memory": "96Gi"}},
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "runtimeClassName": "nvidia",
    },
    {
        "name": "qwen-7b",
        "servedModel": "Qwen/Qwen2.5-7B-Instruct",
        "image": {"repository": "docker.io/vllm/vllm-openai", "tag": "v0.10.1"},
        "args": ["--model", "/models/qwen2.5-7b-instruct", "--port", "8000"],
        "port": 8000,
        "replicas": 2,
        "gpus": 1,
        "apiKey": {"envName": "VLLM_API_KEY", "existingSecret": "qwen-key", "key": "token"},
        "shmSizeLimit": "8Gi",
        "modelVolume": {"persistentVolumeClaim": {"claimName": "qwen-7b", "readOnly": True}},
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
]

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "external-db": {
        "postgresql": {"enabled": False},
        "redis": {"enabled": False},
        "secrets": {
            "databaseUrl": DB_URL,
            "redisUrl": REDIS_URL,
            "extra": {"MODELYARD_OIDC_CLIENT_SECRET": OIDC_SECRET},
        },
        "gateway": {
            "env": {"MODELYARD_WORKER_SLOTS": 16, "MODELYARD_OIDC_ISSUER": "https://sso.example"},
            "forwardedAllowIps": "10.244.0.0/16",
        },
    },
    "in-chart-datastores": {
        "postgresql": {
            "enabled": True,
            "auth": {"password": PG_PASSWORD},
            "persistence": {"size": "5Gi", "storageClass": "fast"},
        },
        "redis": {"enabled": True, "auth": {"password": REDIS_PASSWORD}},
        "home": {"existingClaim": "modelyard-home"},
        "gateway": {"autoscaling": {"enabled": False}, "replicas": 3},
        "networkPolicy": {
            "gatewayIngressFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
            ]
        },
    },
    "gpu-engines": {
        "postgresql": {"enabled": False},
        "redis": {"enabled": False},
        "secrets": {"existingSecret": "modelyard-settings"},
        "image": {"digest": "sha256:" + "ab" * 32},
        "engines": GPU_ENGINES,
        "serviceMonitor": {
            "enabled": True,
            "labels": {"release": "prometheus"},
            "adminKeySecret": {"name": "modelyard-metrics-key"},
        },
    },
}

Manifest = dict[str, Any]


def render(values: dict[str, Any]) -> dict[str, str]:
    with helm_python.Chart.load(CHART) as chart:
        return chart.render(values, name=RELEASE, namespace=NAMESPACE)


def manifests(values: dict[str, Any]) -> list[Manifest]:
    found = []
    for path, text in render(values).items():
        if path.endswith(".yaml"):
            found += [doc for doc in yaml.safe_load_all(text) if doc]
    return found


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    return {name: manifests(values) for name, values in VALUE_SETS.items()}


def of_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[Manifest], kind: str, name: str) -> Manifest:
    (found,) = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    return found


def workloads(docs: list[Manifest]) -> Iterator[Manifest]:
    yield from (doc for doc in docs if doc["kind"] in {"Deployment", "StatefulSet", "Job"})


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels + matchExpressions) against labels."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def component(docs: list[Manifest], name: str) -> list[Manifest]:
    return [
        doc
        for doc in workloads(docs)
        if doc["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == name
    ]


# --- Helm's own checks ---------------------------------------------------------------------


def test_chart_lints_clean_in_strict_mode() -> None:
    for values in VALUE_SETS.values():
        report = helm_python.lint(CHART, values, strict=True, kube_version="v1.29.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not report["errors"] and not problems, report


def test_every_value_set_renders_the_expected_objects(rendered: dict[str, list[Manifest]]) -> None:
    kinds = {name: sorted({doc["kind"] for doc in docs}) for name, docs in rendered.items()}
    assert "StatefulSet" in kinds["defaults"]  # in-chart PostgreSQL and Redis by default
    assert "StatefulSet" not in kinds["external-db"]
    assert "HorizontalPodAutoscaler" not in kinds["in-chart-datastores"]
    assert "ServiceMonitor" in kinds["gpu-engines"]
    assert all("ServiceMonitor" not in k for name, k in kinds.items() if name != "gpu-engines")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_manifest_is_valid_kubernetes(
    rendered: dict[str, list[Manifest]], value_set: str, version: str
) -> None:
    for doc in rendered[value_set]:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_RESOURCES:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} at {where}: {exc.message}")


def test_the_validator_is_strict() -> None:
    """An unknown field fails: a misspelt key in a template cannot pass unnoticed."""
    doc = named(manifests({}), "Deployment", f"{RELEASE}-modelyard-gateway")
    doc["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[0], strict=True)


def test_values_schema_refuses_secret_settings_in_the_configmap_and_latest_tags() -> None:
    for bad in (
        {"gateway": {"env": {"MODELYARD_DATABASE_URL": DB_URL}}},
        {"gateway": {"env": {"PATH": "/tmp"}}},
        {"image": {"tag": "latest"}},
        {"engines": [{"name": "Bad_Name"}]},
        {"postgresql": {"auth": {"password": "has spaces@and:colons"}}},
        {"unknownTopLevel": True},
    ):
        with pytest.raises(helm_python.HelmError):
            render(bad)


def test_a_database_is_required() -> None:
    with pytest.raises(helm_python.HelmError, match="needs a database"):
        render({"postgresql": {"enabled": False}})


# --- Pod Security "restricted" -------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_pod_meets_pod_security_restricted(
    rendered: dict[str, list[Manifest]], value_set: str
) -> None:
    for doc in workloads(rendered[value_set]):
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        pod = doc["spec"]["template"]["spec"]
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert context["runAsUser"] > 0 and context["runAsGroup"] > 0, where
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), where
        assert pod["automountServiceAccountToken"] is False, where
        assert not [v for v in pod.get("volumes", []) if "hostPath" in v], where
        for container in containers(pod):
            sc = container["securityContext"]
            name = f"{where} container {container['name']}"
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc.get("privileged", False) is False, name
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert sc.get("runAsUser", 1) != 0, name
            # a read-only root filesystem: /tmp is a volume in every container
            assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]), name


def test_modelyard_pods_run_as_the_images_user(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["defaults"]
    for doc in [*component(docs, "gateway"), *component(docs, "engine")]:
        context = doc["spec"]["template"]["spec"]["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (
            10001,
            10001,
            10001,
        )


# --- Network policy: engines take connections from gateway pods only -------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_engines_accept_traffic_only_from_gateway_pods(
    rendered: dict[str, list[Manifest]], value_set: str
) -> None:
    docs = rendered[value_set]
    engines = component(docs, "engine")
    assert engines
    policies = [
        doc
        for doc in of_kind(docs, "NetworkPolicy")
        if any(
            selects(doc["spec"]["podSelector"], e["spec"]["template"]["metadata"]["labels"])
            for e in engines
        )
    ]
    assert len(policies) == 1, [p["metadata"]["name"] for p in policies]
    spec = policies[0]["spec"]
    # it selects every engine pod, and no gateway or datastore pod
    for workload in workloads(docs):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        is_engine = labels["app.kubernetes.io/component"] == "engine"
        assert selects(spec["podSelector"], labels) == is_engine, workload["metadata"]["name"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    assert spec["egress"] == []
    (rule,) = spec["ingress"]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}  # no namespaceSelector, no ipBlock: this namespace only
    for workload in workloads(docs):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        is_gateway = labels["app.kubernetes.io/component"] == "gateway"
        assert selects(peer["podSelector"], labels) == is_gateway, workload["metadata"]["name"]
    allowed = {port["port"] for port in rule["ports"]}
    for engine in engines:
        for container in engine["spec"]["template"]["spec"]["containers"]:
            assert {p["containerPort"] for p in container["ports"]} <= allowed


def test_in_chart_datastores_accept_only_gateway_pods(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["in-chart-datastores"]
    policy = named(docs, "NetworkPolicy", f"{RELEASE}-modelyard-datastores")["spec"]
    (rule,) = policy["ingress"]
    (peer,) = rule["from"]
    for workload in workloads(docs):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        kind = labels["app.kubernetes.io/component"]
        assert selects(policy["podSelector"], labels) == (kind in {"postgresql", "redis"})
        assert selects(peer["podSelector"], labels) == (kind == "gateway")
    gateway_policy = named(docs, "NetworkPolicy", f"{RELEASE}-modelyard-gateway")["spec"]
    assert (
        gateway_policy["ingress"][0]["from"]
        == VALUE_SETS["in-chart-datastores"]["networkPolicy"]["gatewayIngressFrom"]
    )


# --- Secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_no_secret_values_outside_secrets(
    rendered: dict[str, list[Manifest]], value_set: str
) -> None:
    for doc in rendered[value_set]:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        for secret in SECRETS:
            assert secret not in text, f"{doc['kind']}/{doc['metadata']['name']}"
    for config in of_kind(rendered[value_set], "ConfigMap"):
        for key, value in config["data"].items():
            assert not any(word in key for word in ("PASSWORD", "SECRET", "TOKEN", "_URL")), key
            assert "@" not in value or "://" not in value, key  # no URL with credentials


def test_secret_settings_reach_the_gateway_from_secrets(
    rendered: dict[str, list[Manifest]],
) -> None:
    external = rendered["external-db"]
    secret = named(external, "Secret", f"{RELEASE}-modelyard")
    assert {"MODELYARD_DATABASE_URL", "MODELYARD_REDIS_URL", "MODELYARD_OIDC_CLIENT_SECRET"} <= set(
        secret["data"]
    )
    config = named(external, "ConfigMap", f"{RELEASE}-modelyard")["data"]
    assert config["MODELYARD_WORKER_SLOTS"] == "16"
    assert config["FORWARDED_ALLOW_IPS"] == "10.244.0.0/16"
    gateway = named(external, "Deployment", f"{RELEASE}-modelyard-gateway")
    for container in containers(gateway["spec"]["template"]["spec"]):
        sources = container["envFrom"]
        assert {"secretRef": {"name": f"{RELEASE}-modelyard"}} in sources
        assert all("value" not in e for e in container["env"])  # every variable by reference

    # your own Secret: the chart makes none and points at it
    gpu = rendered["gpu-engines"]
    assert not [
        s for s in of_kind(gpu, "Secret") if s["metadata"]["name"] == f"{RELEASE}-modelyard"
    ]
    gateway = named(gpu, "Deployment", f"{RELEASE}-modelyard-gateway")
    assert {"secretRef": {"name": "modelyard-settings"}} in gateway["spec"]["template"]["spec"][
        "containers"
    ][0]["envFrom"]


def test_in_chart_datastores_get_their_urls_from_their_secrets(
    rendered: dict[str, list[Manifest]],
) -> None:
    import base64

    docs = rendered["in-chart-datastores"]
    pg = named(docs, "Secret", f"{RELEASE}-modelyard-postgresql")["data"]
    url = base64.b64decode(pg["database-url"]).decode()
    assert url == (
        f"postgresql+psycopg://modelyard:{PG_PASSWORD}@{RELEASE}-modelyard-postgresql:5432/modelyard"
    )
    redis = named(docs, "Secret", f"{RELEASE}-modelyard-redis")["data"]
    assert base64.b64decode(redis["redis-url"]).decode().startswith(f"redis://:{REDIS_PASSWORD}@")
    env = named(docs, "Deployment", f"{RELEASE}-modelyard-gateway")["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env}
    assert refs["MODELYARD_DATABASE_URL"] == {
        "name": f"{RELEASE}-modelyard-postgresql",
        "key": "database-url",
    }
    assert refs["MODELYARD_REDIS_URL"] == {"name": f"{RELEASE}-modelyard-redis", "key": "redis-url"}
    # generated passwords when none is given (kept across upgrades through lookup)
    defaults = named(rendered["defaults"], "Secret", f"{RELEASE}-modelyard-postgresql")["data"]
    assert len(base64.b64decode(defaults["password"])) == 32


# --- Scaling, engines, monitoring -----------------------------------------------------------


def test_hpa_scales_the_gateway_on_its_queue_depth_gauge(
    rendered: dict[str, list[Manifest]],
) -> None:
    docs = rendered["defaults"]
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    gateway = named(docs, "Deployment", target["name"])
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": target["name"]}
    assert gateway["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == (
        "gateway"
    )
    assert "replicas" not in gateway["spec"]  # the HPA owns the count
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "4"}
    exported = {family.name for family in GatewayMetrics().registry.collect()}
    assert metric["pods"]["metric"]["name"] in exported
    assert metric["pods"]["metric"]["name"] == "modelyard_queue_depth"


def engines_by_name(docs: list[Manifest]) -> dict[str, Manifest]:
    return {d["metadata"]["labels"]["modelyard.io/engine"]: d for d in component(docs, "engine")}


@pytest.mark.parametrize("spec", GPU_ENGINES, ids=lambda spec: spec["name"])
def test_gpu_engine_from_values(rendered: dict[str, list[Manifest]], spec: dict[str, Any]) -> None:
    docs = rendered["gpu-engines"]
    engines = engines_by_name(docs)
    assert set(engines) == {"llama-70b", "qwen-7b"}
    engine = engines.pop(spec["name"])
    pod = engine["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == spec["gpus"]
    assert (pod["nodeSelector"], pod["tolerations"]) == (spec["nodeSelector"], spec["tolerations"])
    assert container["image"] == f"{spec['image']['repository']}:{spec['image']['tag']}"
    assert container["ports"][0]["containerPort"] == spec.get("port", 8080)
    models = next(v for v in pod["volumes"] if v["name"] == "models")
    assert models["persistentVolumeClaim"] == spec["modelVolume"]["persistentVolumeClaim"]
    assert "initContainers" not in pod  # no bundled model to copy
    shm = [v for v in pod["volumes"] if v["name"] == "shm"]
    if "shmSizeLimit" in spec:
        assert shm == [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}]
        assert {"name": "shm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    else:
        assert not shm
    key_env = spec.get("apiKey", {}).get("envName", "LLAMA_API_KEY")
    assert "secretKeyRef" in next(e for e in container["env"] if e["name"] == key_env)["valueFrom"]
    # a Service of its own, which reaches this engine's pods and not the other's
    selector = {
        "matchLabels": named(docs, "Service", engine["metadata"]["name"])["spec"]["selector"]
    }
    assert selects(selector, engine["spec"]["template"]["metadata"]["labels"])
    (other,) = engines.values()
    assert not selects(selector, other["spec"]["template"]["metadata"]["labels"])
    # replicas > 1: a disruption budget of its own; one GPU pod: none, so drains stay possible
    budgets = {p["metadata"]["name"] for p in of_kind(docs, "PodDisruptionBudget")}
    assert engine["spec"]["replicas"] == spec.get("replicas", 1)
    assert (engine["metadata"]["name"] in budgets) == (spec.get("replicas", 1) > 1)


def test_gateway_holds_each_engines_key(rendered: dict[str, list[Manifest]]) -> None:
    """For `modelyard models add-endpoint … --api-key-env ENGINE_API_KEY_<NAME>`."""
    gateway = named(rendered["gpu-engines"], "Deployment", f"{RELEASE}-modelyard-gateway")
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env["ENGINE_API_KEY_QWEN_7B"] == {"name": "qwen-key", "key": "token"}
    assert env["ENGINE_API_KEY_LLAMA_70B"] == {
        "name": f"{RELEASE}-modelyard-engine-keys",
        "key": "llama-70b",
    }
    assert container["image"] == "registry.example.com/modelyard@sha256:" + "ab" * 32


def test_default_engine_serves_the_bundled_model(rendered: dict[str, list[Manifest]]) -> None:
    from modelyard.intake.bundled import bundled_model

    (engine,) = component(rendered["defaults"], "engine")
    pod = engine["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["command"] == ["bundled-gguf", "gemma3-270m", "/models"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--model") + 1] == f"/models/{bundled_model('gemma3-270m').file_name}"


def test_service_monitor_scrapes_gateways_with_an_admin_key(
    rendered: dict[str, list[Manifest]],
) -> None:
    docs = rendered["gpu-engines"]
    (monitor,) = of_kind(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    gateway_service = named(docs, "Service", f"{RELEASE}-modelyard-gateway")
    assert selects(monitor["spec"]["selector"], gateway_service["metadata"]["labels"])
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in gateway_service["spec"]["ports"]}
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "modelyard-metrics-key", "key": "admin-key"},
    }
    with pytest.raises(helm_python.HelmError, match="adminKeySecret"):
        render({"serviceMonitor": {"enabled": True}})


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_services_reach_a_pod_port(rendered: dict[str, list[Manifest]], value_set: str) -> None:
    docs = rendered[value_set]
    for service in of_kind(docs, "Service"):
        pods = [
            w["spec"]["template"]
            for w in workloads(docs)
            if selects(
                {"matchLabels": service["spec"]["selector"]},
                w["spec"]["template"]["metadata"]["labels"],
            )
        ]
        assert pods, service["metadata"]["name"]
        names = {p["name"] for pod in pods for c in pod["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, service["metadata"]["name"]


def test_gateway_pods_share_the_home_and_survive_disruptions(
    rendered: dict[str, list[Manifest]],
) -> None:
    docs = rendered["defaults"]
    (claim,) = of_kind(docs, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    gateway = named(docs, "Deployment", f"{RELEASE}-modelyard-gateway")
    pod = gateway["spec"]["template"]["spec"]
    home = next(v for v in pod["volumes"] if v["name"] == "home")
    assert home["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert pod["initContainers"][0]["command"] == ["modelyard-setup"]
    probes = pod["containers"][0]
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    (pdb,) = [p for p in of_kind(docs, "PodDisruptionBudget") if "gateway" in p["metadata"]["name"]]
    assert pdb["spec"]["minAvailable"] == 1
    assert selects(pdb["spec"]["selector"], gateway["spec"]["template"]["metadata"]["labels"])
    existing = rendered["in-chart-datastores"]
    assert not of_kind(existing, "PersistentVolumeClaim")
    pod = named(existing, "Deployment", f"{RELEASE}-modelyard-gateway")["spec"]
    assert pod["replicas"] == 3
    volumes = pod["template"]["spec"]["volumes"]
    assert next(v for v in volumes if v["name"] == "home")["persistentVolumeClaim"] == {
        "claimName": "modelyard-home"
    }
