"""Where uploads run, and what they cost the store: issue 14, goal 3 (uploads must not slow a run).

Local xdist workers hand each finished task folder to the controller with the task's report, and
the controller uploads it: no worker imports the storage SDK or runs an upload thread next to its
tasks. Against the real gcp-storage-emulator (behind the shipped gate, which speaks HTTP/1.1 and so
keeps connections alive as GCS does): one request per object written, connections reused.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_cloudeval.artifacts.plugin import (
    CONTROLLER_UPLOADS_KEY,
    FORWARD_ATTR,
    LEFTOVERS_KEY,
    ArtifactsRun,
    UploadForwarder,
)
from pytest_cloudeval.artifacts.settings import UPLOAD_THREADS
from tests.gcs_support import BUCKET, emulator  # noqa: F401 - emulator: a fixture
from tests.usaco_factory import trivial_benchmark

PREFIX = "runs/place"
URL = f"gs://{BUCKET}/{PREFIX}"
TASK_FILES = {"agent.log", "answer.txt", "judge.json", "result.json", "sandbox.json"}

# Every pytest process of the run says, as its session ends, whether it imported the SDK and which
# upload threads it runs (workers: before the worker ends; the controller: before it uploads run files).
PROBE_CONFTEST = '''
import json, os, sys, threading

def pytest_sessionfinish(session):
    role = getattr(session.config, "workerinput", {}).get("workerid", "controller")
    with open(os.path.join(os.environ["PLACE_DIR"], role + ".json"), "w") as f:
        json.dump({"sdk": "google.cloud.storage" in sys.modules,
                   "threads": sorted(t.name for t in threading.enumerate() if t.name.startswith("cloudeval-upload"))}, f)
'''


def count_connections(gate: Any) -> list[int]:
    """Count the TCP connections the gate accepts from now on (its server's accept, wrapped)."""
    server = gate._server
    accepted = [0]
    accept = server.get_request

    def get_request() -> tuple[socket.socket, Any]:
        accepted[0] += 1
        return accept()  # type: ignore[no-any-return]

    server.get_request = get_request
    return accepted


@pytest.mark.cloud
def test_local_workers_leave_uploads_to_the_controller(pytester: pytest.Pytester, emulator: Any,  # noqa: F811
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = 8
    trivial_benchmark(pytester.path / "bench", tasks, pid=lambda i: f"p{i}", first=1)
    pytester.path.joinpath("conftest.py").write_text(PROBE_CONFTEST)
    place = pytester.path / "place"
    place.mkdir()
    monkeypatch.setenv("PLACE_DIR", str(place))
    connections = count_connections(emulator.gate)
    emulator.gate.requests.clear()
    result = pytester.runpytest_subprocess("bench", "-p", "no:cacheprovider", "--artifacts-url", URL, "--agent",
                                           "oracle", "--run-id", "place", "-n", "2", "--junitxml", "out.xml",
                                           timeout=180)
    assert result.ret == 0, result.stdout.str()

    # Workers: no SDK, no upload thread beside the tasks. The controller: both.
    seen = {p.stem: json.loads(p.read_text()) for p in place.glob("*.json")}
    assert sorted(seen) == ["controller", "gw0", "gw1"]
    for worker in ("gw0", "gw1"):
        assert seen[worker] == {"sdk": False, "threads": []}, seen
    assert seen["controller"]["sdk"] and seen["controller"]["threads"], seen

    # Every task folder is stored, result.json last, by the workers that ran them.
    prefix = f"{PREFIX}/place/"
    objects = {n[len(prefix):]: o for n, o in emulator.objects(BUCKET, prefix).items()}
    assert set(objects) == {f"bench/p{i}/{f}" for i in range(1, tasks + 1) for f in TASK_FILES} | {
        "run.json", "junit.xml", "summary.txt", "report.html"}
    for i in range(1, tasks + 1):
        generations = {f: int(objects[f"bench/p{i}/{f}"]["generation"]) for f in TASK_FILES}
        assert generations["result.json"] == max(generations.values())
    workers = {json.loads(emulator.read(BUCKET, f"{prefix}bench/p{i}/result.json"))["worker"].split("@")[0]
               for i in range(1, tasks + 1)}
    assert workers == {"gw0", "gw1"}
    local = pytester.path / "results" / "place"
    assert emulator.read(BUCKET, f"{prefix}bench/p3/answer.txt") == (local / "bench/p3/answer.txt").read_bytes()
    uploads = json.loads(emulator.read(BUCKET, f"{prefix}run.json"))["uploads"]
    assert uploads["tasks_uploaded"] == tasks and uploads["files_uploaded"] == tasks * len(TASK_FILES)
    assert uploads["failed"] == {} and uploads["lost_workers"] == []

    # One request per object (a multipart upload: no resumable session, reload or exists), plus
    # the probe's write and delete; and connections kept, not one per request.
    requests = list(emulator.gate.requests)
    uploads_sent = [r for r in requests if r[0] == "POST" and "uploadType=multipart" in r[1]]
    assert len(uploads_sent) == len(objects) + 1, requests
    assert [r[0] for r in requests if r not in uploads_sent] == ["DELETE"], requests
    assert all(status == 200 for _, _, status in uploads_sent)
    # probe thread + upload threads + the main thread (run files); two processes would add theirs.
    assert connections[0] <= UPLOAD_THREADS + 2, (connections[0], len(requests))


# ------------------------------------------------------------------------------------------------
# The hand-over, piece by piece (typed fakes)
# ------------------------------------------------------------------------------------------------
def fake_run(cloud: str | None = None) -> ArtifactsRun:
    settings = SimpleNamespace(cloud=cloud, run_id="r1")
    session = SimpleNamespace(settings=settings, is_worker=False)
    return ArtifactsRun(session, SimpleNamespace(), store=SimpleNamespace())  # type: ignore[arg-type]


def fake_node(spec: str, **attrs: Any) -> Any:
    import execnet

    xspec = execnet.XSpec(spec)
    for name, value in attrs.items():
        setattr(xspec, name, value)
    return SimpleNamespace(gateway=SimpleNamespace(spec=xspec), workerinput={})


@pytest.mark.parametrize(("spec", "attrs", "cloud", "here"), [
    ("popen", {}, None, True),                                  # -n N: same machine, same files
    ("popen//chdir=/tmp", {}, None, True),
    ("ssh=somehost//python=python3", {}, None, False),         # --tx ssh=...: its own disk
    ("popen//via=gw0", {}, None, False),
    ("popen", {"cloudeval_popen": True}, None, False),         # a popen whose python runs elsewhere
    ("popen", {}, "gce", False),                               # cloud workers ship their folders
])
def test_only_local_popen_workers_hand_uploads_over(spec: str, attrs: dict[str, Any], cloud: str | None,
                                                     here: bool) -> None:
    node = fake_node(spec, **attrs)
    fake_run(cloud).pytest_configure_node(node)
    assert node.workerinput.get(CONTROLLER_UPLOADS_KEY, False) is here


def test_the_forwarder_attaches_folders_to_the_next_report_and_keeps_leftovers() -> None:
    forwarder = UploadForwarder()
    settings = SimpleNamespace(resuming=False)
    forwarder.pytest_cloudeval_task_finished({"key": "bench/p1"}, Path("/r/bench/p1"), settings)
    forwarder.pytest_cloudeval_task_finished({"key": "bench/p0", "resumed": True}, Path("/r/bench/p0"), settings)
    forwarder.pytest_cloudeval_task_finished({"outcome": "error"}, Path("/r/x"), settings)  # no key: a lost task
    report = SimpleNamespace()
    forwarder.pytest_runtest_logreport(report)  # type: ignore[arg-type]
    assert getattr(report, FORWARD_ATTR) == [{"key": "bench/p1", "task_dir": "/r/bench/p1", "mode": "new"}]
    later = SimpleNamespace()
    forwarder.pytest_runtest_logreport(later)  # type: ignore[arg-type]
    assert not hasattr(later, FORWARD_ATTR)  # sent once
    forwarder.pytest_cloudeval_task_finished({"key": "bench/p2"}, Path("/r/bench/p2"), SimpleNamespace(resuming=True))
    session = SimpleNamespace(config=SimpleNamespace(workeroutput={}))
    forwarder.pytest_sessionfinish(session)  # type: ignore[arg-type]
    assert session.config.workeroutput[LEFTOVERS_KEY] == [
        {"key": "bench/p2", "task_dir": "/r/bench/p2", "mode": "replace"}]


def test_the_controller_grows_one_upload_thread_per_local_worker_within_bounds() -> None:
    from pytest_cloudeval.artifacts.settings import MAX_CONTROLLER_THREADS, StoreSettings
    from pytest_cloudeval.artifacts.uploader import Uploader
    from pytest_cloudeval.redact import Redactor

    run = fake_run()
    run.cfg = StoreSettings(url=URL)
    assert run.threads == UPLOAD_THREADS
    uploader = Uploader(SimpleNamespace(), Redactor([]), max_bytes=1, policy=run.cfg.policy,  # type: ignore[arg-type]
                        threads=run.threads)
    run._uploader = uploader  # as --resume makes it before any worker starts
    try:
        for _ in range(6):
            run.pytest_configure_node(fake_node("popen"))
        assert run.threads == 6 and sum(t.is_alive() for t in uploader._threads) == 6
        for _ in range(30):
            run.pytest_configure_node(fake_node("popen"))
        assert run.threads == MAX_CONTROLLER_THREADS == len(uploader._threads)
        run.pytest_configure_node(fake_node("ssh=elsewhere"))  # uploads for itself
        assert run.local_workers == 36
    finally:
        uploader.close()
    assert not any(t.is_alive() for t in uploader._threads)


def test_upload_threads_share_one_credentials_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real GCS (no emulator): Application Default Credentials are looked up once, not per thread."""
    import threading

    import google.auth
    import google.auth.exceptions
    from google.auth.credentials import AnonymousCredentials

    from pytest_cloudeval.artifacts.gcs import GcsStore
    from pytest_cloudeval.errors import StoreError

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "proj")
    calls: list[Any] = []

    def default(scopes: Any = None, **kwargs: Any) -> tuple[Any, str | None]:
        calls.append(scopes)
        if len(calls) == 1:
            raise google.auth.exceptions.DefaultCredentialsError("not yet")  # a failure is not kept
        return AnonymousCredentials(), None

    monkeypatch.setattr(google.auth, "default", default)
    store = GcsStore("gs://bucket/x")
    with pytest.raises(StoreError, match="no usable Google credentials.*not yet"):
        store._client()
    clients: list[Any] = []
    threads = [threading.Thread(target=lambda: clients.append(store._client())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 2 and calls[1] and "devstorage" in str(calls[1])  # asked once more, with scopes
    assert len({id(c) for c in clients}) == 4  # a client (and HTTP session) per thread ...
    assert len({id(c._credentials) for c in clients}) == 1  # ... over one credentials object
    assert {c.project for c in clients} == {"proj"}
