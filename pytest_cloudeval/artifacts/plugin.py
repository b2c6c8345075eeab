"""Hooks that copy results to the ``--artifacts-url`` store while the run goes on, and resume from it.

A task's folder is queued for upload as soon as it is finished. A plain run uploads in its own
threads. Local xdist workers (``popen``: same machine, same files) upload nothing themselves: each
finished folder travels to the controller with the task's next report and the controller's threads
upload it, so one process imports the SDK and holds the client and its connections, and no upload
thread competes with a task for a worker's GIL. Workers on other hosts (``--tx ssh=...``) upload
where the task ran and report at the end through xdist's ``workeroutput``; cloud workers ship their
folders to the controller. The controller checks the store is writable before any task starts, fills
the resume map from the store on ``--resume``, and uploads the run files the reporters wrote
(run.json, summary.txt, JUnit XML, report.html, ...) last.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ..errors import MissingExtraError, StoreError
from ..options import add_options
from ..results import FINAL_OUTCOMES, atomic_write_json, finished_results, is_safe_name
from .base import RESULT_FILE, ResultStore, read_results, run_base
from .settings import ARTIFACT_OPTIONS, MAX_CONTROLLER_THREADS, StoreSettings, resolve_store
from .uploader import RetryPolicy, TaskUpload, Uploader, UploadJob, call_with_retries

WORKER_OUTPUT_KEY = "cloudeval_uploads"
CONTROLLER_UPLOADS_KEY = "cloudeval_controller_uploads"
"""In a worker's ``workerinput``: the controller uploads this worker's task folders (see the module doc)."""
FORWARD_ATTR = "cloudeval_upload_folders"
"""The report attribute that carries finished task folders from a local worker to the controller."""
LEFTOVERS_KEY = "cloudeval_upload_leftovers"
"""In a local worker's ``workeroutput``: folders finished after its last report (none in practice)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cloudeval-artifacts", "cloudeval artifacts: copy results to a bucket (--artifacts-url)")
    add_options(group, parser, ARTIFACT_OPTIONS)


