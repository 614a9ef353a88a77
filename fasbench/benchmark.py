"""The benchmark file, registry.yaml: what is benchmarked (domains, protocols, suites, conventions, defaults,
learners, leaderboard). Plugins are held by ``fasbench.plugins``; this module only reads the file.

Loaded with a schema check: any unknown key, unknown domain, or a protocol whose target is also one of
its sources is refused with the file and the offending entry named.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fasbench.errors import FasbenchError, RegistryFileError, UnknownNameError

PACKAGED = Path(__file__).with_name("registry.yaml")
ENV_VAR = "FASBENCH_BENCHMARK"
OLD_ENV_VAR = "FASBENCH_REGISTRY"  # deprecated: read (with a warning) for one release
VALIDATION_RULES = ("dev_or_holdout", "holdout", "none")
ALL_SPLITS = "all"


@dataclass(frozen=True)
class DomainSpec:
    """A domain letter bound to a dataset plugin and its options."""

    letter: str
    name: str
    dataset: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProtocolSpec:
    """Train on ``sources``, test on the unseen ``target``."""

    name: str
    sources: tuple[str, ...]
    target: str
    description: str = ""


@dataclass(frozen=True)
class SuiteSpec:
    """A set of datasets that stand for the domains (the real ones, or the synthetic stand-in)."""

    name: str
    description: str
    domains: Mapping[str, DomainSpec]


@dataclass(frozen=True)
class ConventionSpec:
    """Which videos play which role in a run (a named data convention of registry.yaml).

    ``train`` and ``target`` are the official splits whose videos train (sources) and are scored (target),
    or ``all``; ``validation`` says where a source's validation videos come from: ``dev_or_holdout`` (its
    dev split when it has one, else a held-out part of its subjects), ``holdout`` (always held-out
    subjects) or ``none``. Validation videos never train. The rest are defaults a run may override
    (``data.holdout_fraction`` ...): how many subjects are held out, the seed of that draw, and how many
    frames per video are used for training and for scoring (None: every cached frame).
    """

    name: str
    description: str = ""
    train: str | tuple[str, ...] = ALL_SPLITS
    validation: str = "dev_or_holdout"
    target: str | tuple[str, ...] = ALL_SPLITS
    holdout_fraction: float = 0.2
    holdout_seed: int = 0
    train_frames_per_video: int | None = None
    eval_frames_per_video: int | None = None

    @property
    def has_validation(self) -> bool:
        return self.validation != "none"

    def tunables(self) -> dict[str, Any]:
        """The values a run may override through ``data.*``."""
        return {name: getattr(self, name) for name in CONVENTION_TUNABLES}

    def rules(self) -> dict[str, Any]:
        """What the convention fixes (not overridable per run): the splits of each role."""
        return {"train": _as_list(self.train), "validation": self.validation, "target": _as_list(self.target)}

    @property
    def summary(self) -> str:
        """One line for table captions: where validation and target videos come from."""
        held = f"{self.holdout_fraction:.0%} held-out subjects"
        validation = {
            "dev_or_holdout": f"validation = each source's dev split, else {held}",
            "holdout": f"validation = {held} of each source",
            "none": "no source validation (every source video trains)",
        }[self.validation]
        train, target = (_describe_splits(value) for value in (self.train, self.target))
        return f"convention {self.name}: sources train on {train}, {validation}; target: {target}"


CONVENTION_TUNABLES = ("holdout_fraction", "holdout_seed", "train_frames_per_video", "eval_frames_per_video")


def _describe_splits(value: str | tuple[str, ...]) -> str:
    return "all videos" if value == ALL_SPLITS else f"the {'+'.join(value)} split"


def _as_list(value: str | tuple[str, ...]) -> str | list[str]:
    return value if isinstance(value, str) else list(value)


@dataclass(frozen=True)
class ReportedResults:
    """A learner's numbers as its paper reports them (``learners.NAME.reported``): the source, and per protocol
    each metric's value as a fraction (registry.yaml writes percent, as papers do)."""

    source: str
    values: Mapping[str, Mapping[str, float]]  # protocol -> metric -> fraction in [0, 1]


