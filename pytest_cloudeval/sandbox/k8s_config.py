"""Options of the Kubernetes sandbox (``--sandbox=k8s``) and their resolution into ``K8sConfig``.

A subsystem plugin of its own: it adds its option table, resolves it once on the controller into
the ``Settings.k8s`` section, which workers receive with the rest of the settings (the sandbox reads
it from there). No Kubernetes SDK is imported by this module; a k8s session warms it in a thread.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Generator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest

from ..options import Option, add_options, positive_float, resolve

_STASH: dict[str, Any] = {}
"""The config resolved for ``pytest --cleanup`` (before any session exists)."""


def _mapping(text: str) -> dict[str, str]:
    pairs = [p.strip() for p in text.split(",") if p.strip()]
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE[,KEY=VALUE...], got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _tolerations(text: str) -> list[dict[str, Any]]:
    """``KEY=VALUE:EFFECT`` or ``KEY:EFFECT`` or ``KEY`` (Exists) items, comma separated; or a JSON list."""
    if text.strip().startswith("["):
        data = json.loads(text)
        if not isinstance(data, list) or not all(isinstance(t, dict) for t in data):
            raise ValueError("a JSON list of toleration objects was expected")
        return data
    out: list[dict[str, Any]] = []
    for item in (i.strip() for i in text.split(",") if i.strip()):
        head, _, effect = item.partition(":")
        key, sep, value = head.partition("=")
        toleration: dict[str, Any] = {"key": key, "operator": "Equal" if sep else "Exists"}
        if sep:
            toleration["value"] = value
        if effect:
            if effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
                raise ValueError(f"toleration effect {effect!r} is not NoSchedule, PreferNoSchedule or NoExecute")
            toleration["effect"] = effect
        out.append(toleration)
    return out


K8S_OPTIONS: tuple[Option, ...] = (
    Option("--kubeconfig", "cloudeval_kubeconfig", "kubeconfig of the cluster for --sandbox=k8s (default: "
           "$KUBECONFIG or ~/.kube/config)", env="CLOUDEVAL_KUBECONFIG", ini="cloudeval_kubeconfig", metavar="FILE"),
    Option("--k8s-context", "cloudeval_k8s_context", "kubeconfig context (default: its current context)",
           env="CLOUDEVAL_K8S_CONTEXT", ini="cloudeval_k8s_context", metavar="NAME"),
    Option("--k8s-namespace", "cloudeval_k8s_namespace", "namespace of the task pods (default: the context's, "
           "else default)", env="CLOUDEVAL_K8S_NAMESPACE", ini="cloudeval_k8s_namespace", metavar="NS"),
    Option("--image-registry", "cloudeval_image_registry", "registry the cluster pulls from: images that exist "
           "only locally are pushed there under their content-hash tag", env="CLOUDEVAL_IMAGE_REGISTRY",
           ini="cloudeval_image_registry", metavar="HOST[:PORT][/PATH]"),
    Option("--k8s-start-timeout", "cloudeval_k8s_start_timeout", "seconds a pod may take to start before the "
           "attempt is a sandbox error naming why (its events)", type=positive_float, default=300.0,
           env="CLOUDEVAL_K8S_START_TIMEOUT", ini="cloudeval_k8s_start_timeout", metavar="SECONDS"),
    Option("--k8s-node-selector", "cloudeval_k8s_node_selector", "nodeSelector of task pods, KEY=VALUE,...",
           type=_mapping, env="CLOUDEVAL_K8S_NODE_SELECTOR", ini="cloudeval_k8s_node_selector", metavar="K=V,..."),
    Option("--k8s-tolerations", "cloudeval_k8s_tolerations", "tolerations of task pods: KEY[=VALUE][:EFFECT],... "
           "(e.g. cloud.google.com/gke-spot=true:NoSchedule) or a JSON list", type=_tolerations,
           env="CLOUDEVAL_K8S_TOLERATIONS", ini="cloudeval_k8s_tolerations", metavar="SPEC"),
    Option("--k8s-runtime-class", "cloudeval_k8s_runtime_class", "runtimeClassName of task pods (e.g. gvisor)",
           env="CLOUDEVAL_K8S_RUNTIME_CLASS", ini="cloudeval_k8s_runtime_class", metavar="NAME"),
)


@dataclass(frozen=True)
class K8sConfig:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    image_registry: str | None = None
    start_timeout_s: float = 300.0
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    runtime_class: str | None = None
    local_engine: bool = True
    """Whether task images may be resolved (inspected, pulled, built, pushed) with a local Docker
    engine; False in ``--cloud=gke`` worker pods, which have none: images are then used as named."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> K8sConfig:
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["tolerations"] = tuple(values.get("tolerations") or ())
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tolerations"] = list(self.tolerations)
        data["node_selector"] = dict(self.node_selector)
        return data


