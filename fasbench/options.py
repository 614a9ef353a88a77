"""Options, checked one way everywhere: dataset options, learner hyper-parameters, backbone settings.

An ``Option`` declares a type, a default and the constraints (minimum, choices, None allowed); values
from YAML or the command line (``--option every=3`` gives ``"3"``) are coerced to that type, so the
same setting always gives the same value (and the same cache or run id). Errors name the owner and
the option and say what was expected. The ``require_*`` helpers are the same checks for one value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fasbench.errors import FasbenchError

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Option:
    """One option: its type, default, whether None is allowed, its bounds or choices, and a one-line help."""

    kind: type
    default: Any
    help: str
    optional: bool = False
    minimum: float | None = None
    choices: tuple[Any, ...] | None = None


def coerce(owner: str, name: str, option: Option, value: Any) -> Any:
    """``value`` as the option's type (strings from the command line are parsed); errors name the option."""
    where = f"{owner} option {name!r}"
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
        if option.optional:
            return None
        raise FasbenchError(f"{where} cannot be empty ({option.help})")
    try:
        if option.kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError(value)
        if option.kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            result = int(value)
        elif option.kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            result = float(value)
        else:
            result = str(value)
    except (TypeError, ValueError) as error:
        raise FasbenchError(f"{where} must be {option.kind.__name__}, got {value!r} ({option.help})") from error
    if option.minimum is not None and result < option.minimum:
        raise FasbenchError(f"{where} must be >= {option.minimum}, got {result!r} ({option.help})")
    if option.choices is not None and result not in option.choices:
        raise FasbenchError(f"{where} must be one of {', '.join(map(str, option.choices))}; got {result!r}")
    return result


def resolve_options(owner: str, specs: Mapping[str, Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of ``specs``: the ``given`` ones coerced, the rest at their defaults; unknown ones refused."""
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise FasbenchError(f"{owner} has no option {', '.join(map(repr, unknown))}; known: {', '.join(sorted(specs))}")
    return {name: coerce(owner, name, spec, given.get(name, spec.default)) for name, spec in specs.items()}


def require_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``; otherwise a FasbenchError naming the setting."""
    if value not in choices:
        raise FasbenchError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def require_number(
    name: str, value: Any, *, minimum: float = 0.0, maximum: float | None = None, integer: bool = False
) -> float | int:
    """``value`` as a number in [``minimum``, ``maximum``] (an int when ``integer``); otherwise a FasbenchError."""
    kind = int if integer else (int, float)
    if (
        isinstance(value, bool)
        or not isinstance(value, kind)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        wanted = "an integer" if integer else "a number"
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise FasbenchError(f"{name} must be {wanted} {bounds}, got {value!r}")
    return value


def require_flag(name: str, value: Any) -> bool:
    """``value`` if it is a bool (YAML and --cfg-options give real booleans); otherwise a FasbenchError."""
    if not isinstance(value, bool):
        raise FasbenchError(f"{name} must be true or false, got {value!r}")
    return value
