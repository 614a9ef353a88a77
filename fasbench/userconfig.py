"""The user's own config file: where the licensed datasets live, and per-dataset options.

A researcher points fasbench at each dataset once and never again thinks about paths::

    # ~/.config/fasbench/config.yaml (or the file named by $FASBENCH_CONFIG)
    roots:
      oulu: /data/Oulu_NPU
      casia: /data/CASIA_FASD
    options:
      casia: {face: dlib}

``roots`` maps a dataset plugin name to its folder; ``options`` maps it to default options (an
explicit option, e.g. ``--option`` on the command line, wins). Unknown keys are refused so that a
typo cannot hide. The file is optional: without it nothing is configured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fasbench.errors import FasbenchError

ENV_VAR = "FASBENCH_CONFIG"
_KEYS = ("roots", "options")


class UserConfigError(FasbenchError):
    """The user config file exists but cannot be used (bad YAML, unknown key, wrong type)."""


@dataclass(frozen=True)
class UserConfig:
    """The parsed user config file (empty when there is none)."""

    path: Path
    roots: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def root(self, dataset: str) -> str | None:
        """The configured folder of ``dataset`` (``~`` expanded), or None."""
        return self.roots.get(dataset)

    def dataset_options(self, dataset: str) -> dict[str, Any]:
        """The configured default options of ``dataset`` (a copy; empty when none)."""
        return dict(self.options.get(dataset, {}))


def config_path() -> Path:
    """$FASBENCH_CONFIG, else ``$XDG_CONFIG_HOME/fasbench/config.yaml`` (``~/.config`` by default)."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(base).expanduser() / "fasbench" / "config.yaml"


def load_user_config(path: str | os.PathLike[str] | None = None) -> UserConfig:
    """Read and check the user config file; a missing file is an empty config, not an error."""
    path = Path(path).expanduser() if path is not None else config_path()
    if not path.exists():
        return UserConfig(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise UserConfigError(f"cannot read the fasbench config file {path}: {error}") from error
    if data is None:
        return UserConfig(path)
    if not isinstance(data, Mapping):
        raise UserConfigError(f"{path}: expected a mapping with keys {', '.join(_KEYS)}, got {type(data).__name__}")
    for key in data:
        if key not in _KEYS:
            raise UserConfigError(f"{path}: unknown key {key!r} (allowed: {', '.join(_KEYS)})")
    roots = _mapping(data.get("roots"), path, "roots")
    for name, root in roots.items():
        if not isinstance(root, str) or not root.strip():
            raise UserConfigError(f"{path}: roots.{name} must be a folder path, got {root!r}")
    options = _mapping(data.get("options"), path, "options")
    for name, value in options.items():
        _mapping(value, path, f"options.{name}")
    return UserConfig(
        path,
        roots={str(name): os.path.expanduser(root) for name, root in roots.items()},
        options={str(name): dict(value or {}) for name, value in options.items()},
    )


def _mapping(value: Any, path: Path, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UserConfigError(f"{path}: {where} must be a mapping (name: value), got {type(value).__name__}")
    return value