@dataclass(frozen=True)
class LearnerSpec:
    """The benchmarked configuration of one learner: backbone, paper hyper-parameters, citation; the values a
    paper sets for one protocol only (``protocols``: e.g. SSDG's loss weights on ICM_O); the mode that
    evaluates as its authors did (``mode``)."""

    name: str
    cite: str = ""
    backbone: Mapping[str, Any] = field(default_factory=dict)
    hparams: Mapping[str, Any] = field(default_factory=dict)
    protocols: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    mode: str | None = None
    reported: ReportedResults | None = None

    def settings(self, protocol: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(backbone, hparams) as benchmarked on ``protocol``: the learner's, then that protocol's values."""
        own = self.protocols.get(protocol, {}) if protocol else {}
        return {**self.backbone, **own.get("backbone", {})}, {**self.hparams, **own.get("hparams", {})}


@dataclass(frozen=True)
class ModeSpec:
    """A named evaluation: data convention + model selection + threshold policy (e.g. how a paper's code
    evaluates); ``fasbench run/bench/leaderboard --mode NAME`` applies it in one flag."""

    name: str
    description: str
    convention: str
    selection: str
    threshold_policy: str


@dataclass(frozen=True)
class BenchmarkSpec:
    """The parsed registry.yaml."""

    path: Path
    domains: Mapping[str, DomainSpec]
    protocols: Mapping[str, ProtocolSpec]
    suites: Mapping[str, SuiteSpec]
    defaults: Mapping[str, Any]
    learners: Mapping[str, LearnerSpec]
    leaderboard: Mapping[str, Any]
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    conventions: Mapping[str, ConventionSpec] = field(default_factory=dict)
    modes: Mapping[str, ModeSpec] = field(default_factory=dict)

    def convention(self, name: str) -> ConventionSpec:
        if name not in self.conventions:
            raise UnknownNameError(
                "data convention", name, self.conventions, hint=f"conventions are declared in {self.path}"
            )
        return self.conventions[name]

    def protocol(self, name: str) -> ProtocolSpec:
        if name not in self.protocols:
            raise UnknownNameError("protocol", name, self.protocols, hint=f"protocols are declared in {self.path}")
        return self.protocols[name]

    def suite(self, name: str) -> SuiteSpec:
        if name not in self.suites:
            raise UnknownNameError("suite", name, self.suites, hint=f"suites are declared in {self.path}")
        return self.suites[name]

    def preset(self, name: str) -> Mapping[str, Any]:
        if name not in self.presets:
            raise UnknownNameError("preset", name, self.presets, hint=f"presets are declared in {self.path}")
        return self.presets[name]

    def mode(self, name: str) -> ModeSpec:
        if name not in self.modes:
            raise UnknownNameError("mode", name, self.modes, hint=f"modes are declared in {self.path}")
        return self.modes[name]

    def mode_for(self, name: str | None, learners: Sequence[str]) -> ModeSpec | None:
        """The mode ``--mode NAME`` asks for (None: no mode). ``paper`` is the learners' own ``mode``, which
        they must all declare and share (a table or a matrix evaluates one way)."""
        if name is None:
            return None
        if name != "paper":
            return self.mode(name)
        declared = {learner: self.learner(learner).mode for learner in learners}
        missing = sorted(learner for learner, mode in declared.items() if mode is None)
        if missing:
            having = sorted(n for n, s in self.learners.items() if s.mode)
            raise FasbenchError(
                f"--mode paper: {', '.join(missing)} declare(s) no paper mode in {self.path} (learners.NAME.mode); "
                f"learners that do: {', '.join(having) or 'none'}; or name a mode: {', '.join(self.modes) or 'none'}"
            )
        if len(set(declared.values())) > 1:
            listing = ", ".join(f"{learner}: {mode}" for learner, mode in sorted(declared.items()))
            raise FasbenchError(
                f"--mode paper: these learners evaluate in different modes ({listing}); a table or a matrix uses "
                "one: run or show them separately"
            )
        return self.mode(next(iter(declared.values())))

    def paper_evaluation(self, learner: str) -> ModeSpec:
        """How ``learner``'s paper evaluated, to set fasbench's numbers beside its reported ones: its own
        ``mode`` where it declares one, else what every DG-FAS paper's code does (checkpoint and threshold
        chosen on the target: ``oracle`` + ``test_eer``) on the default data convention."""
        own = self.learner(learner).mode
        if own is not None:
            return self.mode(own)
        return ModeSpec(
            "oracle",
            "the papers' evaluation: checkpoint with the best target HTER, threshold at the target EER",
            str(self.defaults.get("data", {}).get("convention", "fasbench")),
            "oracle",
            "test_eer",
        )

    def learner(self, name: str) -> LearnerSpec:
        """The learner's benchmarked config; an empty one for a plugin registry.yaml does not mention."""
        return self.learners.get(name, LearnerSpec(name))


