"""Command line: ``python -m pytest_cloudeval.testing.k8s_emulator --port P --kubeconfig FILE``.

Prints ``Kubernetes emulator listening on http://127.0.0.1:P`` then ``in-cluster (TLS) endpoint
https://127.0.0.1:T, CA FILE`` (flushed) once it serves; writes the kubeconfig (with the admin's
token) first; on SIGINT or SIGTERM removes its pods' containers and exits.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from pytest_cloudeval.testing.k8s_emulator.cluster import NodeCapacity
from pytest_cloudeval.testing.k8s_emulator.emulator import K8sEmulator
from pytest_cloudeval.testing.k8s_emulator.resources import quantity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_cloudeval.testing.k8s_emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="API port (default: a free one, printed)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--tls-port", type=int, default=0, help="the in-cluster HTTPS port pods use (default: free)")
    parser.add_argument("--admin-token", help="the kubeconfig's bearer token (default: a random one)")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for the emulator here")
    parser.add_argument("--access-log", help="append one JSON line per request here (no credentials)")
    parser.add_argument("--state-label", help="value of the cloudeval.k8s.emulator container label")
    parser.add_argument("--node-cpu", default="64", help="the node's allocatable CPU (e.g. 4, 3500m)")
    parser.add_argument("--node-memory", default="256Gi", help="the node's allocatable memory (e.g. 8Gi)")
    parser.add_argument("--node-gpus", type=int, default=0, help="nvidia.com/gpu the node has")
    parser.add_argument("--start-delay", type=float, default=0.0, help="fault: seconds each pod stays Pending")
    parser.add_argument("--refuse-creates", type=int, default=0, help="fault: refuse the next N pod creates (-1 all)")
    parser.add_argument("--drop-execs", type=int, default=0, help="fault: cut the next N exec streams")
    parser.add_argument("--deny", action="append", default=[], metavar="'VERB [GROUP/]RESOURCE[/SUB]'",
                        help="fault: the kubeconfig's user lacks this permission, e.g. 'create batch/jobs', "
                             "'create pods/exec' (repeatable)")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    capacity = NodeCapacity(cpu=quantity(args.node_cpu, "--node-cpu"),
                            memory=quantity(args.node_memory, "--node-memory"), gpus=args.node_gpus)
    emulator = K8sEmulator(args.port, host=args.host, kubeconfig=args.kubeconfig, access_log=args.access_log,
                           state_label=args.state_label, capacity=capacity,
                           log=lambda line: print(line, file=sys.stderr, flush=True), admin_token=args.admin_token,
                           tls_port=args.tls_port)
    try:
        emulator.faults.set({"startDelaySeconds": args.start_delay, "refuseCreates": args.refuse_creates,
                             "dropExecs": args.drop_execs, "deny": args.deny})
    except ValueError as e:
        parser.error(f"--deny: {e}")
    emulator.start()
    try:
        print(f"Kubernetes emulator listening on {emulator.endpoint}", flush=True)
        print(f"in-cluster (TLS) endpoint {emulator.tls_endpoint}, CA {emulator.ca_path}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
