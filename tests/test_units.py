"""Unit tests of the small pure pieces: output capping, redaction, summaries, env files, result keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cloudeval.capture import CappedBuffer
from pytest_cloudeval.model import TaskResult
from pytest_cloudeval.redact import MASK, Redactor
from pytest_cloudeval.report import format_summary, summarize
from pytest_cloudeval.results import (
    atomic_write_json,
    finished_results,
    is_safe_name,
    load_results,
    result_dirname,
)
from pytest_cloudeval.settings import parse_env_file


def test_capped_buffer_keeps_head_and_tail() -> None:
    buf = CappedBuffer(head=10, tail=10)
    for i in range(1000):
        buf.write(f"{i:05d}\n".encode())
    text = buf.getvalue().decode()
    assert text.startswith("00000\n0000")
    assert text.endswith("00999\n")
    assert "bytes cut, 6000 bytes in all" in text
    assert buf.truncated and buf.total == 6000
    assert len(buf._tail) <= 20  # memory stays bounded by the caps


def test_capped_buffer_small_output_untouched() -> None:
    buf = CappedBuffer(head=100, tail=100)
    buf.write(b"hello")
    assert buf.getvalue() == b"hello" and not buf.truncated


def test_redactor_masks_longest_first_and_nested() -> None:
    red = Redactor(["abc123", "abc123xyz"])
    assert red.text("key=abc123xyz and abc123") == f"key={MASK} and {MASK}"
    assert red.bytes(b"abc123") == MASK.encode()
    assert red.obj({"a": ["abc123", 5], "abc123": None}) == {"a": [MASK, 5], MASK: None}
    assert not Redactor([]) and Redactor(["x"])


def test_env_file_parsing(tmp_path: Path) -> None:
    path = tmp_path / "s.env"
    path.write_text("# comment\n\nexport A=1\nB = 'two words'\nC=\"q\"\n")
    assert parse_env_file(path) == {"A": "1", "B": "two words", "C": "q"}
    path.write_text("NOEQUALS\n")
    with pytest.raises(pytest.UsageError, match=r"s.env:1: expected KEY=VALUE"):
        parse_env_file(path)
    path.write_text("1BAD=x\n")
    with pytest.raises(pytest.UsageError, match="not a variable name"):
        parse_env_file(path)
    with pytest.raises(pytest.UsageError, match="does not exist"):
        parse_env_file(tmp_path / "missing.env")


@pytest.mark.parametrize("name,ok", [("9001_bronze_x", True), ("a.b-c", True), ("..", False), ("../x", False),
                                     ("a/b", False), (".hidden", False), ("", False), ("x" * 201, False)])
def test_safe_names(name: str, ok: bool) -> None:
    assert is_safe_name(name) is ok


def test_result_dirname() -> None:
    assert result_dirname("t", 1, 1) == "t"
    assert result_dirname("t", 2, 3) == "t@r2"


def test_load_and_finished_results(tmp_path: Path) -> None:
    for key, outcome in (("a", "passed"), ("b", "failed"), ("c", "error")):
        atomic_write_json(tmp_path / "bench" / key / "result.json",
                          TaskResult(task_id=key, benchmark="bench", agent="x", outcome=outcome, verdict="V").to_dict())
    (tmp_path / "bench" / "d").mkdir()
    (tmp_path / "bench" / "d" / "result.json").write_text("{truncated")
    assert set(load_results(tmp_path)) == {"bench/a", "bench/b", "bench/c"}
    assert set(finished_results(tmp_path)) == {"bench/a", "bench/b"}


def test_task_result_from_dict_validates() -> None:
    with pytest.raises(ValueError, match="missing"):
        TaskResult.from_dict({"task_id": "x"})
    with pytest.raises(ValueError, match="unknown outcome"):
        TaskResult.from_dict({"task_id": "x", "benchmark": "b", "agent": "a", "outcome": "great", "verdict": "V"})


def test_summary_counts_and_rates() -> None:
    rows = [
        {"benchmark": "u", "agent": "a", "outcome": "passed", "score": 1.0, "duration_s": 2, "tokens_in": 10,
         "cost_usd": 0.5, "key": "u/1"},
        {"benchmark": "u", "agent": "a", "outcome": "failed", "score": 0.5, "duration_s": 1, "tokens_in": 5,
         "key": "u/2"},
        {"benchmark": "u", "agent": "a", "outcome": "error", "error_kind": "sandbox", "duration_s": 3, "key": "u/3"},
        {"benchmark": "u", "agent": "a", "outcome": "skipped", "duration_s": 0, "key": "u/4"},
        {"benchmark": "t", "agent": "a", "outcome": "passed", "score": 1, "resumed": True, "duration_s": 9,
         "key": "t/1"},
    ]
    s = summarize(rows)
    assert (s["passed"], s["failed"], s["error"], s["skipped"], s["resumed"]) == (2, 1, 1, 1, 1)
    assert s["pass_rate"] == 0.5
    assert s["errors_by_kind"] == {"sandbox": 1}
    assert s["tokens_in"] == 15 and s["cost_usd"] == 0.5
    assert [x["key"] for x in s["slowest"]][:1] == ["u/3"]  # resumed tasks did not run now
    by = {g["benchmark"]: g for g in s["by_benchmark"]}
    assert by["u"]["pass_rate"] == pytest.approx(1 / 3, abs=1e-4) and by["u"]["mean_score"] == 0.75
    lines = format_summary(s, where="results/x")
    assert lines[-1] == "results: results/x" and any("errors by kind: sandbox 1" in line for line in lines)


def test_shipped_task_folders_of_repeats_are_unpacked(tmp_path: Path) -> None:
    """A remote run with --repeat > 1 ships folders named ``id@rN``: they must land, and escapes must not."""
    import base64
    import io
    import tarfile

    from pytest_cloudeval.results import is_safe_dirname, unpack_task_dir
    from pytest_cloudeval.settings import Settings

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b'{"outcome": "passed"}'
        info = tarfile.TarInfo("result.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    payload = base64.b64encode(buf.getvalue()).decode("ascii")
    settings = Settings(results_dir=str(tmp_path), run_id="r1")
    task_dir = unpack_task_dir(settings, {"key": "bench/p1@r2"}, payload)
    assert task_dir == tmp_path / "r1" / "bench" / "p1@r2"
    assert (task_dir / "result.json").read_bytes() == data
    for bad in ("bench/..@r2", "bench/p1@r02", "bench/p1@rx", "../bench/p1@r2", "bench/@r2"):
        assert unpack_task_dir(settings, {"key": bad}, payload) is None, bad
    assert is_safe_dirname("p1@r10") and not is_safe_dirname("p1@r")
