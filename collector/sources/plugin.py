"""What a kind of source declares, once, to the registry (collector.sources.registry).

A kind is three things kept in one module of its own (collector/sources/kinds/):

* its **spec**: the pydantic model of its entry in the collectors file, with a
  ``kind: Literal["..."]`` field whose one value names the kind everywhere;
* its **build**: spec and build context (topology, inventory, the collectors file's folder,
  the environment) -> a pipeline Source;
* its **probe** (optional): how ``gigawatt probe KIND TARGET`` reads one target once, which
  probe options it takes and the target it reads when none is given.

The collectors file's union of specs, ``build_sources`` and the probe command are all derived
from the registered kinds; nothing outside a kind's module branches on its name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, get_args, get_origin

import polars as pl
from pydantic import ConfigDict, ValidationError

from collector.config_errors import ConfigModel
from collector.inventory import Inventory
from collector.site.topology import Topology
from collector.sources.base import Source


class SourceSpec(ConfigModel):
    """One entry of the collectors file's ``sources`` list. A kind's spec narrows ``kind`` to
    ``Literal["its-name"]`` and gives ``name`` that same default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    name: str


@dataclass(frozen=True)
class BuildContext:
    """What a kind's build may use besides its spec."""

    topology: Topology
    inventory: Inventory  # (host, device) -> accelerator, node or rack feed
    folder: Path  # the collectors file's folder: relative paths in a spec are relative to it
    environ: Mapping[str, str] | None = None  # where credentials are looked up; None: os.environ

    def beside(self, path: Path) -> Path:
        """``path`` as the collectors file means it: a relative path is relative to that file."""
        return (self.folder / path).absolute()


class ProbeError(Exception):
    """Arguments that cannot work, or a target that cannot be read at all: exit 2."""


@dataclass(frozen=True)
class Probe:
    """One collection: its frames, and why the target could not be read, if it could not."""

    readings: pl.DataFrame  # schemas.READINGS
    problems: pl.DataFrame  # schemas.PROBLEMS
    unreadable: str | None = None


@dataclass(frozen=True)
class ProbeOptions:
    """The options of ``gigawatt probe``; a kind's probe declares which of them it takes (by
    field name), and the command refuses the others for that kind. Unset is None (False)."""

    exporter: str | None = None
    rated_power_watts: float | None = None
    timeout: float | None = None
    insecure: bool = False
    ca_bundle: Path | None = None
    username_env: str | None = None
    password_env: str | None = None

    def given(self) -> tuple[str, ...]:
        """The names of the options set, in declaration order."""
        values = {option.name: getattr(self, option.name) for option in fields(self)}
        return tuple(
            name for name, value in values.items() if value is not None and value is not False
        )


PROBE_OPTIONS: tuple[str, ...] = tuple(option.name for option in fields(ProbeOptions))
DEFAULT_TIMEOUT_SECONDS = 5.0  # a probe's per-request timeout when --timeout is not given


@dataclass(frozen=True)
class ProbeKind:
    """How ``gigawatt probe`` reads one target of a kind."""

    read: Callable[[str, ProbeOptions, float], Probe]  # target, options, now
    target_help: str  # what TARGET is for this kind, for the command's help
    options: frozenset[str] = frozenset()  # ProbeOptions fields this kind takes
    default_target: str | None = None  # read when TARGET is not given; None: TARGET required

    def __post_init__(self) -> None:
        unknown = sorted(self.options - set(PROBE_OPTIONS))
        if unknown:
            raise ValueError(f"no such probe option: {', '.join(unknown)}")


SpecT = TypeVar("SpecT", bound=SourceSpec)


@dataclass(frozen=True)
class SourceKind(Generic[SpecT]):
    """One kind of source: its spec, how it is built, and how it is probed."""

    spec: type[SpecT]
    build: Callable[[SpecT, BuildContext], Source]
    probe: ProbeKind | None = None  # None: not something ``gigawatt probe`` reads

    def __post_init__(self) -> None:
        kind_name(self.spec)  # a spec that names no kind is refused where it is declared

    @property
    def name(self) -> str:
        """The one value of the spec's ``kind`` Literal."""
        return kind_name(self.spec)


def kind_name(spec: type[SourceSpec]) -> str:
    """The one value of a spec's ``kind: Literal[...]``; a spec that lacks it is a bug."""
    annotation: Any = spec.model_fields["kind"].annotation
    values = get_args(annotation)
    if get_origin(annotation) is not Literal or len(values) != 1 or not isinstance(values[0], str):
        raise TypeError(f"{spec.__name__}.kind must be Literal['<one name>'], not {annotation}")
    return str(values[0])


# --- helpers the probes share ----------------------------------------------------------------


def validation_message(error: Exception) -> str:
    """A pydantic error as one line of ``location: message``; another error as its text."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in detail['loc']) or 'target'}: "
            + detail["msg"].removeprefix("Value error, ")
            for detail in error.errors()
        )
    return str(error)


def first_problem(problems: pl.DataFrame) -> str:
    """Why a target could not be read: its first problem as ``reason: message``."""
    if not problems.height:
        return "no answer"
    row = problems.row(0, named=True)
    return f"{row['reason']}: {row['message']}"


def timeout_seconds(options: ProbeOptions) -> float:
    return options.timeout if options.timeout is not None else DEFAULT_TIMEOUT_SECONDS
