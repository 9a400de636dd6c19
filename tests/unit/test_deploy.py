from __future__ import annotations

import json
from pathlib import Path

from worker.broker.definitions import definitions

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_file_matches_the_topology_code() -> None:
    checked_in = json.loads((ROOT / "deploy/rabbitmq/definitions.json").read_text())
    assert checked_in == definitions(), "regenerate: python -m worker.broker.definitions"


def test_deploy_files_exist_and_name_the_real_entry_points() -> None:
    for path in ("Dockerfile", "docker-compose.yml", "rabbitmq/rabbitmq.conf",
                 "k8s/worker.yaml", "k8s/audit.yaml", "k8s/config.yaml", "k8s/keda.yaml"):
        assert (ROOT / "deploy" / path).is_file(), path
    worker = (ROOT / "deploy/k8s/worker.yaml").read_text()
    assert "/healthz" in worker and "/readyz" in worker and "OW_WORKER_INDEX" in worker


def test_manifests_parse() -> None:
    import yaml

    for path in sorted((ROOT / "deploy").rglob("*.y*ml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert docs, path
