"""The ``gs://BUCKET/PREFIX`` result store, on google-cloud-storage (imported on first use).

Credentials: Application Default Credentials; when ``STORAGE_EMULATOR_HOST`` is set (an emulator),
anonymous credentials and that endpoint. The client's own retries are turned off: the uploader
retries with its own policy, so how long a dead bucket takes to be reported stays predictable.
"""

from __future__ import annotations

import mimetypes
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import MissingExtraError, StoreError
from .base import ObjectNotFound, ResultStore, StoredObject, TransientStoreError

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
CHUNK_BYTES = 8 * 1024 * 1024
"""Files above this go up as resumable uploads in chunks of this size (a multiple of 256 KiB)."""
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
EMULATOR_PROJECT = "test"

T = TypeVar("T")


def parse_gs_url(url: str) -> tuple[str, str]:
    """``gs://bucket/some/prefix`` -> ``("bucket", "some/prefix")``. Raises ValueError when malformed."""
    if not url.startswith("gs://"):
        raise ValueError(f"{url!r} is not a gs:// URL")
    rest = url[len("gs://"):].strip("/")
    bucket, _, prefix = rest.partition("/")
    if not BUCKET_RE.match(bucket) or ".." in bucket:
        raise ValueError(f"{bucket!r} is not a valid bucket name (3 to 222 lowercase letters, digits, '-', '_' and '.')")
    parts = [p for p in prefix.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"the prefix of {url!r} may not contain '.' or '..' components")
    return bucket, "/".join(parts)


def _check_sdk() -> None:
    """Raise MissingExtraError if google-cloud-storage is not installed, without importing it."""
    import importlib.util

    try:
        found = importlib.util.find_spec("google.cloud.storage") is not None
    except (ImportError, ValueError) as e:  # ``google`` or ``google.cloud`` missing or broken
        raise MissingExtraError("gs:// result stores (--artifacts-url)", "gcs", e) from e
    if not found:
        raise MissingExtraError("gs:// result stores (--artifacts-url)", "gcs")


def _sdk() -> Any:
    try:
        from google.cloud import storage  # type: ignore[attr-defined]  # namespace package
    except ImportError as e:
        raise MissingExtraError("gs:// result stores (--artifacts-url)", "gcs", e) from e
    return storage


