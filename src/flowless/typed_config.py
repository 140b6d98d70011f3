"""Typed dataclass configs from plain data: :func:`from_dict` checks every key and converts
every value to its field's type, :func:`apply_overrides` applies ``--set key.sub=value``
items, :func:`to_dict` goes back. Errors are :class:`ConfigError` lines naming the key."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

import yaml

from flowless.errors import ConfigError

C = TypeVar("C")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` converted to type ``tp`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~"))
        ):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise bad
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise bad
        return [_coerce(v, item_tp, key) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
        raise bad
    if tp is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 1e-3 as a string
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    raise bad  # pragma: no cover - no other field types are used


def from_dict(cls: type[C], data: Any, prefix: str = "") -> C:
    """Build dataclass ``cls`` from a (nested) dict, checking keys and types."""
    where = prefix.rstrip(".") or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {data!r}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(
                f"{prefix}{key}: unknown key; valid keys: {', '.join(names)}"
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = from_dict(tp, value, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, tp, f"{prefix}{key}")
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (YAML/JSON/checkpoint friendly)."""
    return dataclasses.asdict(cfg)


def apply_overrides(cfg: C, overrides: list[str] | None) -> C:
    """Return a copy of ``cfg`` with ``key.sub=value`` overrides applied (parsed to the field type)."""
    cfg = _copy(cfg)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected key=value, e.g. optim.lr=0.01")
        key, raw = item.split("=", 1)
        key = key.strip()
        target: Any = cfg
        parts = key.split(".")
        for depth, part in enumerate(parts):
            names = [f.name for f in dataclasses.fields(target)]
            dotted = ".".join(parts[: depth + 1])
            if part not in names:
                valid = ", ".join(
                    ".".join(parts[:depth] + [n]) for n in names
                )
                raise ConfigError(f"{dotted}: unknown key; valid keys: {valid}")
            tp = _hints(type(target))[part]
            if depth < len(parts) - 1:
                if not dataclasses.is_dataclass(tp):
                    raise ConfigError(f"{dotted}: is a {_type_name(tp)}, it has no sub-keys")
                target = getattr(target, part)
                continue
            if dataclasses.is_dataclass(tp):
                sub = [f.name for f in dataclasses.fields(tp)]
                raise ConfigError(
                    f"{dotted}: is a section; set one of its keys: "
                    + ", ".join(f"{dotted}.{n}" for n in sub)
                )
            setattr(target, part, _coerce(_parse_scalar(raw, tp), tp, dotted))
    return cfg


def _parse_scalar(raw: str, tp: Any) -> Any:
    """Text of an override: strings stay text; other types go through YAML parsing."""
    if tp is str:
        return raw
    try:
        return yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        return raw


def _copy(cfg: C) -> C:
    return from_dict(type(cfg), to_dict(cfg))
