"""The plugin's error hierarchy: each class says who is at fault and what the caller should do."""

from __future__ import annotations

from pathlib import Path


class CloudEvalError(Exception):
    """Base of every error raised on purpose by pytest-cloudeval."""


class BenchmarkError(CloudEvalError):
    """A benchmark or task definition is malformed: fix the named file.

    Raised at collection; the collector turns it into a collection error that names the file.
    """

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = Path(path)
        self.message = message
        super().__init__(f"{path}: {message}")


class AgentSpecError(CloudEvalError):
    """``--agent`` names something that cannot be loaded: fix the option."""


class InfrastructureError(CloudEvalError):
    """The harness, sandbox engine, cloud or store failed: not the agent's fault.

    Reported as a test *error* (never a failure) so CI can tell a broken run from a wrong answer; a
    resumed run executes the task again.
    """

    kind = "infrastructure"


class SandboxError(InfrastructureError):
    """The sandbox (process runner or container engine) failed to create, run or remove."""

    kind = "sandbox"


class SandboxLost(SandboxError):
    """The sandbox went away under a running attempt (pod evicted or deleted, exec stream dropped):
    the attempt is run again, up to ``--attempts``, instead of being judged."""

    retryable = True


class VerifierError(InfrastructureError):
    """The task's verifier is broken (crashed, wrote no reward): fix the task, not the agent."""

    kind = "verifier"


class BackendError(InfrastructureError):
    """A cloud backend could not provision, reach or delete workers."""

    kind = "backend"


class StoreError(InfrastructureError):
    """A result store (e.g. a GCS bucket) could not be read or written."""

    kind = "store"


class MissingExtraError(CloudEvalError, ImportError):
    """An optional SDK is not installed: the message names the extra to install."""

    def __init__(self, what: str, extra: str, cause: BaseException | None = None) -> None:
        self.extra = extra
        msg = f"{what} needs the '{extra}' extra: pip install 'pytest-cloudeval[{extra}]'"
        if cause is not None:
            msg += f" ({cause})"
        super().__init__(msg)
