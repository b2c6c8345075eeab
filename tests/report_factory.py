"""Synthesized runs for the report tests and ``bench/report_size.py``: result folders as a run on
several workers leaves them (start and finish times, logs, judge.json, verifier output, run.json)."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

PWN = "<script>document.title='pwned';window.__pwned=1</script>"


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}+00:00"


def synth_run(run_dir: Path, n: int, seed: int = 7, workers: int = 8, evil: bool = False) -> Path:
    """``n`` result folders as a run on ``workers`` workers would leave them (times, logs, judge.json)."""
    rng = random.Random(seed)
    clock = {f"gw{i}@vm-{i // 2}": 1767225600.0 for i in range(workers)}
    for i in range(n):
        bench = ("usaco", "terminal")[i % 2]
        task_id = f"task-{i:05d}"
        worker = min(clock, key=lambda w: clock[w])
        duration = rng.uniform(0.5, 40.0) if i % 97 else rng.uniform(100, 200)
        start = clock[worker] + rng.uniform(0.05, 0.5)
        clock[worker] = start + duration
        roll = rng.random()
        outcome = "passed" if roll < 0.62 else "failed" if roll < 0.9 else "error" if roll < 0.97 else "skipped"
        kind = rng.choice(["sandbox", "verifier", "agent_timeout"]) if outcome == "error" else None
        result = {"task_id": task_id, "benchmark": bench, "agent": "agents/my_agent.py:run", "outcome": outcome,
                  "verdict": {"passed": "ACCEPTED" if bench == "usaco" else "REWARD 1", "failed": "WRONG_ANSWER",
                              "error": "ERROR", "skipped": "SKIPPED"}[outcome],
                  "score": {"passed": 1.0, "failed": 0.0}.get(outcome), "duration_s": round(duration, 3),
                  "started_at": _iso(start), "finished_at": _iso(start + duration), "worker": worker,
                  "attempt": 2 if i % 150 == 3 else 1, "repeat": 1, "tokens_in": rng.randint(500, 9000),
                  "tokens_out": rng.randint(100, 3000), "cost_usd": round(rng.uniform(0.001, 0.05), 5),
                  "error": f"{kind} error: the container vanished (attempt {i})" if kind else None,
                  "error_kind": kind, "message": f"{outcome}: task {i} " + ("tests 1/3 accepted" if outcome == "failed" else ""),
                  "key": f"{bench}/{task_id}", "metrics": {"reward": 1.0} if bench == "terminal" else {}}
        if evil and i == 1:
            result["message"] = "</script>" + PWN + "<img src=x onerror=\"window.__pwned=2\">"
            result["verdict"] = PWN
        folder = run_dir / bench / task_id
        folder.mkdir(parents=True)
        log = "".join(f"step {j}: thinking about {task_id}\n" for j in range(rng.randint(5, 120)))
        if evil and i == 1:
            log = PWN + "\n" + log + "</script><script>window.__pwned=3</script>\n"
        (folder / "agent.log").write_text(log)
        if bench == "usaco":
            tests = [{"index": t, "verdict": "ACCEPTED" if outcome == "passed" or t == 1 else "WRONG_ANSWER",
                      "time_s": 0.01 * t, "exit_code": 0, "detail": ""} for t in range(1, 4)]
            (folder / "judge.json").write_text(json.dumps({"verdict": result["verdict"], "tests": tests}))
        else:
            (folder / "logs" / "verifier").mkdir(parents=True)
            (folder / "logs" / "verifier" / "test-output.txt").write_text("PASSED test_outputs.py::test_a\n" * 5)
            (folder / "logs" / "verifier" / "reward.txt").write_text("1\n" if outcome == "passed" else "0\n")
        (folder / "result.json").write_text(json.dumps(result))
    (run_dir / "run.json").write_text(json.dumps({
        "run_id": run_dir.name, "command": "pytest benchmarks --agent agents/my_agent.py:run -n 8",
        "config": {"agent": "agents/my_agent.py:run", "sandbox": "docker", "agent_kwargs": {"model": "m"}},
        "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T02:00:00Z", "wall_seconds": 7200.0,
        "exit_status": 1, "plugin_version": "0.1.0", "summary": {"notes": []}, "lost_attempts": [
            {"nodeid": "x", "key": "usaco/task-00003", "worker": "gw3@vm-1", "lost_at": 1767225700.0, "attempt": 1}]}))
    return run_dir
