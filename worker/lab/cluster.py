"""``make cluster`` / ``make cluster-stop``: a three-node RabbitMQ cluster on this machine.

Lab tooling for tests, demos and ``make chaos-cluster`` (production runs a real cluster,
see deploy/cluster/README.md). The nodes come from the machine's own rabbitmq-server
package, no containers:

    owc1@localhost  amqp://127.0.0.1:5781  dist 25781
    owc2@localhost  amqp://127.0.0.1:5782  dist 25782
    owc3@localhost  amqp://127.0.0.1:5783  dist 25783

Data, logs, config, enabled-plugins file and a cluster-only Erlang cookie live under
``/tmp/orderworker-cluster/`` (``OW_CLUSTER_DIR``; outside the checkout, which the
``rabbitmq`` user may not be able to enter), owned by that user when run as root.
The machine's own node (5672) is never touched: every command names its node with ``-n``.
``start`` is idempotent (starts what is missing, joins what is not joined) and returns
once all three nodes run as one cluster; ``stop`` stops the three nodes and removes the
directory.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
SIZE = 3
MEMORY = "384MiB"
"""vm_memory_high_watermark per node: publishers are blocked above it (2 shared cores)."""


@dataclass(frozen=True)
class Node:
    index: int
    base: Path

    @property
    def name(self) -> str:
        return f"owc{self.index}@localhost"

    @property
    def port(self) -> int:
        return 5780 + self.index

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def dir(self) -> Path:
        return self.base / f"owc{self.index}"



def base_dir() -> Path:
    return Path(os.environ.get("OW_CLUSTER_DIR", "/tmp/orderworker-cluster")).resolve()


def nodes(base: Path | None = None) -> list[Node]:
    base = base or base_dir()
    return [Node(i, base) for i in range(1, SIZE + 1)]


def amqp_urls(base: Path | None = None) -> str:
    """The cluster's ``AMQP_URL``: every node's address, comma-separated."""
    return ",".join(n.url for n in nodes(base))


def _env(node: Node) -> dict[str, str]:
    base = node.base
    return dict(
        os.environ, HOME=str(base / "home"), RABBITMQ_NODENAME=node.name,
        RABBITMQ_USE_LONGNAME="false", RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
        RABBITMQ_NODE_PORT=str(node.port), RABBITMQ_DIST_PORT=str(node.port + 20000),
        RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),
        RABBITMQ_CONFIG_FILE=str(node.dir / "rabbitmq.conf"),
        RABBITMQ_ADVANCED_CONFIG_FILE=str(node.dir / "advanced.config"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
        RABBITMQ_MNESIA_BASE=str(node.dir / "mnesia"), RABBITMQ_LOG_BASE=str(node.dir / "log"),
        RABBITMQ_PID_FILE=str(node.dir / "pid"), ERL_EPMD_ADDRESS="127.0.0.1",
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 1:1 +A 4 -kernel inet_dist_use_interface "
                                           "{127,0,0,1}",
        RABBITMQ_CTL_ERL_ARGS="+S 1:1")


def _as_rabbitmq(cmd: list[str]) -> list[str]:
    """Run as the package's ``rabbitmq`` user when we are root (its data dirs, its rules)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "rabbitmq", "--", *cmd]
    return cmd


def ctl(node: Node, *args: str, tool: str = "rabbitmqctl",
        timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``rabbitmqctl -n <node> ...`` (or another CLI tool) against one of our nodes."""
    cmd = _as_rabbitmq([str(RABBIT_BIN / tool), "-n", node.name, *args])
    return subprocess.run(cmd, env=_env(node), capture_output=True, text=True,
                          timeout=timeout_s, check=False,
                          cwd=node.base if node.base.is_dir() else None)


def busy_ports(base: Path | None = None) -> list[int]:
    """The cluster's AMQP and distribution ports that something already listens on."""
    busy = []
    for node in nodes(base):
        for port in (node.port, node.port + 20000):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    busy.append(port)
    return busy


def pid_of(node: Node) -> int | None:
    """The node's running beam process: the one whose environment names this node and
    this data directory (so the machine's own broker can never match)."""
    want = {f"RABBITMQ_NODENAME={node.name}".encode(),
            f"RABBITMQ_MNESIA_BASE={node.dir / 'mnesia'}".encode()}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"beam" not in (proc / "cmdline").read_bytes().split(b"\0")[0]:
                continue
            if want <= set((proc / "environ").read_bytes().split(b"\0")):
                return int(proc.name)
        except OSError:
            continue
    return None


def _prepare(base: Path) -> None:
    (base / "home").mkdir(parents=True, exist_ok=True)
    cookie = base / "home" / ".erlang.cookie"
    if not cookie.exists():
        cookie.write_text(secrets.token_hex(20).upper())
    cookie.chmod(0o400)
    # an empty env file: the nodes ignore /etc/rabbitmq/rabbitmq-env.conf (node 5672)
    (base / "rabbitmq-env.conf").write_text("")
    (base / "enabled_plugins").write_text("[].\n")
    for node in nodes(base):
        for sub in ("mnesia", "log"):
            (node.dir / sub).mkdir(parents=True, exist_ok=True)
        (node.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{node.port}\n"
            f"vm_memory_high_watermark.absolute = {MEMORY}\n"
            "disk_free_limit.absolute = 50MB\n"
            "loopback_users.guest = true\n"
            "log.console = false\nlog.file.level = warning\n")
        (node.dir / "advanced.config").write_text("[].\n")
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(base)], check=True)


