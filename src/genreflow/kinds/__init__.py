"""Model kinds as plug-ins: a name-to-kind registry that each kind module fills.

Adding a kind is one new module here (or a subpackage, as ``musicnn/``) that defines a
:class:`~genreflow.kinds.base.ModelKind` subclass decorated with :func:`register_kind`, plus
its line in ``_BUILTIN`` and its ``train.<name>`` section in ``params.yaml``. See README,
"Adding a model kind".
"""

from __future__ import annotations

import dataclasses
import importlib

from genreflow.core.config import ConfigError, _coerce
from genreflow.kinds.base import KindConfig, ModelKind

_REGISTRY: dict[str, ModelKind] = {}
_BUILTIN = ("cnn", "segcnn", "inception", "musicnn.kind")  # modules under genreflow.kinds
_loaded = False


def register_kind(cls: type[ModelKind]) -> type[ModelKind]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise ValueError(f"model kind {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        for name in _BUILTIN:
            importlib.import_module(f"genreflow.kinds.{name}")
        _loaded = True


def kind_names() -> tuple[str, ...]:
    """Every registered kind, in registration order."""
    _load_builtin()
    return tuple(_REGISTRY)


def get_kind(name: str) -> ModelKind:
    """The kind called ``name``; a :class:`ConfigError` lists the known ones otherwise."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"model: expected one of {tuple(_REGISTRY)}, got {name!r}")
    return _REGISTRY[name]


def settings(train, name: str, overrides: dict | None = None) -> KindConfig:
    """The settings of kind ``name``: its ``train.<name>`` section parsed by the kind's
    config class, with ``overrides`` applied; errors name the field."""
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
    return out


def check_models(train) -> None:
    """Every name in ``train.models`` is a registered kind and every kind section parses
    (else a :class:`ConfigError` naming the field)."""
    bad = [m for m in train.models if m not in kind_names()]
    if bad:
        raise ConfigError(f"train.models: unknown model(s) {bad}; expected some of {kind_names()}")
    for name in train.kinds:
        settings(train, name)


__all__ = ["KindConfig", "ModelKind", "check_models", "get_kind", "kind_names", "register_kind",
           "settings"]
