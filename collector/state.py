"""State that survives a restart: the energy counters and the cumulative sample counts,
kept in a state directory so a restarted service continues its counters instead of starting
from zero (Prometheus' ``increase()`` would bridge a reset, but a dashboard of energy to date
or a bill would not).

One file, ``state.npz``, holds everything: NumPy arrays (the per-leaf energy counters, 17 MB
at the reference campus) and a JSON header (format, gigawatt version, which topology, when
saved, the small counters). It is written atomically: a temporary file in the same folder,
flushed and fsynced, then renamed over the old one, and the folder fsynced; a ``kill -9`` at
any moment leaves either the old file or the new one, whole.

On start the file is trusted only if it is whole, of this format and of this topology (the
same site, buildings, accelerators and feeds); anything else is reported and set aside
(renamed ``state.npz.set-aside-<time>``), never read. The time a restart takes is a gap in
the energy counters: nothing is integrated across it (collector.energy).

A folder is held by one process at a time (an advisory lock): two services writing one
state would each overwrite the other's counters.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

STATE_FORMAT = 1
STATE_FILE = "state.npz"
LOCK_FILE = "state.lock"
ENERGY_KINDS = ("accelerator", "feed", "building")

FloatArray = npt.NDArray[np.float64]


class StateError(Exception):
    """A state directory that cannot be used (not writable, held by another process)."""


@dataclass(frozen=True)
class Counters:
    """Every cumulative counter of a pipeline: what a restart must not lose."""

    energy_joules: Mapping[str, FloatArray]  # per leaf, by kind (ENERGY_KINDS)
    rack_energy_joules: FloatArray  # the racks' energy at the last cycle (job attribution)
    accepted: Mapping[tuple[str, str], int] = field(default_factory=dict)
    rejected: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    problems: Mapping[tuple[str, str], int] = field(default_factory=dict)
    job_energy_joules: Mapping[str, float] = field(default_factory=dict)
    job_energy_total_joules: float = 0.0
    unallocated_energy_total_joules: float = 0.0
    # Counter state a source keeps itself (the simulated PDUs' meters), by source and name.
    sources: Mapping[str, Mapping[str, FloatArray]] = field(default_factory=dict)


@dataclass(frozen=True)
class Identity:
    """Which topology counters belong to: a leaf's energy means nothing in another site."""

    site: str
    fingerprint: str
    sizes: Mapping[str, int]  # leaves per energy kind, and racks

    @classmethod
    def of(cls, site: str, buildings: list[str], sizes: Mapping[str, int]) -> Identity:
        digest = hashlib.sha256(
            json.dumps([site, buildings, dict(sorted(sizes.items()))]).encode("utf-8")
        ).hexdigest()
        return cls(site, digest, dict(sizes))