def resolve_config(config: pytest.Config) -> K8sConfig:
    env = dict(os.environ)
    v = {o.dest[len("cloudeval_"):]: resolve(config, o, env) for o in K8S_OPTIONS}
    kubeconfig = v["kubeconfig"]
    if kubeconfig and not os.path.isabs(kubeconfig):
        kubeconfig = os.path.join(str(config.invocation_params.dir), kubeconfig)
    registry = (v["image_registry"] or "").rstrip("/") or None
    return K8sConfig(kubeconfig=kubeconfig, context=v["k8s_context"], namespace=v["k8s_namespace"],
                     image_registry=registry, start_timeout_s=v["k8s_start_timeout"],
                     node_selector=v["k8s_node_selector"] or {}, tolerations=tuple(v["k8s_tolerations"] or ()),
                     runtime_class=v["k8s_runtime_class"])


def use(section: K8sConfig | Mapping[str, Any] | None) -> None:
    """Make ``section`` this process's Kubernetes settings (sandboxes get a spec, not Settings)."""
    if section is None:
        _STASH.pop("k8s", None)
    else:
        _STASH["k8s"] = section.to_dict() if isinstance(section, K8sConfig) else dict(section)


def config_of(settings: Any = None) -> K8sConfig:
    section = getattr(settings, "k8s", None)
    if isinstance(section, K8sConfig):
        return section
    if isinstance(section, Mapping):
        return K8sConfig.from_dict(section)
    shipped = _STASH.get("k8s")
    return K8sConfig.from_dict(shipped) if shipped else K8sConfig()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cloudeval-k8s", "cloudeval Kubernetes sandbox (--sandbox=k8s)")
    add_options(group, parser, K8S_OPTIONS)


@pytest.hookimpl(hookwrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, None, None]:
    named = config.getoption("cloudeval_sandbox", default=None) or os.environ.get("CLOUDEVAL_SANDBOX")
    if config.getoption("cloudeval_cleanup", default=False) and named == "k8s":
        # A cluster is swept only when named: pytest --cleanup --sandbox=k8s [--run-id X].
        _STASH["k8s"] = resolve_config(config).to_dict()
    yield


@pytest.hookimpl
def pytest_cloudeval_configure(session: Any) -> None:
    settings = session.settings
    if settings.sandbox != "k8s":
        return
    if settings.k8s is None and not session.is_worker:
        settings = settings.replace(k8s=resolve_config(session.config))
        session.settings = settings
    use(settings.k8s)  # what this process's sandboxes (and the end-of-run sweep) read
    # The SDK's import and the kubeconfig's loading (~1.5 s of CPU) overlap the collection and the
    # first attempt's image work instead of preceding the first pod (or the controller's final sweep).
    threading.Thread(target=_warm, args=(config_of(settings),), name="cloudeval-k8s-warm", daemon=True).start()


def _warm(cfg: K8sConfig) -> None:
    try:
        from . import k8s_api

        k8s_api.rest(cfg)
    except Exception:  # noqa: BLE001 - the first real call reports what is wrong
        pass
