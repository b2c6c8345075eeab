"""Just enough of Kubernetes' protobuf encoding to read what kubectl sends only that way.

``kubectl auth can-i`` POSTs its SelfSubjectAccessReview as ``application/vnd.kubernetes.protobuf``
(the ``k8s\\x00`` magic, then a ``runtime.Unknown`` envelope whose ``raw`` field is the object). This
decodes that one object into the JSON shape the emulator handles; answers are always JSON (kubectl
accepts it). Any other protobuf body is refused with 415.
"""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"
_RESOURCE_FIELDS = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource", 7: "name"}
_NON_RESOURCE_FIELDS = {1: "path", 2: "verb"}


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(data):
            raise ValueError("truncated protobuf varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def fields(data: bytes) -> dict[int, list[bytes | int]]:
    """Field number -> values (bytes for length-delimited, int for varints) of one message."""
    out: dict[int, list[bytes | int]] = {}
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            out.setdefault(number, []).append(value)
        elif wire == 2:
            size, at = _varint(data, at)
            out.setdefault(number, []).append(data[at:at + size])
            at += size
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def _strings(data: bytes, names: dict[int, str]) -> dict[str, str]:
    found = fields(data)
    return {name: bytes(found[n][-1]).decode() for n, name in names.items()  # type: ignore[arg-type]
            if n in found and isinstance(found[n][-1], bytes)}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded SelfSubjectAccessReview; ValueError for anything else."""
    if not body.startswith(MAGIC):
        raise ValueError("not a Kubernetes protobuf body (no k8s magic)")
    envelope = fields(body[len(MAGIC):])
    type_meta = fields(bytes(envelope.get(1, [b""])[-1]))  # type: ignore[arg-type]
    kind = bytes(type_meta.get(2, [b""])[-1]).decode()  # type: ignore[arg-type]
    if kind != "SelfSubjectAccessReview":
        raise ValueError(f"protobuf bodies are read for SelfSubjectAccessReview only, not {kind or 'this'}")
    review = fields(bytes(envelope.get(2, [b""])[-1]))  # type: ignore[arg-type]
    spec = fields(bytes(review.get(2, [b""])[-1]))  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    if 1 in spec:
        out["resourceAttributes"] = _strings(bytes(spec[1][-1]), _RESOURCE_FIELDS)  # type: ignore[arg-type]
    if 2 in spec:
        out["nonResourceAttributes"] = _strings(bytes(spec[2][-1]), _NON_RESOURCE_FIELDS)  # type: ignore[arg-type]
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": out}
