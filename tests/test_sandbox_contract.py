"""The sandbox contract (``pytest_cloudeval.sandbox.base.Sandbox``), run against every sandbox:
the local one, the docker one with the runner image (non-root user ``agent``), and the docker one
with a task image run as root (how Harbor tasks run)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cloudeval.errors import SandboxError
from pytest_cloudeval.model import Task
from pytest_cloudeval.sandbox.base import Sandbox, SandboxHandle, SandboxSpec
from pytest_cloudeval.settings import Settings
from tests.docker_support import BASE_IMAGE, require_docker

CAP = 64 * 1024


def make_sandbox(kind: str, tmp_path: Path, **spec_changes: object) -> Sandbox:
    task = Task(benchmark="contract", task_id="t", format="test", source=tmp_path, root=tmp_path,
                instruction="", agent_input={})
    run_id = f"contract-{secrets.token_hex(4)}"
    settings = Settings(run_id=run_id, output_cap_bytes=CAP, work_root=str(tmp_path / "work"))
    values: dict[str, object] = {"task": task, "run_id": run_id, "name": f"ce-{run_id}",
                                 "env": {"SPEC_VAR": "from-spec", "SHARED": "spec"},
                                 "labels": {"cloudeval.run": run_id}}
    if kind == "local":
        from pytest_cloudeval.sandbox.local import LocalSandbox

        cls: type[Sandbox] = LocalSandbox
    elif kind.startswith("k8s"):
        from pytest_cloudeval.sandbox.k8s import K8sSandbox
        from tests.k8s_support import k8s_section

        cls = K8sSandbox
        settings = settings.replace(sandbox="k8s", k8s=k8s_section())
        if kind == "k8s-root":
            values.update(image=BASE_IMAGE, workdir="/app")
    else:
        require_docker()
        from pytest_cloudeval.sandbox.docker import DockerSandbox

        cls = DockerSandbox
        if kind == "docker-root":
            values.update(image=BASE_IMAGE, workdir="/app")
    values.update(spec_changes)
    return cls(SandboxSpec(**values), settings)  # type: ignore[arg-type]


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker),
                        pytest.param("docker-root", marks=pytest.mark.docker),
                        pytest.param("k8s", marks=pytest.mark.docker),
                        pytest.param("k8s-root", marks=pytest.mark.docker)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sandbox(kind: str, tmp_path: Path) -> Iterator[Sandbox]:
    box = make_sandbox(kind, tmp_path)
    box.start()
    yield box
    box.close()


def test_exec_argv_exit_codes_and_streams(sandbox: Sandbox) -> None:
    result = sandbox.exec(["sh", "-c", 'echo "out $1"; echo err >&2; exit 7', "sh", "a b"], timeout=30)
    assert (result.exit_code, result.stdout, result.stderr) == (7, "out a b\n", "err\n")
    assert not result.ok and not result.timed_out
    assert sandbox.exec(["true"], timeout=30).ok


def test_exec_string_runs_in_bash(sandbox: Sandbox) -> None:
    result = sandbox.exec("[[ 2 -gt 1 ]] && echo $((6 * 7))", timeout=30)
    assert result.ok, result.stderr
    assert result.stdout == "42\n"


def test_missing_program_exits_127(sandbox: Sandbox) -> None:
    result = sandbox.exec(["no-such-program-xyz"], timeout=30)
    assert result.exit_code == 127
    assert "no-such-program-xyz" in result.stderr


def test_stdin(sandbox: Sandbox) -> None:
    assert sandbox.exec(["cat"], timeout=30, stdin=b"line 1\nline 2\n").stdout == "line 1\nline 2\n"
    # More than any pipe buffer holds, so writer and reader must overlap.
    big = sandbox.exec(["wc", "-c"], timeout=30, stdin=b"x" * (3 * 1024 * 1024))
    assert big.stdout.strip() == str(3 * 1024 * 1024)
    # Without stdin, a reader sees end of input at once instead of hanging.
    assert sandbox.exec(["cat"], timeout=10).stdout == ""


def test_env_from_spec_and_call(sandbox: Sandbox) -> None:
    result = sandbox.exec('echo "$SPEC_VAR $SHARED $CALL_VAR"', timeout=30, env={"CALL_VAR": "c", "SHARED": "call"})
    assert result.stdout == "from-spec call c\n"


def test_cwd_defaults_to_workdir_and_follows_relative_paths(sandbox: Sandbox) -> None:
    same = sandbox.exec(["sh", "-c", '[ "$(pwd -P)" = "$(cd "$1" && pwd -P)" ]', "sh", sandbox.workdir], timeout=30)
    assert same.ok, "commands do not start in the workdir"
    sandbox.write_file("sub/dir/marker.txt", "here")
    result = sandbox.exec(["cat", "marker.txt"], timeout=30, cwd="sub/dir")
    assert result.stdout == "here"


def _alive(sandbox: Sandbox, pid: str) -> bool:
    # A killed process can stay a zombie for a moment: only running ones count.
    check = f"s=$(cut -d' ' -f3 /proc/{pid}/stat 2>/dev/null); [ -n \"$s\" ] && [ \"$s\" != Z ]"
    return sandbox.exec(["sh", "-c", check], timeout=30).exit_code == 0


def test_timeout_kills_the_command_and_its_children(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = sandbox.exec("sleep 60 & echo $! > child.pid; sleep 60; echo never", timeout=1.0)
    took = time.monotonic() - started
    assert result.timed_out and result.exit_code is None and not result.ok
    assert "never" not in result.stdout
    assert took < 5, f"a 1 s timeout took {took:.1f} s"
    child = sandbox.read_file("child.pid").decode().strip()
    deadline = time.monotonic() + 3
    while _alive(sandbox, child):
        assert time.monotonic() < deadline, "the command's child outlived its timeout"
        time.sleep(0.1)


def test_exit_ends_the_exec_even_if_children_hold_its_output(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = sandbox.exec("sleep 60 & echo started", timeout=30)
    assert result.ok and result.stdout == "started\n"
    assert time.monotonic() - started < 5


def test_output_is_capped_keeping_head_and_tail(sandbox: Sandbox) -> None:
    result = sandbox.exec("echo HEAD; head -c 2000000 /dev/zero | tr '\\0' x; echo; echo TAIL", timeout=60)
    assert result.ok
    assert result.output_truncated
    assert result.stdout.startswith("HEAD\n") and result.stdout.endswith("TAIL\n")
    assert "bytes cut" in result.stdout
    assert len(result.stdout) < 2 * CAP


def test_write_read_files(sandbox: Sandbox) -> None:
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


def test_read_follows_symbolic_links(sandbox: Sandbox) -> None:
    sandbox.write_file("real/target.txt", "through the link")
    assert sandbox.exec("ln -s real/target.txt link.txt && ln -s real dirlink", timeout=30).ok
    assert sandbox.read_file("link.txt") == b"through the link"
    assert sandbox.read_file("dirlink/target.txt") == b"through the link"


def test_read_missing_file_raises_file_not_found(sandbox: Sandbox) -> None:
    with pytest.raises(FileNotFoundError):
        sandbox.read_file("no/such/file.txt")


def test_copy_in_and_out_files_and_folders(sandbox: Sandbox, tmp_path: Path) -> None:
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


def test_handle_bounds_calls_by_the_agents_deadline(sandbox: Sandbox) -> None:
    handle = SandboxHandle(sandbox, deadline=time.monotonic() + 30)
    handle.write_file("note.txt", "hello")
    assert handle.read_file("note.txt") == "hello"
    assert handle.run(["cat", "note.txt"]).stdout == "hello"
    assert handle.run("cat", stdin="piped").stdout == "piped"
    short = SandboxHandle(sandbox, deadline=time.monotonic() + 1.0)
    assert short.run("sleep 20", timeout=60).timed_out  # bounded by the deadline, not the 60 s
    with pytest.raises(TimeoutError):
        short.run("true")


def test_close_is_idempotent_and_ends_the_sandbox(kind: str, tmp_path: Path) -> None:
    box = make_sandbox(kind, tmp_path)
    box.close()  # before start: nothing to do, no error
    box = make_sandbox(kind, tmp_path)
    box.start()
    assert box.exec(["true"], timeout=30).ok
    box.close()
    box.close()
    with pytest.raises(SandboxError):
        box.exec(["true"], timeout=30)
