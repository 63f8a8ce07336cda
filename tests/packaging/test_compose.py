"""deploy/compose.yaml (with its Caddyfile and .env.example): the structure it promises, read
as YAML (there is no Docker here to run it)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelyard.intake.bundled import bundled_model

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ONE_SHOTS = {"setup", "engine-model"}
GATEWAYS = ("gateway-1", "gateway-2")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def default_of(value: str) -> str:
    """``${NAME:-default}`` → default (what compose substitutes when NAME is unset)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_the_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {
        "proxy",
        *GATEWAYS,
        "setup",
        "engine-model",
        "engine",
        "postgres",
        "redis",
    }


def test_two_gateway_replicas_of_one_image(services: dict[str, dict[str, Any]]) -> None:
    first, second = (services[name] for name in GATEWAYS)
    assert first == second  # the same definition twice
    assert first["command"][:3] == ["serve", "--host", "0.0.0.0"]
    assert first["image"] == services["setup"]["image"] == services["engine"]["image"]
    assert first["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    env = first["environment"]
    assert env["MODELYARD_DATABASE_URL"].startswith("postgresql+psycopg://modelyard:${")
    assert "@postgres:5432/modelyard" in env["MODELYARD_DATABASE_URL"]
    assert re.fullmatch(
        r"redis://:\$\{REDIS_PASSWORD:\?[^}]+\}@redis:6379/0", env["MODELYARD_REDIS_URL"]
    )
    assert first["volumes"] == ["home:/var/lib/modelyard"]  # one home, shared by both
    assert first["user"] == "10001:10001"


@pytest.mark.parametrize(
    "name", ["proxy", *GATEWAYS, "setup", "engine-model", "engine", "postgres", "redis"]
)
def test_every_container_is_hardened(services: dict[str, dict[str, Any]], name: str) -> None:
    service = services[name]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "cap_add" not in service and "privileged" not in service
    assert "no-new-privileges:true" in service["security_opt"]
    assert service.get("user", "0") not in {"0", "root", "0:0"} or name == "proxy"
    assert "network_mode" not in service or service["network_mode"] == "none"
    # a read-only root: every writable place is a volume or a tmpfs
    assert service.get("tmpfs") or service.get("volumes"), name
    image = service["image"]
    assert not image.endswith(":latest") and re.search(r":[^:]*\d", default_of(image)), image
    if name in ONE_SHOTS:
        assert service["restart"] == "no"
    else:
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and len(test) > 1


def test_start_order_waits_for_health(services: dict[str, dict[str, Any]]) -> None:
    def waits(name: str) -> dict[str, str]:
        return {dep: cond["condition"] for dep, cond in services[name]["depends_on"].items()}

    for gateway in GATEWAYS:
        assert waits(gateway) == {
            "setup": "service_completed_successfully",
            "postgres": "service_healthy",
            "redis": "service_healthy",
        }
    assert waits("proxy") == {g: "service_healthy" for g in GATEWAYS}
    assert waits("setup") == {s: "service_healthy" for s in ("postgres", "redis", "engine")}
    assert waits("engine") == {"engine-model": "service_completed_successfully"}


def test_networks_keep_engine_and_datastores_internal(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    networks = compose["networks"]
    assert networks["backend"]["internal"] is True and networks["engines"]["internal"] is True
    assert services["engine"]["networks"] == ["engines"]
    assert services["postgres"]["networks"] == services["redis"]["networks"] == ["backend"]
    assert set(services["proxy"]["networks"]) == {"front"}
    for gateway in GATEWAYS:
        assert set(services[gateway]["networks"]) == {"front", "backend", "engines"}
        assert "ports" not in services[gateway]  # only the proxy is published
    assert services["engine-model"]["network_mode"] == "none"


def test_gateways_believe_forwarded_headers_only_from_the_proxy(
    services: dict[str, dict[str, Any]], compose: dict[str, Any]
) -> None:
    proxy_address = default_of(services["proxy"]["networks"]["front"]["ipv4_address"])
    for gateway in GATEWAYS:
        assert default_of(services[gateway]["environment"]["FORWARDED_ALLOW_IPS"]) == proxy_address
    subnet = default_of(compose["networks"]["front"]["ipam"]["config"][0]["subnet"])
    assert ipaddress.ip_address(proxy_address) in ipaddress.ip_network(subnet)


def test_engine_serves_the_default_model_and_is_registered(
    services: dict[str, dict[str, Any]], compose: dict[str, Any]
) -> None:
    spec = bundled_model("gemma3-270m")
    assert services["engine-model"]["entrypoint"] == ["bundled-gguf", spec.name, "/models"]
    command = services["engine"]["command"]
    assert command[command.index("--model") + 1] == f"/models/{spec.file_name}"
    port = command[command.index("--port") + 1]
    alias = command[command.index("--alias") + 1]
    assert services["engine"]["entrypoint"] == ["/opt/llama.cpp/llama-server"]
    assert "models:/models:ro" in services["engine"]["volumes"]
    assert "LLAMA_API_KEY" in services["engine"]["environment"]
    setup = services["setup"]
    assert setup["entrypoint"] == ["modelyard-setup"]
    name, url, served, key_env = setup["environment"]["MODELYARD_SETUP_ENDPOINTS"].split(",")
    assert url == f"http://engine:{port}" and served == alias == spec.name
    assert setup["environment"][key_env] == services["engine"]["environment"]["LLAMA_API_KEY"]
    assert name != spec.name  # the local bundled version keeps its name
    # the engine's network is allowed too: every address its name resolves to is checked
    assert (
        setup["environment"]["MODELYARD_SETUP_ALLOW"]
        == compose["networks"]["engines"]["ipam"]["config"][0]["subnet"]
    )


def test_secrets_come_from_the_env_file_only(services: dict[str, dict[str, Any]]) -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    assert required == {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "ENGINE_API_KEY"}
    example = (DEPLOY / ".env.example").read_text()
    for name in required:
        assert re.search(rf"^{name}=$", example, re.M), name  # listed, left empty
    for name in re.findall(r"\$\{([A-Z_]+):-", text):
        assert re.search(rf"^# {name}=|^{name}=", example, re.M), name
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def test_proxy_streams_to_both_gateways(services: dict[str, dict[str, Any]]) -> None:
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    (upstreams,) = re.findall(r"^\s*reverse_proxy (.+) \{", caddyfile, re.M)
    assert upstreams.split() == [f"{g}:8080" for g in GATEWAYS]
    assert re.search(r"^\s*flush_interval -1$", caddyfile, re.M)  # SSE: no buffering
    assert "health_uri /healthz" in caddyfile
    assert not re.search(r"^\s*write\s", caddyfile, re.M)  # no write timeout on long streams
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in services["proxy"]["volumes"]
    ports = {p.split(":")[-1] for p in services["proxy"]["ports"]}
    assert ports == {"8443", "8080"}  # unprivileged inside: no NET_BIND_SERVICE
    assert "https_port 8443" in caddyfile and "http_port 8080" in caddyfile