_SCHEMA: dict[str, tuple[set[str], set[str]]] = {
    # section: (allowed keys, required keys) of each entry
    "domain": ({"name", "dataset", "options"}, {"dataset"}),
    "protocol": ({"sources", "target", "description"}, {"sources", "target"}),
    "suite": ({"description", "domains"}, set()),
    "suite domain": ({"dataset", "options"}, {"dataset"}),
    "learner": ({"cite", "backbone", "hparams", "protocols", "mode", "reported"}, set()),
    "reported": ({"source", "protocols"}, {"source", "protocols"}),
    "learner protocol": ({"backbone", "hparams"}, set()),
    "mode": ({"description", "convention", "selection", "threshold_policy"}, {"description", "convention"}),
    "preset": (
        {"description", "budget", "eval_every", "checkpoint_every", "log_every", "backbone", "hparams", "data"},
        {"description"},
    ),
    "convention": (
        {"description", "train", "validation", "target", *CONVENTION_TUNABLES},
        {"description", "train", "validation", "target"},
    ),
}
_TOP = {
    "version", "domains", "protocols", "suites", "defaults", "learners", "presets", "leaderboard", "conventions",
    "modes",
}  # fmt: skip
_DEFAULTS = {
    "suite",
    "seeds",
    "selection",
    "threshold_policy",
    "level",
    "budget",
    "eval_every",
    "checkpoint_every",
    "log_every",
    "cpu_preset",
    "data",
}
_REQUIRED_DEFAULTS = {"suite", "seeds", "budget", "eval_every", "checkpoint_every", "log_every", "data"}
_DATA_DEFAULTS = {"convention", "workers", "eval_batch_size"}
_LEADERBOARD = {"learners", "protocols", "seeds", "metrics", "suite"}
_SPLIT_NAMES = ("train", "dev", "test")


