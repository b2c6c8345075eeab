"""The Kubernetes sandbox: one pod per task attempt, commands through the exec API, files as tar over exec.

The pod runs a keep-alive PID 1 (exits on SIGTERM, reaps orphans) with every security setting named
(never privileged, no service-account token, no service links, ``restartPolicy: Never``, requests =
limits, ``activeDeadlineSeconds`` so a forgotten pod dies on its own) and labels for the run, task and
benchmark. No-network pods are only created after the run's deny-all NetworkPolicy exists. Secrets
and task variables never enter the pod spec or an exec URL: ``k8s_exec`` sends them on the exec's
stdin. Pods are deleted with grace 0 when the attempt ends, and swept by label at the end of the
run and by ``pytest --cleanup --sandbox=k8s [--run-id X]``.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..capture import CappedBuffer
from ..errors import SandboxError
from . import docker_archive as archive
from . import k8s_api, k8s_exec
from .base import Capability, CopyReport, ExecResult, Sandbox, SandboxSpec
from .k8s_config import _STASH, config_of
from .k8s_images import image_for_pod

RUNNER_USER = "agent"
ROOT_NAMES = ("root", "0", "0:0")
DEADLINE_MARGIN_S = 1800
"""activeDeadlineSeconds = twice the task's time plus this: only forgotten pods ever reach it."""
AHEAD_DEADLINE_S = 6 * 3600
"""Added to the deadline of a pod made ahead (``prepare``), which waits for the attempt before it;
``start`` lowers it to the usual one, counted from then (a pod's deadline may only be lowered)."""
POLL_S = 1.0
"""Pod start: polls confirm what the watch says, or replace it where watches do not work."""
WATCH_S = 10.0
_learned: dict[tuple[str, str, str], list[str]] = {}
"""(pod image, user, workdir asked) -> what ``_learn_user_and_workdir`` read in a pod of that image
(its working folder, the user's uid and gid), as the Docker sandbox caches its owner lookups."""


def image_without_engine(spec: SandboxSpec, prebuilt: Mapping[str, str]) -> str:
    """The task's image where no Docker engine is (a ``--cloud=gke`` worker pod): as the task names it;
    for a task built from its ``environment/``, the image the controller built for the same content
    (``prebuilt``, by content hash); else the default image. A build nobody made is a clear error."""
    env = spec.environment
    if env.image:
        return str(env.image)
    context = env.build_context
    if context is not None and (context / env.dockerfile).is_file():
        from .build_context import content_hash

        built = prebuilt.get(content_hash(context))
        if built:
            return built
        raise SandboxError(f"task {spec.task.task_id} builds its image from {env.dockerfile} in environment/, "
                           f"a --cloud=gke worker pod has no Docker engine to build it, and the controller "
                           f"built no image for this content (it builds those of the tasks under the paths "
                           f"given to pytest, before the workers start): give the task a prebuilt "
                           f"docker_image the cluster can pull, or run from its benchmark folder")
    return spec.options.default_image


