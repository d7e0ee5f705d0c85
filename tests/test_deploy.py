"""deploy/ checked against the code: every manifest parses and carries its required fields, ports and probe paths
match the app's routes and default port, every CARECOACH_*/TWILIO_* variable the files set is one the
configuration knows and its value loads, metric names exist, and the systemd unit passes `systemd-analyze
verify` when that tool is present. Docker and Kubernetes are not available here: nothing is built or applied."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from voice.app import build_app
from voice.asr.sphinx_engine import SphinxEngine
from voice.config import Config, load_config
from voice.metrics import Metrics
from voice.models import CATALOG

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
DEFAULT_PORT = Config().port
# Variables read outside voice/config.py: the log level (voice/cli.py) and Python's own.
EXTRA_VARIABLES = {"CARECOACH_LOG_LEVEL"}


def known_variables() -> set[str]:
    from voice import config as config_module

    return {config_module._env_name(key) for key in (*config_module._KEYS, *config_module._TWILIO_KEYS)}


def documents() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object in deploy/kubernetes, by `Kind/name`."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBE.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path
            objects[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return objects


@pytest.fixture(scope="module")
def kube() -> dict[str, dict[str, Any]]:
    return documents()


@pytest.fixture
def routes(sphinx_engine: SphinxEngine, tmp_path: Path) -> set[str]:
    app = build_app(Config(data_dir=tmp_path), engine=sphinx_engine)
    return {r.canonical for r in app.router.resources() if isinstance(r, web.PlainResource | web.DynamicResource)}


def container(kube: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = kube["Deployment/carecoach"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def test_all_manifests_parse_with_the_expected_objects(kube: dict[str, dict[str, Any]]) -> None:
    assert set(kube) >= {"Deployment/carecoach", "Service/carecoach", "HorizontalPodAutoscaler/carecoach",
                         "PodDisruptionBudget/carecoach", "Secret/carecoach", "PersistentVolumeClaim/carecoach-data",
                         "Ingress/carecoach"}
    versions = {kind: doc["apiVersion"] for kind, doc in kube.items()}
    assert versions["Deployment/carecoach"] == "apps/v1"
    assert versions["HorizontalPodAutoscaler/carecoach"] == "autoscaling/v2"
    assert versions["PodDisruptionBudget/carecoach"] == "policy/v1"
    assert versions["Ingress/carecoach"] == "networking.k8s.io/v1"


def test_deployment_probes_and_ports_match_the_app(kube: dict[str, dict[str, Any]], routes: set[str]) -> None:
    deployment = kube["Deployment/carecoach"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    c = container(kube)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": DEFAULT_PORT}
    assert c["args"][:1] == ["serve"] and c["args"][c["args"].index("--port") + 1] == str(DEFAULT_PORT)
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["path"] in routes
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] in routes and annotations["prometheus.io/port"] == str(DEFAULT_PORT)
    assert {"/twilio/voice", "/twilio/stream", "/twilio/status"} <= routes


def test_deployment_runs_as_non_root_with_a_grace_period_for_calls(kube: dict[str, dict[str, Any]]) -> None:
    from voice.session import FINISH_RETRY_SECONDS

    spec = kube["Deployment/carecoach"]["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    c = container(kube)
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert "/var/lib/carecoach" in mounts and "/tmp" in mounts  # the only writable paths
    # SIGTERM finishes calls (retrying the database for FINISH_RETRY_SECONDS) inside the grace period.
    assert spec["terminationGracePeriodSeconds"] >= FINISH_RETRY_SECONDS + 10
    claim = spec["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert f"PersistentVolumeClaim/{claim}" in documents()


def test_deployment_environment_is_known_and_loads(kube: dict[str, dict[str, Any]]) -> None:
    c = container(kube)
    secret = kube["Secret/carecoach"]
    assert secret["type"] == "Opaque"
    env: dict[str, str] = {}
    for item in c["env"]:
        assert item["name"] in known_variables() | EXTRA_VARIABLES, item["name"]
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            env[item["name"]] = secret["stringData"][ref["key"]]  # every referenced key exists in the example
    config = load_config(env, host="0.0.0.0", port=DEFAULT_PORT)  # tokens set, so 0.0.0.0 is allowed
    assert config.database.startswith("postgresql://") and config.log_format == "json"
    assert str(config.data_dir) == "/var/lib/carecoach"


def test_service_hpa_pdb_and_ingress_point_at_the_deployment(kube: dict[str, dict[str, Any]],
                                                             routes: set[str]) -> None:
    labels = kube["Deployment/carecoach"]["spec"]["template"]["metadata"]["labels"]
    service = kube["Service/carecoach"]["spec"]
    assert service["selector"].items() <= labels.items()
    assert service["ports"][0]["targetPort"] == "http"
    hpa = kube["HorizontalPodAutoscaler/carecoach"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "carecoach"}
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    metrics = {m["type"]: m for m in hpa["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    exported = {m.name for m in Metrics().registry.collect()}
    assert metrics["Pods"]["pods"]["metric"]["name"] in exported  # carecoach_active_calls
    pdb = kube["PodDisruptionBudget/carecoach"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    ingress = kube["Ingress/carecoach"]
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    for path in paths:
        assert path["backend"]["service"] == {"name": "carecoach", "port": {"name": service["ports"][0]["name"]}}

    def exposed(route: str) -> bool:
        return any(route == p["path"] if p["pathType"] == "Exact" else
                   route == p["path"] or route.startswith(p["path"].rstrip("/") + "/") for p in paths)

    # Every public route is reachable; metrics and probes stay inside the cluster.
    internal = {"/metrics", "/healthz", "/readyz"}
    assert not any(exposed(route) for route in internal)
    assert all(exposed(route) for route in routes - internal), sorted(r for r in routes if not exposed(r))
    assert int(ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600


def test_compose_runs_carecoach_with_postgresql() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"carecoach", "postgres"}
    app = services["carecoach"]
    assert app["build"]["dockerfile"] == "deploy/Dockerfile" and (DEPLOY / app["build"]["context"]).resolve() == ROOT
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert app["ports"] == [f"127.0.0.1:{DEFAULT_PORT}:{DEFAULT_PORT}"]
    assert "/readyz" in " ".join(app["healthcheck"]["test"])
    env = {k: re.sub(r"\$\{POSTGRES_PASSWORD[^}]*\}", "pw", str(v)) for k, v in app["environment"].items()}
    example = dict(line.split("=", 1) for line in (DEPLOY / "carecoach.env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    for name in [*env, *example]:
        assert name in known_variables() | EXTRA_VARIABLES, name
    config = load_config({**example, **env}, host="0.0.0.0")
    assert config.database == "postgresql://carecoach:pw@postgres:5432/carecoach"
    assert app["env_file"] == "carecoach.env"


def test_dockerfile_is_non_root_and_serves_the_default_port() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert f"EXPOSE {DEFAULT_PORT}" in lines
    assert any(line.startswith("HEALTHCHECK") for line in lines) and "/healthz" in text
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]' in lines
    assert 'carecoach models fetch "$VOSK_MODEL"' in text  # the optional model stage uses our own fetcher
    stages = re.findall(r"^FROM \S+(?: AS (\w+))?", text, re.M)
    assert stages[:2] == ["build", "models"] and stages[-1] == ""  # the runtime stage is last
    for variable in re.findall(r"\b((?:CARECOACH|TWILIO)_[A-Z_]+)=", text):
        assert variable in known_variables() | EXTRA_VARIABLES
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for copied in re.findall(r"^COPY (?!--from)(.+?) \S+$", text, re.M):
        for path in copied.split():
            assert f"!{path.rstrip('/')}/" in ignore or f"!{path}" in ignore, path
    assert set(CATALOG)  # the build arg takes a catalog name (README), e.g. vosk-model-small-en-us-0.15


def test_systemd_unit(tmp_path: Path) -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read(DEPLOY / "carecoach.service")
    service = unit["Service"]
    assert "carecoach serve --host 127.0.0.1 --port 8080" in service["ExecStart"]
    assert service["KillSignal"] == "SIGTERM" and int(service["TimeoutStopSec"]) >= 20
    assert service.get("DynamicUser") == "yes" or service.get("User") not in (None, "root")
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    text = (DEPLOY / "carecoach.service").read_text()
    for variable in re.findall(r"Environment=((?:CARECOACH|TWILIO)_[A-Z_]+)=", text):
        assert variable in known_variables() | EXTRA_VARIABLES
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    # Verify a copy whose ExecStart is this checkout's real command (the unit's path is an install location).
    local = tmp_path / "carecoach.service"
    local.write_text(text.replace("/opt/carecoach/bin/carecoach", str(ROOT / ".venv" / "bin" / "carecoach")))
    result = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if "carecoach.service" in line]
    assert problems == [], result.stderr


def test_reverse_proxies_upgrade_websockets_with_long_timeouts(routes: set[str]) -> None:
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert f"server 127.0.0.1:{DEFAULT_PORT};" in nginx
    ws_block = nginx[nginx.index("location ~ ^/(twilio/stream"):]
    ws_block = ws_block[: ws_block.index("}") + 1]
    for directive in ("proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;",
                      "proxy_set_header Connection $connection_upgrade;",
                      "proxy_set_header X-Forwarded-Proto $scheme;"):
        assert directive in ws_block
    timeout = int(re.search(r"proxy_read_timeout (\d+)s;", ws_block).group(1))  # type: ignore[union-attr]
    assert timeout >= 3600
    pattern = re.compile(ws_block.split()[2].rstrip())  # the location's own regex
    # Every WebSocket route of the app: carriers' media streams and the live feeds.
    for path in ("/twilio/stream", "/twilio/whisper", "/audiohook", "/audiofork", "/api/live", "/api/calls/CA123/live"):
        assert pattern.match(path), path
    assert {"/twilio/stream", "/twilio/whisper", "/audiohook", "/audiofork", "/api/live",
            "/api/calls/{call_sid}/live"} <= routes
    assert "location = /metrics" in nginx and "listen 443 ssl" in nginx
    caddy = (DEPLOY / "Caddyfile").read_text()
    assert f"reverse_proxy 127.0.0.1:{DEFAULT_PORT}" in caddy and "respond /metrics 404" in caddy
    assert caddy.count("{") == caddy.count("}")


def test_debian_packages_script_still_works() -> None:
    script = DEPLOY / "debian-packages.sh"
    assert script.stat().st_mode & 0o111
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    # Already-installed packages: prints nothing, exits 0, touches nothing (what the Makefile relies on).
    result = subprocess.run([str(script), "bash", "coreutils"], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
