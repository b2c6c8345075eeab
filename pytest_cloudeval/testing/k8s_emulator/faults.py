"""Injected faults: refused creates, slow starts, dropped exec streams, denied permissions.

Evictions and "drop the open exec streams of pod X now" act at once and live with the cluster; this
object holds the standing ones.

Thread-safe; set from tests in-process or over ``/emulator/v1/faults``.
"""

from __future__ import annotations

import threading
from typing import Any

from pytest_cloudeval.testing.k8s_emulator.resources import ApiError


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.refuse_creates = 0
        """The next N pod creates answer ``refuse_code`` (-1: all of them)."""
        self.refuse_code = 403
        self.refuse_message = 'pods "x" is forbidden: exceeded quota: compute-resources'
        self.refuse_resources: list[str] = ["pods", "jobs"]
        """Which API creates the refusals act on (``pods``, ``jobs``); Job-controller pods are never refused."""
        self.deny: list[str] = []
        """Permissions the kubeconfig's user lacks, e.g. ``create batch/jobs``, ``create pods/exec``
        (see ``rbac.parse_permission``): requests needing them get 403, SelfSubjectAccessReviews say no."""
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

    def check_create(self, resource: str, name: str) -> None:
        """Raise the injected refusal for a create of ``resource`` named ``name``, if one is due."""
        with self._lock:
            if resource not in self.refuse_resources:
                return
        refusal = self.take_refusal()
        if refusal is None:
            return
        kind = {"pods": "pods", "jobs": "jobs.batch"}.get(resource, resource)
        message = refusal[1].replace('"x"', f'"{name}"')
        if message.startswith("pods ") and kind != "pods":
            message = kind + message[len("pods"):]
        raise ApiError(refusal[0], "Forbidden" if refusal[0] == 403 else "InternalError", message)

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
                self.refuse_resources = [str(r) for r in doc.get("refuseResources", self.refuse_resources)]
            if "deny" in doc:
                from pytest_cloudeval.testing.k8s_emulator.rbac import parse_permission

                for permission in doc["deny"]:
                    parse_permission(str(permission))  # a bad entry is refused before anything changes
                self.deny = [str(p) for p in doc["deny"]]
            if "startDelaySeconds" in doc:
                self.start_delay_s = float(doc["startDelaySeconds"])
            if "dropExecs" in doc:
                self.drop_execs = int(doc["dropExecs"])
                self.drop_after_s = float(doc.get("dropAfterSeconds", 0.0))

    def show(self) -> dict[str, Any]:
        with self._lock:
            return {"refuseCreates": self.refuse_creates, "refuseCode": self.refuse_code,
                    "refuseResources": list(self.refuse_resources),
                    "startDelaySeconds": self.start_delay_s, "dropExecs": self.drop_execs,
                    "dropAfterSeconds": self.drop_after_s, "deny": list(self.deny)}