class K8sSandbox(Sandbox):
    name = "k8s"
    capabilities: ClassVar[Capability] = Capability.PROCESS | Capability.CONTAINER
    prepares_ahead = True
    """``prepare()`` creates the pod and waits for it to run (and learns its user) before the attempt."""

    def __init__(self, spec: SandboxSpec) -> None:
        super().__init__(spec)
        self.cfg = config_of()
        env = spec.environment
        self._own_image = bool(spec.image or env.image or env.build_context)
        """The task brings its image (run as its user, root by default) or takes the runner image."""
        self.image: str | None = spec.image
        self.user: str | None = spec.user or env.agent_user
        self._wanted_workdir = spec.workdir or env.workdir
        self.owner = archive.Owner()
        self.pod: str | None = None
        self.namespace = ""
        self.pod_image = self.image
        self._workdir = self._wanted_workdir or "/"
        self._closed = False
        self._pending: archive.PendingArchive | None = None
        self.limits: dict[str, Any] = {}
        self._up = False
        self.default_user_is_root = False
        """Commands run as root unless a ``user`` is given (known once started): ``user="0"`` is no
        other user, so a format may fold a root step into one command (see tasks/harbor_exec.py)."""
        self.prepared = False
        """The pod was made by ``prepare()`` (ahead of the attempt)."""
        self._running_since = 0.0
        self._deadline_s = 0

    # -- session-wide -------------------------------------------------------------------------
    @classmethod
    def cleanup_skipped(cls) -> str | None:
        if _STASH.get("k8s"):
            return None
        return "no cluster named (a cluster is swept only with --sandbox=k8s [--kubeconfig F] [--k8s-context C])"

    @classmethod
    def session_cleanup(cls, run_id: str | None) -> None:
        if cls.cleanup_skipped():
            return  # this process never used a cluster, and --cleanup names one with --sandbox=k8s
        _removed, problems = k8s_api.sweep(config_of(), run_id)
        if problems:
            raise SandboxError(f"could not delete {len(problems)} Kubernetes object(s): {'; '.join(problems[:3])}")

    # -- lifecycle ----------------------------------------------------------------------------
    def _rest(self) -> Any:
        return k8s_api.rest(self.cfg)

    def prepare(self) -> None:
        """The pod, up and running, ahead of its attempt: everything ``start()`` does (nothing of the
        task goes in); its deadline is longer by ``AHEAD_DEADLINE_S`` until ``start()`` lowers it."""
        self._bring_up(ahead=True)
        self.prepared = True

    def start(self) -> None:
        if not self._up:
            self._bring_up(ahead=False)
            return
        if self.prepared:
            self._take_prepared()

    def _take_prepared(self) -> None:
        """Lower the prepared pod's deadline to the usual one counted from now; a pod that is no longer
        running (evicted, deleted, past its deadline while it waited) is replaced by a fresh one."""
        api = k8s_api.rest(self.cfg)
        waited = int(time.monotonic() - self._running_since)
        from kubernetes.client.exceptions import ApiException

        pod: Mapping[str, Any] = {}
        try:
            pod = k8s_api.call(f"patch pod {self.pod}", lambda: api.patch_pod(
                self.namespace, str(self.pod), {"spec": {"activeDeadlineSeconds": self._deadline_s + waited + 1}}),
                passthrough_404=True)
        except ApiException:
            pass  # 404: the pod is gone (a fresh one below)
        except SandboxError as e:
            # A cluster that refuses the patch (RBAC without pods/patch): the longer deadline stays.
            self.limits["deadline"] = f"not lowered after the pod waited ahead ({str(e)[:200]})"
            try:
                pod = k8s_api.call(f"read pod {self.pod}", lambda: api.read_pod(self.namespace, str(self.pod)),
                                   passthrough_404=True)
            except ApiException:
                pass
        status, meta = pod.get("status") or {}, pod.get("metadata") or {}
        if status.get("phase") == "Running" and not meta.get("deletionTimestamp"):
            return
        gone = self.pod
        try:
            api.delete_pod(self.namespace, str(gone), grace_period_seconds=0)
        except Exception:  # noqa: BLE001 - gone already, or the end-of-run sweep deletes it
            pass
        self.pod, self.prepared, self._pending = None, False, None
        self._bring_up(ahead=False, suffix="-r")
        self.limits["prepared_ahead"] = f"pod {gone} made ahead was no longer running: replaced"

    def _bring_up(self, ahead: bool, suffix: str = "") -> None:
        if self._closed:
            raise SandboxError("sandbox started after close()")
        self._up = True  # also when it fails: close() deletes whatever got created, never a second try
        cfg, spec = self.cfg, self.spec
        self.namespace = k8s_api.namespace_of(cfg)
        if self.image is None and not cfg.local_engine:
            self.image = image_without_engine(spec, cfg.prebuilt)
        elif self.image is None:
            # The task's image, pulled or built by the local engine (then pushed to --image-registry).
            from . import docker_images

            self.image = docker_images.resolve(spec.environment, spec.task.task_id, spec.options.default_image,
                                               spec.options.force_build)
        self.pod_image = image_for_pod(self.image, cfg.image_registry)
        run = k8s_api.label_value(spec.run_id)
        labels = {k8s_api.label_value(k) if "/" not in k else k: k8s_api.label_value(v)
                  for k, v in spec.labels.items() if k not in (k8s_api.LABEL, k8s_api.RUN_LABEL)}
        labels.update({k8s_api.LABEL: "true", k8s_api.RUN_LABEL: run,
                       "cloudeval.task": k8s_api.label_value(spec.task.task_id),
                       "cloudeval.benchmark": k8s_api.label_value(spec.task.benchmark),
                       k8s_api.NO_NETWORK_LABEL: "bridge" if spec.network else "none"})
        if not spec.network:
            k8s_api.ensure_deny_all(cfg, self.namespace, spec.run_id)  # before the pod exists
        self.limits = {"network": "bridge" if spec.network else "none (deny-all NetworkPolicy)",
                       "cpus": spec.cpus, "memory_mb": spec.memory_mb, "gpus": spec.task.limits.gpus or 0}
        timeout = spec.task.limits.agent_timeout_s or 3600
        self._deadline_s = int(2 * timeout + DEADLINE_MARGIN_S)
        body = k8s_api.pod_manifest(
            name=k8s_api.pod_name(spec.name[:200] + suffix), image=self.pod_image, labels=labels,
            annotations={"cloudeval/task-id": spec.task.task_id[:1000], "cloudeval/run-id": spec.run_id},
            cpus=spec.cpus, memory_mb=spec.memory_mb, gpus=int(spec.task.limits.gpus or 0),
            workdir=self._wanted_workdir, deadline_s=self._deadline_s + (AHEAD_DEADLINE_S if ahead else 0), cfg=cfg)
        api = k8s_api.rest(cfg)
        created = k8s_api.call(f"create pod {body['metadata']['name']}",
                               lambda: api.create_pod(self.namespace, body))
        self.pod = str(created["metadata"]["name"])
        self._running_since = time.monotonic()  # the deadline counts from the pod's start: at most this
        self._wait_running(api, created)
        self._learn_user_and_workdir()

    def _wait_running(self, api: Any, created: Mapping[str, Any]) -> None:
        """Until the pod runs: a watch of the pod wakes this at each change (a poll every second
        confirms, and takes over where watches are refused or cut)."""
        deadline = time.monotonic() + self.cfg.start_timeout_s
        version = str((created.get("metadata") or {}).get("resourceVersion") or "")
        watching = bool(version)
        while True:
            pod = k8s_api.call(f"read pod {self.pod}", lambda: api.read_pod(self.namespace, str(self.pod)))
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Running":
                return
            left = deadline - time.monotonic()
            if phase in ("Failed", "Succeeded") or left <= 0:
                events = k8s_api.pod_events(self.cfg, self.namespace, str(self.pod))
                why = k8s_api.explain_pending(pod)
                when = "ended before it ran" if phase in ("Failed", "Succeeded") else \
                    f"did not start within --k8s-start-timeout {self.cfg.start_timeout_s:g}s"
                raise SandboxError(f"pod {self.pod} (image {self.pod_image}) {when}: {why}"
                                   + (f"; events: {' | '.join(events[-6:])}" if events else ""))
            version = str((pod.get("metadata") or {}).get("resourceVersion") or version)
            if not (watching and version and self._watch_until_started(api, version, min(left, WATCH_S))):
                watching = False
                time.sleep(min(left, POLL_S))

    def _watch_until_started(self, api: Any, version: str, seconds: float) -> bool:
        """Follow the pod's changes after ``version`` until it runs or ends, or the window passes (True:
        read it and watch again); False when watching does not work here (refused, cut, or ended at
        once without news): then polls."""
        started = time.monotonic()
        seen = 0
        try:
            for pod in api.watch_pod(self.namespace, str(self.pod), version, max(1, int(seconds))):
                seen += 1
                if (pod.get("status") or {}).get("phase") in ("Running", "Failed", "Succeeded") or \
                        (pod.get("metadata") or {}).get("deletionTimestamp"):
                    return True  # running, ended or going: the read that follows says which
        except Exception:  # noqa: BLE001 - refused (RBAC, proxies), cut, or not JSON: polls do
            return False
        return seen > 0 or time.monotonic() - started >= seconds / 2

    def _learn_user_and_workdir(self) -> None:
        if self.user is None and not self._own_image:
            self.user = RUNNER_USER
        if self.user is None and self._wanted_workdir:
            # The image's own user and a known folder: nothing to ask the pod; whether that user is
            # root, the local engine knows from the image (without one: not known, taken as not root).
            self.default_user_is_root = self._image_user_is_root()
            return
        key = (str(self.pod_image), self.user or "", self._wanted_workdir or "")
        lines = _learned.get(key)
        if lines is None:
            # The image's working folder, its default user's uid and the user's uid/gid: asked once per
            # image and user per process.
            script = ('pwd; id -u; u="$1"; [ -n "$u" ] && id -u "${u%%:*}" 2>/dev/null && '
                      'id -g "${u%%:*}" 2>/dev/null; true')
            result = self._exec_raw(["sh", "-c", script, "sh", self.user or ""], timeout=60, env={}, cwd=None,
                                    user=None, stdin=None)
            lines = result.stdout.splitlines()
            if result.ok and len(lines) >= 2:
                _learned[key] = lines
        if not self._wanted_workdir and lines:
            self._workdir = lines[0]
        pod_uid = lines[1].strip() if len(lines) >= 2 else ""
        if self.user and self.user not in ROOT_NAMES:
            if len(lines) >= 4 and lines[2].isdigit() and lines[3].isdigit():
                self.owner = archive.Owner(int(lines[2]), int(lines[3]))
            elif self.spec.user is None and not self._own_image:
                self.user = None  # a custom --sandbox-image without the runner's user: its default
            else:
                raise SandboxError(f"user {self.user!r} does not exist in image {self.image}")
        elif self.user in ROOT_NAMES:
            self.user = None
        self.default_user_is_root = self.user is None and pod_uid == "0"
        if self.user and self._wanted_workdir:
            self.make_dirs([self._wanted_workdir])

    def _image_user_is_root(self) -> bool:
        if not self.cfg.local_engine or self.image is None:
            return False
        try:
            from . import docker_engine

            user = str(((docker_engine.inspect_image(self.image) or {}).get("Config") or {}).get("User") or "")
        except Exception:  # noqa: BLE001 - not known: the format then takes the longer, always right way
            return False
        return user in ("", *ROOT_NAMES)

    @property
    def workdir(self) -> str:
        return self._workdir

    def describe(self) -> dict[str, Any]:
        return {"sandbox": "k8s", "pod": self.pod, "namespace": self.namespace, "image": self.pod_image,
                "user": self.user or "(image default)", "workdir": self._workdir, "limits": dict(self.limits)}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pending = None
        if self.pod is None:
            return
        try:
            k8s_api.rest(self.cfg).delete_pod(self.namespace, self.pod, grace_period_seconds=0)
        except Exception:  # noqa: BLE001 - the end-of-run sweep deletes it then
            pass

    # -- commands -----------------------------------------------------------------------------
    def _ref(self) -> str:
        if self._closed:
            raise SandboxError("sandbox used after close()")
        if self.pod is None:
            raise SandboxError("sandbox used before start()")
        return self.pod

    def _exec_raw(self, argv: Sequence[str], *, timeout: float | None, env: Mapping[str, str], cwd: str | None,
                  user: str | None, stdin: bytes | None, out: Any = None) -> ExecResult:
        """One exec; the files written since the last one travel with it (unpacked before it runs)."""
        half = max(1024, self.spec.options.output_cap_bytes // 2)
        self._ref()
        files = self._take_files()
        return k8s_exec.run(self._rest, self.namespace, self._ref(), argv, timeout=timeout, env=env, cwd=cwd,
                            user=user, stdin=stdin, out=out if out is not None else CappedBuffer(half, half),
                            err=CappedBuffer(half, half), files=files)

    def _take_files(self) -> k8s_exec.Files | None:
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        try:
            return k8s_exec.Files(pending.finish().read(), tuple(sorted(pending.parents)),
                                  f"{self.owner.uid}:{self.owner.gid}")
        finally:
            pending.discard()

    def exec(self, cmd: Sequence[str] | str, *, timeout: float | None, stdin: bytes | None = None,
             env: Mapping[str, str] | None = None, cwd: str | None = None, user: str | None = None) -> ExecResult:
        self._ref()
        argv = ["bash", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        full_env = dict(self.spec.env)
        if env:
            full_env.update(env)
        return self._exec_raw(argv, timeout=timeout, env=full_env, cwd=self._abs(cwd) if cwd else self._workdir,
                              user=user or self.user, stdin=stdin)

    def _root(self, script: str, *args: str, stdin: bytes | None = None, limit: int | None = None,
              timeout: float = 300) -> tuple[ExecResult, bytes]:
        sink = k8s_exec.Sink(limit) if limit is not None else None
        result = self._exec_raw(["sh", "-c", script, "sh", *args], timeout=timeout, env={}, cwd="/", user=None,
                                stdin=stdin, out=sink)
        return result, bytes(sink.data) if sink is not None else result.stdout.encode()

    # -- files --------------------------------------------------------------------------------
    def _abs(self, path: str) -> str:
        return posixpath.normpath(path if path.startswith("/") else posixpath.join(self._workdir, path))

    def _pending_archive(self) -> archive.PendingArchive:
        if self._pending is None:
            self._pending = archive.PendingArchive()
        return self._pending

    def flush(self) -> None:
        """Send the files written since the last command now (with a no-op command)."""
        if self._pending is not None:
            self._root("true")

    def make_dirs(self, paths: Sequence[str], mode: int = 0o755) -> None:
        pending = self._pending_archive()
        for path in paths:
            pending.add_dir(self._abs(path), mode, self.owner)

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        payload = data.encode() if isinstance(data, str) else bytes(data)
        self._ref()
        self._pending_archive().add_file(self._abs(path), payload, mode, self.owner)

    def read_file(self, path: str, max_bytes: int = 16 * 1024 * 1024) -> bytes:
        target = self._abs(path)
        script = 'f="$1"; [ -e "$f" ] || exit 44; [ -d "$f" ] && exit 45; head -c "$2" -- "$f"'
        result, data = self._root(script, target, str(max_bytes), limit=max_bytes)
        if result.exit_code == 44:
            raise FileNotFoundError(f"{target} does not exist in the sandbox")
        if result.exit_code == 45:
            raise IsADirectoryError(f"{target} is a folder")
        if not result.ok:
            raise SandboxError(f"reading {target} in pod {self.pod} failed: {result.stderr.strip()[-300:]}")
        return data

    def copy_in(self, src: Path, dest: str) -> None:
        if not src.exists():
            raise FileNotFoundError(f"{src} does not exist")
        self._pending_archive().add_host_path(src, self._abs(dest), self.owner)

    def copy_out_report(self, src: str, dest: Path, max_bytes: int | None = None, *,
                        max_files: int | None = None, only: Any = None) -> CopyReport | None:
        limit_bytes = self.spec.options.copy_max_bytes if max_bytes is None else max_bytes
        limit_files = self.spec.options.copy_max_files if max_files is None else max_files
        source = self._abs(src)
        parent, name = posixpath.split(source.rstrip("/") or "/")
        script = 'p="$1"; n="$2"; [ -e "$p/$n" ] || exit 44; tar -cf - -C "$p" -- "$n"'
        result, data = self._root(script, parent or "/", name or ".", limit=limit_bytes + 64 * 1024 * 1024)
        if result.exit_code == 44:
            return None
        if not result.ok:
            raise SandboxError(f"copying {source} out of pod {self.pod} failed: {result.stderr.strip()[-300:]}")
        chunks = iter([data])
        if _first_is_dir(data):
            dest.mkdir(parents=True, exist_ok=True)
            return archive.extract_archive(chunks, name, dest, limit_bytes, limit_files, only=only)
        dest.parent.mkdir(parents=True, exist_ok=True)
        return archive.extract_archive(chunks, name, dest, limit_bytes, limit_files)

    def stop_processes(self) -> None:
        """Kill every process in the pod but its PID 1 (the keep-alive) and this exec's own."""
        script = ('me=$$; up=$PPID; for d in /proc/[0-9]*; do p=${d#/proc/}; '
                  'case $p in 1|"$me"|"$up") continue ;; esac; kill -9 "$p" 2>/dev/null; done; true')
        result, _ = self._root(script, timeout=60)
        if not result.ok:
            raise SandboxError(f"could not stop the processes of pod {self.pod}: {result.stderr.strip()[-300:]}")


def _first_is_dir(data: bytes) -> bool:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
            first = tar.next()
            return bool(first and first.isdir())
    except tarfile.TarError:
        return False


