"""Model kinds as plug-ins: a name-to-kind registry that each kind module fills.

A kind is one module (or a subpackage, as ``musicnn/``) that defines a
:class:`~genreflow.kinds.base.ModelKind` subclass decorated with :func:`register_kind`, plus
its ``train.<name>`` section in ``params.yaml``. The registry imports

* genreflow's own kinds (``_BUILTIN``, modules under ``genreflow.kinds``);
* every module or object of the ``genreflow.kinds`` entry-point group of the installed
  distributions (a kind shipped in its own package);
* the modules named by ``train.plugins`` in ``params.yaml`` and by ``GENREFLOW_PLUGINS``
  (comma-separated), which the CLI sets from ``train.plugins`` so that every ``genreflow``
  process it starts (tune workers, the scoring server's) finds the same kinds.

See README, "Adding a model kind".
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from importlib.metadata import entry_points
from pathlib import Path

from genreflow.core.config import PLUGINS_ENV, ConfigError, _coerce
from genreflow.kinds.base import FrontEnd, KindConfig, ModelKind

_REGISTRY: dict[str, ModelKind] = {}
_BUILTIN = ("cnn", "segcnn.kind", "inception.kind", "musicnn.kind")  # under genreflow.kinds
ENTRY_POINT_GROUP = "genreflow.kinds"
_loaded: set[str] = set()


def register_kind(cls: type[ModelKind]) -> type[ModelKind]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise ValueError(f"model kind {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def _import(module: str, where: str) -> None:
    if module in _loaded:
        return
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import model kind module {module!r} ({exc}); "
                          "install it or put it on PYTHONPATH") from None
    _loaded.add(module)


def load_plugins(modules: list[str] | tuple[str, ...] = (), where: str = "train.plugins") -> None:
    """Import the built-in kinds, the entry points, ``GENREFLOW_PLUGINS`` and ``modules``."""
    for name in _BUILTIN:
        _import(f"genreflow.kinds.{name}", "genreflow")
    if "entry points" not in _loaded:
        _loaded.add("entry points")
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except ImportError as exc:
                raise ConfigError(f"entry point {ep.name!r} of group {ENTRY_POINT_GROUP}: cannot "
                                  f"load {ep.value!r} ({exc})") from None
    for module in modules:  # first: an error names the setting the user wrote
        _import(module, where)
    env = [m for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
    for module in env:
        _import(module.strip(), PLUGINS_ENV)


def kind_names() -> tuple[str, ...]:
    """Every registered kind, in registration order."""
    load_plugins()
    return tuple(_REGISTRY)


def get_kind(name: str) -> ModelKind:
    """The kind called ``name``; a :class:`ConfigError` lists the known ones otherwise."""
    load_plugins()
    if name not in _REGISTRY:
        raise ConfigError(f"model: expected one of {tuple(_REGISTRY)}, got {name!r} (a plug-in "
                          f"kind is found through train.plugins, {PLUGINS_ENV} or an entry "
                          f"point of group {ENTRY_POINT_GROUP})")
    return _REGISTRY[name]


def load_servable(kind: ModelKind, path: Path):
    """``kind``'s saved servable model, its Keras layers (``keras_modules``) registered first."""
    for module in kind.keras_modules:
        _import(module, f"model kind {kind.name}")
    return kind.load_servable(path)


def settings(train, name: str, overrides: dict | None = None, project=None) -> KindConfig:
    """The settings of kind ``name``: its ``train.<name>`` section parsed by the kind's
    config class, with ``overrides`` applied; errors name the field. With ``project``, the
    whole :class:`~genreflow.core.config.Config`, the kind also checks what it needs of the
    rest of it (:meth:`~genreflow.kinds.base.ModelKind.check_project`)."""
    load_plugins(train.plugins)
    kind = get_kind(name)
    unknown = [k for k in train.kinds if k not in kind_names()]
    if unknown:
        raise ConfigError(f"train: unknown model kind section(s) {unknown}; expected some of "
                          f"{kind_names()}")
    raw = train.kinds.get(name, {})
    base = raw if isinstance(raw, KindConfig) else _coerce(raw, kind.Config, f"train.{name}")
    fields = {f.name for f in dataclasses.fields(base)}
    bad = sorted(set(overrides or {}) - fields)
    if bad:
        raise ConfigError(f"train.{name}: {bad} are not settings of the {name} kind; "
                          f"expected some of {sorted(fields)}")
    try:
        out = dataclasses.replace(base, **(overrides or {}))
        kind.check(out)
    except ConfigError as exc:
        raise ConfigError(f"train.{name}.{exc}") from None
    if project is not None:
        kind.check_project(out, project)
    return out


def check_models(train, cfg=None) -> None:
    """Every name in ``train.models`` is a registered kind and every kind section parses
    (else a :class:`ConfigError` naming the field); with the whole ``cfg``, each kind in
    ``train.models`` also checks what it needs of the rest of it."""
    load_plugins(train.plugins)
    bad = [m for m in train.models if m not in kind_names()]
    if bad:
        raise ConfigError(f"train.models: unknown model(s) {bad}; expected some of {kind_names()}")
    for name in train.kinds:
        settings(train, name)
    for name in train.models if cfg is not None else ():
        settings(train, name, project=cfg)


__all__ = ["FrontEnd", "KindConfig", "ModelKind", "check_models", "get_kind", "kind_names",
           "load_plugins", "load_servable", "register_kind", "settings"]
