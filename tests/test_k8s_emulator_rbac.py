"""ServiceAccounts, RBAC, access reviews and in-cluster access on the shipped Kubernetes emulator.

Attacks: a ServiceAccount token that can do more than its Roles grant (other verbs, resources,
namespaces, names); a revoked or made-up token still accepted; a 403 without the Kubernetes
``Status`` body clients parse; a ``deny`` fault that SelfSubjectAccessReview or kubectl ignore; a pod
naming a missing ServiceAccount that still starts; an in-cluster client that cannot verify the API's
certificate or reach it; a long-lived exec stream that survives "drop the streams of pod X".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.docker_support import RUNNER_IMAGE
from tests.k8s_support import emulator

pytestmark = pytest.mark.docker

ROLE_RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "list", "delete"]},
              {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
              {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
              {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"], "resourceNames": ["worker"]}]


def admin_clients() -> tuple[Any, Any, Any]:
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(emulator().kubeconfig))
    return client.CoreV1Api(api_client), client.BatchV1Api(api_client), client.RbacAuthorizationV1Api(api_client)


def token_client(token: str, tls: bool = False) -> Any:
    """An ApiClient bearing ``token`` (on the TLS listener, verified with the emulator's CA, when ``tls``)."""
    from kubernetes import client

    emu = emulator()
    configuration = client.Configuration()
    configuration.host = emu.tls_endpoint if tls else emu.endpoint
    configuration.api_key = {"authorization": f"Bearer {token}"}
    if tls:
        configuration.ssl_ca_cert = str(emu.ca_path)
    return client.ApiClient(configuration)


@pytest.fixture
def sandbox_account() -> Any:
    """A fresh namespace with ServiceAccount ``worker`` bound to a Role for sandbox pods: (namespace, token)."""
    core, _batch, rbac = admin_clients()
    namespace = f"rbac-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    labels = {"cloudeval.run": namespace}
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "worker", "labels": labels}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "sandboxes", "labels": labels}, "rules": ROLE_RULES})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "worker-sandboxes", "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "sandboxes"},
        "subjects": [{"kind": "ServiceAccount", "name": "worker", "namespace": namespace}]})
    yield namespace, emulator().service_account_token("worker", namespace)
    for pod in core.list_namespaced_pod(namespace).items:
        core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)


def status_of(error: Any) -> dict[str, Any]:
    doc = json.loads(error.body)
    assert doc["kind"] == "Status" and doc["status"] == "Failure", doc
    return doc  # type: ignore[no-any-return]


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def pod(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                                                 "containers": [{"name": "main", "image": RUNNER_IMAGE,
                                                                 "command": command}], **spec}}


