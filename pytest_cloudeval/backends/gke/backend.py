"""``GkeProvider``: xdist workers as Kubernetes pods, one batch/v1 Job per worker pod, reached by the
``kubectl`` transport (one ``kubectl exec -i POD -- python3`` stream per worker).

Everything after "a pod runs" (shipping the bundles, xdist, lost workers, cost, teardown order) is the
controller's, the same as for GCE VMs. What differs from VMs: pods start in seconds, so a lost pod is
*replaced* (``replace``), not only worked around; and the cluster, not the plugin, schedules them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from ...errors import BackendError, CloudEvalError
from ..base import BootConfig, CloudVm, Host, Progress, Provider, ProvisionResult, VmPlan, WorkerPlan
from ..pricing import POD_PRICE_SOURCE, format_usd, pod_hourly_usd
from .access import needed, review
from .config import DEFAULT_WORKER_IMAGE, JOB_TTL_S, GkeConfig, cpu_cores, memory_bytes
from .manifests import (
    MARKER_LABEL,
    MARKER_VALUE,
    POOL_LABEL,
    RUN_LABEL,
    WORKER_LABEL,
    label_value,
    rbac_name,
    replacement_name,
    run_labels,
    sandbox_rbac,
    selector,
    worker_job,
    worker_names,
)

if TYPE_CHECKING:
    from ...settings import Settings
    from .kube import Kube, PodInfo

POLL_S = 0.25
MAX_PARALLEL = 16
REMOTE_BASE = "/var/tmp/cloudeval"
NOT_STARTING = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "unschedulable", "CreateContainerError",
                "CreateContainerConfigError")
"""Words of a pod's explanation that mean it will not start by waiting longer."""


def _quantity(cores: float) -> str:
    return f"{int(round(cores * 1000))}m"


def _memory(total: float) -> str:
    return f"{int(total // 2**20)}Mi"


