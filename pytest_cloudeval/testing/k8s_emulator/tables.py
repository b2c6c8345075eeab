"""``as=Table`` answers for kubectl's printers (``kubectl get pods`` asks for a server-side Table)."""

from __future__ import annotations

import calendar
import time
from typing import Any

TABLES = {"Pod", "Job", "ServiceAccount", "Role", "RoleBinding"}


def _age(stamp: str) -> str:
    try:
        seconds = int(time.time() - calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return "<unknown>"
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _pod_status(pod: dict[str, Any]) -> str:
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    if status.get("reason"):
        return str(status["reason"])
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if "waiting" in state:
            return str(state["waiting"].get("reason", "Waiting"))
        if "terminated" in state:
            return str(state["terminated"].get("reason", "Terminated"))
    return str(status.get("phase", "Unknown"))


def _column(name: str, description: str = "", fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": "string", "format": fmt, "description": description or name.lower(), "priority": 0}


def _row(obj: dict[str, Any], cells: list[str]) -> dict[str, Any]:
    return {"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                       "metadata": obj["metadata"]}}


def table(kind: str, items: list[dict[str, Any]], version: int) -> dict[str, Any]:
    """The server-side Table kubectl prints for ``kind`` (Pod, Job; name and age for the others)."""
    if kind == "Pod":
        return pod_table(items, version)
    from pytest_cloudeval.testing.k8s_emulator.jobs import job_table_row

    columns = [_column("Name", "Name", "name")]
    if kind == "Job":
        columns += [_column("Status"), _column("Completions"), _column("Duration")]
    if kind == "RoleBinding":
        columns += [_column("Role")]
    columns.append(_column("Age"))
    rows = []
    for obj in items:
        cells = [obj["metadata"]["name"]]
        if kind == "Job":
            cells += job_table_row(obj)
        if kind == "RoleBinding":
            ref = obj.get("roleRef") or {}
            cells.append(f"{ref.get('kind', '')}/{ref.get('name', '')}")
        cells.append(_age(obj["metadata"].get("creationTimestamp", "")))
        rows.append(_row(obj, cells))
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": str(version)},
            "columnDefinitions": columns, "rows": rows}


def pod_table(items: list[dict[str, Any]], version: int) -> dict[str, Any]:
    columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0},
               {"name": "Ready", "type": "string", "format": "", "description": "ready/total", "priority": 0},
               {"name": "Status", "type": "string", "format": "", "description": "status", "priority": 0},
               {"name": "Restarts", "type": "string", "format": "", "description": "restarts", "priority": 0},
               {"name": "Age", "type": "string", "format": "", "description": "age", "priority": 0}]
    rows = []
    for pod in items:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        ready = sum(1 for s in statuses if s.get("ready"))
        cells = [pod["metadata"]["name"], f"{ready}/{len(pod['spec'].get('containers') or [])}", _pod_status(pod),
                 "0", _age(pod["metadata"].get("creationTimestamp", ""))]
        rows.append({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                "metadata": pod["metadata"]}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": str(version)},
            "columnDefinitions": columns, "rows": rows}
