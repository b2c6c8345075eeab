"""Streaming results to GCS: the uploader against a typed fake store (retries, order, allowlist,
redaction), the ``gs://`` store against the real gcp-storage-emulator, and whole pytest runs with
``--artifacts-url`` (layout, secrets, xdist workers, resume from the bucket, a bucket that dies
mid-run, a bucket that is missing or read-only)."""

from __future__ import annotations

import io
import json
import os
import random
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pytest_cloudeval.artifacts.base import ObjectNotFound, ResultStore, StoredObject, TransientStoreError
from pytest_cloudeval.artifacts.uploader import (
    RetriesExhausted,
    RetryPolicy,
    Uploader,
    UploadJob,
    call_with_retries,
    plan_task_dir,
    redact_stream,
    upload_task,
)
from pytest_cloudeval.errors import StoreError
from pytest_cloudeval.redact import MASK, Redactor
from tests.gcs_support import BUCKET, emulator  # noqa: F401 - emulator: a fixture

PREFIX = "runs/ci"
URL = f"gs://{BUCKET}/{PREFIX}"


# ------------------------------------------------------------------------------------------------
# A typed fake store
# ------------------------------------------------------------------------------------------------
class FakeStore(ResultStore):
    """In-memory store; ``failures[name]`` is a list of exceptions raised by the next uploads of ``name``."""

    scheme = "fake"

    def __init__(self, url: str = "fake://bucket/prefix") -> None:
        super().__init__(url)
        self.objects: dict[str, bytes] = {}
        self.generations: dict[str, int] = {}
        self.failures: dict[str, list[Exception]] = {}
        self.log: list[tuple[str, str]] = []
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()
        self._generation = 0

    def _write(self, name: str, data: bytes) -> None:
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        with self._lock:
            pending = self.failures.get(name)
            if pending:
                error = pending.pop(0)
                self.log.append(("fail", name))
                raise error
            self._generation += 1
            self.objects[name] = data
            self.generations[name] = self._generation
            self.log.append(("upload", name))

    def upload_file(self, local: Path, name: str, content_type: str | None = None) -> None:
        self._write(name, local.read_bytes())

    def upload_bytes(self, data: bytes, name: str, content_type: str | None = None) -> None:
        self._write(name, data)

    def exists(self, name: str) -> bool:
        return name in self.objects

    def list(self, prefix: str = "") -> list[StoredObject]:
        import base64
        import hashlib

        return [StoredObject(name=n, size=len(d), generation=str(self.generations[n]),
                             md5=base64.b64encode(hashlib.md5(d).digest()).decode())
                for n, d in sorted(self.objects.items()) if n.startswith(prefix)]

    def download(self, name: str, local: Path) -> None:
        local.write_bytes(self.read_bytes(name))

    def read_bytes(self, name: str) -> bytes:
        if name not in self.objects:
            raise ObjectNotFound(name)
        return self.objects[name]

    def delete(self, name: str) -> None:
        with self._lock:
            self.log.append(("delete", name))
            self.objects.pop(name, None)