class GkeProvider(Provider):
    """Worker pods on the cluster of the kubeconfig's context. ``kube`` may be given (tests)."""

    name = "gke"
    transport = "kubectl"

    def __init__(self, cfg: GkeConfig, settings: Settings, kube: Kube | None = None) -> None:
        self.cfg = cfg
        self.settings = settings
        self._kube = kube
        self._lock = threading.Lock()
        self.asked: dict[str, float] = {}
        """Job name -> when it was asked for (billing start); teardown deletes every one of them."""
        self.ended: dict[str, float] = {}
        self._keep: set[str] = set()
        self._rbac: str | None = None
        self._generation = 0
        self._plan: WorkerPlan | None = None
        self._image: str | None = None
        self.use_jobs = True
        self.cancel = threading.Event()
        self._task_args: tuple[list[str], Any, dict[str, Any]] | None = None
        """pytest's paths, where it was started, and the task formats (to build task images)."""
        self._prebuilt: Future[dict[str, str]] | None = None

    @classmethod
    def from_config(cls, config: pytest.Config, settings: Settings) -> GkeProvider:
        provider = cls(GkeConfig.from_config(config), settings)
        if settings.sandbox == "k8s":
            formats: dict[str, Any] = {}
            for batch in config.hook.pytest_cloudeval_task_formats():
                for fmt in batch or []:
                    formats.setdefault(fmt.name, fmt)
            provider._task_args = (list(config.args), config.invocation_params.dir, formats)
        return provider

    def start_task_images(self, progress: Progress) -> None:
        """Build (and push) the images of the run's buildable tasks in the background, once: worker pods
        cannot build them (``task_images``). Workers wait for it when they are configured."""
        if self._task_args is None or self._prebuilt is not None:
            return
        args, invocation_dir, formats = self._task_args
        registry = self.cfg.cluster.image_registry
        settings = self.settings

        def build() -> dict[str, str]:
            from .task_images import find_tasks, prebuild

            tasks = find_tasks(args, invocation_dir, formats)
            return prebuild(tasks, settings.sandbox_image, settings.force_build, registry, progress)

        pool = ThreadPoolExecutor(1, thread_name_prefix="cloudeval-task-images")
        self._prebuilt = pool.submit(build)
        pool.shutdown(wait=False)

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            from .kube import Kube

            self._kube = Kube(self.cfg.cluster)
        return self._kube

    @property
    def sandbox_pods(self) -> bool:
        return self.settings.sandbox == "k8s"

    def preflight(self) -> None:
        if self.settings.sandbox == "docker":
            raise pytest.UsageError("--cloud=gke cannot run --sandbox=docker: a worker pod has no Docker engine "
                                    "(and privileged Docker-in-Docker is refused by GKE Autopilot); use "
                                    "--sandbox=local (processes in the worker pod) or --sandbox=k8s (a pod per "
                                    "task, made by the worker)")
        try:
            self.kube  # noqa: B018 - loads the kubeconfig: a missing or broken one is a usage error
        except BackendError as e:
            raise pytest.UsageError(f"--cloud=gke: {e} (set --kubeconfig FILE, --k8s-context NAME)") from e

    def transport_options(self) -> dict[str, str]:
        cluster = self.cfg.cluster
        options = {"namespace": self.kube.namespace}
        if cluster.kubeconfig:
            options["kubeconfig"] = str(cluster.kubeconfig)
        if cluster.context:
            options["context"] = str(cluster.context)
        return options

    def adjust_worker_settings(self, data: dict[str, Any]) -> None:
        """A worker pod making ``--sandbox=k8s`` pods reaches the API from inside (its ServiceAccount's
        token, ``KUBERNETES_SERVICE_HOST``), never with the controller's kubeconfig (a path that does not
        exist there, and credentials that must not leave the controller), in the run's namespace. The
        sandbox image is pushed to ``--image-registry`` here, by the controller: a pod has no Docker."""
        section = data.get("k8s")
        if not isinstance(section, dict):
            return
        if self._prebuilt is None:
            self.start_task_images(lambda line: None)
        prebuilt: dict[str, str] = {}
        if self._prebuilt is not None:
            try:
                prebuilt = self._prebuilt.result(timeout=3600)
            except Exception:  # noqa: BLE001 - no engine, no registry: each task that builds says so
                prebuilt = {}
        section = dict(section, kubeconfig=None, context=None, namespace=self.kube.namespace, image_registry=None,
                       local_engine=False, prebuilt=prebuilt)
        data["k8s"] = section
        image = data.get("sandbox_image")
        if image and self.cfg.cluster.image_registry:
            from ...sandbox.k8s_images import image_for_pod

            data["sandbox_image"] = image_for_pod(str(image), self.cfg.cluster.image_registry)

    def remote_base(self) -> str:
        return REMOTE_BASE

    # -- plan -------------------------------------------------------------------------------------
    def per_pod(self, workers_per_vm: int) -> int:
        return self.cfg.workers_per_pod or workers_per_vm

    def pod_requests(self, slots: int) -> tuple[str, str]:
        return (_quantity(cpu_cores(self.cfg.worker_cpu) * slots),
                _memory(memory_bytes(self.cfg.worker_memory) * slots))

    def plan(self, run_id: str, workers: int, workers_per_vm: int, pool: str | None) -> WorkerPlan:
        per_pod = self.per_pod(workers_per_vm)
        count = -(-workers // per_pod)
        names = worker_names(run_id, count, pool)
        pods = tuple(VmPlan(name, min(per_pod, workers - i * per_pod)) for i, name in enumerate(names))
        cpu, memory = self.pod_requests(per_pod)
        price = pod_hourly_usd(cpu_cores(cpu), memory_bytes(memory) / 2**30, self.cfg.spot)
        cluster = self.cfg.cluster
        try:
            namespace = self.kube.namespace
        except BackendError:
            namespace = cluster.namespace or "(the context's)"
        image = self.cfg.worker_image or DEFAULT_WORKER_IMAGE
        if cluster.image_registry:
            image += f" (pushed to {cluster.image_registry} if only local)"
        details = {"namespace": namespace, "context": cluster.context or "(current)", "image": image,
                   "requests/pod": f"cpu {cpu}, memory {memory}",
                   "deadline": f"{self.cfg.max_run_minutes:g} min", "sandbox": self.settings.sandbox or "local"}
        if self.cfg.spot:
            details["spot"] = "cloud.google.com/gke-spot=true"
        self._plan = WorkerPlan(cloud=self.name, run_id=run_id, workers=workers, workers_per_vm=per_pod, vms=pods,
                                machine_type=f"pod({cpu} cpu, {memory})", zones=(namespace,), spot=self.cfg.spot,
                                pool=pool, usd_per_vm_hour=price, details=details, login_user="",
                                idle_seconds=self.cfg.deadline_s, ready_timeout_s=cluster.start_timeout_s + 60,
                                unit="pod", price_source=POD_PRICE_SOURCE)
        return self._plan

    def describe(self, plan: WorkerPlan) -> list[str]:
        kind = "Spot " if plan.spot else ""
        pool = f", warm pool {plan.pool!r} (kept after the run)" if plan.pool else ""
        lines = [f"cloudeval gke plan: {len(plan.vms)} {kind}worker pod(s) {plan.machine_type} in namespace "
                 f"{plan.zones[0]}, {plan.workers_per_vm} worker(s) per pod, {plan.workers} worker(s){pool}",
                 "cloudeval gke plan: " + ", ".join(f"{k} {v}" for k, v in plan.details.items())]
        if plan.usd_per_vm_hour is not None:
            lines.append(f"cloudeval gke estimate: {format_usd(plan.usd_per_vm_hour)}/pod-hour, "
                         f"{format_usd(plan.usd_per_hour)}/hour for all {len(plan.vms)} pod(s) ({POD_PRICE_SOURCE})")
        return lines

    # -- --cloud-check ----------------------------------------------------------------------------------
    def check(self) -> list[str]:
        """Every permission this run needs, asked of the API server; one line per missing one."""
        missing = []
        namespace = self.kube.namespace
        for perm in needed(self.settings.sandbox):
            try:
                allowed, reason = self.kube.allowed(review(perm, namespace))
            except BackendError as e:
                if getattr(e.__cause__, "status", None) == 404:
                    return [f"the API server does not answer SelfSubjectAccessReviews, so nothing could be "
                            f"checked ({e})"]
                raise
            if not allowed:
                missing.append(f"missing permission: {perm} in namespace {namespace} (needed for {perm.why})"
                               + (f": {reason}" if reason else ""))
        return missing

    def check_summary(self) -> str:
        return (f"{len(needed(self.settings.sandbox))} permission(s) in namespace {self.kube.namespace} "
                f"(SelfSubjectAccessReview)")

    # -- provision ----------------------------------------------------------------------------------
    def image(self) -> str:
        if self._image is None:
            from ...sandbox.k8s_images import image_for_pod

            wanted = self.cfg.worker_image or DEFAULT_WORKER_IMAGE
            try:
                self._image = image_for_pod(wanted, self.cfg.cluster.image_registry)
            except CloudEvalError as e:
                raise BackendError(f"the worker image {wanted}: {e}") from e
        return self._image

    def job(self, plan: WorkerPlan, name: str, slots: int) -> dict[str, Any]:
        cpu, memory = self.pod_requests(slots)
        cluster = self.cfg.cluster
        return worker_job(name=name, image=self.image(), labels=run_labels(plan.run_id, plan.pool), cpu=cpu,
                          memory=memory, deadline_s=self.cfg.deadline_s, ttl_s=JOB_TTL_S,
                          node_selector=cluster.node_selector, tolerations=cluster.tolerations, spot=self.cfg.spot,
                          service_account=rbac_name(plan.pool or plan.run_id) if self.sandbox_pods else None,
                          runtime_class=cluster.runtime_class)

    def _create(self, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        with self._lock:
            self.asked[name] = time.time()  # before asking: teardown finds it whatever happens next
            self.ended.pop(name, None)
        if self.use_jobs:
            self.kube.create_job(body)
        else:
            template = body["spec"]["template"]
            self.kube.create_pod({"apiVersion": "v1", "kind": "Pod",
                                  "metadata": {"name": name, "labels": template["metadata"]["labels"]},
                                  "spec": template["spec"]})

    def provision(self, plan: WorkerPlan, boot: BootConfig, progress: Progress, cancel: threading.Event,
                  on_up: Callable[[Host], None] | None = None) -> ProvisionResult:
        t0 = time.monotonic()
        self.cancel = cancel
        self.start_task_images(progress)
        kube = self.kube
        notes: list[str] = []
        if not kube.serves_jobs():
            self.use_jobs = False
            notes.append("the API server serves no batch/v1 Jobs: worker pods are made as bare pods")
        slots = {vm.name: vm.slots for vm in plan.vms}
        if self.sandbox_pods:
            labels = run_labels(plan.run_id, plan.pool)
            # A warm pool's pods outlive the run: their ServiceAccount is the pool's, kept with them.
            self._rbac = rbac_name(plan.pool or plan.run_id)
            kube.create_rbac(*sandbox_rbac(plan.pool or plan.run_id, labels))
        reused: dict[str, PodInfo] = {}
        if plan.pool:
            reused = self._pool_pods(plan, progress)
            if reused:
                notes.append(f"reused {len(reused)} pod(s) of the pool")
        to_create = [vm for vm in plan.vms if vm.name not in reused]
        failed: list[tuple[str, str]] = []
        if to_create:
            bodies = [self.job(plan, vm.name, vm.slots) for vm in to_create]  # pushes the image once, first
            with ThreadPoolExecutor(max_workers=min(len(bodies), MAX_PARALLEL),
                                    thread_name_prefix="cloudeval-gke-create") as pool:
                futures = {b["metadata"]["name"]: pool.submit(self._create, b) for b in bodies}
                for name, future in futures.items():
                    try:
                        future.result()
                    except BackendError as e:
                        failed.append((name, str(e)))
        hosts: dict[str, Host] = {}

        def up(info: PodInfo, was_reused: bool) -> None:
            host = Host(name=info.worker, zone=kube.namespace, address=info.name, slots=slots.get(info.worker, 1),
                        created_at=info.created_at or time.time(), reused=was_reused, labels=dict(info.labels))
            hosts[info.worker] = host
            with self._lock:
                if plan.pool:
                    self._keep.add(info.worker)
                if was_reused:
                    self.asked.setdefault(info.worker, time.time())
            if on_up is not None:
                on_up(host)

        for info in reused.values():
            up(info, True)
        waiting = {vm.name for vm in to_create} - {name for name, _ in failed}
        deadline = time.monotonic() + self.cfg.cluster.start_timeout_s
        failed += self._wait_running(plan, waiting, deadline, lambda info: up(info, False))
        ordered = tuple(hosts[vm.name] for vm in plan.vms if vm.name in hosts)
        if not ordered:
            reasons = "; ".join(f"{name}: {why}" for name, why in failed) or "no reason given"
            raise BackendError(f"no worker pod came up ({reasons})")
        return ProvisionResult(vms=ordered, failed=tuple(failed), seconds=time.monotonic() - t0, notes=tuple(notes))

    def _wait_running(self, plan: WorkerPlan, waiting: set[str], deadline: float,
                      on_running: Callable[[PodInfo], None]) -> list[tuple[str, str]]:
        """Poll the run's pods (one list call for all) until each of ``waiting`` runs or cannot."""
        failed: list[tuple[str, str]] = []
        last: dict[str, PodInfo] = {}
        label = selector(run_labels(plan.run_id, plan.pool))
        while waiting:
            if self.cancel.is_set():
                failed += [(name, "cancelled") for name in sorted(waiting)]
                break
            for info in self.kube.pods(label):
                if info.worker not in waiting:
                    continue
                last[info.worker] = info
                if info.running:
                    waiting.discard(info.worker)
                    on_running(info)
                elif info.phase in ("Failed", "Succeeded") or any(w in info.reason for w in NOT_STARTING):
                    waiting.discard(info.worker)
                    failed.append((info.worker, self._why(info)))
            if waiting and time.monotonic() > deadline:
                for name in sorted(waiting):
                    seen = last.get(name)
                    failed.append((name, f"not running after --k8s-start-timeout {self.cfg.cluster.start_timeout_s:g} s"
                                         + (f": {self._why(seen)}" if seen else " (no pod was made for its Job)")))
                break
            if waiting:
                time.sleep(POLL_S)
        return failed

    def _why(self, info: PodInfo) -> str:
        events = [e for e in self.kube.events(info.name) if not e.startswith("Normal")]
        return f"pod {info.name} {info.phase}: {info.reason}" + (f" (events: {'; '.join(events[-3:])})" if events else "")

    def _pool_pods(self, plan: WorkerPlan, progress: Progress) -> dict[str, PodInfo]:
        """The pool's running pods of this plan's names; pool Jobs whose pod is gone are deleted first."""
        wanted = {vm.name for vm in plan.vms}
        labels = {MARKER_LABEL: MARKER_VALUE, POOL_LABEL: label_value(plan.pool or "")}
        running = {p.worker: p for p in self.kube.pods(selector(labels)) if p.running and p.worker in wanted}
        stale = {name for name, _, _ in self.kube.jobs(selector(labels)) if name in wanted and name not in running}
        for name in sorted(stale):
            progress(f"cloudeval gke: pool worker {name} has no running pod: making it again")
            self._delete_worker(name)
        if stale:
            self._wait_gone(stale, time.monotonic() + 30)
        return running

    def _wait_gone(self, names: set[str], deadline: float) -> None:
        while time.monotonic() < deadline:
            jobs = {name for name, _, _ in self.kube.jobs(selector({MARKER_LABEL: MARKER_VALUE}))}
            if not names & jobs:
                return
            time.sleep(POLL_S)

    def is_alive(self, vm: Host) -> bool:
        try:
            info = self.kube.pod(vm.address)
        except BackendError:
            return False
        return info is not None and info.running

    def replace(self, vm: Host, boot: BootConfig, progress: Progress) -> Host | None:
        """A new worker pod (Job) for a lost one, running, or None when it did not start in time."""
        plan = self._plan
        if plan is None or self.cancel.is_set():
            return None
        with self._lock:
            self._generation += 1
            name = replacement_name(vm.name, self._generation)
        try:
            self._create(self.job(plan, name, vm.slots))
        except BackendError as e:
            progress(f"cloudeval gke: no replacement for {vm.name}: {e}")
            return None
        found: list[PodInfo] = []
        failed = self._wait_running(plan, {name}, time.monotonic() + self.cfg.cluster.start_timeout_s, found.append)
        if not found:
            progress(f"cloudeval gke: replacement {name} for {vm.name} did not start: "
                     f"{'; '.join(why for _, why in failed)}")
            threading.Thread(target=self._delete_worker, args=(name,), daemon=True).start()
            return None
        info = found[0]
        if plan.pool:
            with self._lock:
                self._keep.add(name)
        progress(f"cloudeval gke: {name} replaces the lost worker pod {vm.name}")
        return Host(name=name, zone=vm.zone, address=info.name, slots=vm.slots, created_at=info.created_at,
                    labels=dict(info.labels))

    # -- delete -----------------------------------------------------------------------------------
    def _delete_worker(self, name: str) -> bool:
        kube = self.kube
        existed = kube.delete_job(name) if self.use_jobs else False
        kube.delete_pods(selector({MARKER_LABEL: MARKER_VALUE, WORKER_LABEL: name}))
        with self._lock:
            self.ended.setdefault(name, time.time())
        return existed or not self.use_jobs

    def forget(self, vm: Host) -> None:
        with self._lock:
            self._keep.discard(vm.name)
            asked = vm.name in self.asked
        if asked:
            try:
                self._delete_worker(vm.name)
            except BackendError:
                pass  # teardown tries again (it is still in ``asked``)

    def teardown(self, progress: Progress) -> int:
        self.cancel.set()
        with self._lock:
            targets = [name for name in self.asked if name not in self._keep and name not in self.ended]
            rbac = self._rbac
        if not targets and rbac is None:
            return 0
        errors: list[str] = []
        deleted = 0
        if targets:
            with ThreadPoolExecutor(max_workers=min(len(targets), MAX_PARALLEL),
                                    thread_name_prefix="cloudeval-gke-delete") as pool:
                futures = {name: pool.submit(self._delete_worker, name) for name in targets}
                for name, future in futures.items():
                    try:
                        deleted += 1 if future.result() else 0
                    except Exception as e:  # noqa: BLE001 - collected, raised once
                        errors.append(f"{name}: {e}")
        if rbac is not None and not self._keep:
            problems = self.kube.delete_rbac(rbac)
            errors += problems
            if not problems:
                self._rbac = None
        if errors:
            raise BackendError("could not delete " + "; ".join(errors) +
                               " (delete them by hand, or run `pytest --cleanup --cloud=gke`)")
        return deleted

    def vm_seconds(self) -> dict[str, float]:
        now = time.time()
        with self._lock:
            return {name: max(0.0, self.ended.get(name, now) - start) for name, start in self.asked.items()}

    # -- without a run ------------------------------------------------------------------------------
    @classmethod
    def _scope(cls, config: pytest.Config) -> dict[str, str]:
        from ...cleanup import cleanup_run_id

        labels = {MARKER_LABEL: MARKER_VALUE}
        run_id = cleanup_run_id(config)
        pool = config.getoption("cloudeval_keep_workers", default=None)
        if run_id:
            labels[RUN_LABEL] = label_value(run_id)
        if pool:
            labels[POOL_LABEL] = label_value(pool)
        return labels

    @classmethod
    def cleanup(cls, config: pytest.Config, settings: Settings) -> str:
        """Delete every worker Job, pod, ServiceAccount, Role and RoleBinding with the marker label (only
        one run's with ``--run-id``, one pool's with ``--keep-workers``)."""
        provider = cls.from_config(config, settings)
        kube = provider.kube
        scope = cls._scope(config)
        label = selector(scope)
        jobs = [name for name, _, _ in kube.jobs(label)]
        pods = kube.pods(label)
        rbac = kube.rbac_names(label)
        problems: list[str] = []
        for name in jobs:
            try:
                kube.delete_job(name)
            except BackendError as e:
                problems.append(str(e))
        if pods:
            kube.delete_pods(label)
        for name in rbac:
            problems += kube.delete_rbac(name)
        if problems:
            raise BackendError("could not delete " + "; ".join(problems))
        shown = ", ".join(f"{k}={v}" for k, v in sorted(scope.items()))
        if not (jobs or pods or rbac):
            return f"no worker Jobs, pods or ServiceAccounts labelled {shown} in namespace {kube.namespace}"
        return (f"deleted {len(jobs)} Job(s), {len(pods)} pod(s), {len(rbac)} ServiceAccount/Role/RoleBinding "
                f"name(s) labelled {shown} in namespace {kube.namespace}")

    @classmethod
    def status(cls, config: pytest.Config, settings: Settings) -> list[CloudVm]:
        provider = cls.from_config(config, settings)
        kube = provider.kube
        label = selector({MARKER_LABEL: MARKER_VALUE})
        pods = kube.pods(label)
        out = [CloudVm(name=p.worker, zone=kube.namespace, status=p.phase + (" (deleting)" if p.deleting else ""),
                       created_at=p.created_at, run_id=p.labels.get(RUN_LABEL, ""), pool=p.labels.get(POOL_LABEL, ""),
                       address=p.name) for p in pods]
        with_pod = {p.worker for p in pods}
        out += [CloudVm(name=name, zone=kube.namespace, status="Job, no pod", created_at=created,
                        run_id=labels.get(RUN_LABEL, ""), pool=labels.get(POOL_LABEL, ""))
                for name, labels, created in kube.jobs(label) if name not in with_pod]
        return sorted(out, key=lambda vm: (vm.created_at, vm.name))