class _Checker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> RegistryFileError:
        return RegistryFileError(f"{self.path}: {where}: {message}")

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        return value

    def keys(self, value: Any, where: str, allowed: set[str], required: set[str] = frozenset()) -> Mapping:
        value = self.mapping(value, where)
        for key in value:
            if key not in allowed:
                raise self.fail(where, f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
        for key in sorted(required - set(value)):
            raise self.fail(where, f"missing key {key!r}")
        return value

    def entry(self, kind: str, value: Any, where: str) -> Mapping[str, Any]:
        allowed, required = _SCHEMA[kind]
        return self.keys(value, where, allowed, required)

    def string_list(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(where, f"expected a list of names, got {value!r}")
        return tuple(value)

    def known(self, names: tuple[str, ...], known: Mapping[str, Any], what: str, where: str) -> None:
        for name in names:
            if name not in known:
                raise self.fail(where, f"unknown {what} {name!r} (known: {', '.join(known)})")


_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _no_code(check: _Checker, options: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """Refuse option values that name Python code to import (``package.module:Class``): a registry file may
    come from anyone; code-loading options are taken only from the command line or the user's config file."""
    for key, value in options.items():
        if isinstance(value, str) and _IMPORT_PATH.match(value):
            raise check.fail(
                f"{where}.{key}",
                f"{value!r} names Python code to import and run; a registry file may not do that. Give it on the "
                "command line (`fasbench prepare NAME --option "
                f"{key}={value}`) or in your own fasbench config file (options: {{DATASET: {{{key}: {value}}}}})",
            )
    return options


def parse_benchmark(data: Any, path: Path) -> BenchmarkSpec:
    """Validate parsed YAML ``data`` (read from ``path``) into a ``BenchmarkSpec``."""
    check = _Checker(path)
    top = check.keys(data, "top level", _TOP, {"domains", "protocols", "suites"})
    if top.get("version", 1) != 1:
        raise check.fail("version", f"unsupported version {top['version']!r} (this fasbench reads version 1)")

    domains = {}
    for letter, raw in check.mapping(top["domains"], "domains").items():
        entry = check.entry("domain", raw, f"domains.{letter}")
        options = _no_code(
            check, check.mapping(entry.get("options"), f"domains.{letter}.options"), f"domains.{letter}.options"
        )
        domains[letter] = DomainSpec(str(letter), str(entry.get("name", letter)), str(entry["dataset"]), options)
    if not domains:
        raise check.fail("domains", "no domain declared")

    protocols = {}
    for name, raw in check.mapping(top["protocols"], "protocols").items():
        where = f"protocols.{name}"
        entry = check.entry("protocol", raw, where)
        sources = check.string_list(entry["sources"], f"{where}.sources")
        target = entry["target"]
        check.known((*sources, target), domains, "domain", where)
        if not sources:
            raise check.fail(where, "needs at least one source domain")
        if len(set(sources)) != len(sources):
            raise check.fail(where, f"a source domain is listed twice: {list(sources)}")
        if target in sources:
            raise check.fail(where, f"target {target!r} is also a source; a protocol tests on an unseen domain")
        protocols[name] = ProtocolSpec(str(name), sources, target, str(entry.get("description", "")))

    suites = {}
    for name, raw in check.mapping(top["suites"], "suites").items():
        where = f"suites.{name}"
        entry = check.entry("suite", raw, where)
        bound = dict(domains)
        for letter, override in check.mapping(entry.get("domains"), f"{where}.domains").items():
            check.known((letter,), domains, "domain", f"{where}.domains")
            item = check.entry("suite domain", override, f"{where}.domains.{letter}")
            options = _no_code(
                check,
                check.mapping(item.get("options"), f"{where}.domains.{letter}.options"),
                f"{where}.domains.{letter}.options",
            )
            bound[letter] = DomainSpec(letter, domains[letter].name, str(item["dataset"]), options)
        suites[name] = SuiteSpec(str(name), str(entry.get("description", "")), bound)

    conventions = {
        str(name): _convention(check, str(name), raw)
        for name, raw in check.mapping(top.get("conventions"), "conventions").items()
    }

    defaults = check.keys(top.get("defaults"), "defaults", _DEFAULTS, _REQUIRED_DEFAULTS)
    if "suite" in defaults:
        check.known((defaults["suite"],), suites, "suite", "defaults.suite")

    modes = {}
    for name, raw in check.mapping(top.get("modes"), "modes").items():
        entry = check.entry("mode", raw, f"modes.{name}")
        check.known((entry["convention"],), conventions, "convention", f"modes.{name}.convention")
        modes[str(name)] = ModeSpec(
            str(name),
            str(entry["description"]).strip(),
            str(entry["convention"]),
            str(entry.get("selection", defaults.get("selection", "last"))),
            str(entry.get("threshold_policy", defaults.get("threshold_policy", "test_eer"))),
        )
    if "paper" in modes:
        raise check.fail("modes.paper", "'paper' is reserved: --mode paper means each learner's own `mode`")

    learners = {}
    for name, raw in check.mapping(top.get("learners"), "learners").items():
        where = f"learners.{name}"
        entry = check.entry("learner", raw, where)
        per_protocol = {}
        for protocol, settings in check.mapping(entry.get("protocols"), f"{where}.protocols").items():
            check.known((protocol,), protocols, "protocol", f"{where}.protocols")
            own = check.entry("learner protocol", settings, f"{where}.protocols.{protocol}")
            per_protocol[str(protocol)] = {
                key: dict(check.mapping(own.get(key), f"{where}.protocols.{protocol}.{key}"))
                for key in ("backbone", "hparams")
                if key in own
            }
        if entry.get("mode") is not None:
            check.known((entry["mode"],), modes, "mode", f"{where}.mode")
        learners[name] = LearnerSpec(
            str(name),
            str(entry.get("cite", "")),
            check.mapping(entry.get("backbone"), f"{where}.backbone"),
            check.mapping(entry.get("hparams"), f"{where}.hparams"),
            per_protocol,
            None if entry.get("mode") is None else str(entry["mode"]),
            _reported(check, entry.get("reported"), f"{where}.reported", protocols),
        )

    presets = {}
    for name, raw in check.mapping(top.get("presets"), "presets").items():
        entry = check.entry("preset", raw, f"presets.{name}")
        for key in ("backbone", "hparams", "data"):
            check.mapping(entry.get(key), f"presets.{name}.{key}")
        presets[str(name)] = dict(entry)
    if "cpu_preset" in defaults and defaults["cpu_preset"] is not None:
        check.known((defaults["cpu_preset"],), presets, "preset", "defaults.cpu_preset")
    default_data = check.keys(defaults.get("data"), "defaults.data", _DATA_DEFAULTS, _DATA_DEFAULTS)
    check.known((default_data["convention"],), conventions, "convention", "defaults.data.convention")
    for key in ("budget", "eval_every", "checkpoint_every", "log_every"):
        if isinstance(defaults[key], bool) or not isinstance(defaults[key], int) or defaults[key] < 1:
            raise check.fail(f"defaults.{key}", f"must be a positive integer, got {defaults[key]!r}")

    leaderboard = check.keys(top.get("leaderboard"), "leaderboard", _LEADERBOARD)
    if "protocols" in leaderboard:
        check.known(
            check.string_list(leaderboard["protocols"], "leaderboard.protocols"),
            protocols,
            "protocol",
            "leaderboard.protocols",
        )
    if "learners" in leaderboard:
        check.string_list(leaderboard["learners"], "leaderboard.learners")
    if "suite" in leaderboard:
        check.known((leaderboard["suite"],), suites, "suite", "leaderboard.suite")
    for where, seeds in (("defaults.seeds", defaults.get("seeds")), ("leaderboard.seeds", leaderboard.get("seeds"))):
        if seeds is not None and not (isinstance(seeds, list) and all(isinstance(s, int) for s in seeds)):
            raise check.fail(where, f"expected a list of integers, got {seeds!r}")

    return BenchmarkSpec(path, domains, protocols, suites, defaults, learners, leaderboard, presets, conventions, modes)


def _reported(check: _Checker, raw: Any, where: str, protocols: Mapping[str, Any]) -> ReportedResults | None:
    """``learners.NAME.reported``: {source, protocols: {P: {METRIC: percent}}}; values must lie in [0, 100]."""
    if raw is None:
        return None
    entry = check.entry("reported", raw, where)
    values: dict[str, dict[str, float]] = {}
    for protocol, metrics in check.mapping(entry["protocols"], f"{where}.protocols").items():
        check.known((protocol,), protocols, "protocol", f"{where}.protocols")
        values[str(protocol)] = {}
        for metric, value in check.mapping(metrics, f"{where}.protocols.{protocol}").items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
                raise check.fail(f"{where}.protocols.{protocol}.{metric}", f"expected a percentage, got {value!r}")
            values[str(protocol)][str(metric)] = float(value) / 100
    return ReportedResults(str(entry["source"]), values)


def _convention(check: _Checker, name: str, raw: Any) -> ConventionSpec:
    where = f"conventions.{name}"
    entry = check.entry("convention", raw, where)
    roles = {}
    for role in ("train", "target"):
        value = entry[role]
        if value != ALL_SPLITS:
            splits = check.string_list(value, f"{where}.{role}")
            unknown = [s for s in splits if s not in _SPLIT_NAMES]
            if not splits or unknown:
                raise check.fail(
                    f"{where}.{role}", f"expected 'all' or a list of splits out of {_SPLIT_NAMES}, got {value!r}"
                )
            value = splits
        roles[role] = value
    if entry["validation"] not in VALIDATION_RULES:
        raise check.fail(
            f"{where}.validation", f"must be one of {', '.join(VALIDATION_RULES)}, got {entry['validation']!r}"
        )
    tunables = {key: entry[key] for key in CONVENTION_TUNABLES if key in entry}
    try:
        check_tunables(tunables)
    except FasbenchError as error:
        raise check.fail(where, str(error)) from None
    return ConventionSpec(
        name, str(entry["description"]), roles["train"], entry["validation"], roles["target"], **tunables
    )


def check_tunables(values: Mapping[str, Any]) -> None:
    """Refuse a bad ``holdout_fraction`` (must be in (0, 1)), ``holdout_seed`` or frames-per-video value."""
    if "holdout_fraction" in values:
        fraction = values["holdout_fraction"]
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise FasbenchError(f"holdout_fraction must be a number in (0, 1), got {fraction!r}")
    if "holdout_seed" in values:
        seed = values["holdout_seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise FasbenchError(f"holdout_seed must be an integer >= 0, got {seed!r}")
    for key in ("train_frames_per_video", "eval_frames_per_video"):
        value = values.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise FasbenchError(f"{key} must be a positive integer or null (every cached frame), got {value!r}")


def benchmark_path(path: str | os.PathLike | None = None) -> Path:
    """The benchmark file to read: ``path``, else $FASBENCH_BENCHMARK, else the one shipped with fasbench."""
    from_env = os.environ.get(ENV_VAR)
    if from_env is None and os.environ.get(OLD_ENV_VAR):
        from fasbench.console import err

        err().print(f"[yellow]warning:[/] ${OLD_ENV_VAR} is deprecated; set ${ENV_VAR} instead", highlight=False)
        from_env = os.environ[OLD_ENV_VAR]
    chosen = Path(path or from_env or PACKAGED).resolve()
    if not chosen.is_file():
        raise RegistryFileError(f"benchmark file {chosen} does not exist")
    return chosen


def load_benchmark(path: str | os.PathLike | None = None) -> BenchmarkSpec:
    """Read and validate a benchmark file (see ``benchmark_path`` for which one)."""
    chosen = benchmark_path(path)
    try:
        data = yaml.safe_load(chosen.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise RegistryFileError(f"{chosen}: not a UTF-8 text file ({error}); save it as UTF-8") from error
    except yaml.YAMLError as error:
        raise RegistryFileError(f"{chosen}: not valid YAML: {error}") from error
    return parse_benchmark(data, chosen)