class GcsStore(ResultStore):
    """A bucket and prefix on Google Cloud Storage (or an emulator). Safe to share between threads."""

    scheme = "gs"

    def __init__(self, url: str, *, timeout_s: float = 60.0, chunk_bytes: int = CHUNK_BYTES) -> None:
        super().__init__(url)
        try:
            self.bucket_name, self.prefix = parse_gs_url(url)
        except ValueError as e:
            raise StoreError(str(e)) from e
        _check_sdk()  # a missing SDK is a usage error now; importing it waits for the first call
        self.timeout = (min(10.0, timeout_s), timeout_s)  # (connect, read)
        self.chunk_bytes = chunk_bytes
        # One client per thread: the HTTP session below it is not documented as thread-safe. The
        # credentials are shared: one Application Default Credentials lookup and one token refresh
        # per process, not one per upload thread (on GCE each lookup asks the metadata server).
        self._local = threading.local()
        self._credentials: Any = None
        self._credentials_lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------------
    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            storage = _sdk()
            emulator = os.environ.get("STORAGE_EMULATOR_HOST")
            try:
                if emulator:
                    import requests
                    from google.auth.credentials import AnonymousCredentials

                    # A local emulator is never behind a proxy: ignore *_PROXY and .netrc (which
                    # requests would otherwise consult on every request).
                    session = requests.Session()
                    session.trust_env = False
                    client = storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT") or EMULATOR_PROJECT,
                                            credentials=AnonymousCredentials(), _http=session)
                else:
                    client = storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT") or None,
                                            credentials=self._shared_credentials(storage.Client.SCOPE))
            except Exception as e:  # google.auth.exceptions.DefaultCredentialsError and kin
                raise StoreError(f"{self.url}: no usable Google credentials ({e}); run "
                                 "'gcloud auth application-default login' or set "
                                 "GOOGLE_APPLICATION_CREDENTIALS") from e
            _skip_bucket_metadata_fetch(client)
            self._local.client = client
        return client

    def _shared_credentials(self, scopes: Any) -> Any:
        """Application Default Credentials, looked up once per store (errors are not kept: retried)."""
        with self._credentials_lock:
            if self._credentials is None:
                import google.auth

                # Scoped here, so the clients use this very object instead of a scoped copy each.
                self._credentials, _ = google.auth.default(scopes=scopes)
            return self._credentials

    def _bucket(self) -> Any:
        return self._client().bucket(self.bucket_name)

    def _full(self, name: str) -> str:
        name = name.lstrip("/")
        return f"{self.prefix}/{name}" if self.prefix else name

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

    def _call(self, what: str, name: str, fn: Callable[[], T]) -> T:
        """Run one SDK call, turning its exceptions into the store's (transient or not)."""
        try:
            return fn()
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001 - every SDK/transport error is classified below
            raise self._translate(what, name, e) from e

    def _translate(self, what: str, name: str, error: Exception) -> StoreError:
        where = self.describe(name)
        code = getattr(error, "code", None)
        if not isinstance(code, int):
            response = getattr(error, "response", None)
            code = getattr(response, "status_code", None)
        if isinstance(code, int):
            if code in TRANSIENT_STATUS:
                return TransientStoreError(f"{what} {where}: HTTP {code} ({_short(error)})")
            if code == 404:
                if what in ("read", "download", "delete"):
                    return ObjectNotFound(f"{where} does not exist")
                return StoreError(f"{what} {where}: bucket {self.bucket_name!r} does not exist (HTTP 404)")
            if code in (401, 403):
                return StoreError(f"{what} {where}: permission denied (HTTP {code}): the credentials in use "
                                  f"need storage.objects.create/get/list/delete on bucket {self.bucket_name!r}")
            return StoreError(f"{what} {where}: HTTP {code} ({_short(error)})")
        if _is_connection_trouble(error):
            return TransientStoreError(f"{what} {where}: {type(error).__name__}: {_short(error)}")
        return StoreError(f"{what} {where}: {type(error).__name__}: {_short(error)}")

    # -- the contract ---------------------------------------------------------------------------
    def upload_file(self, local: Path, name: str, content_type: str | None = None) -> None:
        size = local.stat().st_size

        def go() -> None:
            blob = self._bucket().blob(self._full(name))
            if size > self.chunk_bytes:
                blob.chunk_size = self.chunk_bytes  # resumable, chunk by chunk
            blob.upload_from_filename(str(local), content_type=content_type or _content_type(name),
                                      retry=None, timeout=self.timeout)

        self._call("upload", name, go)

    def upload_bytes(self, data: bytes, name: str, content_type: str | None = None) -> None:
        def go() -> None:
            blob = self._bucket().blob(self._full(name))
            if len(data) > self.chunk_bytes:
                blob.chunk_size = self.chunk_bytes
            blob.upload_from_string(data, content_type=content_type or _content_type(name), retry=None,
                                    timeout=self.timeout)

        self._call("upload", name, go)

    def exists(self, name: str) -> bool:
        return bool(self._call("check", name, lambda: self._bucket().blob(self._full(name)).exists(
            retry=None, timeout=self.timeout)))

    def list(self, prefix: str = "") -> list[StoredObject]:
        full = self._full(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")

        def go() -> list[StoredObject]:
            blobs = self._client().list_blobs(self.bucket_name, prefix=full or None, retry=None,
                                              timeout=self.timeout)
            return [StoredObject(name=self._relative(b.name), size=int(b.size or 0),
                                 generation=str(b.generation) if b.generation is not None else None,
                                 updated=b.updated.isoformat() if b.updated is not None else None,
                                 md5=b.md5_hash) for b in blobs]

        return sorted(self._call("list", prefix, go), key=lambda o: o.name)

    def download(self, name: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        self._call("download", name, lambda: self._bucket().blob(self._full(name)).download_to_filename(
            str(local), retry=None, timeout=self.timeout))

    def read_bytes(self, name: str) -> bytes:
        return bytes(self._call("read", name, lambda: self._bucket().blob(self._full(name)).download_as_bytes(
            retry=None, timeout=self.timeout)))

    def delete(self, name: str) -> None:
        try:
            self._call("delete", name, lambda: self._bucket().blob(self._full(name)).delete(
                retry=None, timeout=self.timeout))
        except ObjectNotFound:
            pass

    def check_writable(self, probe_name: str) -> None:
        try:
            super().check_writable(probe_name)
        except TransientStoreError:
            raise
        except StoreError as e:
            raise StoreError(f"cannot write to {self.url}: {e}") from e

    def close(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
            self._local.client = None


def _skip_bucket_metadata_fetch(client: Any) -> None:
    """Stop the SDK's background ``storage.buckets.get`` when nothing would use its answer.

    google-cloud-storage 3.11+ gives each client a bucket metadata cache ("app-centric
    observability"): a client's first call on a bucket starts a thread that GETs the bucket, only to
    label OpenTelemetry spans. With tracing off (``ENABLE_GCS_PYTHON_CLIENT_OTEL_TRACES``, off by
    default) the answer is never read, yet the request is made once per client (one per upload
    thread here) and, for credentials with object-only roles, each is a denied call in the audit log
    (googleapis/google-cloud-python#17650). The SDK checks the cache for truth before every use, so
    ``None`` turns it off for this client only; older SDKs have no such attribute.
    """
    if getattr(client, "_bucket_metadata_cache", None) is None:
        return
    try:
        from google.cloud.storage import _opentelemetry_tracing as tracing
    except ImportError:
        return
    if not getattr(tracing, "enable_otel_traces", True):
        client._bucket_metadata_cache = None


def _content_type(name: str) -> str:
    if name.endswith((".log", ".txt")):
        return "text/plain; charset=utf-8"
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def _short(error: BaseException) -> str:
    text = str(error).replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."


def _is_connection_trouble(error: BaseException) -> bool:
    """Connection refused/reset, timeouts, DNS trouble: worth retrying."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        module = type(current).__module__
        name = type(current).__name__
        if module.startswith(("requests", "urllib3", "http.client")) or name in (
                "TransportError", "RetryError", "DeadlineExceeded", "RemoteDisconnected"):
            return True
        current = current.__cause__ or current.__context__
    return False
