"""Size and build time of report.html for synthesized runs of 300, 2,000 and 10,000 tasks.

    python bench/report_size.py [N ...]

Each run is synthesized by ``tests/report_factory.py`` (8 workers, realistic logs, judge.json and
verifier output) and the page is built by ``python -m pytest_cloudeval report RUN --html FILE``'s code.
The last line is the ratio of bytes per task at the largest size against the smallest (the floor
measured in the same run): near 1 means the page grows linearly with the number of tasks.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_cloudeval.report_cli import main as report_main  # noqa: E402
from tests.report_factory import synth_run  # noqa: E402


def measure(n: int, root: Path) -> tuple[int, float]:
    run_dir = synth_run(root / f"run-{n}", n)
    page = root / f"report-{n}.html"
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        report_main([str(run_dir), "--html", str(page)])
    return page.stat().st_size, time.perf_counter() - started


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [300, 2000, 10000]
    per_task = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            size, seconds = measure(n, Path(tmp))
            per_task.append(size / n)
            print(f"{n:>6} tasks: {size / 1e6:7.2f} MB ({size / n / 1024:.2f} KiB per task), built in {seconds:.2f} s",
                  file=sys.stderr)
    print(f"bytes per task at {sizes[-1]} vs {sizes[0]} tasks: {per_task[-1] / per_task[0]:.2f}")


if __name__ == "__main__":
    main()
