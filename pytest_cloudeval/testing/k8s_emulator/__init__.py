"""A local Kubernetes API server (the subset pytest-cloudeval uses) whose pods are Docker containers.

Works with the official ``kubernetes`` Python client and with the real ``kubectl`` (plain HTTP on
loopback; a TLS listener serves pods, see below). Start it in-process::

    from pytest_cloudeval.testing.k8s_emulator import K8sEmulator
    with K8sEmulator(kubeconfig="/tmp/kc.json", access_log="/tmp/api.log") as emu:
        ...  # KUBECONFIG=/tmp/kc.json kubectl get pods

or as a process: ``python -m pytest_cloudeval.testing.k8s_emulator --port 8091 --kubeconfig FILE``.

Served: discovery (``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/GROUP``, ``/apis/GROUP/v1`` for
``networking.k8s.io``, ``batch``, ``rbac.authorization.k8s.io``, ``authorization.k8s.io``);
namespaces (get, list, create); pods (create, get, list with label and field selectors, watch,
delete graceful or with ``gracePeriodSeconds=0``, delete by label), ``pods/log``, ``pods/exec`` over
websockets (``v5.channel.k8s.io``, ``v4.channel.k8s.io``; SPDY is refused); events (list, watch);
NetworkPolicies (create, get, list, delete); batch/v1 Jobs (create, get, list, watch, delete one or by
label with ``propagationPolicy``; a controller runs one pod per Job: see ``jobs.py``); ServiceAccounts
(with ``serviceaccounts/token``), Roles, RoleBindings (create, get, list, watch, delete one or by label);
SelfSubjectAccessReviews (JSON, and the protobuf kubectl's ``auth can-i`` sends). kubectl's
``get``/``describe``/``logs``/``exec``/``cp``/``delete``/``auth can-i`` work against it. No update or
patch verbs (discovery does not offer them).

Identity and RBAC (``rbac.py``): the kubeconfig's token (random per emulator, ``emu.admin_token``; no
credential at all on the plain-HTTP listener, as kubectl sends none there) is the admin, allowed all but
the ``deny`` fault's permissions; a ServiceAccount's token gets what Roles bound to it grant, else 403
with a ``Status``; unknown tokens get 401.

In-cluster access (``api_proxy.py``, ``tls.py``): a pod naming ``serviceAccountName`` (which must exist:
403 otherwise, like the admission plugin) and not opting out with ``automountServiceAccountToken: false``
gets ``/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}`` and
``KUBERNETES_SERVICE_HOST=127.0.0.1``, ``KUBERNETES_SERVICE_PORT=443``, so
``kubernetes.config.load_incluster_config()`` works. 127.0.0.1:443 in the pod is a per-pod proxy
container whose network namespace the pod joins; it relays to the emulator's TLS listener (a CA made
at start; the certificate covers 127.0.0.1 and ``kubernetes.default.svc``) over a mounted unix socket.
The pod reaches nothing else of the host. Pods without a ServiceAccount get neither token nor
variables (unlike a real cluster's ``default`` account), and a deny-all egress policy still means
``network none`` (no API either, as a real policy would block it).

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

Faults: ``POST /emulator/v1/faults`` ``{"refuseCreates": N, "refuseCode": 403, "refuseResources":
["pods", "jobs"], "startDelaySeconds": S, "dropExecs": N, "dropAfterSeconds": S, "deny": ["create
batch/jobs", "create pods/exec"], "dropExecStreamsOf": ["NS/POD"]}`` (``DELETE`` resets; the last one
acts at once: it cuts the pod's OPEN exec streams, TCP closed, no status), ``POST
/emulator/v1/namespaces/NS/pods/NAME/evict`` (the pod ends ``Failed``/``Evicted``, its container killed),
``POST /emulator/v1/namespaces/NS/pods/NAME/drop-execs``. The same from the command line
(``--refuse-creates``, ``--drop-execs``, ``--deny``) or in-process (``emu.faults.set``, ``emu.evict``,
``emu.drop_exec_streams``). The control API takes the admin only.
The access log (``--access-log``) has one JSON line per request: time, method, path with its query,
headers without ``Authorization``/``Cookie``.
"""

from __future__ import annotations

from pytest_cloudeval.testing.k8s_emulator.cluster import NodeCapacity
from pytest_cloudeval.testing.k8s_emulator.emulator import K8sEmulator, kubeconfig_document

__all__ = ["K8sEmulator", "NodeCapacity", "kubeconfig_document"]
