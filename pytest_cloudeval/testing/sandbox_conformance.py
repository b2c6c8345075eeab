"""The sandbox conformance suite: what every :class:`~pytest_cloudeval.sandbox.base.Sandbox` must do.

CI runs it against every built-in sandbox (``tests/test_sandbox_contract.py``); a third-party sandbox
runs it by subclassing, in its own test module::

    from pytest_cloudeval.testing.sandbox_conformance import SandboxConformance

    class TestMySandbox(SandboxConformance):
        sandbox_cls = MySandbox
        spec_changes = {"image": "my/image"}   # optional: SandboxSpec fields for every test

The class holds only ``test_*`` methods and fixtures, so pytest collects it like any test class.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ..errors import SandboxError
from ..model import Task
from ..sandbox.base import Capability, CopyReport, Sandbox, SandboxHandle, SandboxOptions, SandboxSpec

CAP = 64 * 1024
"""The output cap of the suite's sandboxes (bytes of a command's output kept)."""


class SandboxConformance:
    """Subclass with ``sandbox_cls`` set (and ``spec_changes`` if the sandbox needs them)."""

    sandbox_cls: ClassVar[type[Sandbox]]
    spec_changes: ClassVar[dict[str, Any]] = {}

    def make_sandbox(self, tmp_path: Path, **changes: Any) -> Sandbox:
        task = Task(benchmark="contract", task_id="t", format="test", source=tmp_path, root=tmp_path,
                    instruction="", agent_input={})
        run_id = f"contract-{secrets.token_hex(4)}"
        options = SandboxOptions(run_id=run_id, output_cap_bytes=CAP, work_root=str(tmp_path / "work"))
        values: dict[str, Any] = {"task": task, "run_id": run_id, "name": f"ce-{run_id}",
                                  "env": {"SPEC_VAR": "from-spec", "SHARED": "spec"},
                                  "labels": {"cloudeval.run": run_id}, "options": options}
        values.update(self.spec_changes)
        values.update(changes)
        return self.sandbox_cls(SandboxSpec(**values))

    @pytest.fixture
    def sandbox(self, tmp_path: Path) -> Iterator[Sandbox]:
        box = self.make_sandbox(tmp_path)
        box.start()
        yield box
        box.close()

    # -- the class itself ------------------------------------------------------------------------
    def test_declares_its_name_and_capabilities(self) -> None:
        assert self.sandbox_cls.name, "a sandbox needs a registration name"
        assert isinstance(self.sandbox_cls.capabilities, Capability)
        assert Capability.PROCESS in self.sandbox_cls.capabilities

    # -- commands --------------------------------------------------------------------------------
    def test_exec_argv_exit_codes_and_streams(self, sandbox: Sandbox) -> None:
        result = sandbox.exec(["sh", "-c", 'echo "out $1"; echo err >&2; exit 7', "sh", "a b"], timeout=30)
        assert (result.exit_code, result.stdout, result.stderr) == (7, "out a b\n", "err\n")
        assert not result.ok and not result.timed_out
        assert sandbox.exec(["true"], timeout=30).ok

    def test_exec_string_runs_in_bash(self, sandbox: Sandbox) -> None:
        result = sandbox.exec("[[ 2 -gt 1 ]] && echo $((6 * 7))", timeout=30)
        assert result.ok, result.stderr
        assert result.stdout == "42\n"

    def test_missing_program_exits_127(self, sandbox: Sandbox) -> None:
        result = sandbox.exec(["no-such-program-xyz"], timeout=30)
        assert result.exit_code == 127
        assert "no-such-program-xyz" in result.stderr

    def test_stdin(self, sandbox: Sandbox) -> None:
        assert sandbox.exec(["cat"], timeout=30, stdin=b"line 1\nline 2\n").stdout == "line 1\nline 2\n"
        # More than any pipe buffer holds, so writer and reader must overlap.
        big = sandbox.exec(["wc", "-c"], timeout=30, stdin=b"x" * (3 * 1024 * 1024))
        assert big.stdout.strip() == str(3 * 1024 * 1024)
        # Without stdin, a reader sees end of input at once instead of hanging.
        assert sandbox.exec(["cat"], timeout=10).stdout == ""

    def test_env_from_spec_and_call(self, sandbox: Sandbox) -> None:
        result = sandbox.exec('echo "$SPEC_VAR $SHARED $CALL_VAR"', timeout=30,
                              env={"CALL_VAR": "c", "SHARED": "call"})
        assert result.stdout == "from-spec call c\n"

    def test_cwd_defaults_to_workdir_and_follows_relative_paths(self, sandbox: Sandbox) -> None:
        same = sandbox.exec(["sh", "-c", '[ "$(pwd -P)" = "$(cd "$1" && pwd -P)" ]', "sh", sandbox.workdir],
                            timeout=30)
        assert same.ok, "commands do not start in the workdir"
        sandbox.write_file("sub/dir/marker.txt", "here")
        result = sandbox.exec(["cat", "marker.txt"], timeout=30, cwd="sub/dir")
        assert result.stdout == "here"

    @staticmethod
    def _alive(sandbox: Sandbox, pid: str) -> bool:
        # A killed process can stay a zombie for a moment: only running ones count.
        check = f"s=$(cut -d' ' -f3 /proc/{pid}/stat 2>/dev/null); [ -n \"$s\" ] && [ \"$s\" != Z ]"
        return sandbox.exec(["sh", "-c", check], timeout=30).exit_code == 0

    def test_timeout_kills_the_command_and_its_children(self, sandbox: Sandbox) -> None:
        started = time.monotonic()
        result = sandbox.exec("sleep 60 & echo $! > child.pid; sleep 60; echo never", timeout=1.0)
        took = time.monotonic() - started
        assert result.timed_out and result.exit_code is None and not result.ok
        assert "never" not in result.stdout
        assert took < 5, f"a 1 s timeout took {took:.1f} s"
        child = sandbox.read_file("child.pid").decode().strip()
        deadline = time.monotonic() + 3
        while self._alive(sandbox, child):
            assert time.monotonic() < deadline, "the command's child outlived its timeout"
            time.sleep(0.1)

    def test_exit_ends_the_exec_even_if_children_hold_its_output(self, sandbox: Sandbox) -> None:
        started = time.monotonic()
        result = sandbox.exec("sleep 60 & echo started", timeout=30)
        assert result.ok and result.stdout == "started\n"
        assert time.monotonic() - started < 5

    def test_output_is_capped_keeping_head_and_tail(self, sandbox: Sandbox) -> None:
        result = sandbox.exec("echo HEAD; head -c 2000000 /dev/zero | tr '\\0' x; echo; echo TAIL", timeout=60)
        assert result.ok
        assert result.output_truncated
        assert result.stdout.startswith("HEAD\n") and result.stdout.endswith("TAIL\n")
        assert "bytes cut" in result.stdout
        assert len(result.stdout) < 2 * CAP

    # -- processes that try to outlive their phase -----------------------------------------------
    DAEMON = ("setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' >/dev/null 2>&1 < /dev/null & "
              "for i in $(seq 100); do [ -s {pidfile} ] && break; sleep 0.05; done; cat {pidfile}")

    def test_stop_processes_kills_detached_daemons(self, sandbox: Sandbox) -> None:
        started = sandbox.exec(self.DAEMON.format(pidfile="daemon.pid"), timeout=30)
        pid = started.stdout.strip()
        assert started.ok and pid.isdigit(), started.stderr
        assert self._alive(sandbox, pid), "the daemon did not start (the test proves nothing)"
        sandbox.stop_processes()
        deadline = time.monotonic() + 5
        while self._alive(sandbox, pid):
            assert time.monotonic() < deadline, "a setsid daemon survived stop_processes()"
            time.sleep(0.1)
        assert sandbox.exec(["echo", "still usable"], timeout=30).stdout == "still usable\n"

    # -- files -----------------------------------------------------------------------------------
    def test_write_read_files(self, sandbox: Sandbox) -> None:
        data = bytes(range(256)) * 10
        sandbox.write_file("nested/deeper/blob.bin", data)
        sandbox.write_file(f"{sandbox.workdir}/abs.txt", "absolute")
        sandbox.write_file("run.sh", "#!/bin/sh\necho ran\n", mode=0o755)
        assert sandbox.read_file("nested/deeper/blob.bin") == data
        assert sandbox.read_file(f"{sandbox.workdir}/abs.txt") == b"absolute"
        assert sandbox.read_file("nested/deeper/blob.bin", max_bytes=10) == data[:10]
        assert sandbox.exec(["./run.sh"], timeout=30).stdout == "ran\n"
        # What the sandbox's commands write is readable, and files it was given are writable by them.
        assert sandbox.exec("echo made > made.txt && echo more >> abs.txt", timeout=30).ok
        assert sandbox.read_file("made.txt") == b"made\n"
        assert sandbox.read_file("abs.txt") == b"absolutemore\n"

    def test_make_dirs_with_modes(self, sandbox: Sandbox) -> None:
        sandbox.make_dirs(["made/a/b", "open"], mode=0o777)
        sandbox.make_dirs(["closed"], mode=0o700)
        modes = sandbox.exec(["stat", "-c", "%a", "made/a/b", "open", "closed"], timeout=30)
        assert modes.stdout.split() == ["777", "777", "700"], modes.stderr
        assert sandbox.exec("echo x > made/a/b/f.txt", timeout=30).ok

    def test_read_follows_symbolic_links(self, sandbox: Sandbox) -> None:
        sandbox.write_file("real/target.txt", "through the link")
        assert sandbox.exec("ln -s real/target.txt link.txt && ln -s real dirlink", timeout=30).ok
        assert sandbox.read_file("link.txt") == b"through the link"
        assert sandbox.read_file("dirlink/target.txt") == b"through the link"

    def test_read_missing_file_raises_file_not_found(self, sandbox: Sandbox) -> None:
        with pytest.raises(FileNotFoundError):
            sandbox.read_file("no/such/file.txt")

    def test_copy_in_and_out_files_and_folders(self, sandbox: Sandbox, tmp_path: Path) -> None:
        src = tmp_path / "src"
        (src / "sub").mkdir(parents=True)
        (src / "top.txt").write_text("top")
        (src / "sub" / "tool.sh").write_text("#!/bin/sh\necho tool\n")
        (src / "sub" / "tool.sh").chmod(0o755)
        single = tmp_path / "single.txt"
        single.write_text("one file")
        sandbox.copy_in(src, "copied")
        sandbox.copy_in(single, "files/single.txt")
        assert sandbox.exec(["sh", "-c", "cat copied/top.txt && copied/sub/tool.sh"], timeout=30).stdout == "toptool\n"
        assert sandbox.read_file("files/single.txt") == b"one file"
        assert sandbox.exec("echo new > copied/sub/new.txt", timeout=30).ok

        out = tmp_path / "out"
        assert sandbox.copy_out("copied", out / "tree")
        assert sorted(p.relative_to(out / "tree").as_posix() for p in (out / "tree").rglob("*")) == [
            "sub", "sub/new.txt", "sub/tool.sh", "top.txt"]
        assert (out / "tree" / "sub" / "new.txt").read_text() == "new\n"
        assert sandbox.copy_out("files/single.txt", out / "single.txt")
        assert (out / "single.txt").read_text() == "one file"
        assert sandbox.copy_out("no/such/thing", out / "nothing") is False
        assert not (out / "nothing").exists()

    def test_copy_out_caps_and_reports_what_it_left_out(self, sandbox: Sandbox, tmp_path: Path) -> None:
        made = sandbox.exec("mkdir -p many && cd many && for i in $(seq 1 30); do echo $i > f$i.txt; done && "
                            "ln -s /etc/passwd link && head -c 5000 /dev/zero > big.bin", timeout=60)
        assert made.ok, made.stderr
        report = sandbox.copy_out_report("many", tmp_path / "capped", max_files=10)
        assert isinstance(report, CopyReport)
        copied = sorted(p.name for p in (tmp_path / "capped").iterdir())
        assert report.files == len(copied) == 10
        assert "link" not in copied, "a symbolic link came back (it could point at host files)"
        assert report.skipped_count == 22  # 20 files over the cap, big.bin, the link
        assert any("link" in line and "not a regular file" in line for line in report.skipped)
        assert any("file cap" in line for line in report.skipped)
        by_bytes = sandbox.copy_out_report("many", tmp_path / "bytes", max_bytes=1000)
        assert by_bytes is not None and by_bytes.bytes <= 1000
        assert not (tmp_path / "bytes" / "big.bin").exists()
        assert any("big.bin" in line and "byte cap" in line for line in by_bytes.skipped)
        assert sandbox.copy_out_report("nothing/here", tmp_path / "none") is None

    # -- records ---------------------------------------------------------------------------------
    def test_describe_names_the_sandbox_and_its_limits(self, tmp_path: Path) -> None:
        box = self.make_sandbox(tmp_path, memory_mb=300)
        box.start()
        try:
            record = box.describe()
            assert record["sandbox"] == self.sandbox_cls.name
            assert record["limits"]["memory_mb"] in (300, ) or str(record["limits"]["memory_mb"]).startswith(
                "not applied")
            assert "workdir" in record
        finally:
            box.close()

    def test_memory_limit_is_enforced_inside(self, tmp_path: Path) -> None:
        box = self.make_sandbox(tmp_path, memory_mb=256)
        box.start()
        try:
            result = box.exec(["python3", "-c", "b = bytearray(1024 * 1024 * 1024); b[::4096] = b'x' * "
                               "len(b[::4096]); print('survived')"], timeout=120)
            assert "survived" not in result.stdout
            assert result.exit_code != 0
            small = box.exec(["python3", "-c", "b = bytearray(32 * 1024 * 1024); print('fine')"], timeout=60)
            assert small.stdout == "fine\n", small.stderr
        finally:
            box.close()

    # -- the agent's handle ----------------------------------------------------------------------
    def test_handle_bounds_calls_by_the_agents_deadline(self, sandbox: Sandbox) -> None:
        handle = SandboxHandle(sandbox, deadline=time.monotonic() + 30)
        handle.write_file("note.txt", "hello")
        assert handle.read_file("note.txt") == "hello"
        assert handle.run(["cat", "note.txt"]).stdout == "hello"
        assert handle.run("cat", stdin="piped").stdout == "piped"
        short = SandboxHandle(sandbox, deadline=time.monotonic() + 1.0)
        assert short.run("sleep 20", timeout=60).timed_out  # bounded by the deadline, not the 60 s
        with pytest.raises(TimeoutError):
            short.run("true")
        handle.revoke()
        with pytest.raises(TimeoutError):
            handle.run("true")

    # -- prepared ahead (``prepares_ahead``) --------------------------------------------------
    def test_prepare_in_another_thread_then_start(self, tmp_path: Path) -> None:
        """``prepare()`` (another thread, as a worker calls it) then ``start()``: a working sandbox;
        without ``prepares_ahead`` prepare must still be harmless."""
        import threading

        box = self.make_sandbox(tmp_path)
        errors: list[BaseException] = []

        def prepare() -> None:
            try:
                box.prepare()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        thread = threading.Thread(target=prepare)
        thread.start()
        thread.join(120)
        try:
            assert not thread.is_alive() and not errors, errors
            box.start()
            box.write_file("prepared.txt", "ready")
            result = box.exec(["cat", "prepared.txt"], timeout=30)
            assert result.ok and result.stdout == "ready", result
        finally:
            box.close()

    def test_close_after_prepare_without_start(self, tmp_path: Path) -> None:
        """A prepared sandbox that is never used is closed like any other (and stays unusable)."""
        box = self.make_sandbox(tmp_path)
        box.prepare()
        box.close()
        box.close()
        with pytest.raises(SandboxError):
            box.exec(["true"], timeout=30)

    # -- the end ---------------------------------------------------------------------------------
    def test_close_is_idempotent_and_ends_the_sandbox(self, tmp_path: Path) -> None:
        box = self.make_sandbox(tmp_path)
        box.close()  # before start: nothing to do, no error
        box = self.make_sandbox(tmp_path)
        box.start()
        assert box.exec(["true"], timeout=30).ok
        box.close()
        box.close()
        with pytest.raises(SandboxError):
            box.exec(["true"], timeout=30)
