"""report.html: the summary maths, escaping, the page of a real run in headless Chromium (no console
error, no network, filters in the URL, details, timeline bars, no script from task output runs, a
2,000-task page loads in seconds), and the page rebuilt from a gs:// run equals the local one."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from pytest_cloudeval.redact import Redactor
from pytest_cloudeval.report_cli import main as report_main
from pytest_cloudeval.reporters.base import ReportContext
from pytest_cloudeval.reporters.html import json_for_script, render_html
from pytest_cloudeval.run_summary import from_stored
from pytest_cloudeval.stats import compare, diff_interval, mean_interval, pass_at_k, wilson
from pytest_cloudeval.stored import read_local
from tests.report_factory import PWN, synth_run

REPO = Path(__file__).resolve().parent.parent
USACO = REPO / "benchmarks" / "usaco"
SCREENSHOT = REPO / "docs" / "report-screenshot.png"


# -- the maths ------------------------------------------------------------------------------------
def test_wilson_interval_matches_published_values() -> None:
    # Newcombe (1998), table I: 81/263 -> 0.2553 to 0.3662; 0/10 -> 0 to 0.2775.
    low, high = wilson(81, 263)  # type: ignore[misc]
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    low, high = wilson(0, 10)  # type: ignore[misc]
    assert low == 0.0 and round(high, 4) == 0.2775
    low, high = wilson(10, 10)  # type: ignore[misc]
    assert round(low, 4) == 0.7225 and high == 1.0
    assert wilson(0, 0) is None


def test_pass_at_k_is_the_unbiased_estimator() -> None:
    # Against the definition: the share of k-subsets of the n samples that hold at least one pass.
    for n in range(1, 8):
        for c in range(n + 1):
            samples = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(combinations(samples, k))
                expected = sum(any(s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(expected), (n, c, k)
    assert pass_at_k(200, 0, 10) == 0.0 and pass_at_k(200, 200, 1) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_summary_has_pass_at_k_with_repeats_and_intervals() -> None:
    from pytest_cloudeval.report import summarize

    rows = [{"benchmark": "u", "agent": "a", "task_id": t, "repeat": i, "outcome": o, "score": float(o == "passed")}
            for t, outcomes in (("t1", ("passed", "failed", "failed")), ("t2", ("failed", "failed", "failed")))
            for i, o in enumerate(outcomes, start=1)]
    group = summarize(rows)["by_benchmark"][0]
    assert group["pass_at_k"] == {"pass@1": round((1 / 3 + 0) / 2, 4), "pass@2": round((2 / 3 + 0) / 2, 4),
                                  "pass@3": 0.5}
    assert group["pass_rate_ci"] == [round(v, 4) for v in wilson(1, 6)]  # type: ignore[union-attr]
    assert summarize([dict(r, repeat=1) for r in rows[:2]])["by_benchmark"][0]["pass_at_k"] is None


def test_mean_and_difference_intervals() -> None:
    mean, low, high = mean_interval([0.0, 1.0, 1.0, 1.0])  # type: ignore[misc]
    assert mean == 0.75 and low == pytest.approx(0.75 - 1.959964 * 0.5 / 2, abs=1e-5) and high > 1.0 - 1e-9
    assert mean_interval([]) is None and mean_interval([0.5]) == (0.5, 0.5, 0.5)
    # Newcombe (1998), table II example: 56/70 vs 48/80 -> difference 0.2, 95% CI 0.0524 to 0.3339.
    d, low, high = diff_interval((56, 70), (48, 80))  # type: ignore[misc]
    assert round(d, 4) == 0.2 and (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_compare_classifies_every_task() -> None:
    base = {"b/fixed": {"outcome": "failed"}, "b/regressed": {"outcome": "passed"}, "b/missing": {"outcome": "passed"},
            "b/same": {"outcome": "passed"}, "b/err": {"outcome": "error"}, "b/was-skipped": {"outcome": "skipped"}}
    now = {"b/fixed": {"outcome": "passed"}, "b/regressed": {"outcome": "error"}, "b/new": {"outcome": "failed"},
           "b/same": {"outcome": "passed"}, "b/err": {"outcome": "failed"}, "b/was-skipped": {"outcome": "passed"}}
    result = compare(now, base, "yesterday")
    assert result.changes == {"b/fixed": "fixed", "b/regressed": "regressed", "b/missing": "missing",
                              "b/new": "new", "b/same": "still passing", "b/err": "still failing",
                              "b/was-skipped": "new"}
    assert result.pass_rate == 3 / 6 and result.base_pass_rate == 3 / 5
    assert result.delta is not None and result.delta[0] == pytest.approx(0.5 - 0.6)
    assert result.delta[1] < result.delta[0] < result.delta[2]


def test_json_in_the_page_cannot_end_its_script_block() -> None:
    text = json_for_script({"log": "</script><script>alert(1)</script> & <!-- \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text)["log"].startswith("</script>")


# -- the browser ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from tests.browser import Chromium

    with Chromium() as chromium:
        yield chromium


def run_usaco(results: Path, run_id: str, agent: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", str(USACO), "-p", "no:cacheprovider", "--results-dir",
                           str(results), "--run-id", run_id, "--agent", agent, "-n", "2"],
                          capture_output=True, text=True, cwd=results.parent, timeout=900)


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped USACO benchmark run with the oracle (all pass) and with noop (all fail), local sandbox."""
    results = tmp_path_factory.mktemp("runs") / "results"
    oracle = run_usaco(results, "oracle", "oracle")
    assert oracle.returncode == 0, oracle.stdout[-3000:]
    noop = run_usaco(results, "noop", "noop")
    assert noop.returncode == 1, noop.stdout[-3000:]
    return results


