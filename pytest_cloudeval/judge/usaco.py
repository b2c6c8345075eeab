"""USACO judge with HAL's semantics: run a Python submission on each hidden test under limits.

Stdlib-only and free of package imports on purpose: the Docker sandbox sends this one file's source
into a container (``sandbox_main``, fed on stdin) and the CLI runs it as ``python3 usaco.py SPEC.json``,
so it must work with a bare interpreter.

Two semantics (``SEMANTICS``): ``hal`` (the ``usaco`` format's default) runs the submission the way
HAL's USACO judge does: ``exec`` of the source under HAL's guard (``exit``/``quit``, ``os.system``,
``os.kill``, ``os.fork``, ``subprocess.Popen``... disabled; RLIMIT_AS, RLIMIT_DATA and RLIMIT_STACK
set to ``memory_limit * 10**6`` bytes), ``sys.stdin``/``sys.stdout`` bound to the test, while file
descriptors 0 and 1 are ``/dev/null``; it succeeds only if the code runs to its end (``sys.exit``
anywhere is a RUNTIME_ERROR). ``script`` runs the file as a plain ``python3 submission.py``.

In both, the submission never sees a test file: its input is an anonymous in-memory copy, its
descriptors are closed, its folder holds only its own source, and under ``run_as`` (the Docker
sandbox, where the judge is root) it runs as another, unprivileged user that cannot read the tests.
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

VERDICTS = ("ACCEPTED", "WRONG_ANSWER", "TIME_LIMIT", "MEMORY_LIMIT", "COMPILE_ERROR", "RUNTIME_ERROR")
SEMANTICS = ("hal", "script")
# HAL's parser knows no compile or memory verdict: both end up as "failed: ..." -> RUNTIME_ERROR there.
HAL_VERDICT = {"COMPILE_ERROR": "RUNTIME_ERROR", "MEMORY_LIMIT": "RUNTIME_ERROR"}
UNPRIVILEGED_UID = 65534
"""``nobody``: the uid submissions run as when the judge is root (the Docker sandbox)."""

# The interpreter itself needs some address space before the submission runs a line.
_MIN_ADDRESS_SPACE_MB = 64
_FILE_SIZE_LIMIT = 64 * 1024 * 1024
_STDERR_TAIL_BYTES = 4096
_DETAIL_CHARS = 200
_READ_CHUNK = 65536
# After the main process ends and its group is killed, pipes close at once unless a process
# escaped the group (setsid); do not wait for such a process longer than this.
_DRAIN_GRACE_S = 1.0
_MEMORY_MARKERS = (
    "MemoryError",
    "Cannot allocate memory",
    "std::bad_alloc",
    "out of memory",
    "Out of memory",
)

_IN_NAME = re.compile(r"^(\d+)\.in$")
_FALLBACK_IN_NAME = re.compile(r"^I\.(\d+)$")


# The program HAL's judge executes is the submission between these two lines.
HAL_PREFIX = "import sys\n"
HAL_SUFFIX = "\nsys.stdout.close()\nsys.stdin.close()\n"

# Runs in the submission's interpreter (``python3 -c``) in ``hal`` semantics: argv is the source path,
# the memory limit in bytes, the status descriptor and, for a gated start (``_run_limited``), a
# descriptor to wait on until the judge has put the process in its cgroup and set its limits. It
# moves the input and output off descriptors
# 0 and 1 (which become /dev/null, as in HAL's forked judge process), applies HAL's guard, then
# ``exec``s the program in a fresh namespace (so ``__name__`` is not ``"__main__"``, as in HAL).
# "ok" on the status descriptor means the program ran to its last line; any exception is reported
# on stderr as "Type: message" with exit code 1.
_HAL_BOOTSTRAP = r"""
import os, sys
def _cloudeval_run():
    path, limit, status = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    write, leave = os.write, os._exit
    if len(sys.argv) > 4:  # a gated start: nothing below runs until the judge has set this process up
        go = int(sys.argv[4])
        if os.read(go, 1) != b"g":
            leave(125)
        os.close(go)
    with open(path, encoding="utf-8", errors="replace") as f:
        source = f.read()
    fd_in, fd_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    stdin = open(fd_in, "r", encoding="utf-8", errors="ignore")
    stdout = open(fd_out, "w", encoding="utf-8", errors="ignore")
    import builtins, faulthandler, resource
    if limit > 0:
        for kind in (resource.RLIMIT_AS, resource.RLIMIT_DATA, resource.RLIMIT_STACK):
            hard = resource.getrlimit(kind)[1]
            value = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
            resource.setrlimit(kind, (value, value))
    faulthandler.disable()
    builtins.exit = builtins.quit = builtins.help = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
                 "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod",
                 "fchown", "chmod", "chown", "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir"):
        setattr(os, name, None)
    # HAL's guard also empties shutil.rmtree/move/chown and subprocess.Popen. Importing those two
    # modules up front costs more than many a submission's run, so they are guarded when imported.
    disabled = {"shutil": ("rmtree", "move", "chown"), "subprocess": ("Popen",)}

    class GuardOnImport:
        def find_spec(self, name, path=None, target=None):
            if name not in disabled:
                return None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None and spec.loader is not None:
                    run_module = spec.loader.exec_module

                    def exec_module(module, run_module=run_module, names=disabled[name]):
                        run_module(module)
                        for attr in names:
                            setattr(module, attr, None)

                    spec.loader.exec_module = exec_module
                    return spec
            return None

    for name, attrs in disabled.items():
        if name in sys.modules:
            for attr in attrs:
                setattr(sys.modules[name], attr, None)
    sys.meta_path.insert(0, GuardOnImport())
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None
    sys.argv = [path]
    sys.stdin, sys.stdout = stdin, stdout
    try:
        exec(compile(PREFIX + source + SUFFIX, path, "exec"), {})
    except BaseException as exc:
        try:
            text = "%s: %s" % (type(exc).__name__, exc)
        except BaseException:
            text = type(exc).__name__
        try:
            write(2, ("\n" + text + "\n").encode("utf-8", "replace"))
        except BaseException:
            pass
        leave(1)
    write(status, b"ok")
    leave(0)