def test_service_account_token_gets_what_its_role_grants_and_no_more(sandbox_account: Any) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    namespace, token = sandbox_account
    core_admin, _batch, rbac_admin = admin_clients()
    as_worker = token_client(token)
    core: Any = client.CoreV1Api(as_worker)
    batch: Any = client.BatchV1Api(as_worker)
    assert core.list_namespaced_pod(namespace).items == []
    assert core.read_namespaced_service_account("worker", namespace).metadata.name == "worker"
    with pytest.raises(ApiException) as denied:
        batch.create_namespaced_job(namespace, {"metadata": {"name": "j"}, "spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "m", "image": RUNNER_IMAGE}]}}}})
    doc = status_of(denied.value)
    assert denied.value.status == 403 and doc["reason"] == "Forbidden" and doc["details"]["group"] == "batch"
    assert doc["message"] == (f'jobs.batch is forbidden: User "system:serviceaccount:{namespace}:worker" cannot '
                              f'create resource "jobs" in API group "batch" in the namespace "{namespace}"')
    for call in (lambda: core.list_namespaced_pod("default"),                      # another namespace
                 lambda: core.delete_collection_namespaced_pod(namespace),        # a verb not granted
                 lambda: core.read_namespaced_service_account("default", namespace),  # a name not listed
                 lambda: core.list_namespaced_service_account(namespace),         # list despite resourceNames
                 lambda: core.list_namespace()):                                   # cluster scope
        with pytest.raises(ApiException) as refused:
            call()
        assert refused.value.status == 403, refused.value.body
        assert status_of(refused.value)["reason"] == "Forbidden"
    # Revoking: the binding gone, the same call is refused; the account gone, its token is unknown.
    rbac_admin.delete_namespaced_role_binding("worker-sandboxes", namespace)
    with pytest.raises(ApiException) as unbound:
        core.list_namespaced_pod(namespace)
    assert unbound.value.status == 403
    core_admin.delete_namespaced_service_account("worker", namespace)
    with pytest.raises(ApiException) as unknown:
        core.list_namespaced_pod(namespace)
    assert unknown.value.status == 401 and status_of(unknown.value)["reason"] == "Unauthorized"
    with pytest.raises(ApiException) as made_up:
        client.CoreV1Api(token_client("emu-sa.made-up")).list_namespaced_pod(namespace)
    assert made_up.value.status == 401


def test_access_reviews_follow_rbac_and_the_deny_fault(sandbox_account: Any) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    namespace, token = sandbox_account
    core_admin, batch_admin, _rbac = admin_clients()
    emu = emulator()

    def review(api_client: Any, verb: str, resource: str, group: str = "", subresource: str = "") -> bool:
        body = {"spec": {"resourceAttributes": {"namespace": namespace, "verb": verb, "group": group,
                                                "resource": resource, "subresource": subresource}}}
        answer: Any = client.AuthorizationV1Api(api_client).create_self_subject_access_review(body)  # type: ignore[arg-type]
        return bool(answer.status.allowed)

    admin = core_admin.api_client
    as_worker = token_client(token)
    assert review(admin, "create", "jobs", "batch") and review(admin, "create", "pods", "", "exec")
    assert review(as_worker, "create", "pods", "", "exec") and review(as_worker, "get", "pods", "", "log")
    assert not review(as_worker, "create", "jobs", "batch")
    assert not review(as_worker, "create", "roles", "rbac.authorization.k8s.io")
    emu.faults.set({"deny": ["create batch/jobs", "create pods/exec"]})
    try:
        assert not review(admin, "create", "jobs", "batch")
        assert not review(admin, "create", "pods", "", "exec")
        assert review(admin, "create", "pods") and review(admin, "delete", "jobs", "batch")
        with pytest.raises(ApiException) as denied:
            batch_admin.create_namespaced_job(namespace, {"metadata": {"name": "j"}, "spec": {"template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": RUNNER_IMAGE}]}}}})
        assert denied.value.status == 403 and 'User "emulator-admin" cannot create resource "jobs"' in \
            status_of(denied.value)["message"]
        assert review(as_worker, "create", "pods", "", "exec"), "the deny fault is for the kubeconfig's user only"
    finally:
        emu.faults.set({"reset": True})
    with pytest.raises(ValueError, match="deny"):
        emu.faults.set({"deny": ["create"]})


def test_kubectl_auth_can_i_and_lists_by_label(sandbox_account: Any) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: scripts/setup-dev.sh installs one (bash scripts/setup-dev.sh)"
    namespace, _token = sandbox_account
    emu = emulator()
    env = dict(os.environ, KUBECONFIG=str(emu.kubeconfig))

    def kc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([kubectl, "-n", namespace, *args], capture_output=True, text=True, env=env, timeout=60)

    allowed = kc("auth", "can-i", "create", "pods")
    assert (allowed.returncode, allowed.stdout.strip()) == (0, "yes"), allowed.stderr
    emu.faults.set({"deny": ["create pods"]})
    try:
        refused = kc("auth", "can-i", "create", "pods")
        assert refused.returncode == 1 and refused.stdout.startswith("no - denied by the emulator's deny fault"), \
            refused.stdout + refused.stderr
        assert kc("auth", "can-i", "create", "pods", "--subresource=exec").stdout.strip() == "yes"
    finally:
        emu.faults.set({"reset": True})
    selector = f"cloudeval.run={namespace}"
    listed = kc("get", "serviceaccounts,roles,rolebindings", "-l", selector, "-o", "name")
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split()) == ["role.rbac.authorization.k8s.io/sandboxes",
                                             "rolebinding.rbac.authorization.k8s.io/worker-sandboxes",
                                             "serviceaccount/worker"]
    table = kc("get", "rolebindings", "-l", selector)
    assert "worker-sandboxes" in table.stdout and "Role/sandboxes" in table.stdout, table.stdout
    gone = kc("delete", "rolebindings,roles,serviceaccounts", "-l", selector)
    assert gone.returncode == 0, gone.stderr
    assert kc("get", "serviceaccounts,roles,rolebindings", "-l", selector, "-o", "name").stdout.strip() == ""
    assert "default" in kc("get", "serviceaccounts", "-o", "name").stdout


