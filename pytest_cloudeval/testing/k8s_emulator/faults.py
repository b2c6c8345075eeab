"""Injected faults: refused pod creates, slow starts, dropped exec streams (evictions act on a pod at once).

Thread-safe; set from tests in-process or over ``/emulator/v1/faults``.
"""

from __future__ import annotations

import threading
from typing import Any


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.refuse_creates = 0
        """The next N pod creates answer ``refuse_code`` (-1: all of them)."""
        self.refuse_code = 403
        self.refuse_message = 'pods "x" is forbidden: exceeded quota: compute-resources'
        self.start_delay_s = 0.0
        """Seconds a pod stays Pending (ContainerCreating) before its container is made."""
        self.drop_execs = 0
        """The next N exec streams are cut (TCP closed, no status) after ``drop_after_s``."""
        self.drop_after_s = 0.0

    def take_refusal(self) -> tuple[int, str] | None:
        with self._lock:
            if self.refuse_creates == 0:
                return None
            if self.refuse_creates > 0:
                self.refuse_creates -= 1
            return self.refuse_code, self.refuse_message

    def take_drop(self) -> float | None:
        with self._lock:
            if self.drop_execs == 0:
                return None
            if self.drop_execs > 0:
                self.drop_execs -= 1
            return self.drop_after_s

    def set(self, doc: dict[str, Any]) -> None:
        with self._lock:
            if doc.get("reset"):
                self.__init__()  # type: ignore[misc]
            if "refuseCreates" in doc:
                self.refuse_creates = int(doc["refuseCreates"])
                self.refuse_code = int(doc.get("refuseCode", self.refuse_code))
                self.refuse_message = str(doc.get("refuseMessage", self.refuse_message))
            if "startDelaySeconds" in doc:
                self.start_delay_s = float(doc["startDelaySeconds"])
            if "dropExecs" in doc:
                self.drop_execs = int(doc["dropExecs"])
                self.drop_after_s = float(doc.get("dropAfterSeconds", 0.0))

    def show(self) -> dict[str, Any]:
        with self._lock:
            return {"refuseCreates": self.refuse_creates, "refuseCode": self.refuse_code,
                    "startDelaySeconds": self.start_delay_s, "dropExecs": self.drop_execs,
                    "dropAfterSeconds": self.drop_after_s}