def open_store(config: pytest.Config, url: str) -> ResultStore:
    """The store for ``url``, by scheme, from the ``pytest_cloudeval_result_stores`` hook."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    loaders: dict[str, Any] = {}
    for batch in config.hook.pytest_cloudeval_result_stores():
        for name, loader in (batch or {}).items():
            loaders.setdefault(name, loader)
    if scheme not in loaders:
        known = ", ".join(f"{s}://" for s in sorted(loaders))
        raise pytest.UsageError(f"--artifacts-url {url}: unknown store (known: {known})")
    try:
        cls = loaders[scheme]()
        return cls(url)
    except MissingExtraError as e:
        raise pytest.UsageError(f"--artifacts-url: {e}") from e
    except StoreError as e:
        raise pytest.UsageError(f"--artifacts-url {url}: {e}") from e


def _runs_tasks(config: pytest.Config) -> bool:
    option = config.option
    return not any(getattr(option, name, False) for name in
                   ("collectonly", "help", "version", "markers", "showfixtures", "show_fixtures_per_test"))


@pytest.hookimpl
def pytest_cloudeval_configure(session: Any) -> None:
    settings = session.settings
    if not settings.artifacts_url:
        return
    config = session.config
    if session.is_worker and settings.ship_results:
        return  # a remote worker ships its task folders; the controller uploads them
    if session.is_worker and getattr(config, "workerinput", {}).get(CONTROLLER_UPLOADS_KEY):
        # The controller uploads: this worker never opens the store (no SDK import, no threads).
        config.pluginmanager.register(UploadForwarder(), "cloudeval-artifacts-forward")
        return
    # Resolved once, on the controller (or a plain run); workers get the section with the settings.
    acfg = settings.store if session.is_worker else None
    if acfg is None:
        acfg = resolve_store(config, settings.artifacts_url)
        if not session.is_worker:
            session.settings = settings.replace(store=acfg)
    run = ArtifactsRun(session, acfg, open_store(config, acfg.url))
    config.pluginmanager.register(run, "cloudeval-artifacts-run")
    if not session.is_worker and settings.agent and _runs_tasks(config):
        if settings.resuming:
            run.probe()
            run.load_resume()
        else:
            # Checked while the workers start (importing the SDK and two round trips take about a
            # second); ``pytest_runtestloop`` waits for it before the first task is handed out.
            run.start_probe()


def upload_request(result: dict[str, Any], task_dir: Path, settings: Any) -> dict[str, str] | None:
    """What to upload for a finished task (plain strings: it may cross execnet), or None (nothing)."""
    key = result.get("key")
    if not key or result.get("resumed"):
        return None
    return {"key": str(key), "task_dir": str(task_dir), "mode": "replace" if settings.resuming else "new"}


class UploadForwarder:
    """On a local xdist worker: finished task folders go to the controller with the next report.

    ``pytest_cloudeval_task_finished`` runs inside the task's item, before its reports are made, so
    the folder is complete on disk when the controller reads it. Leftovers (none in practice: a
    folder is always followed by its own report) go in ``workeroutput`` at the end.
    """

    def __init__(self) -> None:
        self.pending: list[dict[str, str]] = []

    @pytest.hookimpl(trylast=True)  # after any hook that still writes into the folder
    def pytest_cloudeval_task_finished(self, result: dict[str, Any], task_dir: Path, settings: Any) -> None:
        request = upload_request(result, task_dir, settings)
        if request is not None:
            self.pending.append(request)

    @pytest.hookimpl(tryfirst=True)  # before xdist serializes the report for the controller
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.pending:
            setattr(report, FORWARD_ATTR, self.pending)
            self.pending = []

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        session.config.workeroutput[LEFTOVERS_KEY] = self.pending  # type: ignore[attr-defined]
        self.pending = []


class ArtifactsRun:
    """Per-process upload state, registered as a plugin when ``--artifacts-url`` is given."""

    def __init__(self, session: Any, cfg: StoreSettings, store: ResultStore) -> None:
        self.session = session
        self.cfg = cfg
        self.store = store
        self._uploader: Uploader | None = None
        self.worker_reports: dict[str, TaskUpload] = {}
        self.lost_workers: list[str] = []
        self.from_store = 0
        self.synced: list[str] = []
        self.failed: dict[str, str] = {}
        self.run_files_failed: dict[str, str] = {}
        self.finalized = False
        self._probe: threading.Thread | None = None
        self._probe_error: pytest.UsageError | None = None
        self.local_workers = 0
        """Workers whose folders this controller uploads (one upload thread each, within bounds)."""

    @property
    def run_id(self) -> str:
        return str(self.session.settings.run_id)

    @property
    def run_url(self) -> str:
        return self.store.describe(self.run_id)

    def dest(self, key: str) -> str:
        return f"{self.run_id}/{key}"

    @property
    def threads(self) -> int:
        return max(self.cfg.threads, min(MAX_CONTROLLER_THREADS, self.local_workers))

    def uploader(self) -> Uploader:
        if self._uploader is None:
            self._uploader = Uploader(self.store, self.session.redactor, max_bytes=self.cfg.max_bytes,
                                      policy=self.cfg.policy, threads=self.threads)
        return self._uploader

    # -- controller, before any task ------------------------------------------------------------
    def probe(self) -> None:
        """Write and delete a probe object: a missing or read-only bucket stops the run here."""
        name = f".cloudeval-probe-{self.run_id}-{secrets.token_hex(4)}"
        policy = RetryPolicy(retries=min(2, self.cfg.retries), base_s=self.cfg.backoff_s)
        try:
            call_with_retries(lambda: self.store.check_writable(name), policy, time.sleep, random.random)
        except StoreError as e:
            raise pytest.UsageError(f"--artifacts-url {self.cfg.url}: the store is not usable, no task was "
                                    f"started: {e}") from e

    def start_probe(self) -> None:
        """``probe`` in a thread; ``wait_probe`` raises what it found."""
        def run() -> None:
            try:
                self.probe()
            except pytest.UsageError as e:
                self._probe_error = e
            except Exception as e:  # noqa: BLE001 - reported by wait_probe, on the main thread
                self._probe_error = pytest.UsageError(f"--artifacts-url {self.cfg.url}: the store is not usable, "
                                                      f"no task was started: {type(e).__name__}: {e}")

        self._probe = threading.Thread(target=run, name="cloudeval-store-probe", daemon=True)
        self._probe.start()

    def wait_probe(self) -> None:
        """Block until the store probe ended. Raises: pytest.UsageError: the store is not usable."""
        if self._probe is not None:
            self._probe.join()
            self._probe = None
        if self._probe_error is not None:
            raise self._probe_error

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        # Before any task: xdist's loop (which hands tasks to the workers) and a plain run's alike.
        if not self.session.is_worker:
            self.wait_probe()

    def load_resume(self) -> None:
        """Add tasks stored as passed/failed to the resume map; queue local results the store lacks."""
        settings = self.session.settings
        policy = RetryPolicy(retries=min(2, self.cfg.retries), base_s=self.cfg.backoff_s)
        try:
            objects = call_with_retries(lambda: self.store.list(run_base(self.run_id)), policy, time.sleep,
                                        random.random)
            stored, problems = read_results(self.store, self.run_id, objects)
        except StoreError as e:
            raise pytest.UsageError(f"--resume {self.run_id}: cannot read {self.run_url}: {e}") from e
        local = finished_results(settings.run_dir)
        if not objects and not local and not settings.run_dir.is_dir():
            raise pytest.UsageError(f"--resume {self.run_id}: no such run in {settings.results_dir} "
                                    f"or {self.run_url}")
        for problem in problems:
            self.session.config.issue_config_time_warning(pytest.PytestWarning(f"cloudeval resume: {problem}"),
                                                          stacklevel=2)
        resume = self.session.resume
        for key, data in sorted(stored.items()):
            parts = key.split("/")
            if data.get("outcome") not in FINAL_OUTCOMES or key in resume or not all(map(is_safe_name, parts)):
                continue
            resume[key] = data
            self.from_store += 1
            local_copy = settings.run_dir / parts[0] / parts[1] / RESULT_FILE
            if not local_copy.exists():  # so the local folder reports the whole run too
                atomic_write_json(local_copy, data)
        for key in sorted(local):
            if key in stored and stored[key].get("outcome") in FINAL_OUTCOMES:
                continue  # complete in the store: never rewritten
            # A stored error gives way to the local final result; otherwise add what the store lacks.
            mode = "replace" if key in stored else "sync"
            self.uploader().submit(UploadJob(key, settings.run_dir / key, self.dest(key), mode))
            self.synced.append(key)

    def pytest_report_header(self, config: pytest.Config) -> list[str] | None:
        if self.session.is_worker:
            return None
        line = f"cloudeval artifacts: {self.run_url}"
        if self.from_store or self.synced:
            line += f" (resume: {self.from_store} finished tasks read from the store, {len(self.synced)} " \
                    f"local results to upload)"
        return [line]

    # -- where tasks run ------------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)  # after any hook that still writes into the folder
    def pytest_cloudeval_task_finished(self, result: dict[str, Any], task_dir: Path, settings: Any) -> None:
        request = upload_request(result, task_dir, settings)
        if request is not None:
            self.submit_requests([request])

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """A local ``popen`` worker shares this machine's files: its folders are uploaded here."""
        spec = getattr(getattr(node, "gateway", None), "spec", None)
        if self.session.settings.cloud or spec is None:
            return
        if getattr(spec, "popen", False) and not getattr(spec, "via", None) \
                and not getattr(spec, "cloudeval_popen", False):
            node.workerinput[CONTROLLER_UPLOADS_KEY] = True
            self.local_workers += 1  # a restarted worker counts again: one more thread, within bounds
            if self._uploader is not None:  # made early for --resume
                self._uploader.grow(self.threads)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.session.is_worker:
            self.submit_requests(getattr(report, FORWARD_ATTR, None))

    def submit_requests(self, requests: Any) -> None:
        """Queue finished folders: this process's own, or a local worker's (see ``UploadForwarder``)."""
        for request in requests or ():
            key = str(request["key"])
            self.uploader().submit(UploadJob(key, Path(request["task_dir"]), self.dest(key), str(request["mode"])))

    def own_reports(self) -> dict[str, TaskUpload]:
        if self._uploader is None:
            return {}
        self._uploader.wait()
        return self._uploader.reports()

    # -- end of the run ---------------------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", None) or {}
        data = output.get(WORKER_OUTPUT_KEY)
        workerinput = getattr(node, "workerinput", None) or {}
        if workerinput.get(CONTROLLER_UPLOADS_KEY):
            self.submit_requests(output.get(LEFTOVERS_KEY))
            return  # its tasks are uploaded here, on the controller
        if data is None and workerinput.get("cloudeval_settings", {}).get("ship_results"):
            return  # its tasks were uploaded here, on the controller
        if data is None:
            self.lost_workers.append(str(getattr(getattr(node, "gateway", None), "id", "?")))
            return
        for item in data:
            report = TaskUpload.from_dict(item)
            earlier = self.worker_reports.get(report.key)
            if earlier is None or not earlier.ok:  # a task retried elsewhere: a success wins
                self.worker_reports[report.key] = report

    def finalize(self) -> dict[str, Any]:
        """Wait for this process's uploads and merge the workers' reports (controller)."""
        reports = dict(self.worker_reports)
        for key, report in self.own_reports().items():
            if key not in reports or not reports[key].ok:
                reports[key] = report
        ran = {str(r["key"]) for r in self.session.results.values()
               if r.get("key") and not r.get("resumed") and r.get("verdict") != "BAD_TASK"}
        self.failed = {k: str(r.error) for k, r in sorted(reports.items()) if not r.ok}
        for key in sorted(ran - set(reports)):
            self.failed[key] = "no upload report from the worker that ran it (the worker was lost)"
        skipped = {k: r.skipped for k, r in sorted(reports.items()) if r.skipped}
        self.finalized = True
        return {
            "url": self.run_url,
            "tasks_uploaded": sum(1 for r in reports.values() if r.ok and r.uploaded),
            "files_uploaded": sum(len(r.uploaded) for r in reports.values()),
            "retries": sum(r.retries for r in reports.values()),
            "failed": self.failed,
            "skipped_files": skipped,
            "resumed_from_store": self.from_store,
            "synced_from_local": list(self.synced),
            "lost_workers": list(self.lost_workers),
        }

    def notes(self, uploads: dict[str, Any]) -> list[str]:
        lines = [f"uploads: {uploads['tasks_uploaded']} task folders ({uploads['files_uploaded']} files, "
                 f"{uploads['retries']} retries) to {self.run_url}"]
        for key, files in uploads["skipped_files"].items():
            names = ", ".join(f"{f['path']} ({f['reason']})" for f in files)
            lines.append(f"upload skipped files of {key}: {names}")
        for key, message in uploads["failed"].items():
            lines.append(f"UPLOAD FAILED {key}: {message}")
        if uploads["failed"]:
            lines.append(f"uploads failed for {len(uploads['failed'])} tasks; local copies are kept in "
                         f"{self.session.settings.run_dir}; rerun with --resume {self.run_id} "
                         f"--artifacts-url {self.cfg.url} to upload them")
        return lines

    def pytest_cloudeval_run_finished(self, summary: dict[str, Any], run_dir: Path, settings: Any) -> None:
        uploads = self.finalize()
        summary["uploads"] = uploads
        summary.setdefault("summary", {}).setdefault("notes", []).extend(self.notes(uploads))
        if uploads["failed"] and not summary.get("exit_status"):
            summary["exit_status"] = int(pytest.ExitCode.TESTS_FAILED)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._probe_error is not None:
            return  # the store is not usable and no task ran: nothing to report or upload
        if self.session.is_worker:
            reports = self.own_reports()
            session.config.workeroutput[WORKER_OUTPUT_KEY] = [r.to_dict() for r in reports.values()]  # type: ignore[attr-defined]
            return
        lines: list[str] = []
        if not self.finalized:  # no task result reached the controller: no run.json either
            uploads = self.finalize()
            lines = self.notes(uploads) if uploads["failed"] or uploads["files_uploaded"] else []
        if self.session.summary is not None:
            self.upload_run_files(session.config)
        for name, message in self.run_files_failed.items():
            lines.append(f"UPLOAD FAILED {self.run_id}/{name}: {message}")
        if lines:
            if self.session.summary is not None:  # printed by the core's terminal summary
                self.session.summary.setdefault("summary", {}).setdefault("notes", []).extend(lines)
            else:
                reporter = session.config.pluginmanager.get_plugin("terminalreporter")
                for line in lines:
                    if reporter is not None:
                        reporter.write_line(self.session.redactor.text(line))
        if (self.failed or self.run_files_failed) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def upload_run_files(self, config: pytest.Config) -> None:
        """Every file the run's reporters wrote (run.json first) to ``<run-id>/``; the first unreachable
        store stops it. What is uploaded is the reporters' business: a new reporter needs no change here."""
        red = self.session.redactor
        files = sorted(self.session.report_files, key=lambda f: f.name != "run.json")
        for index, report_file in enumerate(files):
            name = report_file.name
            if not report_file.path.is_file():
                continue  # e.g. pytest's --junitxml when pytest could not write it
            try:
                data = report_file.path.read_bytes()
                call_with_retries(lambda d=data, n=name: self.store.upload_bytes(red.bytes(d), f"{self.run_id}/{n}"),  # type: ignore[misc]
                                  self.cfg.policy, time.sleep, random.random)
            except (StoreError, OSError) as e:
                self.run_files_failed[name] = str(e)
                for later in files[index + 1:]:
                    self.run_files_failed[later.name] = "not tried: the store failed on an earlier file"
                return

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._uploader is not None:
            self._uploader.close()
        self.store.close()