def test_pod_admission_checks_the_service_account(sandbox_account: Any) -> None:
    from kubernetes.client.exceptions import ApiException

    namespace, _token = sandbox_account
    core, _batch, _rbac = admin_clients()
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, pod("orphan", ["true"], serviceAccountName="missing"))
    assert refused.value.status == 403
    assert 'serviceaccount "missing" not found' in status_of(refused.value)["message"]
    assert not core.list_namespaced_pod(namespace).items
    check = ["sh", "-c", "ls /var/run/secrets/kubernetes.io/serviceaccount 2>&1; echo host=${KUBERNETES_SERVICE_HOST:-none}"]
    core.create_namespaced_pod(namespace, pod("opted-out", check, serviceAccountName="worker",
                                              automountServiceAccountToken=False))
    core.create_namespaced_pod(namespace, pod("plain", check))
    for name in ("opted-out", "plain"):
        wait_for(f"{name} to finish", lambda n=name: core.read_namespaced_pod(n, namespace).status.phase  # type: ignore[misc]
                 in ("Succeeded", "Failed"))
        log = core.read_namespaced_pod_log(name, namespace)
        assert "No such file" in log and "host=none" in log, log


IN_CLUSTER_SCRIPT = r"""
import http.client, json, os, ssl
folder = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(folder + "/token").read()
namespace = open(folder + "/namespace").read()
context = ssl.create_default_context(cafile=folder + "/ca.crt")
api = http.client.HTTPSConnection(os.environ["KUBERNETES_SERVICE_HOST"], int(os.environ["KUBERNETES_SERVICE_PORT"]),
                                  context=context, timeout=20)
def call(method, path, body=None):
    api.request(method, path, body=json.dumps(body) if body else None,
                headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    answer = api.getresponse()
    return answer.status, json.loads(answer.read())
status, pods = call("GET", f"/api/v1/namespaces/{namespace}/pods")
print("list", status, sorted(p["metadata"]["name"] for p in pods["items"]))
sibling = {"metadata": {"name": "sibling"}, "spec": {"restartPolicy": "Never", "containers": [
    {"name": "main", "image": os.environ["IMAGE"], "command": ["true"]}]}}
print("create", call("POST", f"/api/v1/namespaces/{namespace}/pods", sibling)[0])
status, refused = call("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs")
print("jobs", status, refused["reason"])
try:
    http.client.HTTPSConnection(os.environ["KUBERNETES_SERVICE_HOST"], int(os.environ["KUBERNETES_SERVICE_PORT"]),
                                context=ssl.create_default_context(), timeout=20).request("GET", "/version")
    print("unverified", "accepted")
except ssl.SSLError as e:
    print("unverified", "refused")
import socket
try:
    socket.create_connection(("127.0.0.1", int(os.environ["ADMIN_PORT"])), timeout=3).close()
    print("host-loopback", "reachable")
except OSError:
    print("host-loopback", "unreachable")
"""


def test_pod_with_a_service_account_reaches_the_api_over_verified_tls(sandbox_account: Any) -> None:
    namespace, _token = sandbox_account
    core, _batch, _rbac = admin_clients()
    spec = pod("worker-pod", ["python3", "-c", IN_CLUSTER_SCRIPT], serviceAccountName="worker")
    admin_port = emulator().endpoint.rsplit(":", 1)[1]
    spec["spec"]["containers"][0]["env"] = [{"name": "IMAGE", "value": RUNNER_IMAGE},
                                            {"name": "ADMIN_PORT", "value": admin_port}]
    created = core.create_namespaced_pod(namespace, spec)
    assert created.spec.containers[0].volume_mounts[0].mount_path == "/var/run/secrets/kubernetes.io/serviceaccount"
    wait_for("the in-cluster pod to finish",
             lambda: core.read_namespaced_pod("worker-pod", namespace).status.phase in ("Succeeded", "Failed"))
    log = core.read_namespaced_pod_log("worker-pod", namespace)
    assert "list 200 ['worker-pod']" in log and "create 201" in log, log
    assert "jobs 403 Forbidden" in log and "unverified refused" in log, log
    assert "host-loopback unreachable" in log, "the pod reached the emulator's plain (admin) port on the host"
    assert core.read_namespaced_pod("sibling", namespace).metadata.name == "sibling"