class FakeClock:
    """Sleep that only records, and a clock that moves when slept."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def task_folder(root: Path, key: str = "bench/t1", files: dict[str, bytes] | None = None,
                outcome: str = "passed") -> Path:
    folder = root / key
    folder.mkdir(parents=True)
    for name, data in (files or {"answer.txt": b"print(1)\n", "agent.log": b"log\n"}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    benchmark, task_id = key.split("/")
    (folder / "result.json").write_text(json.dumps({"task_id": task_id, "benchmark": benchmark, "agent": "a",
                                                    "outcome": outcome, "verdict": "V", "key": key}))
    return folder


def transient(n: int) -> list[Exception]:
    return [TransientStoreError(f"HTTP 503 #{i}") for i in range(n)]


# ------------------------------------------------------------------------------------------------
# Retry policy and the uploader (no sleeping: injected clock)
# ------------------------------------------------------------------------------------------------
def test_backoff_is_exponential_jittered_and_capped() -> None:
    policy = RetryPolicy(retries=8, base_s=0.5, cap_s=4.0)
    lows = [policy.delay(n, 0.0) for n in range(1, 7)]
    highs = [policy.delay(n, 1.0) for n in range(1, 7)]
    assert highs == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert lows == [h / 2 for h in highs]
    rng = random.Random(7)
    for n in range(1, 7):
        assert lows[n - 1] <= policy.delay(n, rng.random()) <= highs[n - 1]


def test_call_with_retries_retries_transient_errors_then_gives_up() -> None:
    clock = FakeClock()
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise TransientStoreError("HTTP 429")
        return "ok"

    policy = RetryPolicy(retries=3, base_s=1.0, cap_s=100.0)
    assert call_with_retries(flaky, policy, clock.sleep, lambda: 1.0) == "ok"
    assert clock.sleeps == [1.0, 2.0]

    clock = FakeClock()
    calls.clear()

    def dead() -> None:
        calls.append(1)
        raise TransientStoreError("connection refused")

    with pytest.raises(RetriesExhausted, match="gave up after 4 tries"):
        call_with_retries(dead, policy, clock.sleep, lambda: 0.0)
    assert len(calls) == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_permanent_errors_are_not_retried() -> None:
    clock = FakeClock()
    calls: list[int] = []

    def denied() -> None:
        calls.append(1)
        raise StoreError("HTTP 403")

    with pytest.raises(StoreError, match="403"):
        call_with_retries(denied, RetryPolicy(retries=5), clock.sleep, lambda: 0.5)
    assert calls == [1] and clock.sleeps == []


def test_upload_retries_and_puts_result_json_last(tmp_path: Path) -> None:
    store = FakeStore()
    folder = task_folder(tmp_path, files={"answer.txt": b"a", "logs/verifier.log": b"v", "zzz.txt": b"z"})
    store.failures["r/bench/t1/answer.txt"] = transient(2)
    store.failures["r/bench/t1/result.json"] = transient(1)
    clock = FakeClock()
    report = upload_task(store, UploadJob("bench/t1", folder, "r/bench/t1"), Redactor([]), 1 << 20,
                         RetryPolicy(retries=3, base_s=1.0), clock.sleep, lambda: 1.0, clock.monotonic)
    assert report.ok, report.error
    assert report.retries == 3
    assert clock.sleeps == [1.0, 2.0, 1.0]
    uploads = [name for op, name in store.log if op == "upload"]
    assert uploads[-1] == "r/bench/t1/result.json"
    assert sorted(uploads) == ["r/bench/t1/answer.txt", "r/bench/t1/logs/verifier.log", "r/bench/t1/result.json",
                               "r/bench/t1/zzz.txt"]
    assert store.objects["r/bench/t1/logs/verifier.log"] == b"v"


def test_exhausted_retries_fail_the_task_without_result_json_and_others_go_on(tmp_path: Path) -> None:
    store = FakeStore()
    one = task_folder(tmp_path, "bench/t1")
    two = task_folder(tmp_path, "bench/t2")
    store.failures["r/bench/t1/answer.txt"] = transient(10)
    clock = FakeClock()
    uploader = Uploader(store, Redactor([]), max_bytes=1 << 20, policy=RetryPolicy(retries=2, base_s=0.1),
                        threads=1, sleep=clock.sleep, rand=lambda: 0.0, clock=clock.monotonic)
    uploader.submit(UploadJob("bench/t1", one, "r/bench/t1"))
    uploader.submit(UploadJob("bench/t2", two, "r/bench/t2"))
    uploader.close()
    reports = uploader.reports()
    assert not reports["bench/t1"].ok
    assert "gave up after 3 tries" in str(reports["bench/t1"].error)
    assert "r/bench/t1/result.json" not in store.objects  # the store never claims t1 is complete
    assert reports["bench/t2"].ok and "r/bench/t2/result.json" in store.objects
    assert len(clock.sleeps) == 2


def test_submit_does_not_wait_for_the_store(tmp_path: Path) -> None:
    store = FakeStore()
    store.gate = threading.Event()  # every upload blocks until the gate opens
    uploader = Uploader(store, Redactor([]), max_bytes=1 << 20, policy=RetryPolicy(), threads=2)
    started = time.monotonic()
    for i in range(5):
        uploader.submit(UploadJob(f"bench/t{i}", task_folder(tmp_path, f"bench/t{i}"), f"r/bench/t{i}"))
    assert time.monotonic() - started < 1.0
    assert store.objects == {}
    store.gate.set()
    uploader.close()
    assert all(r.ok for r in uploader.reports().values()) and len(uploader.reports()) == 5
    assert len(store.objects) == 15


def test_only_files_inside_the_task_folder_under_the_cap(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("OUTSIDE-MARKER")
    folder = task_folder(tmp_path / "run", files={"answer.txt": b"x", "big.bin": b"B" * 5000,
                                                  "sub/ok.txt": b"fine"})
    (folder / "leak.txt").symlink_to(outside)
    (folder / "inner-link.txt").symlink_to(folder / "answer.txt")
    (folder / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(folder / "pipe")
    files, skipped = plan_task_dir(folder, max_bytes=1000)
    assert [f.rel for f in files] == ["answer.txt", "inner-link.txt", "sub/ok.txt", "result.json"]
    reasons = {s["path"]: s["reason"] for s in skipped}
    assert set(reasons) == {"big.bin", "leak.txt", "linked-dir", "pipe"}
    assert "cap" in reasons["big.bin"] and "outside" in reasons["leak.txt"]

    store = FakeStore()
    report = upload_task(store, UploadJob("bench/t1", folder, "r/bench/t1"), Redactor([]), 1000, RetryPolicy())
    assert report.ok and {s["path"] for s in report.skipped} == set(reasons)
    assert not any(b"OUTSIDE-MARKER" in data for data in store.objects.values())
    assert "r/bench/t1/big.bin" not in store.objects
    stored_result = json.loads(store.objects["r/bench/t1/result.json"])
    assert {s["path"] for s in stored_result["upload_skipped"]} == set(reasons)


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 4096])
def test_redact_stream_masks_secrets_across_chunk_boundaries(chunk: int) -> None:
    secrets = ["s3cr3t-value", "tok", "s3cr3t-value-longer"]
    rng = random.Random(chunk)
    parts = []
    for _ in range(200):
        parts.append(bytes(rng.choice(b"abcdefs3cr-tok") for _ in range(rng.randint(0, 12))))
        parts.append(rng.choice(secrets).encode())
    data = b"".join(parts)
    red = Redactor(secrets)
    out = io.BytesIO()
    redact_stream(io.BytesIO(data), out, red, chunk_bytes=chunk)
    assert out.getvalue() == red.bytes(data)
    assert not any(s.encode() in out.getvalue() for s in secrets)


def test_uploads_are_redacted_small_and_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_cloudeval.artifacts import uploader as uploader_mod

    monkeypatch.setattr(uploader_mod, "IN_MEMORY_BYTES", 64)  # the big file takes the streaming path
    secret = "hunter2-secret"
    folder = task_folder(tmp_path, files={"small.txt": f"x {secret} y".encode(),
                                          "large.log": (f"line {secret}\n" * 50).encode()})
    store = FakeStore()
    report = upload_task(store, UploadJob("bench/t1", folder, "r/bench/t1"), Redactor([secret]), 1 << 20,
                         RetryPolicy())
    assert report.ok
    assert store.objects["r/bench/t1/small.txt"] == f"x {MASK} y".encode()
    assert store.objects["r/bench/t1/large.log"] == (f"line {MASK}\n" * 50).encode()
    assert (folder / "small.txt").read_text() == f"x {secret} y"  # the local file is not touched


def test_sync_uploads_only_what_is_missing_and_never_a_complete_task(tmp_path: Path) -> None:
    store = FakeStore()
    folder = task_folder(tmp_path, files={"answer.txt": b"a", "agent.log": b"l"})
    store.objects["r/bench/t1/answer.txt"] = b"a"  # an earlier upload died after this file
    store.generations["r/bench/t1/answer.txt"] = 0
    report = upload_task(store, UploadJob("bench/t1", folder, "r/bench/t1", mode="sync"), Redactor([]), 1 << 20,
                         RetryPolicy())
    assert report.ok and report.unchanged == ["answer.txt"] and report.uploaded == ["agent.log", "result.json"]
    generations = dict(store.generations)
    again = upload_task(store, UploadJob("bench/t1", folder, "r/bench/t1", mode="sync"), Redactor([]), 1 << 20,
                        RetryPolicy())
    assert again.ok and again.uploaded == [] and store.generations == generations


def test_replace_hides_the_old_result_first_and_drops_stale_files(tmp_path: Path) -> None:
    store = FakeStore()
    for name in ("answer.txt", "old-only.txt", "result.json"):
        store.objects[f"r/bench/t1/{name}"] = b"old"
        store.generations[f"r/bench/t1/{name}"] = 0
    folder = task_folder(tmp_path, files={"answer.txt": b"new"})
    report = upload_task(store, UploadJob("bench/t1", folder, "r/bench/t1", mode="replace"), Redactor([]),
                         1 << 20, RetryPolicy())
    assert report.ok
    assert store.log[0] == ("delete", "r/bench/t1/result.json")
    assert store.log[-1] == ("delete", "r/bench/t1/old-only.txt")
    assert sorted(store.objects) == ["r/bench/t1/answer.txt", "r/bench/t1/result.json"]
    assert store.objects["r/bench/t1/answer.txt"] == b"new"


# ------------------------------------------------------------------------------------------------
# The gs:// store against the real emulator
# ------------------------------------------------------------------------------------------------
@pytest.mark.cloud
def test_gcs_store_contract(emulator: Any, tmp_path: Path) -> None:  # noqa: F811
    from pytest_cloudeval.artifacts.gcs import GcsStore

    store = GcsStore(URL, chunk_bytes=4 * 1024 * 1024)
    store.check_writable(".probe")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 * 1024 * 1024 + 5))  # above the SDK's 8 MiB multipart limit: resumable
    store.upload_file(big, "r1/b/t/big.bin")
    store.upload_bytes(b'{"a": 1}', "r1/b/t/result.json")
    assert [o.name for o in store.list("r1/")] == ["r1/b/t/big.bin", "r1/b/t/result.json"]
    assert emulator.read(BUCKET, f"{PREFIX}/r1/b/t/big.bin") == big.read_bytes()
    chunks = [p for method, p, _status in emulator.gate.requests if method == "PUT" and "upload_id" in p]
    assert len(chunks) == 3  # 4 MiB + 4 MiB + 5 bytes
    listed = {o.name: o for o in store.list("r1/b/t/")}
    assert listed["r1/b/t/big.bin"].size == big.stat().st_size and listed["r1/b/t/big.bin"].generation
    assert store.exists("r1/b/t/result.json") and not store.exists("r1/nothing")
    assert store.read_text("r1/b/t/result.json") == '{"a": 1}'
    store.download("r1/b/t/big.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    with pytest.raises(ObjectNotFound):
        store.read_text("r1/nothing")
    store.delete("r1/b/t/result.json")
    store.delete("r1/b/t/result.json")  # already gone: fine
    assert [o.name for o in store.list("r1/")] == ["r1/b/t/big.bin"]
    assert ".probe" not in emulator.objects(BUCKET)

    for status in (429, 503):
        emulator.gate.fail_next(1, status)
        with pytest.raises(TransientStoreError, match=str(status)):
            store.upload_bytes(b"x", "x")
    emulator.gate.deny_writes(BUCKET)
    with pytest.raises(StoreError, match="permission denied") as denied:
        store.upload_bytes(b"x", "x")
    assert not isinstance(denied.value, TransientStoreError)
    emulator.gate.clear()
    with pytest.raises(StoreError, match="does not exist") as missing:
        GcsStore("gs://no-such-bucket/p").check_writable(".probe")
    assert not isinstance(missing.value, TransientStoreError)
    emulator.stop()
    with pytest.raises(TransientStoreError):
        store.upload_bytes(b"x", "x")


def test_gs_urls_are_checked() -> None:
    from pytest_cloudeval.artifacts.gcs import parse_gs_url

    assert parse_gs_url("gs://my-bucket/a/b/") == ("my-bucket", "a/b")
    assert parse_gs_url("gs://my-bucket") == ("my-bucket", "")
    for bad in ("s3://b/x", "gs://UPPER/x", "gs://b", "gs://bucket/../x"):
        with pytest.raises(ValueError):
            parse_gs_url(bad)


def test_missing_sdk_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import google.cloud

    from pytest_cloudeval import builtins
    from pytest_cloudeval.artifacts.gcs import GcsStore
    from pytest_cloudeval.errors import MissingExtraError

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # never look for real credentials
    made_before = GcsStore("gs://bucket/x")
    monkeypatch.setitem(sys.modules, "google.cloud.storage", None)  # as if not installed
    monkeypatch.delattr(google.cloud, "storage", raising=False)
    # Found missing when the store is made (before any task), without importing the SDK.
    with pytest.raises(MissingExtraError, match=r"pip install 'pytest-cloudeval\[gcs\]'"):
        builtins.pytest_cloudeval_result_stores()["gs"]()("gs://bucket/x")
    # Gone after that (or broken on import): the first call says so as a store error.
    with pytest.raises(StoreError, match=r"'gcs' extra"):
        made_before.list()


# ------------------------------------------------------------------------------------------------
# Whole runs (pytester, real emulator)
# ------------------------------------------------------------------------------------------------
def make_usaco(root: Path, problems: dict[str, str | None]) -> Path:
    """A HAL-layout USACO benchmark: problem ``pN`` reads n and prints n + N (solution None: wrong one)."""
    bench = root / "bench"
    dataset = {}
    for pid, solution in problems.items():
        offset = int(pid.lstrip("p"))
        dataset[pid] = {"name": pid, "problem_id": pid, "problem_level": "bronze", "description": "print n + k",
                        "runtime_limit": 2, "memory_limit": 256, "num_tests": 1,
                        "solution_python3": solution if solution is not None else "print(0)"}
        tests = bench / "tests" / pid
        tests.mkdir(parents=True)
        (tests / "1.in").write_text("5\n")
        (tests / "1.out").write_text(f"{5 + offset}\n")
    (bench / "usaco.json").write_text(json.dumps(dataset))
    (bench / "benchmark.toml").write_text('format = "usaco"\ndataset = "usaco.json"\ntests_dir = "tests"\n')
    return bench


def right(pid: str) -> str:
    return f"print(int(input()) + {int(pid.lstrip('p'))})"


def run_plugin(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("bench", "-p", "no:cacheprovider", "--artifacts-url", URL, *args, timeout=180)


def stored(emulator: Any, run_id: str) -> dict[str, dict[str, Any]]:  # noqa: F811
    prefix = f"{PREFIX}/{run_id}/"
    return {name[len(prefix):]: item for name, item in emulator.objects(BUCKET, prefix).items()}


def read(emulator: Any, run_id: str, name: str) -> bytes:  # noqa: F811
    return bytes(emulator.read(BUCKET, f"{PREFIX}/{run_id}/{name}"))


@pytest.mark.cloud
def test_run_uploads_every_task_folder_and_the_run_files(pytester: pytest.Pytester, emulator: Any) -> None:  # noqa: F811
    make_usaco(pytester.path, {"p1": right("p1"), "p2": None})
    result = run_plugin(pytester, "--agent", "oracle", "--run-id", "layout", "-n", "0", "--junitxml", "out.xml")
    assert result.ret == 1, result.stdout.str()  # p2's reference is wrong: a failed task
    objects = stored(emulator, "layout")
    task_files = {"agent.log", "answer.txt", "judge.json", "result.json", "sandbox.json"}
    assert set(objects) == {f"bench/{p}/{f}" for p in ("p1", "p2") for f in task_files} | {
        "run.json", "junit.xml", "summary.txt", "report.html"}
    local = pytester.path / "results" / "layout"
    for name in objects:
        if name.startswith("bench/"):
            assert read(emulator, "layout", name) == (local / name).read_bytes(), name
    for pid in ("p1", "p2"):  # result.json is written after the rest of its folder
        generations = {f: int(objects[f"bench/{pid}/{f}"]["generation"]) for f in task_files}
        assert generations["result.json"] == max(generations.values())
    assert json.loads(read(emulator, "layout", "bench/p1/result.json"))["outcome"] == "passed"
    assert json.loads(read(emulator, "layout", "bench/p2/result.json"))["outcome"] == "failed"
    assert json.loads(read(emulator, "layout", "bench/p2/judge.json"))["verdict"] == "WRONG_ANSWER"
    assert read(emulator, "layout", "bench/p1/answer.txt").decode() == right("p1")
    run = json.loads(read(emulator, "layout", "run.json"))
    assert run["uploads"]["failed"] == {} and run["uploads"]["tasks_uploaded"] == 2
    assert run["summary"]["passed"] == 1 and run["summary"]["failed"] == 1
    cases = ET.fromstring(read(emulator, "layout", "junit.xml")).iter("testcase")
    assert sorted(c.get("name", "") for c in cases) == ["p1", "p2"]
    assert "1 passed" in read(emulator, "layout", "summary.txt").decode()
    result.stdout.fnmatch_lines(["*uploads: 2 task folders (10 files, 0 retries) to gs://results/runs/ci/layout*"])


SECRET_AGENT = '''
import os, sys

def run(tasks, **kwargs):
    token = os.environ["SERVICE_TOKEN"]
    print("agent sees", token)
    print("stderr too", token, file=sys.stderr)
    return {tid: "# " + token + "\\nprint(int(input()) + %d)" % int(tid[1:]) for tid in tasks}
'''

SECRET_CONFTEST = '''
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_cloudeval_task_finished(result, task_dir, settings):
    # Files that escaped the runner's redaction: the upload must redact or drop them.
    (task_dir / "raw-notes.txt").write_text("leaked " + settings.secrets["SERVICE_TOKEN"])
    (task_dir / "huge.bin").write_bytes(b"0" * 4096)
    (task_dir / "escape.txt").symlink_to(task_dir.parents[3] / "outside.txt")
'''


@pytest.mark.cloud
@pytest.mark.parametrize("workers", ["0", "2"])  # uploaded by the run itself / by the controller for its workers
def test_no_uploaded_object_contains_a_secret(pytester: pytest.Pytester, emulator: Any, workers: str) -> None:  # noqa: F811
    secret = "tok-9f8e7d6c5b4a-SECRET"
    make_usaco(pytester.path, {"p1": right("p1"), "p2": right("p2")})
    pytester.path.joinpath("agent.py").write_text(SECRET_AGENT)
    pytester.path.joinpath("conftest.py").write_text(SECRET_CONFTEST)
    pytester.path.joinpath("secrets.env").write_text(f"SERVICE_TOKEN={secret}\n")
    pytester.path.joinpath("outside.txt").write_text("OUTSIDE-MARKER")
    result = run_plugin(pytester, "--agent", "agent.py:run", "--secrets-env", "secrets.env", "--run-id", "sec",
                        "-n", workers, "--upload-max-bytes", "2k", "--junitxml", "out.xml")
    assert result.ret == 0, result.stdout.str()
    objects = stored(emulator, "sec")
    assert "bench/p1/raw-notes.txt" in objects and "bench/p1/agent.log" in objects
    contents = {name: read(emulator, "sec", name) for name in objects}
    assert not [name for name, data in contents.items() if secret.encode() in data]
    assert MASK.encode() in contents["bench/p1/raw-notes.txt"] and MASK.encode() in contents["bench/p1/agent.log"]
    assert not [name for name, data in contents.items() if b"OUTSIDE-MARKER" in data]
    assert "bench/p1/huge.bin" not in objects and "bench/p1/escape.txt" not in objects
    skipped = json.loads(contents["run.json"])["uploads"]["skipped_files"]["bench/p1"]
    assert {s["path"] for s in skipped} == {"huge.bin", "escape.txt"}
    result.stdout.fnmatch_lines(["*upload skipped files of bench/p1: escape.txt (symlink to outside*"])


@pytest.mark.cloud
def test_xdist_runs_upload_every_task_folder_once(pytester: pytest.Pytester, emulator: Any) -> None:  # noqa: F811
    make_usaco(pytester.path, {f"p{i}": right(f"p{i}") for i in range(1, 5)})
    result = run_plugin(pytester, "--agent", "oracle", "--run-id", "dist", "-n", "2")
    assert result.ret == 0, result.stdout.str()
    objects = stored(emulator, "dist")
    assert {f"bench/p{i}/result.json" for i in range(1, 5)} <= set(objects)
    workers = {json.loads(read(emulator, "dist", f"bench/p{i}/result.json"))["worker"].split("@")[0]
               for i in range(1, 5)}
    assert workers == {"gw0", "gw1"}
    uploads = json.loads(read(emulator, "dist", "run.json"))["uploads"]
    assert uploads["tasks_uploaded"] == 4 and uploads["failed"] == {} and uploads["lost_workers"] == []


@pytest.mark.cloud
def test_resume_from_the_bucket_alone(pytester: pytest.Pytester, emulator: Any) -> None:  # noqa: F811
    import shutil

    make_usaco(pytester.path, {"p1": right("p1"), "p2": None, "p3": right("p3"), "p4": right("p4")})
    first = run_plugin(pytester, "--agent", "oracle", "--run-id", "res", "-n", "0", "-k", "not p3")
    assert first.ret == 1, first.stdout.str()
    # p4's attempt errored (as after a lost sandbox): a stored error is run again.
    errored = json.loads(read(emulator, "res", "bench/p4/result.json")) | {"outcome": "error", "verdict": "ERROR",
                                                                          "error_kind": "sandbox"}
    emulator.write(BUCKET, f"{PREFIX}/res/bench/p4/result.json", json.dumps(errored).encode())
    before = {n: o["generation"] for n, o in stored(emulator, "res").items()}
    shutil.rmtree(pytester.path / "results")  # a fresh machine

    second = run_plugin(pytester, "--agent", "oracle", "--resume", "res", "-n", "2")
    assert second.ret == 1, second.stdout.str()  # p2 stays failed
    second.stdout.fnmatch_lines(["*2 finished tasks read from the store*", "*2 kept from the resumed run*"])
    after = {n: o["generation"] for n, o in stored(emulator, "res").items()}
    for name, generation in before.items():
        if name.startswith(("bench/p1/", "bench/p2/")):
            assert after[name] == generation, f"{name} was rewritten"
    assert {n for n in after if n.startswith(("bench/p1/", "bench/p2/"))} == {
        n for n in before if n.startswith(("bench/p1/", "bench/p2/"))}
    assert json.loads(read(emulator, "res", "bench/p4/result.json"))["outcome"] == "passed"
    assert json.loads(read(emulator, "res", "bench/p3/result.json"))["outcome"] == "passed"
    local = pytester.path / "results" / "res" / "bench"
    assert (local / "p3" / "answer.txt").is_file() and (local / "p4" / "answer.txt").is_file()  # these ran
    assert not (local / "p1" / "answer.txt").exists() and not (local / "p2" / "answer.txt").exists()
    run = json.loads(read(emulator, "res", "run.json"))
    assert {k: v["resumed"] for k, v in run["tasks"].items()} == {
        "bench/p1": True, "bench/p2": True, "bench/p3": False, "bench/p4": False}
    assert run["tasks"]["bench/p2"]["outcome"] == "failed"


KILLER_AGENT = '''
import json, os, signal, time, urllib.request

def run(tasks, emulator, pid, prefix, **kwargs):
    (tid,) = tasks
    if tid == "p3":
        # The bucket dies once p1 and p2 are safely stored.
        deadline = time.time() + 30
        while time.time() < deadline:
            url = emulator + "/storage/v1/b/results/o?prefix=" + prefix
            names = {i["name"] for i in json.load(urllib.request.urlopen(url)).get("items", [])}
            if {prefix + "bench/p1/result.json", prefix + "bench/p2/result.json"} <= names:
                break
            time.sleep(0.05)
        os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.2)
    return {tid: "print(int(input()) + %d)" % int(tid[1:])}
'''


@pytest.mark.cloud
def test_bucket_dies_mid_run_then_resume_completes_the_upload(pytester: pytest.Pytester, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_cloudeval.testing.gcs import GcsEmulator

    make_usaco(pytester.path, {f"p{i}": right(f"p{i}") for i in range(1, 5)})
    pytester.path.joinpath("killer.py").write_text(KILLER_AGENT)
    with GcsEmulator(buckets=[BUCKET], data_dir=tmp_path / "gcs") as emu:
        for name, value in emu.env().items():
            monkeypatch.setenv(name, value)
        started = time.monotonic()
        result = run_plugin(pytester, "--agent", "killer.py:run", "-A", f"emulator={emu.endpoint}",
                            "-A", f"pid={emu.pid}", "-A", f"prefix={PREFIX}/cut/", "--run-id", "cut", "-n", "0",
                            "--upload-retries", "2")
        elapsed = time.monotonic() - started
        assert not emu.running
        assert result.ret == 1, result.stdout.str()
        assert "4 passed" in result.stdout.str()
        result.stdout.fnmatch_lines(["*UPLOAD FAILED bench/p3: *gave up after 3 tries*",
                                     "*UPLOAD FAILED bench/p4: *gave up after 3 tries*",
                                     "*rerun with --resume cut*", "*UPLOAD FAILED cut/run.json*"])
        assert elapsed < 60
        local = pytester.path / "results" / "cut"
        run = json.loads((local / "run.json").read_text())
        assert sorted(run["uploads"]["failed"]) == ["bench/p3", "bench/p4"]
        assert run["exit_status"] == 1
        for pid in ("p1", "p2", "p3", "p4"):
            assert {p.name for p in (local / "bench" / pid).iterdir()} >= {"answer.txt", "judge.json", "result.json"}

        emu.restart()
        objects = stored(emu, "cut")
        assert "bench/p2/result.json" in objects and "bench/p3/result.json" not in objects
        kept = {n: o["generation"] for n, o in objects.items()}
        again = run_plugin(pytester, "--agent", "killer.py:run", "-A", "emulator=x", "-A", "pid=0", "-A",
                           "prefix=x", "--resume", "cut", "-n", "0")
        assert again.ret == 0, again.stdout.str()
        objects = stored(emu, "cut")
        for pid in ("p1", "p2", "p3", "p4"):
            assert {f"bench/{pid}/{f}" for f in ("answer.txt", "judge.json", "result.json", "agent.log")} <= set(objects)
            assert read(emu, "cut", f"bench/{pid}/answer.txt") == (local / "bench" / pid / "answer.txt").read_bytes()
        for name, generation in kept.items():
            assert objects[name]["generation"] == generation, f"{name} was rewritten"
        uploads = json.loads(read(emu, "cut", "run.json"))["uploads"]
        assert uploads["failed"] == {} and sorted(uploads["synced_from_local"]) == ["bench/p3", "bench/p4"]


@pytest.mark.cloud
@pytest.mark.parametrize("case", ["missing", "read-only"])
def test_unusable_bucket_fails_before_any_task(pytester: pytest.Pytester, emulator: Any, case: str) -> None:  # noqa: F811
    make_usaco(pytester.path, {"p1": right("p1")})
    if case == "read-only":
        emulator.gate.deny_writes(BUCKET)
        url, reason = URL, "permission denied"
    else:
        url, reason = "gs://no-such-bucket/x", "bucket 'no-such-bucket' does not exist"
    result = pytester.runpytest_subprocess("bench", "-p", "no:cacheprovider", "--agent", "oracle", "--run-id",
                                           "nope", "--artifacts-url", url, timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--artifacts-url {url}: the store is not usable, no task was started*{reason}*"])
    assert not (pytester.path / "results" / "nope" / "bench").exists()
    assert "Traceback" not in result.stderr.str()


def test_unknown_store_scheme_is_a_usage_error(pytester: pytest.Pytester) -> None:
    make_usaco(pytester.path, {"p1": right("p1")})
    result = pytester.runpytest_subprocess("bench", "--agent", "oracle", "--artifacts-url", "s3://b/x",
                                           "--upload-max-bytes", "1m", timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--artifacts-url s3://b/x: unknown store (known: gs://)*"])


def test_bad_upload_option_names_its_source(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    make_usaco(pytester.path, {"p1": right("p1")})
    monkeypatch.setenv("CLOUDEVAL_UPLOAD_MAX_BYTES", "lots")
    result = pytester.runpytest_subprocess("bench", "--agent", "oracle", "--artifacts-url", URL, timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*environment variable CLOUDEVAL_UPLOAD_MAX_BYTES: invalid value 'lots'*"])

