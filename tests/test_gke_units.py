"""Units of ``--cloud=gke`` without a cluster: the worker Job, the RBAC of ``--sandbox=k8s``, the
permissions ``--cloud-check`` asks about, the plan and its price, and the kubectl transport's specs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import execnet
import pytest

from pytest_cloudeval.backends.base import Host
from pytest_cloudeval.backends.gke.access import needed, review
from pytest_cloudeval.backends.gke.backend import GkeProvider
from pytest_cloudeval.backends.gke.config import GkeConfig, cpu_quantity, memory_quantity
from pytest_cloudeval.backends.gke.manifests import (
    SANDBOX_RULES,
    replacement_name,
    run_labels,
    sandbox_rbac,
    worker_job,
    worker_names,
)
from pytest_cloudeval.backends.kubectl import KubectlTransport
from pytest_cloudeval.backends.pricing import pod_hourly_usd
from pytest_cloudeval.sandbox.k8s_config import K8sConfig


def job(**changes: object) -> dict:
    args = dict(name="cew-r-0", image="reg/runner:1", labels=run_labels("r", None), cpu="500m", memory="1Gi",
                deadline_s=900, ttl_s=600)
    args.update(changes)
    return worker_job(**args)  # type: ignore[arg-type]


def test_worker_job_is_never_restarted_never_privileged_and_ends_by_itself() -> None:
    body = job()
    spec = body["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert spec["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 900 == pod["activeDeadlineSeconds"] and spec["ttlSecondsAfterFinished"] == 600
    assert container["securityContext"] == {"privileged": False, "allowPrivilegeEscalation": False}
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
    assert "env" not in container and "tty" in container and container["tty"] is False
    labels = spec["template"]["metadata"]["labels"]
    assert labels == {"cloudeval.workers": "true", "cloudeval.run": "r", "cloudeval.worker": "cew-r-0"}
    assert "cloudeval" not in labels, "a sandbox sweep (cloudeval=true) must never match a worker pod"
    assert "nodeSelector" not in pod and "tolerations" not in pod


def test_spot_selector_and_toleration_and_service_account() -> None:
    pod = job(spot=True, node_selector={"pool": "x"}, service_account="cew-sandbox-r")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "x", "cloud.google.com/gke-spot": "true"}
    assert pod["tolerations"] == [{"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true",
                                   "effect": "NoSchedule"}]
    assert pod["serviceAccountName"] == "cew-sandbox-r" and pod["automountServiceAccountToken"] is True


def test_names_fit_kubernetes_limits() -> None:
    names = worker_names("a" * 80, 12)
    assert len(set(names)) == 12 and all(len(n) <= 52 for n in names)
    assert worker_names("r", 2, pool="p") == ["cew-pool-p-0", "cew-pool-p-1"]
    assert replacement_name("cew-r-3", 1) == "cew-r-3-r1" and replacement_name("cew-r-3-r1", 2) == "cew-r-3-r2"
    assert len(replacement_name(names[0], 12)) <= 52


def test_sandbox_role_grants_only_what_task_pods_need() -> None:
    account, role, binding = sandbox_rbac("r", run_labels("r", None))
    assert account["metadata"]["name"] == role["metadata"]["name"] == binding["metadata"]["name"]
    resources = {res for rule in role["rules"] for res in rule["resources"]}
    assert resources == {"pods", "pods/exec", "pods/log", "events", "networkpolicies"}
    assert all("*" not in rule["verbs"] for rule in SANDBOX_RULES)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"]}]


def test_cloud_check_asks_for_every_permission_the_run_needs() -> None:
    local = {str(p) for p in needed("local")}
    assert {"create jobs.batch", "delete jobs.batch", "list pods", "delete pods", "create pods/exec"} <= local
    assert not any("serviceaccounts" in p for p in local)
    k8s = {str(p) for p in needed("k8s")}
    assert {"create serviceaccounts", "create roles.rbac.authorization.k8s.io",
            "create rolebindings.rbac.authorization.k8s.io", "create networkpolicies.networking.k8s.io"} <= k8s
    exec_perm = next(p for p in needed("local") if str(p) == "create pods/exec")
    body: dict[str, Any] = review(exec_perm, "ns")
    assert body["spec"]["resourceAttributes"] == {"namespace": "ns", "verb": "create", "resource": "pods",
                                                  "subresource": "exec"}


def test_cloud_check_covers_what_the_controller_calls_and_what_the_role_grants() -> None:
    """Worker pods are deleted by label (deletecollection); creating the workers' Role needs every
    permission it grants (RBAC escalation check), so --cloud-check asks for each, once."""
    assert "deletecollection pods" in {str(p) for p in needed("local")}
    k8s = [str(p) for p in needed("k8s")]
    assert len(k8s) == len(set(k8s)), k8s
    granted = {f"{verb} {resource}" + (f".{rule['apiGroups'][0]}" if rule["apiGroups"][0] else "")
               for rule in SANDBOX_RULES for resource in rule["resources"] for verb in rule["verbs"]}
    assert granted <= set(k8s), granted - set(k8s)


def test_quantities_are_checked() -> None:
    assert cpu_quantity("500m") == "500m" and cpu_quantity("2") == "2"
    assert memory_quantity("512Mi") == "512Mi"
    for bad in ("", "-1", "0", "1.5x"):
        with pytest.raises(ValueError):
            cpu_quantity(bad)
    with pytest.raises(ValueError):
        memory_quantity("10Mi")


def provider(tmp_path: Path, sandbox: str = "local", **cfg: object) -> GkeProvider:
    settings = SimpleNamespace(sandbox=sandbox)
    cluster = K8sConfig(kubeconfig=str(tmp_path / "missing"), namespace="ns")
    return GkeProvider(GkeConfig(cluster=cluster, **cfg), settings)  # type: ignore[arg-type]


def test_plan_packs_workers_per_pod_and_prices_requests(tmp_path: Path) -> None:
    prov = provider(tmp_path, workers_per_pod=3, worker_cpu="500m", worker_memory="1Gi", spot=True)
    plan = prov.plan("r", 7, 1, None)
    assert [vm.slots for vm in plan.vms] == [3, 3, 1] and plan.unit == "pod"
    assert plan.machine_type == "pod(1500m cpu, 3072Mi)" and plan.spot
    assert plan.usd_per_vm_hour == pytest.approx(pod_hourly_usd(1.5, 3.0, spot=True))
    assert pod_hourly_usd(1, 1, spot=True) < pod_hourly_usd(1, 1)
    text = "\n".join(prov.describe(plan))
    assert "3 Spot worker pod(s)" in text and "/pod-hour" in text and "GKE" in text


def test_docker_sandbox_is_refused(tmp_path: Path) -> None:
    with pytest.raises(pytest.UsageError, match="cannot run --sandbox=docker"):
        provider(tmp_path, sandbox="docker").preflight()


def test_kubectl_transport_specs_are_stable_and_carry_no_tty(tmp_path: Path) -> None:
    transport = KubectlTransport(tmp_path, tmp_path, "cloudeval-r")
    transport.configure({"kubeconfig": "/k/config", "context": "ctx", "namespace": "ns"})
    spec = transport.slot_spec("cloudeval-w0", "env PYTHONPATH=/site python3", "/var/tmp/cloudeval/runs/r/src")
    script = tmp_path / "cloudeval-w0.kubectl"
    assert spec == f"popen//python={script}//chdir=/var/tmp/cloudeval/runs/r/src"
    assert transport.slot_of(execnet.XSpec(spec)) == "cloudeval-w0"
    assert transport.slot_of(execnet.XSpec("popen//python=python3")) is None
    transport.point("cloudeval-w0", Host(name="cew-r-0", zone="ns", address="cew-r-0-abcde"))
    text = script.read_text()
    assert ("kubectl --kubeconfig /k/config --context ctx --namespace ns exec -i cew-r-0-abcde -c worker "
            "-- env PYTHONPATH=/site python3 \"$@\"") in text
    assert " -t" not in text and "-it" not in text and script.stat().st_mode & 0o777 == 0o700
    transport.point("cloudeval-w0", Host(name="cew-r-0-r1", zone="ns", address="cew-r-0-r1-xyz"))
    assert "exec -i cew-r-0-r1-xyz" in script.read_text() and spec == transport.slot_spec(
        "cloudeval-w0", "env PYTHONPATH=/site python3", "/var/tmp/cloudeval/runs/r/src")


def test_worker_pods_reach_their_cluster_from_inside(tmp_path: Path) -> None:
    settings = SimpleNamespace(sandbox="k8s")
    cluster = K8sConfig(kubeconfig="/home/me/.kube/config", context="prod", namespace=None)
    prov = GkeProvider(GkeConfig(cluster=cluster), settings, kube=SimpleNamespace(namespace="evals"))  # type: ignore[arg-type]
    data: dict[str, Any] = {"k8s": cluster.to_dict(), "sandbox_image": "cloudeval/runner:bookworm"}
    prov.adjust_worker_settings(data)
    section = K8sConfig.from_dict(data["k8s"])
    assert section.kubeconfig is None and section.context is None and section.namespace == "evals"
    assert section.local_engine is False and section.image_registry is None
    assert data["sandbox_image"] == "cloudeval/runner:bookworm", "no registry: the image is used as named"
    plain = {"k8s": None}
    prov.adjust_worker_settings(plain)
    assert plain == {"k8s": None}


def test_in_cluster_access_only_without_a_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_cloudeval.sandbox import k8s_api

    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("t")
    monkeypatch.setattr(k8s_api, "SERVICE_ACCOUNT_DIR", str(sa))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert k8s_api.in_cluster(K8sConfig())
    assert not k8s_api.in_cluster(K8sConfig(kubeconfig="/k"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert not k8s_api.in_cluster(K8sConfig())


def test_pod_info_reads_the_apis_json_and_explains_a_pending_pod():
    """The provider reads pods as the API's plain JSON (no typed models: they cost the controller a
    second of CPU to load), and says why a pod is not running."""
    from pytest_cloudeval.backends.gke.kube import pod_info

    pod = {"metadata": {"name": "w-0-abcde", "labels": {"cloudeval.worker": "w-0"},
                        "creationTimestamp": "2026-12-03T07:00:00Z"},
           "status": {"phase": "Pending", "conditions": [
               {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes: Insufficient cpu"}]}}
    info = pod_info(pod)
    assert info.worker == "w-0" and info.phase == "Pending" and not info.running
    assert "Insufficient cpu" in info.reason
    assert info.created_at == 1796281200.0
    running = pod_info({"metadata": {"name": "w-1-x", "labels": {"cloudeval.worker": "w-1"},
                                     "deletionTimestamp": "2026-12-03T07:00:01Z"},
                        "status": {"phase": "Running"}})
    assert running.deleting and not running.running


def test_a_task_edited_after_the_controller_built_gets_an_error_never_the_old_image(tmp_path: Path) -> None:
    """A worker pod picks the controller's image by the content hash of the environment/ it collected:
    content edited after the build has no image, which is an error that says why (never the old one)."""
    from pytest_cloudeval.errors import SandboxError
    from pytest_cloudeval.model import Task
    from pytest_cloudeval.sandbox.base import SandboxSpec
    from pytest_cloudeval.sandbox.build_context import content_hash
    from pytest_cloudeval.sandbox.k8s import image_without_engine
    from pytest_cloudeval.tasks.harbor import HarborFormat

    task_dir = tmp_path / "bench" / "edited"
    for sub in ("environment", "tests"):
        (task_dir / sub).mkdir(parents=True)
    (task_dir / "task.toml").write_text("[environment]\n")
    (task_dir / "instruction.md").write_text("Nothing.\n")
    (task_dir / "tests" / "test.sh").write_text("#!/bin/sh\n")
    (task_dir / "environment" / "Dockerfile").write_text("FROM scratch\nCOPY v.txt /v\n")
    (task_dir / "environment" / "v.txt").write_text("1\n")

    def spec() -> SandboxSpec:
        fmt = HarborFormat()
        source = fmt.detect(task_dir)
        assert source is not None
        task = fmt.load_task(source, "bench")
        assert isinstance(task, Task), task
        return SandboxSpec(task=task, run_id="r", name="n", environment=task.environment)

    built = {content_hash(task_dir / "environment"): "reg/cloudeval-task/edited:old"}
    assert image_without_engine(spec(), built) == "reg/cloudeval-task/edited:old"
    (task_dir / "environment" / "v.txt").write_text("2\n")  # same size, other content
    with pytest.raises(SandboxError, match="built no image for this content"):
        image_without_engine(spec(), built)
