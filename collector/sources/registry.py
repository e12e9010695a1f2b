"""The kinds of source gigawatt knows: one line per kind.

Adding a source is one new module in collector/sources/kinds/ (its spec, build and probe;
see collector.sources.plugin) and one line in ``_KINDS`` below. The collectors file's union
of specs, ``build_sources`` and ``gigawatt probe`` (its kind choices, which options apply to
which kind, default targets) all read the registry when they run, so a kind registered later
(a test's, a site's own) is taken up the same way.
"""

from __future__ import annotations

from typing import Any

from collector.sources.kinds import neuron, nvml, prometheus, redfish, simulated, sysfs
from collector.sources.plugin import SourceKind

# In the order the probe command lists them and an option's "applies to" names them.
_KINDS: list[SourceKind[Any]] = [
    prometheus.KIND,
    redfish.KIND,
    neuron.KIND,
    nvml.KIND,
    sysfs.KIND,
    simulated.KIND,
]


def kinds() -> tuple[SourceKind[Any], ...]:
    """Every registered kind, in registration order."""
    return tuple(_KINDS)


def names() -> tuple[str, ...]:
    return tuple(kind.name for kind in _KINDS)


def probed() -> tuple[SourceKind[Any], ...]:
    """The kinds ``gigawatt probe`` reads."""
    return tuple(kind for kind in _KINDS if kind.probe is not None)


def kind_named(name: str) -> SourceKind[Any]:
    """The registered kind ``name``; KeyError when there is none."""
    for kind in _KINDS:
        if kind.name == name:
            return kind
    raise KeyError(name)


def register(kind: SourceKind[Any]) -> None:
    """Add a kind after the others; a second kind of the same name is a mistake."""
    if kind.name in names():
        raise ValueError(f"a source kind named {kind.name!r} is already registered")
    _KINDS.append(kind)


def unregister(name: str) -> None:
    """Remove the kind ``name`` (a test's, after the test)."""
    _KINDS.remove(kind_named(name))