def rows(browser: Any) -> list[str]:
    browser.wait_for("!document.body.hasAttribute('data-rendering')")
    return list(browser.eval("Array.from(document.querySelectorAll('#task-rows tr')).map(r => r.dataset.key)"))


def set_control(browser: Any, element: str, value: str, event: str) -> None:
    browser.eval(f"(() => {{ const e = document.getElementById({json.dumps(element)}); e.value = {json.dumps(value)}; "
                 f"e.dispatchEvent(new Event({json.dumps(event)})); }})()")


@pytest.mark.slow
def test_the_page_of_a_real_run(real_runs: Path, browser: Any, tmp_path: Path) -> None:
    for run_id, outcome in (("oracle", "passed"), ("noop", "failed")):
        page = real_runs / run_id / "report.html"
        assert page.is_file(), f"the run did not write {page}"
        results = sorted((real_runs / run_id).glob("*/*/result.json"))
        keys = sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in results)
        browser.clear_events()
        browser.navigate(page.as_uri())
        assert browser.console_errors() == []
        assert [u for u in browser.requests() if u != page.as_uri()] == [], "the page made a network request"
        assert sorted(rows(browser)) == keys
        assert browser.eval("document.querySelectorAll('#timeline rect.bar').length") == len(results)
        assert browser.eval("document.querySelectorAll('#timeline rect.bar.retry').length") == 0
        # filtering by outcome: all rows have this run's outcome, the other outcome none; the URL says so
        set_control(browser, "f-outcome", "error", "change")
        assert rows(browser) == [] and "outcome=error" in browser.eval("location.hash")
        set_control(browser, "f-outcome", outcome, "change")
        assert sorted(rows(browser)) == keys and f"outcome={outcome}" in browser.eval("location.hash")
        # free text
        set_control(browser, "f-text", "milk_pouring", "input")
        assert rows(browser) == ["usaco/9001_bronze_milk_pouring"]
        assert "q=milk_pouring" in browser.eval("location.hash")
        # opening a row shows its detail: the judge's per-test verdicts and a link to the task's files
        browser.eval("document.querySelector('#task-rows tr').click()")
        browser.wait_for("!document.getElementById('detail').hidden")
        detail = browser.eval("document.getElementById('detail').innerText")
        assert "usaco/9001_bronze_milk_pouring" in detail and "Judge:" in detail
        verdict = "ACCEPTED" if outcome == "passed" else "WRONG_ANSWER"
        assert verdict in detail and "result.json" in detail
        assert "task=usaco%2F9001_bronze_milk_pouring" in browser.eval("location.hash")
        href = browser.eval("document.querySelector('#d-body a[href$=\"result.json\"]').href")
        assert href == (real_runs / run_id / "usaco" / "9001_bronze_milk_pouring" / "result.json").as_uri()
        # a link with the filter state shows the same view
        url = browser.eval("location.href")
        browser.navigate("about:blank", ready_js="true")
        browser.navigate(url)
        assert rows(browser) == ["usaco/9001_bronze_milk_pouring"]
        assert browser.eval("document.getElementById('f-text').value") == "milk_pouring"
        assert not browser.eval("document.getElementById('detail').hidden")
        assert browser.console_errors() == []

    # the noop run compared with the oracle run: every task regressed
    compared = tmp_path / "compare.html"
    assert report_main([str(real_runs / "noop"), "--html", str(compared), "--compare", "oracle"]) == 1
    browser.navigate(compared.as_uri())
    text = browser.eval("document.getElementById('compare').innerText")
    assert "Compared with oracle" in text and "-100.0 pts" in text
    assert browser.eval("document.querySelectorAll('#compare .chg.ch-regressed').length") == len(keys)


@pytest.mark.slow
def test_nothing_from_task_output_runs(browser: Any, tmp_path: Path) -> None:
    run_dir = synth_run(tmp_path / "results" / "evil", 6, evil=True)
    page = tmp_path / "evil.html"
    assert report_main([str(run_dir), "--html", str(page)]) == 1
    assert PWN not in page.read_text()
    browser.clear_events()
    browser.navigate(page.as_uri() + "#task=terminal%2Ftask-00001")
    browser.wait_for("!document.getElementById('detail').hidden")
    assert "window.__pwned=3" in browser.eval("document.getElementById('d-body').innerText")  # shown as text
    time.sleep(0.3)
    assert browser.eval("document.title") == "cloudeval · evil"
    assert browser.eval("typeof window.__pwned") == "undefined"
    assert browser.eval("document.querySelectorAll('#d-body script, #task-rows script, #d-body img').length") == 0
    assert browser.console_errors() == []


