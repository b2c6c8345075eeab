"""Ctrl+C and SIGTERM while a run is going on: stop it once, then let the teardown finish.

The first signal raises ``KeyboardInterrupt`` as Python's default does, so pytest stops the run and
records it as interrupted. Later ones must not: a second ``KeyboardInterrupt`` inside pytest's own
interrupt handling or the teardown printed a raw traceback, skipped the removal of sandboxes and left
run.json saying exit 0 while the process died of SIGINT. So the second signal only says what is
going on, and a third quits at once with the interrupted status (nothing more is written then).
SIGTERM is handled the same way (its default would skip ``pytest_unconfigure`` and leak sandboxes).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

import pytest

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class InterruptGuard:
    """The signal handler; ``count`` is how many signals arrived, ``teardown`` whether the run ended."""

    def __init__(self) -> None:
        self.count = 0
        self.teardown = False
        self.previous: dict[int, Any] = {}

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 1 and not self.teardown:
            raise KeyboardInterrupt
        if self.count <= 2:
            sys.stderr.write("\ncloudeval: stopping: removing sandboxes and writing run.json "
                             "(press Ctrl+C again to quit at once and leave them)\n")
            sys.stderr.flush()
            return
        sys.stderr.write("\ncloudeval: quit during teardown; sandboxes may be left: pytest --cleanup "
                         "--run-id RUN_ID removes them\n")
        sys.stderr.flush()
        os._exit(int(pytest.ExitCode.INTERRUPTED))

    def install(self) -> bool:
        """Install on SIGINT and SIGTERM (only possible on the main thread); whether it was."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for sig in SIGNALS:
            self.previous[sig] = signal.signal(sig, self)
        return True

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            if signal.getsignal(sig) is self:
                signal.signal(sig, handler)
        self.previous.clear()
