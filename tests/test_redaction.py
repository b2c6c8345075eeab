"""Attacks on secret redaction (issue 9, items 4, 7, 8, 9): a secret named like an outcome, a secret
that JSON/XML/URL escaping would hide from a plain search, a 64 MiB file of secrets, a secret in file
and folder names. Each test fails if its attack works again."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from pytest_cloudeval.artifacts.uploader import RetryPolicy, UploadJob, upload_task
from pytest_cloudeval.redact import MASK, STRUCTURED_FIELDS, Redactor, encodings, unsafe_reason
from pytest_cloudeval.results import TEMP_PREFIX, redact_tree, remove_temporaries, write_redacted
from tests.test_gcs_store import BUCKET, PREFIX, URL, FakeStore, make_usaco, right

# A secret with a quote, a backslash and non-ASCII: JSON, repr, XML and URLs all spell it differently.
ESCAPED_SECRET = 'q"u\\ote-\u00f6-S\u00ebcret-42'


def spellings(secret: str) -> set[bytes]:
    """Every way our writers could spell ``secret`` (computed here independently of redact.py)."""
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1], repr(secret)[1:-1],
             secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"),
             quote(secret, safe=""), quote(secret), quote_plus(secret)}
    return {f.encode() for f in forms}


def leaks(data: bytes, secret: str) -> list[bytes]:
    return [form for form in spellings(secret) if form in data]


def files_with(root: Path, secret: str, skip: tuple[str, ...] = ("secrets.env",)) -> dict[str, list[bytes]]:
    found = {}
    for path in root.rglob("*"):
        if path.name in skip:
            continue
        hit = leaks(str(path.relative_to(root)).encode(), secret)
        if path.is_file() and not path.is_symlink():
            hit += leaks(path.read_bytes(), secret)
        if hit:
            found[str(path.relative_to(root))] = hit
    return found


# -- units -----------------------------------------------------------------------------------------

def test_every_encoding_of_a_secret_is_masked() -> None:
    red = Redactor([ESCAPED_SECRET])
    for form in spellings(ESCAPED_SECRET):
        assert red.bytes(b"<" + form + b">") == b"<" + MASK.encode() + b">", form
        assert red.text("<" + form.decode() + ">") == f"<{MASK}>", form
    assert encodings(ESCAPED_SECRET) >= {f.decode() for f in spellings(ESCAPED_SECRET)}
    # Redacting before serializing, as the runner does, leaves nothing to find afterwards either.
    document = json.dumps(red.obj({"answer": [ESCAPED_SECRET, {"k": "x" + ESCAPED_SECRET}]}))
    assert not leaks(document.encode(), ESCAPED_SECRET)


def test_a_secret_cut_in_two_by_a_capped_log_is_masked_on_both_sides(tmp_path: Path) -> None:
    """Output caps keep a head and a tail: a secret across either edge left half of it in the log."""
    from pytest_cloudeval.capture import CappedBuffer

    secret = "sk-live-0123456789abcdef"
    buf = CappedBuffer(10, 10)
    buf.write(b"xxxxx" + secret.encode() + b"y" * 100 + secret.encode() + b"zzzz")
    raw = buf.getvalue()
    assert b"sk-li" in raw and b"abcdef" in raw  # the attack: both halves survive the cut
    red = Redactor([secret])
    for clean in (red.bytes(raw), red.text(raw.decode()).encode()):
        assert b"sk-li" not in clean and b"abcdef" not in clean and b"bytes cut" in clean
    write_redacted(io.BytesIO(raw), tmp_path / "log", red)
    assert b"sk-li" not in (tmp_path / "log").read_bytes()


@pytest.mark.parametrize("value", ["failed", "passed", "PASSED", "error", "true", "null", "WRONG_ANSWER", "the",
                                   "abc", "", "outcome", "***REDACTED***", "REDACTED", "RONG_ANS", "ailed",
                                   "2026-12", "123456"])
def test_unsafe_secret_values_are_named_unsafe(value: str) -> None:
    assert unsafe_reason(value) is not None


@pytest.mark.parametrize("value", ["zq-Pin-7731", "12345678", "sk-live-abcdef", ESCAPED_SECRET])
def test_good_secret_values_are_accepted(value: str) -> None:
    assert unsafe_reason(value) is None


def test_result_redaction_never_touches_the_plugins_own_fields() -> None:
    red = Redactor(["failed", "RONG_ANS", "bench"])  # the constructor takes anything; settings refuse
    result = {"outcome": "failed", "verdict": "WRONG_ANSWER", "task_id": "p1", "benchmark": "bench",
              "key": "bench/p1", "score": 0.0, "message": "WRONG_ANSWER: failed", "metrics": {"note": "bench"}}
    out = red.result(result)
    assert {k: out[k] for k in ("outcome", "verdict", "task_id", "benchmark", "key", "score")} == {
        "outcome": "failed", "verdict": "WRONG_ANSWER", "task_id": "p1", "benchmark": "bench", "key": "bench/p1",
        "score": 0.0}
    assert out["message"] == f"W{MASK}WER: {MASK}" and out["metrics"] == {"note": MASK}
    assert {"outcome", "verdict", "score", "task_id", "run_id", "started_at"} <= STRUCTURED_FIELDS


@pytest.mark.slow
def test_a_64_mib_file_is_redacted_not_kept_raw(tmp_path: Path) -> None:
    """Item 8: copy limit "over 64 MiB", redaction limit "under 64 MiB": a file of exactly 64 MiB was
    kept raw. Every file is redacted whatever its size, streamed."""
    secret = "s3cr3t-Sixty-Four"
    line = (secret + "\n").encode()
    size = 64 * 1024 * 1024
    data = (line * (size // len(line) + 1))[:size]
    task = tmp_path / "task"
    (task / "logs" / "artifacts").mkdir(parents=True)
    (task / "logs" / "artifacts" / "big.log").write_bytes(data)
    del data
    assert redact_tree(task, Redactor([secret])) == []
    with (task / "logs" / "artifacts" / "big.log").open("rb") as f:
        while block := f.read(1 << 20):
            assert secret.encode()[:-3] not in block.replace(MASK.encode(), b"")
    assert not list(task.rglob(f"{TEMP_PREFIX}*"))


def test_secret_in_file_and_folder_names_is_redacted_on_disk_and_in_the_bucket(tmp_path: Path) -> None:
    """Item 9: names are redacted in the results folder and in object names (and upload reports)."""
    secret = ESCAPED_SECRET.replace('"', "").replace("\\", "")  # a legal file name
    red = Redactor([secret])
    task = tmp_path / "bench" / "t1"
    (task / f"dir-{secret}").mkdir(parents=True)
    (task / f"dir-{secret}" / f"leak-{secret}.txt").write_text(f"x {secret}")
    (task / f"{quote(secret, safe='')}.log").write_text("url-encoded name")
    (task / "result.json").write_text(json.dumps({"outcome": "passed"}))
    redact_tree(task, red)
    assert files_with(tmp_path, secret) == {}
    assert (task / f"dir-{MASK}" / f"leak-{MASK}.txt").read_text() == f"x {MASK}"

    # The uploader redacts names too, even for a folder nobody redacted first.
    raw = tmp_path / "raw" / "t1"
    (raw / f"d-{secret}").mkdir(parents=True)
    (raw / f"d-{secret}" / "f.txt").write_text("content")
    (raw / f"big-{secret}.bin").write_bytes(b"0" * 4096)
    (raw / "result.json").write_text("{}")
    store = FakeStore()
    report = upload_task(store, UploadJob("bench/t1", raw, "r/bench/t1"), red, 1024, RetryPolicy())
    assert report.ok, report.error
    names = " ".join(store.objects) + json.dumps(report.to_dict(), ensure_ascii=False)
    assert not leaks(names.encode(), secret) and not leaks(json.dumps(report.to_dict()).encode(), secret)
    assert f"r/bench/t1/d-{MASK}/f.txt" in store.objects
    assert not any(leaks(data, secret) for data in store.objects.values())


def test_temporaries_are_never_uploaded_and_go_on_resume(tmp_path: Path) -> None:
    """Item 10: what a killed run leaves under a temporary name is not uploaded, and is removed."""
    task = tmp_path / "run" / "bench" / "t1"
    task.mkdir(parents=True)
    (task / f"{TEMP_PREFIX}abc").write_text("half-written")
    (task / f"{TEMP_PREFIX}logs").mkdir()
    (task / f"{TEMP_PREFIX}logs" / "x.txt").write_text("staged")
    (task / "result.json").write_text("{}")
    store = FakeStore()
    assert upload_task(store, UploadJob("bench/t1", task, "r/bench/t1"), Redactor([]), 1 << 20, RetryPolicy()).ok
    assert list(store.objects) == ["r/bench/t1/result.json"]
    assert remove_temporaries(tmp_path / "run") == 2
    assert sorted(p.name for p in task.iterdir()) == ["result.json"]


def test_write_redacted_gives_the_final_name_only_to_redacted_content(tmp_path: Path) -> None:
    class Exploding:
        """A source that dies mid-copy, like a kill during copy-back."""

        def __init__(self) -> None:
            self.sent = False

        def read(self, n: int = -1) -> bytes:
            if self.sent:
                raise OSError("connection to the engine lost")
            self.sent = True
            return b"first block with s3cr3t-Copy-Back in it\n"

    target = tmp_path / "logs" / "agent.log"
    with pytest.raises(OSError):
        write_redacted(Exploding(), target, Redactor(["s3cr3t-Copy-Back"]))  # type: ignore[arg-type]
    assert not target.exists() and list(target.parent.iterdir()) == []


# -- whole runs ------------------------------------------------------------------------------------

WRONG_AGENT = '''
def run(tasks, **kwargs):
    return {tid: "print(0)" for tid in tasks}
'''


@pytest.mark.parametrize("source", ["secrets-env", "pass-env"])
@pytest.mark.parametrize("value", ["failed", "passed", "xq7", "true"])
def test_a_secret_named_like_an_outcome_is_refused(pytester: pytest.Pytester, source: str, value: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 4: PIN=failed used to rewrite every outcome "failed" and turn wrong answers into passes."""
    make_usaco(pytester.path, {"p1": right("p1"), "p2": right("p2")})
    pytester.path.joinpath("agent.py").write_text(WRONG_AGENT)
    if source == "secrets-env":
        pytester.path.joinpath("secrets.env").write_text(f"PIN={value}\n")
        args = ["--secrets-env", "secrets.env"]
    else:
        monkeypatch.setenv("PIN", value)
        args = ["--pass-env", "PIN"]
    res = pytester.runpytest_subprocess("bench", "--agent", "agent.py:run", *args, "-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.USAGE_ERROR, res.stdout.str()
    err = res.stderr.str()
    assert "secret PIN cannot be redacted safely" in err, err
    if value == "xq7":
        assert "xq7" not in err + res.stdout.str()  # the variable is named, never its value
    assert not (pytester.path / "results").exists() or not list((pytester.path / "results").rglob("result.json"))


@pytest.mark.parametrize("value", ["RONG_ANS", "ailed", "1234567"])
def test_a_secret_inside_the_plugins_own_words_is_refused(pytester: pytest.Pytester, value: str) -> None:
    """Item 4: a secret that occurs inside the plugin's own words ("RONG_ANS" in WRONG_ANSWER) or
    numbers would rewrite verdicts or corrupt JSON numbers wherever bytes are redacted."""
    make_usaco(pytester.path, {"p1": right("p1")})
    pytester.path.joinpath("secrets.env").write_text(f"PIN={value}\n")
    res = pytester.runpytest_subprocess("bench", "--agent", "oracle", "--secrets-env", "secrets.env",
                                        "-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.USAGE_ERROR, res.stdout.str()
    assert "secret PIN cannot be redacted safely" in res.stderr.str()


def test_wrong_answers_stay_failures_with_a_secret(pytester: pytest.Pytester) -> None:
    """Item 4, end to end: with an accepted secret, wrong answers are failures everywhere."""
    make_usaco(pytester.path, {"p1": right("p1"), "p2": right("p2"), "p3": right("p3")})
    pytester.path.joinpath("agent.py").write_text(WRONG_AGENT)
    pytester.path.joinpath("secrets.env").write_text("PIN=zq-Pin-7731\n")
    res = pytester.runpytest_subprocess("bench", "--agent", "agent.py:run", "--secrets-env", "secrets.env",
                                        "--run-id", "r", "-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.TESTS_FAILED, res.stdout.str()
    res.assert_outcomes(failed=3)
    run_dir = pytester.path / "results" / "r"
    for pid in ("p1", "p2", "p3"):
        result = json.loads((run_dir / "bench" / pid / "result.json").read_text())
        assert (result["outcome"], result["verdict"]) == ("failed", "WRONG_ANSWER")
        assert json.loads((run_dir / "bench" / pid / "judge.json").read_text())["verdict"] == "WRONG_ANSWER"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["summary"]["failed"] == 3 and run["summary"]["passed"] == 0
    assert {t["verdict"] for t in run["tasks"].values()} == {"WRONG_ANSWER"}


def test_short_secret_looking_environment_variables_are_named_in_a_warning(pytester: pytest.Pytester,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    make_usaco(pytester.path, {"p1": right("p1")})
    monkeypatch.setenv("SHORT_API_KEY", "k3y9")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # a switch, not a secret: no warning
    res = pytester.runpytest_subprocess("bench", "--agent", "oracle", "-p", "no:cacheprovider")
    assert res.ret == 0, res.stdout.str()
    out = res.stdout.str()
    assert "not redacting SHORT_API_KEY" in out and "TOKENIZERS_PARALLELISM" not in out
    assert "k3y9" not in out


ESCAPE_AGENT = '''
import os

def run(tasks, **kwargs):
    token = os.environ["SERVICE_TOKEN"]
    out = {}
    for tid in tasks:
        if tid == "p1":  # a structured answer: answer.json (the judge calls it a bad answer)
            out[tid] = {"answer": {"code": "print(1)", "note": token, "nested": [token]},
                        "metrics": {"note": token}}
        else:  # a submission that raises with the secret: judge.json's detail holds it
            out[tid] = "raise ValueError(%r)" % token
    print("agent prints", token)
    return out
'''


@pytest.mark.cloud
def test_an_escaped_secret_leaks_nowhere_locally_nor_in_the_bucket(pytester: pytest.Pytester,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 7: a secret with a quote, a backslash and an umlaut leaked as \\" \\\\ \\u00f6 in answer.json
    and judge.json, locally and in the bucket; also its names and the run files."""
    from pytest_cloudeval.testing.gcs import GcsEmulator

    make_usaco(pytester.path, {"p1": right("p1"), "p2": right("p2")})
    pytester.path.joinpath("agent.py").write_text(ESCAPE_AGENT)
    pytester.path.joinpath("secrets.env").write_text(f"SERVICE_TOKEN='{ESCAPED_SECRET}'\n", encoding="utf-8")
    with GcsEmulator(buckets=[BUCKET], gate=True) as emu:
        for name, value in emu.env().items():
            monkeypatch.setenv(name, value)
        res = pytester.runpytest_subprocess(
            "bench", "--agent", "agent.py:run", "--secrets-env", "secrets.env", "--run-id", "esc", "-n", "0",
            "--artifacts-url", URL, "--junitxml", "out.xml", "-p", "no:cacheprovider", timeout=180)
        objects = {name: bytes(emu.read(BUCKET, name)) for name in emu.objects(BUCKET, f"{PREFIX}/esc/")}
    assert res.ret == pytest.ExitCode.TESTS_FAILED, res.stdout.str()
    run_dir = pytester.path / "results" / "esc" / "bench"
    assert (run_dir / "p1" / "answer.json").exists() and (run_dir / "p2" / "judge.json").exists()
    judge = json.loads((run_dir / "p2" / "judge.json").read_text())
    assert judge["verdict"] == "RUNTIME_ERROR" and MASK in json.dumps(judge)
    assert MASK in json.loads((run_dir / "p1" / "answer.json").read_text())["note"]
    assert files_with(pytester.path, ESCAPED_SECRET) == {}
    assert not leaks((res.stdout.str() + res.stderr.str()).encode(), ESCAPED_SECRET)
    ET.parse(pytester.path / "out.xml")  # still well-formed after redaction
    assert any(name.endswith("bench/p1/answer.json") for name in objects), sorted(objects)
    assert {name: leaks(data, ESCAPED_SECRET) for name, data in objects.items()
            if leaks(data, ESCAPED_SECRET) or leaks(name.encode(), ESCAPED_SECRET)} == {}
