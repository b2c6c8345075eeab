"""Settings resolution without a pytest run: sources and their order, errors naming the source,
each subsystem's section, and the one-way trip from the controller to workers."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from pytest_cloudeval.artifacts.settings import StoreSettings, resolve_store
from pytest_cloudeval.backends import wiring
from pytest_cloudeval.backends.gce.config import GCE_OPTIONS, GceConfig
from pytest_cloudeval.backends.gke.config import GKE_OPTIONS
from pytest_cloudeval.backends.options import BACKEND_OPTIONS, CLOUD_OPTIONS, CloudSettings
from pytest_cloudeval.sandbox.base import SandboxOptions
from pytest_cloudeval.settings import CORE_OPTIONS, Settings, settings_from_config


def test_cli_beats_environment_beats_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncloudeval_repeat = 3\ncloudeval_sandbox = docker\n")
    config = pytester.parseconfig()
    assert settings_from_config(config, {}).repeat == 3
    assert settings_from_config(config, {"CLOUDEVAL_REPEAT": "5"}).repeat == 5
    config = pytester.parseconfig("--repeat", "7")
    settings = settings_from_config(config, {"CLOUDEVAL_REPEAT": "5"})
    assert settings.repeat == 7 and settings.sandbox == "docker"


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--repeat", "0"], {}, "option --repeat: invalid value '0'"),
    ([], {"CLOUDEVAL_TASK_TIMEOUT": "-1"}, "environment variable CLOUDEVAL_TASK_TIMEOUT: invalid value '-1'"),
    (["--network", "wifi"], {}, "must be one of auto, none, bridge"),
    (["--run-id", "../x"], {}, "option --run-id: invalid value"),
])
def test_bad_values_name_their_source(pytester: pytest.Pytester, args: list[str], env: dict[str, str],
                                      message: str) -> None:
    with pytest.raises(pytest.UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings_from_config(pytester.parseconfig(*args), env)


def test_secrets_file_is_resolved_once_and_kept_out_of_repr(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("s.env").write_text("export API_KEY='abcd1234'\nPIN=zq81-vv09\n")
    settings = settings_from_config(pytester.parseconfig("--secrets-env", "s.env"), {})
    assert settings.secrets == {"API_KEY": "abcd1234", "PIN": "zq81-vv09"}
    assert settings.secrets_file == str((pytester.path / "s.env").resolve())
    assert set(settings.redact_values) == {"abcd1234", "zq81-vv09"}
    assert "abcd1234" not in repr(settings) and "zq81-vv09" not in repr(settings)
    assert settings.public_dict()["secrets"] == ["API_KEY", "PIN"]
    pytester.path.joinpath("short.env").write_text("SHORT=ab\n")
    with pytest.raises(pytest.UsageError, match="secret SHORT cannot be redacted safely"):
        settings_from_config(pytester.parseconfig("--secrets-env", "short.env"), {})


def test_resume_and_run_id_must_agree(pytester: pytest.Pytester) -> None:
    with pytest.raises(pytest.UsageError, match="disagree"):
        settings_from_config(pytester.parseconfig("--resume", "a", "--run-id", "b"), {})
    settings = settings_from_config(pytester.parseconfig("--resume", "a"), {})
    assert settings.run_id == "a" and settings.resuming


def test_sections_survive_the_trip_to_workers(tmp_path: Path) -> None:
    settings = Settings(run_id="r", artifacts_url="gs://b/p", store=StoreSettings(url="gs://b/p", retries=2),
                        cloud="gce", cloud_run=CloudSettings(cloud="gce", workers_per_vm=2, workers=4))
    again = Settings.from_dict(settings.to_dict())
    assert again == settings
    assert isinstance(again.store, StoreSettings) and again.store.retries == 2
    assert isinstance(again.cloud_run, CloudSettings) and again.cloud_run.workers == 4
    layout = wiring.RemoteLayout("r", tmp_path / "bench", tmp_path)
    remote = Settings.from_dict(wiring.worker_settings(settings.to_dict(), layout, None, "gce"))
    assert remote.store == settings.store and remote.cloud_run == settings.cloud_run
    assert remote.rootdir == layout.root and remote.rootdir_name == "bench"
    assert remote.local_name(Path(layout.root)) == "bench", "a benchmark at the rootdir keeps its local name"
    assert remote.local_name(Path(layout.root) / "sub") == "sub"
    assert settings.local_name(tmp_path / "x") == "x"


def test_there_is_no_untyped_bag() -> None:
    names = {f.name for f in fields(Settings)}
    assert "extra" not in names
    assert Settings.from_dict({"run_id": "r", "extra": {"x": 1}, "unknown": 2}) == Settings(run_id="r")


def test_the_sandbox_section(pytester: pytest.Pytester, tmp_path: Path) -> None:
    config = pytester.parseconfig("--sandbox-image", "img:1", "--output-cap", "4096", "--run-id", "r1")
    settings = settings_from_config(config, {}).replace(work_root=str(tmp_path))
    section = settings.sandbox_section
    assert isinstance(section, SandboxOptions)
    assert (section.run_id, section.default_image, section.output_cap_bytes, section.work_root) == \
        ("r1", "img:1", 4096, str(tmp_path))


def test_the_store_section_is_resolved_from_its_own_table(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig("--upload-max-bytes", "1m")
    store = resolve_store(config, "gs://bucket/p/", {"CLOUDEVAL_UPLOAD_RETRIES": "9"})
    assert store == StoreSettings(url="gs://bucket/p", retries=9, max_bytes=1024 ** 2)
    with pytest.raises(pytest.UsageError, match="environment variable CLOUDEVAL_UPLOAD_RETRIES"):
        resolve_store(config, "gs://b", {"CLOUDEVAL_UPLOAD_RETRIES": "-2"})


def test_the_cloud_sections_are_resolved_from_their_own_tables(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ngce_machine_type = n2-standard-4\n")
    config = pytester.parseconfig("--cloud", "gce", "--workers-per-vm", "3", "--gce-spot")
    cloud = CloudSettings.from_config(config, {"CLOUDEVAL_KEEP_WORKERS": "warm"})
    assert (cloud.cloud, cloud.workers_per_vm, cloud.keep_workers, cloud.dry_run) == ("gce", 3, "warm", False)
    gce = GceConfig.from_config(config, {"GCP_PROJECT_ID": "my-project-1", "GCP_ZONE": "europe-west4-a"})
    assert (gce.project, gce.zones, gce.machine_type, gce.spot) == ("my-project-1", ("europe-west4-a",),
                                                                    "n2-standard-4", True)
    assert gce.ssh_user == "cloudeval" and gce.disk_gb == 20


def test_option_tables_do_not_overlap() -> None:
    from pytest_cloudeval.sandbox.k8s_config import K8S_OPTIONS

    tables = [CORE_OPTIONS, CLOUD_OPTIONS, GCE_OPTIONS, GKE_OPTIONS, K8S_OPTIONS]
    dests = [o.dest for table in tables for o in table]
    flags = [o.flag for table in tables for o in table]
    assert len(set(dests)) == len(dests) and len(set(flags)) == len(flags)
    assert BACKEND_OPTIONS == CLOUD_OPTIONS + GCE_OPTIONS + GKE_OPTIONS