_launched: dict[str, float] = {}


def start_node(node: Node) -> None:
    """Launch the node (detached, own session) unless it runs or was launched in the last
    15 s (its beam process takes a moment to appear); does not wait."""
    if pid_of(node) is not None or time.monotonic() - _launched.get(node.name, -99) < 15:
        return
    _launched[node.name] = time.monotonic()
    with open(node.dir / "console.log", "ab") as out:
        subprocess.Popen(_as_rabbitmq([str(RABBIT_BIN / "rabbitmq-server")]), env=_env(node),
                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, cwd=node.base)


def wait_gone(node: Node, timeout_s: float = 60.0) -> None:
    """Wait until the node's process has exited (after ``rabbitmqctl stop``)."""
    deadline = time.monotonic() + timeout_s
    while pid_of(node) is not None and time.monotonic() < deadline:
        time.sleep(0.2)


def await_node(node: Node, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pid_of(node) is None:
            start_node(node)  # not launched yet, or an old process was still going away
        else:
            r = ctl(node, "await_startup", "--timeout", str(int(timeout_s)), timeout_s=timeout_s)
            if r.returncode == 0:
                return
        time.sleep(0.5)
    raise RuntimeError(f"{node.name} did not start; see {node.dir / 'log'}")


def cluster_members(node: Node) -> set[str]:
    """Running nodes as ``node`` sees them (empty if it does not answer)."""
    r = ctl(node, "cluster_status", "--formatter", "json", timeout_s=30)
    if r.returncode != 0:
        return set()
    return set(json.loads(r.stdout).get("running_nodes", []))


def _join(node: Node, seed: Node) -> None:
    for args in (("stop_app",), ("reset",), ("join_cluster", seed.name), ("start_app",)):
        r = ctl(node, *args)
        if r.returncode != 0:
            raise RuntimeError(f"{node.name} {' '.join(args)}: {r.stderr.strip() or r.stdout}")


def start(base: Path | None = None, timeout_s: float = 180.0) -> list[Node]:
    """Start the missing nodes, join the unjoined ones, wait until all run clustered."""
    base = base or base_dir()
    if shutil.which("runuser") is None and os.geteuid() == 0:
        raise RuntimeError("runuser (util-linux) is needed to run nodes as 'rabbitmq'")
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        raise RuntimeError("rabbitmq-server is not installed (deploy/ensure-broker.sh installs it)")
    _prepare(base)
    members = nodes(base)
    fresh = {n.name for n in members if not any((n.dir / "mnesia").iterdir())}
    for node in members:
        start_node(node)
    for node in members:
        await_node(node, timeout_s)
    seed = members[0]
    for node in members[1:]:
        if node.name in fresh or node.name not in cluster_members(seed):
            _join(node, seed)
    deadline = time.monotonic() + timeout_s
    want = {n.name for n in members}
    while (seen := cluster_members(seed)) != want:
        if time.monotonic() > deadline:
            raise RuntimeError(f"cluster has {sorted(seen)}, want {sorted(want)}")
        time.sleep(1)
    return members


def kill_node(node: Node, sig: int = signal.SIGKILL) -> bool:
    pid = pid_of(node)
    if pid is None:
        return False
    os.kill(pid, sig)
    return True


def stop(base: Path | None = None, timeout_s: float = 60.0) -> None:
    """Stop our three nodes (SIGTERM, then SIGKILL) and remove their directory."""
    base = base or base_dir()
    members = nodes(base)
    for node in members:
        kill_node(node, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(pid_of(n) for n in members) and time.monotonic() < deadline:
        time.sleep(0.5)
    for node in members:
        kill_node(node, signal.SIGKILL)
    shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["start", "stop", "status", "urls"])
    args = p.parse_args(argv)
    if args.action == "start":
        t0 = time.monotonic()
        members = start()
        print(f"cluster of {len(members)} nodes up in {time.monotonic() - t0:.0f}s: "
              + ", ".join(n.name for n in members))
        print(f"AMQP_URL={amqp_urls()}")
    elif args.action == "stop":
        stop()
        print("cluster stopped and removed")
    elif args.action == "urls":
        print(amqp_urls())
    else:
        for node in nodes():
            print(f"{node.name:<16} pid={pid_of(node)} {node.url}")
        print("running, clustered:", sorted(cluster_members(nodes()[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