_cloudeval_run()
""".replace("PREFIX", repr(HAL_PREFIX)).replace("SUFFIX", repr(HAL_SUFFIX))

class JudgeSetupError(ValueError):
    """The hidden tests or the judge spec are unusable: an infrastructure error, not a verdict.

    The message names the path or key and what is wrong; fix the benchmark folder or the spec.
    """


def discover_tests(
    tests_dir: str | os.PathLike[str], problem_id: str, num_tests: int | None = None
) -> list[tuple[Path, Path]]:
    """Return the (input, expected output) pairs of one problem, ordered by test number.

    Looks for ``tests_dir/problem_id/{i}.in`` + ``{i}.out`` and, as HAL does, falls back to
    ``I.{i}`` + ``O.{i}``. All tests found are returned (even beyond ``num_tests``).

    Raises:
        JudgeSetupError: the folder is missing or empty, an input lacks its output, or fewer
            than ``num_tests`` tests are found.
    """
    folder = Path(tests_dir) / problem_id
    if not folder.is_dir():
        raise JudgeSetupError(f"{folder}: test folder for problem {problem_id!r} does not exist")
    found: dict[int, tuple[Path, Path]] = {}
    for entry in folder.iterdir():
        match = _IN_NAME.match(entry.name)
        if match:
            index = int(match.group(1))
            expected = folder / f"{match.group(1)}.out"
        else:
            match = _FALLBACK_IN_NAME.match(entry.name)
            if not match:
                continue
            index = int(match.group(1))
            expected = folder / f"O.{match.group(1)}"
            if index in found:  # "{i}.in" wins over "I.{i}" when both exist
                continue
        if not expected.is_file():
            raise JudgeSetupError(f"{entry}: input has no expected output {expected.name}")
        found[index] = (entry, expected)
    if not found:
        raise JudgeSetupError(f"{folder}: no tests ({{i}}.in/{{i}}.out or I.{{i}}/O.{{i}}) found")
    if num_tests is not None and len(found) < num_tests:
        raise JudgeSetupError(f"{folder}: expected {num_tests} tests, found {len(found)}")
    return [found[index] for index in sorted(found)]


def judge_submission(
    source: str,
    tests: list[tuple[Path, Path]],
    *,
    time_limit_s: float,
    memory_mb: int,
    workdir: Path,
    python: str = sys.executable,
    max_output_bytes: int = 8 * 1024 * 1024,
    semantics: str = "hal",
    run_as: int | None = None,
    extra_env: dict[str, str] | None = None,
    before_exec: Callable[[], None] | None = None,
    adopt: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Judge ``source`` on every test and return the JSON-serializable report.

    The overall verdict is ACCEPTED iff every test is, else the verdict of the first failing
    test; ``score`` is the fraction of tests accepted. ``semantics`` is ``hal`` or ``script`` (see
    the module docstring); ``hal_verdict`` fields give the label HAL's own judge prints. With
    ``run_as`` (a uid; the judge must be root) the submission runs as that user, its folder
    handed to it, so files only the judge may read stay unreadable.

    A caller that judges in its own process makes each submission one of its sandbox's processes:
    ``extra_env`` is added to the submission's minimal environment, ``before_exec`` runs in the
    forked child before the limits are set (system calls only: it joins the sandbox's cgroup), and
    ``on_start`` is told each submission's pid (its process group) as soon as it exists.
    ``adopt`` does ``before_exec``'s work from this process, given the pid: with it (or with no
    ``before_exec``), ``hal`` semantics without ``run_as`` start each submission with no code to run
    between fork and exec, so the interpreter is spawned with ``vfork`` (about 4 ms less per test on a
    worker, more under load); its bootstrap waits on a pipe until ``adopt`` and the limits (set with
    ``prlimit``) are in place, before it reads the submission.

    Raises:
        JudgeSetupError: no tests are given, a test file cannot be read, ``python`` cannot be
            started, or ``semantics`` is unknown.
    """
    if semantics not in SEMANTICS:
        raise JudgeSetupError(f"semantics {semantics!r}: use one of {', '.join(SEMANTICS)}")
    if not tests:
        # A vacuous ACCEPTED would pass a problem whose tests went missing.
        raise JudgeSetupError("no tests to judge: check the problem's tests folder")
    results: list[dict[str, Any]] = []
    program = HAL_PREFIX + source + HAL_SUFFIX if semantics == "hal" else source
    compile_error = _compile_error(program)
    if compile_error is not None:
        results = [
            _test_result(index, "COMPILE_ERROR", 0.0, None, compile_error, "RUNTIME_ERROR")
            for index in range(1, len(tests) + 1)
        ]
    else:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "submission.py").write_text(source, encoding="utf-8", errors="replace")
        if run_as is not None:
            for path in (workdir, workdir / "submission.py"):
                os.chown(path, run_as, run_as)
        env = _minimal_env(workdir) | dict(extra_env or {})
        limits = _limits(time_limit_s, memory_mb, address_space=semantics == "script")
        preexec: Callable[[], None] | None = None
        setup: Callable[[int], None] | None = None
        if semantics == "hal" and run_as is None and hasattr(resource, "prlimit") and (
                before_exec is None or adopt is not None):
            setup = _limits_adopter(limits, adopt)
        elif adopt is not None and before_exec is None:
            raise JudgeSetupError("adopt without before_exec needs the gated start (hal semantics, no run_as)")
        else:
            preexec = _limits_setter(limits, before=before_exec)
        if semantics == "hal":
            command = [python, "-c", _HAL_BOOTSTRAP, "submission.py", str(memory_mb * 1_000_000)]
        else:
            command = [python, "submission.py"]
        for index, (input_path, expected_path) in enumerate(tests, start=1):
            expected = _read_expected(Path(expected_path))
            results.append(
                _judge_one(
                    index,
                    command,
                    Path(input_path),
                    expected,
                    workdir=workdir,
                    env=env,
                    preexec=preexec,
                    setup=setup,
                    time_limit_s=time_limit_s,
                    max_output_bytes=max_output_bytes,
                    status=semantics == "hal",
                    run_as=run_as,
                    on_start=on_start,
                )
            )
    passed = sum(1 for result in results if result["verdict"] == "ACCEPTED")
    total = len(results)
    first_failure = next((r for r in results if r["verdict"] != "ACCEPTED"), None)
    return {
        "verdict": first_failure["verdict"] if first_failure else "ACCEPTED",
        "hal_verdict": first_failure["hal_verdict"] if first_failure else "ACCEPTED",
        "passed": passed,
        "total": total,
        "score": passed / total if total else 0.0,
        "time_limit_s": time_limit_s,
        "memory_mb": memory_mb,
        "semantics": semantics,
        "isolation": "separate-user" if run_as is not None else "same-user",
        "tests": results,
    }


