"""Model kinds as plug-ins: a name-to-kind registry that each kind module fills.

Adding a kind is one new module here that defines a :class:`~genreflow.kinds.base.ModelKind`
subclass decorated with :func:`register_kind`, plus its line in ``_BUILTIN`` and its
``train.<name>`` section in ``params.yaml``. See README, "Adding a model kind".
"""

from __future__ import annotations

import importlib

from genreflow.kinds.base import KindConfig, ModelKind

_REGISTRY: dict[str, ModelKind] = {}
_BUILTIN = ("cnn", "segcnn", "inception")
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
    from genreflow.config import ConfigError

    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"model: expected one of {tuple(_REGISTRY)}, got {name!r}")
    return _REGISTRY[name]


__all__ = ["KindConfig", "ModelKind", "get_kind", "kind_names", "register_kind"]
