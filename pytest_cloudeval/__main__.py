"""``python -m pytest_cloudeval COMMAND``: the plugin's commands outside a pytest run (``report``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = "usage: python -m pytest_cloudeval report SOURCE [--junitxml FILE] [--html FILE [--compare RUN]] [--json]"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        out = sys.stdout if args else sys.stderr
        print(USAGE, file=out)
        print("  report  print a run's summary and write JUnit XML and report.html from its stored results "
              "(a results folder or gs:// run)", file=out)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "report":
        from .report_cli import main as report_main

        return report_main(rest)
    print(f"{USAGE}\nerror: unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