def _compile_error(source: str) -> str | None:
    try:
        compile(source, "submission.py", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        return _short(f"{type(exc).__name__}: {exc}")
    return None


def _read_expected(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise JudgeSetupError(f"{path}: cannot read expected output: {exc}") from exc


def _minimal_env(workdir: Path) -> dict[str, str]:
    # Built from scratch so no token or key of the parent process reaches the submission.
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": str(workdir),
    }


Limit = tuple[int, int, int]
"""``(resource, soft, hard)``."""


def _limits(time_limit_s: float, memory_mb: int, *, address_space: bool = True) -> list[Limit]:
    cpu_seconds = math.ceil(time_limit_s) + 1
    limits = [
        # SIGXCPU at the soft limit; the hard one only backs it up with SIGKILL.
        (resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1),
        (resource.RLIMIT_FSIZE, _FILE_SIZE_LIMIT, _FILE_SIZE_LIMIT),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    if address_space:  # in ``hal`` semantics the bootstrap sets HAL's limits once the interpreter is up
        size = max(int(memory_mb), _MIN_ADDRESS_SPACE_MB) * 1024 * 1024
        limits.append((resource.RLIMIT_AS, size, size))
    return limits


def _limits_setter(limits: list[Limit], *, before: Callable[[], None] | None = None) -> Callable[[], None]:
    def apply_limits() -> None:
        # Runs in the forked child before exec: only system calls, nothing that takes locks.
        if before is not None:
            before()
        for kind, soft, hard in limits:
            resource.setrlimit(kind, (soft, hard))

    return apply_limits


def _limits_adopter(limits: list[Limit], adopt: Callable[[int], None] | None) -> Callable[[int], None]:
    def apply_limits(pid: int) -> None:
        # Runs in the judge on a submission's interpreter that is waiting at its bootstrap's gate.
        if adopt is not None:
            adopt(pid)
        for kind, soft, hard in limits:
            resource.prlimit(pid, kind, (soft, hard))

    return apply_limits


def _judge_one(
    index: int,
    command: list[str],
    input_path: Path,
    expected: str,
    *,
    workdir: Path,
    env: dict[str, str],
    preexec: Callable[[], None] | None,
    time_limit_s: float,
    max_output_bytes: int,
    status: bool,
    run_as: int | None,
    on_start: Callable[[int], None] | None = None,
    setup: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    stdin = _anonymous_copy(input_path)
    try:
        run = _run_limited(
            command,
            stdin,
            workdir=workdir,
            env=env,
            preexec=preexec,
            setup=setup,
            time_limit_s=time_limit_s,
            max_output_bytes=max_output_bytes,
            status=status,
            run_as=run_as,
            on_start=on_start,
        )
    finally:
        stdin.close()
    verdict, detail, hal_verdict = _classify(run, expected, max_output_bytes, status)
    return _test_result(index, verdict, run.elapsed_s, run.returncode, detail, hal_verdict)


def _anonymous_copy(path: Path) -> IO[bytes]:
    """The test input in a file with no name (memfd, else an unlinked temporary file).

    The submission reads its stdin from it: following ``/proc/self/fd/0`` leads nowhere near
    the tests folder, and the copy holds nothing but this one input.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JudgeSetupError(f"{path}: cannot read test input: {exc}") from exc
    create = getattr(os, "memfd_create", None)
    copy: IO[bytes]
    try:
        copy = os.fdopen(create("cloudeval-input", 0), "w+b") if create else tempfile.TemporaryFile()
    except OSError:
        copy = tempfile.TemporaryFile()
    copy.write(data)
    copy.flush()
    copy.seek(0)
    return copy


class _Run:
    """What one process did: its output, how it ended, and whether the judge stopped it."""

    def __init__(self) -> None:
        self.stdout = bytearray()
        self.stderr_tail = b""
        self.returncode: int | None = None
        self.elapsed_s = 0.0
        self.timed_out = False
        self.flooded = False
        self.finished = False
        """The ``hal`` bootstrap said the program ran to its last line."""


def _run_limited(
    command: list[str],
    stdin: IO[bytes],
    *,
    workdir: Path,
    env: dict[str, str],
    preexec: Callable[[], None] | None,
    time_limit_s: float,
    max_output_bytes: int,
    status: bool = False,
    run_as: int | None = None,
    on_start: Callable[[int], None] | None = None,
    setup: Callable[[int], None] | None = None,
) -> _Run:
    """Run ``command`` under the limits ``preexec`` sets in the forked child or, with ``setup``
    (``hal`` bootstrap only: it takes the gate's descriptor after the status one), ``setup(pid)``
    sets from here while the child waits at its gate (no code between fork and exec: ``vfork``)."""
    run = _Run()
    status_read, status_write = os.pipe() if status else (-1, -1)
    if status:
        os.set_blocking(status_read, False)
        command = [*command, str(status_write)]
    go_read, go_write = os.pipe() if setup is not None else (-1, -1)
    if setup is not None:
        command = [*command, str(go_read)]
    pass_fds = tuple(fd for fd in (status_write, go_read) if fd >= 0)
    drop: dict[str, Any] = {}
    if run_as is not None:
        drop = {"user": run_as, "group": run_as, "extra_groups": []}
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            command,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env=env,
            start_new_session=True,  # its own process group, so every descendant can be killed
            preexec_fn=preexec,
            close_fds=True,  # nothing of the judge's (test files, sockets) is inherited
            pass_fds=pass_fds,
            **drop,
        )
    except (OSError, subprocess.SubprocessError) as exc:  # SubprocessError: a limit could not be set
        for fd in (status_read, status_write, go_read, go_write):
            if fd >= 0:
                os.close(fd)
        raise JudgeSetupError(f"{command[0]}: cannot start the interpreter: {exc}") from exc
    for fd in (status_write, go_read):
        if fd >= 0:
            os.close(fd)
    if on_start is not None:
        on_start(proc.pid)
    assert proc.stdout is not None and proc.stderr is not None
    pidfd = _open_pidfd(proc.pid)
    selector = selectors.DefaultSelector()
    try:
        if setup is not None:
            try:
                setup(proc.pid)
                os.write(go_write, b"g")
            except (OSError, ValueError) as exc:
                raise JudgeSetupError(f"cannot set up the submission's process (cgroup, limits): {exc}") from exc
            finally:
                os.close(go_write)
        selector.register(proc.stdout, selectors.EVENT_READ, "stdout")
        selector.register(proc.stderr, selectors.EVENT_READ, "stderr")
        if pidfd is not None:
            selector.register(pidfd, selectors.EVENT_READ, "exit")
        deadline = start + time_limit_s
        open_pipes = 2
        exited = False
        while not exited:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                run.timed_out = True
                break
            # Without a pidfd, poll for the exit: a forked child may hold the pipes open.
            wait = remaining if pidfd is not None else min(remaining, 0.02)
            for key, _ in selector.select(timeout=wait):
                if key.data == "exit":
                    exited = True
                elif not _read_into(run, key, selector, max_output_bytes):
                    open_pipes -= 1
            if run.flooded:
                break
            if pidfd is None or open_pipes == 0:
                exited = exited or _has_exited(proc.pid)
        run.elapsed_s = time.monotonic() - start
        # Kill the whole group while the main process is at most a zombie, so its pid (the
        # group id) cannot have been reused; this also ends children it left behind.
        _kill_group(proc.pid)
        if not run.flooded:
            _drain(run, selector, max_output_bytes)
    finally:
        _kill_group(proc.pid)
        selector.close()
        if pidfd is not None:
            os.close(pidfd)
        proc.stdout.close()
        proc.stderr.close()
        run.returncode = proc.wait()
        if status:
            try:
                run.finished = os.read(status_read, 16) == b"ok"
            except OSError:  # still held open by an escaped process: no word from the bootstrap
                run.finished = False
            os.close(status_read)
    return run


def _open_pidfd(pid: int) -> int | None:
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        return int(pidfd_open(pid))
    except OSError:  # kernels before 5.3
        return None


def _has_exited(pid: int) -> bool:
    # WNOWAIT leaves the zombie in place, keeping the group id reserved until we kill the group.
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _read_into(run: _Run, key: selectors.SelectorKey, selector: selectors.BaseSelector, cap: int) -> bool:
    """Read one chunk from a ready pipe; return False (and unregister it) at end of file."""
    chunk = os.read(key.fd, _READ_CHUNK)
    if not chunk:
        selector.unregister(key.fileobj)
        return False
    if key.data == "stdout":
        run.stdout += chunk
        if len(run.stdout) > cap:
            run.flooded = True
            del run.stdout[cap + 1 :]
    else:
        run.stderr_tail = (run.stderr_tail + chunk)[-_STDERR_TAIL_BYTES:]
    return True


def _drain(run: _Run, selector: selectors.BaseSelector, cap: int) -> None:
    deadline = time.monotonic() + _DRAIN_GRACE_S
    while not run.flooded:
        pipes = [key for key in selector.get_map().values() if key.data != "exit"]
        remaining = deadline - time.monotonic()
        if not pipes or remaining <= 0:
            return
        for key, _ in selector.select(timeout=remaining):
            if key.data != "exit":
                _read_into(run, key, selector, cap)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _classify(run: _Run, expected: str, max_output_bytes: int, status: bool = False) -> tuple[str, str, str]:
    """(verdict, detail, the label HAL's judge gives the same run)."""
    stderr = run.stderr_tail.decode("utf-8", errors="replace")
    code = run.returncode
    if run.flooded:
        return "WRONG_ANSWER", f"output exceeds {max_output_bytes} bytes", "WRONG_ANSWER"
    if run.timed_out or code == -signal.SIGXCPU:
        return "TIME_LIMIT", "time limit exceeded", "TIME_LIMIT"
    if code != 0:
        # HAL reports an exception as "failed: ..." (RUNTIME_ERROR) and a process that died
        # without a word as "timed out".
        died = code is None or code < 0
        hal = "TIME_LIMIT" if died else "RUNTIME_ERROR"
        if any(marker in stderr for marker in _MEMORY_MARKERS):
            return "MEMORY_LIMIT", _last_line(stderr) or "memory limit exceeded", hal
        if code == -signal.SIGKILL:
            # Nobody here sent it (no timeout): the kernel's OOM killer did.
            return "MEMORY_LIMIT", "killed (SIGKILL), likely out of memory", hal
        return "RUNTIME_ERROR", _last_line(stderr) or _exit_description(code), hal
    if status and not run.finished:
        # Exit code 0 but the program did not reach its end (os._exit): HAL sees no result.
        return "RUNTIME_ERROR", "the program ended the interpreter before its last line", "TIME_LIMIT"
    actual = run.stdout.decode("utf-8", errors="replace")
    if actual.strip() == expected.strip():
        return "ACCEPTED", "", "ACCEPTED"
    return "WRONG_ANSWER", "output differs from expected", "WRONG_ANSWER"


def _exit_description(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return _short(lines[-1].strip()) if lines else ""


def _short(text: str) -> str:
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."


def _test_result(
    index: int, verdict: str, time_s: float, exit_code: int | None, detail: str, hal_verdict: str
) -> dict[str, Any]:
    return {
        "index": index,
        "verdict": verdict,
        "hal_verdict": hal_verdict,
        "time_s": round(time_s, 4),
        "exit_code": exit_code,
        "detail": detail,
    }


def _load_spec(path: str) -> dict[str, Any]:
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise JudgeSetupError(f"{path}: cannot read judge spec: {exc}") from exc
    if not isinstance(spec, dict):
        raise JudgeSetupError(f"{path}: judge spec must be a JSON object")
    for key in ("source_path", "tests", "time_limit_s", "memory_mb", "workdir"):
        if key not in spec:
            raise JudgeSetupError(f"{path}: judge spec lacks key {key!r}")
    tests = spec["tests"]
    if not isinstance(tests, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair) for pair in tests
    ):
        raise JudgeSetupError(f"{path}: 'tests' must be a list of [input_path, output_path]")
    if not isinstance(spec["time_limit_s"], (int, float)) or spec["time_limit_s"] <= 0:
        raise JudgeSetupError(f"{path}: 'time_limit_s' must be a positive number")
    if not isinstance(spec["memory_mb"], int) or spec["memory_mb"] <= 0:
        raise JudgeSetupError(f"{path}: 'memory_mb' must be a positive integer")
    return spec


# The command a sandbox runs as root to judge: it reads this file's source and the payload on stdin.
SANDBOX_LOADER = (
    "import sys\n"
    "data = sys.stdin.buffer.read()\n"
    "size = int(data[:12])\n"
    "scope = {'__name__': 'cloudeval_usaco_judge'}\n"
    "exec(compile(data[12:12 + size], 'usaco_judge.py', 'exec'), scope)\n"
    "sys.exit(scope['sandbox_main'](memoryview(data)[12 + size:]))\n"
)


def sandbox_payload(source: str, tests: list[tuple[Path, Path]], *, inline: bool = True,
                    workdir: str | None = None, **options: Any) -> bytes:
    """The stdin for ``python3 -I -c SANDBOX_LOADER``: this module's source, then the job.

    With ``inline`` the tests' contents travel in the payload: nothing of the job touches the
    sandbox's disk before the judge (root) has a folder that only it can read, so no process of
    the agent (another user) ever sees a hidden test. Without it (the local sandbox, on the
    host's files) the tests are named by path and ``workdir`` is the submission's folder.
    """
    blobs = [source.encode("utf-8", errors="replace")]
    paths = []
    for input_path, expected_path in tests:
        if not inline:
            paths.append([str(input_path), str(expected_path)])
            continue
        for path in (Path(input_path), Path(expected_path)):
            try:
                blobs.append(path.read_bytes())
            except OSError as exc:
                raise JudgeSetupError(f"{path}: cannot read test file: {exc}") from exc
    header = json.dumps({"sizes": [len(b) for b in blobs], "options": options, "paths": paths,
                         "workdir": workdir}).encode()
    module = Path(__file__).read_bytes()
    return b"".join([b"%012d" % len(module), module, b"%012d" % len(header), header, *blobs])


def sandbox_main(data: memoryview) -> int:
    """Judge inside a sandbox from ``sandbox_payload``'s bytes; print the report JSON.

    Run as root, the tests go to a folder only root can read and the submission runs as
    ``UNPRIVILEGED_UID``; run as anyone else, as that same user (the report says which).
    """
    import shutil

    size = int(bytes(data[:12]))
    header = json.loads(bytes(data[12 : 12 + size]))
    offset = 12 + size
    blobs = []
    for length in header["sizes"]:
        blobs.append(bytes(data[offset : offset + length]))
        offset += length
    options = dict(header["options"])
    by_path = bool(header.get("paths"))
    # Only where the judge owns the tests (inline, as root) does the submission change user: on the
    # host the interpreter itself may live where another user cannot reach it.
    drop = os.geteuid() == 0 and not by_path
    secret = Path(tempfile.mkdtemp(prefix="cloudeval-tests-"))  # mode 0700, the judge's own
    work = Path(header["workdir"]) if header.get("workdir") else Path(tempfile.mkdtemp(prefix="cloudeval-run-"))
    try:
        tests = [(Path(i), Path(o)) for i, o in header.get("paths") or []]
        for number in range(1, (len(blobs) - 1) // 2 + 1):
            given, expected = secret / f"{number}.in", secret / f"{number}.out"
            given.write_bytes(blobs[2 * number - 1])
            expected.write_bytes(blobs[2 * number])
            tests.append((given, expected))
        report = judge_submission(
            blobs[0].decode("utf-8", errors="replace"),
            tests,
            workdir=work,
            run_as=UNPRIVILEGED_UID if drop else None,
            **options,
        )
    except JudgeSetupError as exc:
        print(f"judge setup error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(secret, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python3 usaco.py SPEC.json``; prints the report JSON, exits 2 only for a bad spec."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: usaco.py SPEC.json", file=sys.stderr)
        return 2
    try:
        spec = _load_spec(args[0])
        try:
            source = Path(spec["source_path"]).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise JudgeSetupError(f"{spec['source_path']}: cannot read source: {exc}") from exc
        report = judge_submission(
            source,
            [(Path(i), Path(o)) for i, o in spec["tests"]],
            time_limit_s=float(spec["time_limit_s"]),
            memory_mb=int(spec["memory_mb"]),
            workdir=Path(spec["workdir"]),
            python=spec.get("python") or sys.executable,
            max_output_bytes=int(spec.get("max_output_bytes", 8 * 1024 * 1024)),
            semantics=str(spec.get("semantics", "hal")),
        )
    except JudgeSetupError as exc:
        print(f"judge setup error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
