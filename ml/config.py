"""The JSON round trip of the ml/ config dataclasses, in one place.

A config travels as a plain dict (artifact JSON, CLI `--det-set`, Celery task
arguments). Reading one back refuses keys the dataclass does not have: a typo
or a setting from a newer version must not be dropped silently and leave the
model trained or loaded with a default the caller did not ask for.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any


class ConfigError(ValueError):
    """A config dict that does not fit its dataclass; names the keys."""


def config_from_dict[T](cls: type[T], data: dict[str, Any], what: str) -> T:
    """`cls(**data)`, refusing unknown keys with a message naming them and the known ones.

    `what` names the config in the message ("detector config", "classifier config").
    """
    if not is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown {what} keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    return cls(**data)
