"""A local Kubernetes API server (the subset pytest-cloudeval uses) whose pods are Docker containers.

Works with the official ``kubernetes`` Python client and with the real ``kubectl`` (plain HTTP on
loopback). Start it in-process::

    from pytest_cloudeval.testing.k8s_emulator import K8sEmulator
    with K8sEmulator(kubeconfig="/tmp/kc.json", access_log="/tmp/api.log") as emu:
        ...  # KUBECONFIG=/tmp/kc.json kubectl get pods

or as a process: ``python -m pytest_cloudeval.testing.k8s_emulator --port 8091 --kubeconfig FILE``.

Served: discovery (``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/GROUP``, ``/apis/GROUP/v1`` for
``networking.k8s.io``, ``batch``);
namespaces (get, list, create); pods (create, get, list with label and field selectors, watch,
delete graceful or with ``gracePeriodSeconds=0``, delete by label), ``pods/log``, ``pods/exec`` over
websockets (``v5.channel.k8s.io``, ``v4.channel.k8s.io``; SPDY is refused); events (list, watch);
NetworkPolicies (create, get, list, delete); batch/v1 Jobs (create, get, list, watch, delete one or by label
with ``propagationPolicy``; a controller runs one pod per Job: see ``jobs.py``). kubectl's ``get``/``describe``/``logs``/``exec``/``cp``/
``delete`` work against it.

Pods: exactly one container, run as a Docker container named ``k8s-emu-<ns>-<pod>-<uid8>`` and
labelled ``cloudeval.emulator=k8s``, ``cloudeval.k8s.emulator=<state label>``, ``cloudeval.k8s.namespace``,
``cloudeval.k8s.pod``. ``resources.limits`` become ``nano_cpus``/``mem_limit`` (no swap); requests
(or limits) are scheduled against one node's capacity (``Unschedulable`` + ``FailedScheduling`` event
when they do not fit; ``nodeSelector`` against ``kubernetes.io/hostname=emulator-node``,
``kubernetes.io/os=linux``); a NetworkPolicy selecting the pod that denies all egress makes its
container ``network none`` (decided when the container is made: create the policy first); images are
pulled through the engine (``ErrImagePull`` then ``ImagePullBackOff`` with ``Failed``/``BackOff``
events); ``activeDeadlineSeconds`` ends the pod ``Failed``/``DeadlineExceeded`` and removes its
container; a container that exits ends the pod ``Succeeded``/``Failed`` (never restarted).

Faults: ``POST /emulator/v1/faults`` ``{"refuseCreates": N, "refuseCode": 403, "startDelaySeconds": S,
"dropExecs": N, "dropAfterSeconds": S}`` (``DELETE`` resets), ``POST
/emulator/v1/namespaces/NS/pods/NAME/evict`` (the pod ends ``Failed``/``Evicted``, its container killed).
The access log (``--access-log``) has one JSON line per request: time, method, path with its query,
headers without ``Authorization``/``Cookie``.
"""

from __future__ import annotations

from pytest_cloudeval.testing.k8s_emulator.cluster import NodeCapacity
from pytest_cloudeval.testing.k8s_emulator.emulator import K8sEmulator, kubeconfig_document

__all__ = ["K8sEmulator", "NodeCapacity", "kubeconfig_document"]