@pytest.mark.slow
def test_a_2000_task_report_loads_in_seconds(browser: Any, tmp_path: Path) -> None:
    run_dir = synth_run(tmp_path / "results" / "big", 2000)
    page = run_dir / "report.html"
    assert report_main([str(run_dir), "--html", str(page)]) == 1
    size = page.stat().st_size
    browser.clear_events()
    seconds = browser.navigate(page.as_uri(), ready_js="document.body.dataset.ready === '1' && "
                               "!document.body.hasAttribute('data-rendering')")
    print(f"2,000 tasks: {size / 1e6:.2f} MB, loaded and rendered in {seconds:.2f} s")
    assert seconds < 15
    assert len(rows(browser)) == 2000
    results = [json.loads(p.read_text()) for p in run_dir.glob("*/*/result.json")]
    assert browser.eval("document.querySelectorAll('#timeline rect.bar').length") == len(results) + 1  # + 1 lost
    assert browser.eval("document.querySelectorAll('#timeline rect.bar.lost').length") == 1
    assert browser.eval("document.querySelectorAll('#timeline rect.bar.retry').length") == \
        sum(1 for r in results if r["attempt"] > 1)
    set_control(browser, "f-kind", "sandbox", "change")
    shown = rows(browser)
    assert shown and len(shown) == sum(1 for r in results if r["error_kind"] == "sandbox")
    assert browser.console_errors() == []
    set_control(browser, "f-kind", "", "change")
    browser.eval("document.querySelector('th[data-sort=\"d\"]').click()")
    slowest = max(results, key=lambda r: r["duration_s"])
    assert rows(browser)[0] == slowest["key"] and "sort=d" in browser.eval("location.hash")
    browser.eval(f"document.querySelector('#task-rows tr[data-key=\"{slowest['key']}\"]').click()")
    browser.wait_for("!document.getElementById('detail').hidden")
    shot = browser.screenshot(tmp_path / "report-2000.png")
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
def test_screenshot_of_a_real_run(real_runs: Path, browser: Any, tmp_path: Path) -> None:
    """Saved as a test artifact (tmp dir) and copied to docs/ for the README."""
    page = tmp_path / "noop-vs-oracle.html"
    assert report_main([str(real_runs / "noop"), "--html", str(page), "--compare", "oracle"]) == 1
    browser.navigate(page.as_uri())
    shot = browser.screenshot(tmp_path / "report.png")
    assert shot.stat().st_size > 10_000
    browser.navigate((real_runs / "noop" / "report.html").as_uri() + "#task=usaco%2F9007_silver_enclosed_ponds")
    browser.wait_for("!document.getElementById('detail').hidden")
    assert browser.screenshot(tmp_path / "report-detail.png").stat().st_size > 10_000
    if os.environ.get("CLOUDEVAL_UPDATE_SCREENSHOTS") == "1":  # the README's pictures, on request only
        shutil.copyfile(shot, SCREENSHOT)
        shutil.copyfile(tmp_path / "report-detail.png", SCREENSHOT.with_name("report-screenshot-detail.png"))


# -- gs:// ----------------------------------------------------------------------------------------
@pytest.mark.cloud
@pytest.mark.slow
def test_report_rebuilt_from_gs_equals_the_local_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_cloudeval.artifacts.gcs import GcsStore
    from pytest_cloudeval.testing.gcs import GcsEmulator

    run_dir = synth_run(tmp_path / "results" / "run-3", 40)
    with GcsEmulator(buckets=["reports"]) as emu:
        for name, value in emu.env().items():
            monkeypatch.setenv(name, value)
        GcsStore("gs://reports/ci/run-3").upload_dir(run_dir, "")
        assert report_main([str(run_dir), "--html", str(tmp_path / "local.html")]) == 1
        assert report_main(["gs://reports/ci/run-3", "--html", str(tmp_path / "gs.html")]) == 1
    local, remote = (tmp_path / "local.html").read_text(), (tmp_path / "gs.html").read_text()
    assert '"files_url":"results/run-3/"' in local
    assert '"files_url":"https://storage.cloud.google.com/reports/ci/run-3/"' in remote
    assert remote.replace("https://storage.cloud.google.com/reports/ci/run-3/", "results/run-3/") == local
    assert local.count("usaco/task-") > 20 and "step 3: thinking" in local


def test_secrets_are_redacted_in_the_page(tmp_path: Path) -> None:
    run_dir = synth_run(tmp_path / "results" / "s", 4)
    log = run_dir / "usaco" / "task-00000" / "agent.log"
    log.write_text('token "s3cr&t<x>" here\n' + log.read_text())
    stored = read_local(run_dir)
    html = render_html(from_stored(stored), ReportContext(redactor=Redactor(['s3cr&t<x>']), files=stored.files,
                                                          in_pytest=False))
    assert "s3cr" not in html and "***REDACTED***" in html
    assert not re.search(r"s3cr|\\u0026t\\u003cx", html)