def test_the_clients_in_cluster_loader_and_exec_over_tls(sandbox_account: Any, tmp_path: Any) -> None:
    """The official client's own in-cluster code path, fed the files and variables a pod gets (run on the host)."""
    from kubernetes import client
    from kubernetes.config.incluster_config import InClusterConfigLoader
    from kubernetes.stream import stream

    namespace, _token = sandbox_account
    core_admin, _batch, _rbac = admin_clients()
    core_admin.create_namespaced_pod(namespace, pod("reader", ["sleep", "60"], serviceAccountName="worker"))
    wait_for("reader running", lambda: core_admin.read_namespaced_pod("reader", namespace).status.phase == "Running")

    def read(path: str) -> str:
        return str(stream(core_admin.connect_get_namespaced_pod_exec, "reader", namespace, command=["cat", path],
                          stderr=True, stdin=False, stdout=True, tty=False))

    folder = "/var/run/secrets/kubernetes.io/serviceaccount"
    (tmp_path / "token").write_text(read(f"{folder}/token"))
    (tmp_path / "ca.crt").write_text(read(f"{folder}/ca.crt"))
    env = dict(line.split("=", 1) for line in read("/proc/1/environ").split("\0") if "=" in line)
    assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("127.0.0.1", "443")
    # In the pod 127.0.0.1:443 is its API proxy; from the host the same TLS listener is on its own port.
    env["KUBERNETES_SERVICE_PORT"] = emulator().tls_endpoint.rsplit(":", 1)[1]
    configuration = client.Configuration()
    InClusterConfigLoader(token_filename=str(tmp_path / "token"), cert_filename=str(tmp_path / "ca.crt"),
                          environ=env).load_and_set(configuration)
    assert configuration.host.startswith("https://127.0.0.1:")
    in_cluster: Any = client.CoreV1Api(client.ApiClient(configuration))
    assert [p.metadata.name for p in in_cluster.list_namespaced_pod(namespace).items] == ["reader"]
    ran = stream(in_cluster.connect_get_namespaced_pod_exec, "reader", namespace, command=["echo", "over-tls"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    assert ran == "over-tls\n"


def test_dropping_the_open_exec_streams_of_a_pod(sandbox_account: Any) -> None:
    """A long-lived exec stream (a worker's) is cut on demand, over the faults endpoint."""
    import urllib.request

    from kubernetes.stream import stream
    from websocket import WebSocketConnectionClosedException

    namespace, _token = sandbox_account
    core, _batch, _rbac = admin_clients()
    core.create_namespaced_pod(namespace, pod("long", ["sleep", "120"]))
    wait_for("long running", lambda: core.read_namespaced_pod("long", namespace).status.phase == "Running")
    held = stream(core.connect_get_namespaced_pod_exec, "long", namespace, command=["sh", "-c", "echo up; sleep 60"],
                  stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
    wait_for("the stream to say up", lambda: (held.update(timeout=1), "up" in held.peek_stdout())[1])
    time.sleep(1.0)  # long-lived: open well before the drop
    request = urllib.request.Request(f"{emulator().endpoint}/emulator/v1/faults", method="POST",
                                     data=json.dumps({"dropExecStreamsOf": [f"{namespace}/long"]}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.load(answer)["droppedExecStreams"] == 1
    started = time.monotonic()
    try:
        while held.is_open() and time.monotonic() - started < 10:
            held.update(timeout=0.5)
    except WebSocketConnectionClosedException:
        pass  # how the client reports a connection cut under it
    assert time.monotonic() - started < 10, "the exec stream is still open after the drop"
    assert held.returncode is None, "a dropped stream must not end with a status"
    assert core.read_namespaced_pod("long", namespace).status.phase == "Running"


def test_command_line_deny_flag(tmp_path: Any) -> None:
    import sys

    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: scripts/setup-dev.sh installs one (bash scripts/setup-dev.sh)"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "pytest_cloudeval.testing.k8s_emulator", "--kubeconfig",
               str(tmp_path / "kc.json")]
    bad = subprocess.run([*command, "--deny", "create"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "--deny" in bad.stderr and "VERB" in bad.stderr, bad.stderr
    proc = subprocess.Popen([*command, "--deny", "create batch/jobs"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stdout is not None
        assert "listening on http://127.0.0.1:" in proc.stdout.readline()
        assert "in-cluster (TLS) endpoint https://127.0.0.1:" in proc.stdout.readline()
        kc_env = dict(os.environ, KUBECONFIG=str(tmp_path / "kc.json"))

        def can_i(*args: str) -> str:
            return subprocess.run([kubectl, "auth", "can-i", *args], capture_output=True, text=True, env=kc_env,
                                  timeout=60).stdout.strip()

        assert can_i("create", "jobs.batch").startswith("no")
        assert can_i("delete", "jobs.batch") == "yes" and can_i("create", "pods") == "yes"
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