def default_state_dir(site: str, environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/gigawatt/<site>`` (``~/.local/state`` without it): one folder per
    site, so the demo and the campus never meet."""
    env = os.environ if environ is None else environ
    base = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "gigawatt" / (re.sub(r"[^A-Za-z0-9._-]", "_", site) or "site")


class StateStore:
    """A state directory: load once at start, save as often as the caller likes."""

    def __init__(self, directory: Path, identity: Identity, version: str) -> None:
        self.directory = directory
        self.identity = identity
        self.version = version
        self.path = directory / STATE_FILE
        self.saves = 0
        self.save_failures = 0
        self._lock: IO[bytes] | None = None

    def open(self) -> StateStore:
        """Create the folder and take its lock; StateError if it cannot be used."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            lock = (self.directory / LOCK_FILE).open("ab")
        except OSError as error:
            raise StateError(
                f"state directory {self.directory}: {error.strerror or error}"
            ) from None
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise StateError(
                f"state directory {self.directory} is in use by another gigawatt process "
                "(give each its own --state-dir, or --no-state)"
            ) from None
        self._lock = lock
        return self

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing releases the lock
            self._lock = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self) -> Counters | None:
        """The stored counters, or None: no file yet, or one that cannot be trusted (then set
        aside, with a warning saying why)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            self._set_aside(f"cannot read it: {error.strerror or error}")
            return None
        try:
            return self._counters(data)
        except _Untrusted as reason:
            self._set_aside(str(reason))
            return None

    def save(self, counters: Counters, now: float | None = None) -> bool:
        """Write ``counters`` atomically; False (logged, counted) when the write failed."""
        header = {
            "format": STATE_FORMAT,
            "version": self.version,
            "site": self.identity.site,
            "fingerprint": self.identity.fingerprint,
            "saved_at": time.time() if now is None else now,
            "accepted": [[*key, count] for key, count in counters.accepted.items()],
            "rejected": [[*key, count] for key, count in counters.rejected.items()],
            "problems": [[*key, count] for key, count in counters.problems.items()],
            "jobs": dict(counters.job_energy_joules),
            "job_energy_total_joules": counters.job_energy_total_joules,
            "unallocated_energy_total_joules": counters.unallocated_energy_total_joules,
        }
        arrays = {f"energy_{kind}": counters.energy_joules[kind] for kind in ENERGY_KINDS}
        arrays["rack_energy"] = counters.rack_energy_joules
        stored_sources: dict[str, dict[str, str]] = {}
        for index, (name, state) in enumerate(sorted(counters.sources.items())):
            stored_sources[name] = {key: f"source_{index}_{key}" for key in state}
            arrays.update({f"source_{index}_{key}": values for key, values in state.items()})
        header["sources"] = stored_sources
        arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        temporary = self.path.with_name(f"{STATE_FILE}.tmp-{os.getpid()}")
        try:
            with temporary.open("wb") as stream:
                np.savez(stream, allow_pickle=False, **arrays)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self.path)
            _fsync_directory(self.directory)
        except OSError as error:
            self.save_failures += 1
            with contextlib.suppress(OSError):
                temporary.unlink()
            log.warning("cannot save the state to %s: %s", self.path, error.strerror or error)
            return False
        self.saves += 1
        return True

    def _counters(self, data: bytes) -> Counters:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as stored:
                arrays = {name: np.array(stored[name]) for name in stored.files}
            header: dict[str, Any] = json.loads(bytes(arrays.pop("header")).decode("utf-8"))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeError) as e:
            raise _Untrusted(f"it is not a whole state file ({type(e).__name__})") from None
        if not isinstance(header, dict) or header.get("format") != STATE_FORMAT:
            raise _Untrusted(
                f"it is of format {header.get('format') if isinstance(header, dict) else '?'}"
                f", written by gigawatt {header.get('version', '?')}; this one reads format "
                f"{STATE_FORMAT}"
            )
        if header.get("fingerprint") != self.identity.fingerprint:
            raise _Untrusted(
                f"it belongs to another topology (site {header.get('site')!r}); this service "
                f"runs site {self.identity.site!r}"
            )
        try:
            energy = {kind: arrays[f"energy_{kind}"] for kind in ENERGY_KINDS}
            racks = arrays["rack_energy"]
            sizes = {**{kind: energy[kind].size for kind in ENERGY_KINDS}, "rack": racks.size}
            if sizes != dict(self.identity.sizes):
                raise _Untrusted(f"its counters have other sizes ({sizes})")
            for values in (*energy.values(), racks):
                if values.dtype != np.float64 or not np.all(np.isfinite(values) & (values >= 0)):
                    raise _Untrusted("an energy counter is negative, not finite or not a float")
            return Counters(
                energy_joules={kind: values.copy() for kind, values in energy.items()},
                rack_energy_joules=racks.copy(),
                accepted={(str(s), str(k)): _count(n) for s, k, n in header["accepted"]},
                rejected={(str(s), str(k), str(r)): _count(n) for s, k, r, n in header["rejected"]},
                problems={(str(s), str(r)): _count(n) for s, r, n in header["problems"]},
                job_energy_joules={str(j): _joules(e) for j, e in header["jobs"].items()},
                job_energy_total_joules=_joules(header["job_energy_total_joules"]),
                unallocated_energy_total_joules=_joules(header["unallocated_energy_total_joules"]),
                sources={
                    str(name): {
                        str(key): _finite(arrays[str(array)]) for key, array in keys.items()
                    }
                    for name, keys in header.get("sources", {}).items()
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise _Untrusted(f"its header is incomplete ({type(error).__name__})") from None

    def _set_aside(self, reason: str) -> None:
        aside = self.path.with_name(
            f"{STATE_FILE}.set-aside-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
        )
        try:
            os.replace(self.path, aside)
        except OSError as error:
            log.warning(
                "state file %s not used: %s; it could not be set aside (%s)",
                self.path,
                reason,
                error.strerror or error,
            )
            return
        log.warning("state file %s not used: %s; set aside as %s", self.path, reason, aside.name)


class _Untrusted(Exception):
    """Why a state file is not read."""


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("a count is a whole number of 0 or more")
    return value


def _joules(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("energy is a number")
    joules = float(value)
    if not (np.isfinite(joules) and joules >= 0):
        raise ValueError("energy is finite and 0 or more")
    return joules


def _finite(values: FloatArray) -> FloatArray:
    if values.dtype != np.float64 or not np.all(np.isfinite(values)):
        raise ValueError("a source's counter is not a finite float")
    return values.copy()


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX: the directory entry lives in the folder)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
