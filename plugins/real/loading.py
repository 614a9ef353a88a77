"""Loading helpers: a pluggable component (face finder, depth labeller) by name, and the datasets' list files."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fasbench.errors import FasbenchError


def resolve_component(spec: str, builtins: Mapping[str, Any], what: str) -> Any:
    """The built-in called ``spec``, or the object ``module:attribute`` names (a third-party component)."""
    if spec in builtins:
        return builtins[spec]
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise FasbenchError(
            f"unknown {what} {spec!r}; built-in: {', '.join(sorted(builtins))}, "
            "or give your own as 'package.module:ClassName'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise FasbenchError(f"{what} {spec!r}: cannot import {module_name!r}: {error}") from error
    try:
        return getattr(module, attribute)
    except AttributeError as error:
        raise FasbenchError(f"{what} {spec!r}: module {module_name!r} has no attribute {attribute!r}") from error


def read_text_lines(path: Path) -> list[str]:
    """The lines of one of a dataset's text files (UTF-8, a byte-order mark allowed); errors name the file."""
    try:
        return Path(path).read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise FasbenchError(f"{path}: not a UTF-8 text file ({error}); is it the file the dataset ships?") from error
    except OSError as error:
        raise FasbenchError(f"{path}: cannot be read: {error}") from error
