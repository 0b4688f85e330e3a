"""Real Redis set-ups the tests start on local ports: a three-master Redis Cluster
(`redis-server --cluster-enabled yes` x3, then `redis-cli --cluster create`) and a master watched
by one Sentinel (`redis-server --sentinel`). Nothing is persisted; each lives in a temporary
folder and is stopped (by its process id) when the context ends."""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

CLUSTER_PORTS = range(7100, 7200)  # the cluster bus is on port + 10000
START_WITHIN_S = 10.0


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n: int, within: range | None = None, bus: bool = False) -> list[int]:
    """`n` ports free now (and port + 10000 too, with `bus`), at random in `within` or anywhere."""
    if within is None:
        found: list[int] = []
        while len(found) < n:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in found:
                found.append(port)
        return found
    candidates = [p for p in within if _bindable(p) and (not bus or _bindable(p + 10000))]
    if len(candidates) < n:
        raise RuntimeError(f"fewer than {n} free ports in {within}")
    return random.sample(candidates, n)


@dataclass
class Servers:
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
        cwd.mkdir(parents=True, exist_ok=True)
        log = (cwd / "log.txt").open("wb")
        proc = subprocess.Popen(args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _wait_ping(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server on port {port} exited with {proc.returncode}")
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
    finally:
        client.close()


@contextlib.contextmanager
def redis_cluster(workdir: Path, masters: int = 3) -> Iterator[str]:
    """A Redis Cluster of `masters` masters, no replicas; yields the URL of its first node."""
    for attempt in range(3):  # another test run may take a port between the check and the bind
        servers = Servers()
        ports = free_ports(masters, CLUSTER_PORTS, bus=True)
        try:
            deadline = time.monotonic() + START_WITHIN_S
            for port in ports:
                servers.spawn(
                    [
                        "redis-server",
                        "--port", str(port),
                        "--bind", "127.0.0.1",
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", "2000",
                        "--save", "",
                        "--appendonly", "no",
                        "--daemonize", "no",
                    ],
                    workdir / f"try{attempt}" / str(port),
                )  # fmt: skip
            for port, proc in zip(ports, servers.procs, strict=True):
                _wait_ping(port, proc, deadline)
            nodes = [f"127.0.0.1:{p}" for p in ports]
            create = ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"]
            subprocess.run(create, check=True, capture_output=True, timeout=START_WITHIN_S)
            clients = [redis.Redis(port=p, decode_responses=True) for p in ports]
            try:
                while not all(c.cluster("info")["cluster_state"] == "ok" for c in clients):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the cluster did not reach cluster_state:ok")
                    time.sleep(0.02)
            finally:
                for c in clients:
                    c.close()
        except (RuntimeError, redis.RedisError, subprocess.SubprocessError):
            servers.stop()
            if attempt == 2:
                raise
            continue
        try:
            yield f"redis://127.0.0.1:{ports[0]}/0"
        finally:
            servers.stop()
        return


@contextlib.contextmanager
def redis_with_sentinel(workdir: Path, master_name: str = "mymaster") -> Iterator[tuple[int, int]]:
    """A Redis master and one Sentinel watching it (quorum 1); yields (master port, sentinel port)."""
    servers = Servers()
    master_port, sentinel_port = free_ports(2)
    try:
        deadline = time.monotonic() + START_WITHIN_S
        master = servers.spawn(
            [
                "redis-server",
                "--port",
                str(master_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            workdir / "master",
        )
        _wait_ping(master_port, master, deadline)
        conf = workdir / "sentinel" / "sentinel.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            f"port {sentinel_port}\nbind 127.0.0.1\n"
            f"sentinel monitor {master_name} 127.0.0.1 {master_port} 1\n"
            f"sentinel down-after-milliseconds {master_name} 1000\n"
        )
        sentinel = servers.spawn(["redis-server", str(conf), "--sentinel"], conf.parent)
        _wait_ping(sentinel_port, sentinel, deadline)
        yield master_port, sentinel_port
    finally:
        servers.stop()
