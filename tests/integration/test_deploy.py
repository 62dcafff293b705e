"""The deployment files: they parse, their probes and metric names exist, and the compose file's services work.

No container engine runs in CI, so images are not built here. Instead the compose services are started as local
processes: each service's ``command`` with its ``environment`` (a ``redis-server`` on a free port stands in for
the Valkey image, a temporary directory for the shared volume, ``tiny.en`` for the default model).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from _redis import AUDIO, Process, RedisServer, free_port
from support import ROOT

DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "compose.yaml"


def _documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _manifests() -> list[dict[str, Any]]:
    return [doc for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")) for doc in _documents(path)]


def test_every_yaml_and_json_file_parses() -> None:
    files = [COMPOSE, *DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.json")]
    assert len(files) >= 12
    for path in files:
        if path.suffix == ".json":
            json.loads(path.read_text())
        else:
            assert _documents(path), path


def test_kubernetes_probes_point_at_routes_that_exist() -> None:
    from auricle.app import create_app
    from auricle.config import Settings

    # The routes the server publishes with a GET operation (FastAPI nests included routers in app.routes).
    paths = create_app(Settings()).openapi()["paths"]
    routes = {path for path, operations in paths.items() if "get" in operations}
    probes: list[tuple[str, str]] = []
    kinds = {doc["kind"] for doc in _manifests()}
    assert {"ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment", "Service", "NetworkPolicy"} <= kinds
    for doc in _manifests():
        if doc["kind"] != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if "httpGet" in container.get(probe, {}):
                    probes.append((probe, container[probe]["httpGet"]["path"]))
    assert {kind for kind, _ in probes} == {"startupProbe", "readinessProbe", "livenessProbe"}
    for kind, path in probes:
        assert path in routes, (kind, path)
    assert ("readinessProbe", "/ready") in probes


def _metric_names() -> set[str]:
    from prometheus_client import generate_latest

    import auricle.metrics  # noqa: F401 - registers the metrics

    return set(re.findall(r"^# HELP (auricle_\w+)", generate_latest().decode(), re.MULTILINE))


def test_dashboard_and_alerts_use_real_metric_names() -> None:
    known = _metric_names()
    used: set[str] = set()
    for path in (DEPLOY / "observability" / "alerts.yml", DEPLOY / "observability" / "grafana-dashboard.json"):
        used |= set(re.findall(r"\bauricle_[a-z_]+", path.read_text()))
    assert len(used) >= 10
    unknown = {name for name in used if re.sub(r"_(bucket|count|sum)$", "", name) not in known}
    assert unknown == set()


def _service_env(service: dict[str, Any], redis_url: str, data_dir: Path) -> dict[str, str]:
    env = {key: str(value) for key, value in (service.get("environment") or {}).items()}
    if "AURICLE_REDIS_URL" in env:
        env["AURICLE_REDIS_URL"] = re.sub(r"redis://valkey:6379", redis_url.rsplit("/", 1)[0], env["AURICLE_REDIS_URL"])
    # What the image sets (Dockerfile ENV), pointed at this machine: the shared volume is one directory.
    return {**env, "AURICLE_DATA_DIR": str(data_dir), "AURICLE_DEFAULT_MODEL": "tiny.en", "AURICLE_HOST": "127.0.0.1"}


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    args = shlex.split(command) if isinstance(command, str) else list(command)
    assert args[0] == "auricle"
    return [sys.executable, "-m", "auricle", *args[1:]]


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.redis
def test_compose_scale_out_services_run_a_job_end_to_end(tmp_path: Path) -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    scale_out = {name: s for name, s in services.items() if "scale-out" in s.get("profiles", [])}
    assert set(scale_out) == {"valkey", "api", "worker"}
    for name, service in services.items():
        assert service.get("restart") and service.get("healthcheck"), name
    assert "--appendonly" in scale_out["valkey"]["command"] and "yes" in scale_out["valkey"]["command"]
    assert scale_out["api"]["environment"]["AURICLE_LOCAL_WORKERS"] == "false"
    replicas = scale_out["worker"]["deploy"]["replicas"]
    assert replicas >= 2

    redis = RedisServer(tmp_path / "valkey", appendonly=True).start()
    data_dir = tmp_path / "volume"
    port = free_port()
    processes: list[Process] = []
    try:
        api_env = {**_service_env(scale_out["api"], redis.url, data_dir), "AURICLE_PORT": str(port)}
        processes.append(Process(_command(scale_out["api"]), api_env, tmp_path / "api.log"))
        worker_env = _service_env(scale_out["worker"], redis.url, data_dir)
        workers = [
            Process(_command(scale_out["worker"]), worker_env, tmp_path / f"worker-{i}.log") for i in range(replicas)
        ]
        processes += workers
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, processes[0].tail()
            time.sleep(0.3)
        # The worker's own health check passes with its environment.
        # In the image `python` is the venv's (its bin/ leads PATH); here it is this interpreter.
        check = [sys.executable if arg == "python" else arg for arg in scale_out["worker"]["healthcheck"]["test"][1:]]
        assert subprocess.run(check, env={**os.environ, **worker_env}, timeout=30).returncode == 0
        with httpx.Client(base_url=url, timeout=60) as client:
            job = client.post("/v1/jobs", files={"file": ("jfk.flac", (AUDIO / "jfk.flac").read_bytes())})
            assert job.status_code == 202, job.text
            job_id = job.json()["jobs"][0]["id"]
            deadline = time.monotonic() + 120
            while (state := client.get(f"/v1/jobs/{job_id}").json())["status"] not in ("succeeded", "failed"):
                assert time.monotonic() < deadline, state
                time.sleep(0.3)
            assert state["status"] == "succeeded", state
            assert "country" in client.get(f"/v1/jobs/{job_id}/result", params={"format": "text"}).text.lower()
        # A worker service ran it (the API node has no local workers).
        pids = {str(w.pid) for w in workers}
        assert redis_worker_pid(redis.url, job_id) in pids
    finally:
        for proc in processes:
            proc.stop()
        redis.stop()


def redis_worker_pid(url: str, job_id: str) -> str:
    import redis as redis_client

    worker = redis_client.Redis.from_url(url, decode_responses=True).hget(f"auricle:job:{job_id}", "worker")
    return str(worker).split(":")[1]


def _image_env(dockerfile: Path) -> dict[str, str]:
    """The ``AURICLE_*`` variables a Dockerfile's ``ENV`` sets."""
    return dict(re.findall(r"^(?:ENV)?\s+(AURICLE_[A-Z_]+)=(\S+?)\s*\\?$", dockerfile.read_text(), re.MULTILINE))


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cuda"])
def test_every_deployed_server_may_start_on_its_exposed_address(dockerfile: str) -> None:
    """Given the images listen on 0.0.0.0, when each deployed ``auricle serve`` reads its environment, then it has
    keys (the Kubernetes Secret) or says explicitly that it serves open (compose), so it is not refused at start."""
    from auricle.cli.serve import unauthenticated_refusal
    from auricle.config import Settings

    image = _image_env(ROOT / dockerfile)
    assert image["AURICLE_HOST"] == "0.0.0.0"
    assert unauthenticated_refusal(Settings(**_lower(image))) is not None
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    serving = [s for s in services.values() if s.get("command") == ["auricle", "serve"]]
    assert len(serving) == 2
    for service in serving:
        env = {**image, **{k: str(v) for k, v in service["environment"].items()}}
        assert unauthenticated_refusal(Settings(**_lower(env))) is None
    manifests = _manifests()
    secret = next(m for m in manifests if m["kind"] == "Secret")
    api = next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"].endswith("api"))
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": secret["metadata"]["name"]}} in container["envFrom"]
    env = {**image, **secret["stringData"], **{e["name"]: e["value"] for e in container["env"]}}
    assert "AURICLE_ALLOW_UNAUTHENTICATED" not in env
    assert unauthenticated_refusal(Settings(**_lower(env))) is None


def _lower(env: dict[str, str]) -> dict[str, Any]:
    return {key.removeprefix("AURICLE_").lower(): value for key, value in env.items()}
