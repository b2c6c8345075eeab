"""What each Docker engine operation a task attempt makes costs the machine, against one ``docker run``.

The docker sandbox's attempt is: create, start, an exec for the agent (here the oracle), an exec for
the verifier, a copy out of ``/logs/verifier``, a few exec inspects, and a forced remove of the running
container. Floor B of ``docker_overhead.py`` does one ``docker run --rm`` per task instead. On a
2-core machine both arms keep the cores busy, so wall time follows total CPU, the engine's included
(dockerd, containerd, the shims, runc, the kernel): this script measures that CPU per operation as
the whole machine's busy time (``/proc/stat``) over N operations, with the client's own CPU beside
it. Run it on a quiet machine; the last line sets the attempt's engine operations against one
``docker run``.

    python bench/docker_engine_ops.py [--n 10] [--image cloudeval/base:bookworm]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def machine_busy_seconds() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--image", default="cloudeval/base:bookworm")
    args = parser.parse_args()
    import docker

    api = docker.APIClient(base_url=os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
    n, image = args.n, args.image
    costs: dict[str, float] = {}

    def measure(name: str, fn: Callable[[], Any]) -> None:
        machine, client, wall = machine_busy_seconds(), time.process_time(), time.perf_counter()
        fn()
        costs[name] = (machine_busy_seconds() - machine) / n
        print(f"{name:34s} machine {costs[name] * 1000:6.0f} ms/op  (this client {(time.process_time() - client) / n * 1000:4.0f} ms)"
              f"  wall {(time.perf_counter() - wall) / n * 1000:5.0f} ms")

    ids: list[str] = []
    host = api.create_host_config(init=True, network_mode="none", nano_cpus=int(1e9), mem_limit="256m",
                                  memswap_limit="256m", pids_limit=512)
    label = {"cloudeval.bench": f"engine-ops-{os.getpid()}"}
    try:
        measure("create", lambda: ids.extend(api.create_container(image, ["sleep", "infinity"], host_config=host,
                                                                  labels=label)["Id"] for _ in range(n)))
        measure("start", lambda: [api.start(i) for i in ids])

        def execs() -> None:
            for i in ids:
                exec_id = api.exec_create(i, ["sh", "-c", "true"])["Id"]
                api.exec_start(exec_id)
                api.exec_inspect(exec_id)

        measure("exec (sh -c true, then inspect)", execs)
        measure("exec inspect", lambda: [api.exec_inspect(exec_id) for exec_id in
                                         [api.exec_create(i, ["true"])["Id"] for i in ids]])
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = b"1\n"
            info = tarfile.TarInfo("logs/verifier/reward.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        measure("put_archive (one small file)", lambda: [api.put_archive(i, "/", buf.getvalue()) for i in ids])
        measure("get_archive (/logs/verifier)", lambda: [b"".join(api.get_archive(i, "/logs/verifier")[0]) for i in ids])
        measure("remove, forced (running)", lambda: [api.remove_container(i, force=True) for i in ids])
        ids.clear()
        measure("docker run --rm (CLI, one command)", lambda: [subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--cpus", "1", "--memory", "256m", "--init", image,
             "bash", "-c", "echo 1"], capture_output=True, check=True) for _ in range(n)])
    finally:
        for i in ids:
            try:
                api.remove_container(i, force=True)
            except docker.errors.DockerException:
                pass
    attempt = (costs["create"] + costs["start"] + 2 * costs["exec (sh -c true, then inspect)"]
               + costs["get_archive (/logs/verifier)"] + costs["remove, forced (running)"])
    run = costs["docker run --rm (CLI, one command)"]
    print(f"an attempt's engine operations (create, start, 2 execs, copy out, remove) {attempt * 1000:.0f} ms of "
          f"machine CPU vs one docker run {run * 1000:.0f} ms: {attempt / run:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
