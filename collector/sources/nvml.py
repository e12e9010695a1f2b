"""Source ``nvml``: NVIDIA GPU power, energy, temperature, clocks and errors, read through NVML.

NVML is reached through ``pynvml`` (the ``nvidia-ml-py`` package, the optional extra ``nvml``).
It is imported when a reader or source is made, never when this module is imported, so the
rest of gigawatt runs where neither the package nor a GPU exists.

``NvmlReader(...).read(now)`` returns a READINGS and a PROBLEMS frame (collector.schemas). A few
of one GPU's readings (source ``nvml``, target ``nvml://node-0017``, host ``node-0017``, device
kind ``accelerator``, not estimated)::

    device                                    metric                    value         unit
    GPU-5a1c8f0e-2d3b-4c6a-9e71-0b8d2f4a6c13  up                        1.0           boolean
    GPU-5a1c8f0e-2d3b-4c6a-9e71-0b8d2f4a6c13  power_watts               612.437       watts
    GPU-5a1c8f0e-2d3b-4c6a-9e71-0b8d2f4a6c13  energy_joules             81044217.332  joules
    GPU-5a1c8f0e-2d3b-4c6a-9e71-0b8d2f4a6c13  clock_event_sw_power_cap  1.0           boolean

Identity: ``device`` is the GPU UUID (``GPU-...``) and ``host`` the host name, never the index,
which changes when a GPU drops out or the driver re-enumerates.

Readings per GPU (each from its own NVML call, in base units):

* ``power_watts`` (nvmlDeviceGetPowerUsage, mW), ``energy_joules`` (the driver's counter
  since it loaded, nvmlDeviceGetTotalEnergyConsumption, mJ), ``power_limit_watts`` (the
  enforced limit, mW);
* ``temperature_celsius`` (nvmlDeviceGetTemperatureV, falling back to
  nvmlDeviceGetTemperature on drivers without it) and ``memory_temperature_celsius`` (field
  value NVML_FI_DEV_MEMORY_TEMP; a value of exactly 0 is taken as "no sensor", since boards
  without a memory sensor answer 0 rather than an error, and missing is never 0);
* ``utilization_ratio`` (nvmlDeviceGetUtilizationRates, GPU %), ``memory_used_bytes`` and
  ``memory_total_bytes`` (nvmlDeviceGetMemoryInfo), ``clock_sm_hertz`` and
  ``clock_memory_hertz`` (nvmlDeviceGetClockInfo, MHz);
* ``clock_event_reasons`` (the bitmask of nvmlDeviceGetCurrentClocksEventReasons, formerly
  "throttle reasons"; unit ``bitmask``) and one 0/1 reading per named reason
  (``clock_event_sw_power_cap``, ``clock_event_hw_thermal_slowdown``... see CLOCK_EVENT_REASONS);
* ``ecc_{uncorrected,corrected}_{volatile,aggregate}_errors`` (nvmlDeviceGetTotalEccErrors);
* ``xid_events``: XID critical errors seen by this reader since it opened (counted from 0, the
  event set polled with timeout 0 at each read), and ``xid_last_code`` once one was seen;
* ``up``: 1 when the GPU answered, 0 when it is lost (below).

Errors, field by field (one failing call costs only its own readings):

* NVMLError_NotSupported (or a call this driver or pynvml lacks): skipped silently; once per
  GPU per reader, a ``not_supported`` problem lists what is not supported.
* NVMLError_GpuIsLost ("fallen off the bus", XID 79) or NVMLError_ResetRequired: the GPU's
  readings for this cycle are withheld, it reads ``up`` = 0, a ``gpu_lost`` /
  ``reset_required`` problem says so, and the other GPUs are read as usual. It is tried again
  at the next read.
* Any other NVMLError: a ``nvml_error`` problem naming the call and the error class; anything
  else (a bug, an odd library) a ``read_error`` problem, logged once with its traceback.

GPUs are enumerated when the reader opens, and again when nvmlDeviceGetCount changes (or an
index could not be identified). A GPU seen once and later missing from the list stays
reported, ``up`` = 0 with a ``gpu_lost`` problem, for the reader's lifetime: a failed device
is reported as failed, never silently dropped.

NVML answers with current values and no timestamp, so ``timestamp_seconds`` is null (as for
sysfs); the caller knows when it read.

Problem reasons: ``not_supported``, ``gpu_lost``, ``reset_required``, ``nvml_error``,
``read_error``, ``enumeration_failed``, ``xid_unattributed``, ``event_backlog`` and, from
NvmlSource, ``unavailable``.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import math
import socket
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import polars as pl

from collector import schemas
from collector.readings import ReadingColumns
from collector.sources.base import ClosedOnExit

log = logging.getLogger(__name__)

SOURCE = "nvml"
DEVICE_KIND = "accelerator"
LIBRARY_MODULE = "pynvml"
INSTALL_HINT = "pip install 'gigawatt[nvml]'"

Frames = tuple[pl.DataFrame, pl.DataFrame]
# pynvml ships no type information, and tests inject a stand-in: the library is typed Any.
Library = Any

# NVML's C constants (nvml.h). pynvml exports the same values; holding them here keeps decoding
# independent of which pynvml version (or stand-in) is loaded.
NVML_SUCCESS = 0
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25
NVML_ERROR_GPU_NOT_FOUND = 28

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_MEMORY_ERROR_TYPE_CORRECTED = 0
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
NVML_VOLATILE_ECC = 0
NVML_AGGREGATE_ECC = 1
NVML_FI_DEV_MEMORY_TEMP = 82
NVML_EVENT_TYPE_XID_CRITICAL_ERROR = 0x8

# nvmlValueType_t -> the member of nvmlValue_t that holds the value.
_FIELD_VALUE_MEMBERS = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")

# nvmlClocksEventReason* bits, by the name of their 0/1 reading (clock_event_<name>).
CLOCK_EVENT_REASONS: tuple[tuple[str, int], ...] = (
    ("gpu_idle", 0x1),
    ("applications_clocks_setting", 0x2),
    ("sw_power_cap", 0x4),
    ("hw_slowdown", 0x8),
    ("sync_boost", 0x10),
    ("sw_thermal_slowdown", 0x20),
    ("hw_thermal_slowdown", 0x40),
    ("hw_power_brake_slowdown", 0x80),
    ("display_clock_setting", 0x100),
)

# Errors after which a GPU gives nothing more this cycle, and their problem reasons.
_DEVICE_FAILURES = {NVML_ERROR_GPU_IS_LOST: "gpu_lost", NVML_ERROR_RESET_REQUIRED: "reset_required"}
# A call this driver does not export, or a struct version it does not know: try the older call.
_TRY_OLDER = {NVML_ERROR_FUNCTION_NOT_FOUND, NVML_ERROR_ARGUMENT_VERSION_MISMATCH}

XID_FIELD = "nvmlDeviceRegisterEvents(nvmlEventTypeXidCriticalError)"


class _NotSupported(Exception):
    """A field this GPU, driver or pynvml cannot give; counted like NVMLError_NotSupported."""


def _load_library(library: Library | None) -> Library:
    """The injected library, or pynvml imported now; raises ImportError when it is absent."""
    if library is not None:
        return library
    return importlib.import_module(LIBRARY_MODULE)


def _error_code(error: BaseException) -> int | None:
    value = getattr(error, "value", None)
    return value if isinstance(value, int) else None


def _describe(error: BaseException) -> str:
    """``NVMLError_Timeout (Timeout)``: the error class, and NVML's text for it."""
    try:
        text = str(error)
    except Exception:  # pynvml asks the library for the text of codes it does not know
        text = f"code {_error_code(error)}"
    return f"{type(error).__name__} ({text})" if text else type(error).__name__


def _unavailable_reason(error: BaseException) -> str:
    """Why nvmlInit failed, as ``<key>: <detail>`` (the keys are stable; see nvml_available)."""
    code = _error_code(error)
    if code == NVML_ERROR_LIBRARY_NOT_FOUND:
        return (
            "library_not_found: libnvidia-ml.so not found: the NVIDIA driver's user-space "
            "library is not installed"
        )
    if code == NVML_ERROR_DRIVER_NOT_LOADED:
        return "driver_not_loaded: the NVIDIA kernel driver is not loaded"
    if code == NVML_ERROR_NO_PERMISSION:
        return "no_permission: no permission to open the NVIDIA device files"
    if code == NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        return (
            "version_mismatch: libnvidia-ml.so and the loaded kernel driver differ "
            "(reload the driver or reboot)"
        )
    if code == NVML_ERROR_GPU_NOT_FOUND:
        return "no_gpu: NVML found no GPU"
    return f"init_failed: nvmlInit failed: {_describe(error)}"


def _import_reason(error: BaseException) -> str:
    if isinstance(error, ImportError):
        return (
            f"no_library: nvidia-ml-py is not installed "
            f"(no {LIBRARY_MODULE} module; {INSTALL_HINT})"
        )
    return f"no_library: {LIBRARY_MODULE} failed to import: {error!r}"


def nvml_available(library: Library | None = None) -> tuple[bool, str]:
    """Whether NVML can be used here, and why not: never raises.

    True when ``pynvml`` imports, nvmlInit succeeds and at least one GPU is visible (NVML is
    shut down again before returning). The reason starts with a stable key: ``no_library``
    (nvidia-ml-py not installed), ``library_not_found`` (libnvidia-ml.so missing),
    ``driver_not_loaded``, ``no_permission``, ``version_mismatch``, ``init_failed``,
    ``count_failed`` or ``no_gpu``; when available, it says how many GPUs were found.
    """
    try:
        lib = _load_library(library)
    except Exception as error:
        return False, _import_reason(error)
    try:
        lib.nvmlInit()
    except Exception as error:
        return False, _unavailable_reason(error)
    try:
        count = int(lib.nvmlDeviceGetCount())
    except Exception as error:
        return False, f"count_failed: nvmlDeviceGetCount failed: {_describe(error)}"
    finally:
        try:
            lib.nvmlShutdown()
        except Exception:
            log.debug("nvmlShutdown failed after the availability check", exc_info=True)
    if count < 1:
        return False, "no_gpu: NVML found no GPU"
    return True, f"available: NVML sees {count} GPU(s)"


def _text(value: object) -> str:
    """pynvml returns str, older versions bytes."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _handle_key(handle: object) -> Hashable:
    """A key equal for two handles of one GPU: pynvml handles are ctypes pointers, and two
    pointer objects to one device compare unequal, so they are keyed by address."""
    try:
        return ("address", ctypes.cast(handle, ctypes.c_void_p).value)  # type: ignore[arg-type]
    except (ctypes.ArgumentError, TypeError):
        pass
    try:
        hash(handle)
    except TypeError:
        return ("id", id(handle))
    return handle


# --- fields: one NVML call each --------------------------------------------------------------

Values = list[tuple[str, float, str]]  # (metric, value in base unit, unit)


def _call_first(lib: Library, calls: Sequence[tuple[str, tuple[object, ...]]]) -> Any:
    """The result of the first call in ``calls`` this pynvml and driver have (newest first)."""
    for name, arguments in calls:
        function = getattr(lib, name, None)
        if function is None:
            continue
        try:
            return function(*arguments)
        except lib.NVMLError as error:
            if _error_code(error) not in _TRY_OLDER:
                raise
    raise _NotSupported(f"none of {', '.join(name for name, _ in calls)} is available")


def _power(lib: Library, handle: Any) -> Values:
    return [("power_watts", lib.nvmlDeviceGetPowerUsage(handle) / 1000, "watts")]


def _energy(lib: Library, handle: Any) -> Values:
    return [("energy_joules", lib.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000, "joules")]


def _power_limit(lib: Library, handle: Any) -> Values:
    return [("power_limit_watts", lib.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000, "watts")]


def _temperature(lib: Library, handle: Any) -> Values:
    celsius = _call_first(
        lib,
        (
            ("nvmlDeviceGetTemperatureV", (handle, NVML_TEMPERATURE_GPU)),
            ("nvmlDeviceGetTemperature", (handle, NVML_TEMPERATURE_GPU)),
        ),
    )
    return [("temperature_celsius", float(celsius), "celsius")]


def _memory_temperature(lib: Library, handle: Any) -> Values:
    item = lib.nvmlDeviceGetFieldValues(handle, [NVML_FI_DEV_MEMORY_TEMP])[0]
    if item.nvmlReturn != NVML_SUCCESS:
        raise lib.NVMLError(item.nvmlReturn)
    kind = int(item.valueType)
    if not 0 <= kind < len(_FIELD_VALUE_MEMBERS):
        raise ValueError(f"unknown nvmlValueType_t {kind}")
    celsius = float(getattr(item.value, _FIELD_VALUE_MEMBERS[kind]))
    if celsius == 0:
        raise _NotSupported("memory temperature 0: no sensor")
    return [("memory_temperature_celsius", celsius, "celsius")]


def _utilization(lib: Library, handle: Any) -> Values:
    return [("utilization_ratio", lib.nvmlDeviceGetUtilizationRates(handle).gpu / 100, "ratio")]


def _memory(lib: Library, handle: Any) -> Values:
    memory = lib.nvmlDeviceGetMemoryInfo(handle)
    return [
        ("memory_used_bytes", float(memory.used), "bytes"),
        ("memory_total_bytes", float(memory.total), "bytes"),
    ]


def _clock(clock: int, metric: str) -> Callable[[Library, Any], Values]:
    def read(lib: Library, handle: Any) -> Values:
        return [(metric, lib.nvmlDeviceGetClockInfo(handle, clock) * 1_000_000.0, "hertz")]

    return read


def _clock_events(lib: Library, handle: Any) -> Values:
    mask = int(
        _call_first(
            lib,
            (
                ("nvmlDeviceGetCurrentClocksEventReasons", (handle,)),
                ("nvmlDeviceGetCurrentClocksThrottleReasons", (handle,)),
            ),
        )
    )
    values: Values = [("clock_event_reasons", float(mask), "bitmask")]
    for name, bit in CLOCK_EVENT_REASONS:
        values.append((f"clock_event_{name}", 1.0 if mask & bit else 0.0, "boolean"))
    return values


def _ecc(error_type: int, counter_type: int, metric: str) -> Callable[[Library, Any], Values]:
    def read(lib: Library, handle: Any) -> Values:
        count = lib.nvmlDeviceGetTotalEccErrors(handle, error_type, counter_type)
        return [(metric, float(count), "count")]

    return read


@dataclass(frozen=True)
class _Field:
    name: str  # the NVML call, as problems and the not_supported list name it
    read: Callable[[Library, Any], Values]


FIELDS: tuple[_Field, ...] = (
    _Field("nvmlDeviceGetPowerUsage", _power),
    _Field("nvmlDeviceGetTotalEnergyConsumption", _energy),
    _Field("nvmlDeviceGetEnforcedPowerLimit", _power_limit),
    _Field("nvmlDeviceGetTemperatureV(NVML_TEMPERATURE_GPU)", _temperature),
    _Field("nvmlDeviceGetFieldValues(NVML_FI_DEV_MEMORY_TEMP)", _memory_temperature),
    _Field("nvmlDeviceGetUtilizationRates", _utilization),
    _Field("nvmlDeviceGetMemoryInfo", _memory),
    _Field("nvmlDeviceGetClockInfo(NVML_CLOCK_SM)", _clock(NVML_CLOCK_SM, "clock_sm_hertz")),
    _Field("nvmlDeviceGetClockInfo(NVML_CLOCK_MEM)", _clock(NVML_CLOCK_MEM, "clock_memory_hertz")),
    _Field("nvmlDeviceGetCurrentClocksEventReasons", _clock_events),
    *(
        _Field(
            f"nvmlDeviceGetTotalEccErrors({kind.upper()}, {counter.upper()})",
            _ecc(error_type, counter_type, f"ecc_{kind}_{counter}_errors"),
        )
        for kind, error_type in (
            ("uncorrected", NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
            ("corrected", NVML_MEMORY_ERROR_TYPE_CORRECTED),
        )
        for counter, counter_type in (
            ("volatile", NVML_VOLATILE_ECC),
            ("aggregate", NVML_AGGREGATE_ECC),
        )
    ),
)


# --- the reader ------------------------------------------------------------------------------


@dataclass
class _Gpu:
    uuid: str
    index: int
    handle: Any
    not_supported: dict[str, None] = field(default_factory=dict)  # ordered set of field names
    not_supported_reported: bool = False
    missing_since: float | None = None  # gone from NVML's device list since (clock reading)
    xid_registered: bool = False
    xid_events: int = 0
    xid_last_code: int | None = None


@dataclass
class _Cycle:
    """What one read collects, column by column."""

    readings: ReadingColumns = field(default_factory=ReadingColumns)
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # location, reason, msg

    def add(self, device: str, values: Iterable[tuple[str, float, str]]) -> None:
        for metric, value, unit in values:
            self.readings.add(device, DEVICE_KIND, metric, value, unit)

    def problem(self, location: str, reason: str, message: str) -> None:
        self.problems.append((location, reason, message))

    def frames(self, target: str, host: str) -> Frames:
        readings = self.readings.frame(source=SOURCE, target=target, host=host)
        problems = pl.DataFrame(
            {
                "source": [SOURCE] * len(self.problems),
                "target": [target] * len(self.problems),
                "location": [location for location, _, _ in self.problems],
                "reason": [reason for _, reason, _ in self.problems],
                "message": [message for _, _, message in self.problems],
            },
            schema=dict(schemas.PROBLEMS),
        )
        return readings, problems


class NvmlReader(ClosedOnExit):
    """Reads every GPU NVML sees, once per ``read(now)``; see the module docstring.

    ``library``: the pynvml module (default: imported when the reader is made, ImportError if
    nvidia-ml-py is absent) or a stand-in with the same API. ``host``: the host label (default
    socket.gethostname()). ``target``: default ``nvml://<host>``. Use as a context manager, or
    call ``open`` (nvmlInit, raises the library's NVMLError when NVML cannot start) and
    ``close`` (nvmlShutdown). ``read`` never raises for what a GPU answers.
    """

    def __init__(
        self,
        *,
        library: Library | None = None,
        host: str | None = None,
        target: str | None = None,
        max_events_per_read: int = 1024,
    ) -> None:
        if max_events_per_read < 1:
            raise ValueError(f"max_events_per_read must be at least 1, got {max_events_per_read}")
        self.library: Library = _load_library(library)
        self.host = host if host is not None else socket.gethostname()
        self.target = target if target is not None else f"nvml://{self.host}"
        self.max_events_per_read = max_events_per_read
        self._open = False
        self._gpus: dict[str, _Gpu] = {}  # by UUID, in order of first sight
        self._by_handle: dict[Hashable, _Gpu] = {}
        self._count = 0
        self._unidentified: set[int] = set()  # indexes whose UUID could not be read
        self._event_set: Any = None
        self._events_unsupported = False
        self._pending: list[tuple[str, str, str]] = []  # problems found by open, for read
        self._just_opened = False  # open has just enumerated: the first read need not again
        self._logged: set[tuple[str, str]] = set()

    # --- life cycle

    def __enter__(self) -> Self:
        self.open()
        return self

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def devices(self) -> tuple[str, ...]:
        """UUIDs of every GPU seen since open, missing ones included."""
        return tuple(self._gpus)

    @property
    def device_count(self) -> int:
        """What nvmlDeviceGetCount last said."""
        return self._count

    def open(self) -> None:
        """nvmlInit, the event set for XIDs and the first enumeration (idempotent)."""
        if self._open:
            return
        lib = self.library
        lib.nvmlInit()
        try:
            count = int(lib.nvmlDeviceGetCount())
        except BaseException:
            self._shutdown()
            raise
        self._open = True
        self._just_opened = True
        self._create_event_set()
        self._enumerate(count, None, self._pending)

    def close(self) -> None:
        """Free the event set and shut NVML down; best effort, never raises."""
        if not self._open:
            return
        self._open = False
        if self._event_set is not None:
            try:
                self.library.nvmlEventSetFree(self._event_set)
            except Exception:
                log.debug("nvmlEventSetFree failed", exc_info=True)
            self._event_set = None
        for gpu in self._gpus.values():
            gpu.xid_registered = False  # the event set is gone; a reopen registers again
        self._shutdown()

    def _shutdown(self) -> None:
        try:
            self.library.nvmlShutdown()
        except Exception:
            log.debug("nvmlShutdown failed", exc_info=True)

    # --- enumeration

    def _create_event_set(self) -> None:
        lib = self.library
        try:
            self._event_set = lib.nvmlEventSetCreate()
        except lib.NVMLError as error:
            self._event_set = None
            if _error_code(error) in (NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_FUNCTION_NOT_FOUND):
                self._events_unsupported = True
            else:
                message = f"XID events will not be counted: {_describe(error)}"
                self._pending.append(("nvmlEventSetCreate", "nvml_error", message))

    def _enumerate(
        self, count: int, now: float | None, problems: list[tuple[str, str, str]]
    ) -> None:
        """Match NVML's device list to the GPUs known so far (by UUID)."""
        lib = self.library
        self._count = count
        self._unidentified = set()
        found: dict[str, tuple[int, Any]] = {}
        for index in range(count):
            try:
                handle = lib.nvmlDeviceGetHandleByIndex(index)
                uuid = _text(lib.nvmlDeviceGetUUID(handle))
            except Exception as error:
                self._unidentified.add(index)
                lost = _error_code(error) in _DEVICE_FAILURES
                reason = _DEVICE_FAILURES.get(_error_code(error) or -1, "enumeration_failed")
                what = "lost" if lost else "not identified"
                message = (
                    f"GPU at index {index} {what}: its UUID cannot be read "
                    f"({_describe(error)}); tried again at every read"
                )
                problems.append((f"index {index}", reason, message))
                continue
            found[uuid] = (index, handle)
        for uuid, known in self._gpus.items():
            if uuid not in found and known.missing_since is None:
                # At a reopen there is no clock reading: NaN says "missing, since unknown".
                known.missing_since = now if now is not None else math.nan
        by_handle: dict[Hashable, _Gpu] = {}
        for uuid, (index, handle) in found.items():
            gpu = self._gpus.get(uuid)
            if gpu is None:
                gpu = self._gpus[uuid] = _Gpu(uuid, index, handle)
            elif _handle_key(gpu.handle) != _handle_key(handle):
                gpu.xid_registered = False  # a new handle (driver reload): register it again
            gpu.index, gpu.handle, gpu.missing_since = index, handle, None
            by_handle[_handle_key(handle)] = gpu
            if not gpu.xid_registered:
                self._register_xid(gpu, problems)
        self._by_handle = by_handle

    def _register_xid(self, gpu: _Gpu, problems: list[tuple[str, str, str]]) -> None:
        lib = self.library
        if self._event_set is None:
            if self._events_unsupported:
                gpu.not_supported[XID_FIELD] = None
            return
        try:
            supported = int(lib.nvmlDeviceGetSupportedEventTypes(gpu.handle))
            if not supported & NVML_EVENT_TYPE_XID_CRITICAL_ERROR:
                raise _NotSupported("no XID events on this GPU")
            lib.nvmlDeviceRegisterEvents(
                gpu.handle, NVML_EVENT_TYPE_XID_CRITICAL_ERROR, self._event_set
            )
        except _NotSupported:
            gpu.not_supported[XID_FIELD] = None
            return
        except lib.NVMLError as error:
            if _error_code(error) == NVML_ERROR_NOT_SUPPORTED:
                gpu.not_supported[XID_FIELD] = None
            else:
                message = f"XID events not counted for this GPU: {_describe(error)}"
                problems.append((f"{gpu.uuid}/{XID_FIELD}", "nvml_error", message))
            return
        gpu.xid_registered = True

    # --- reading

    def read(self, now: float) -> Frames:
        """READINGS and PROBLEMS frames for every GPU (module docstring); ``now``: the cycle's
        clock, used to date a GPU's disappearance. Raises RuntimeError when not open."""
        if not self._open:
            raise RuntimeError("NvmlReader.read called before open() (or after close())")
        cycle = _Cycle(problems=self._pending)
        self._pending = []
        self._refresh_devices(now, cycle)
        self._poll_events(cycle)
        for gpu in self._gpus.values():
            if gpu.missing_since is not None:
                self._report_missing(gpu, cycle)
            else:
                self._read_gpu(gpu, cycle)
            if gpu.xid_registered or gpu.xid_events:
                cycle.add(gpu.uuid, [("xid_events", float(gpu.xid_events), "count")])
            if gpu.xid_last_code is not None:
                cycle.add(gpu.uuid, [("xid_last_code", float(gpu.xid_last_code), "code")])
        return cycle.frames(self.target, self.host)

    def _refresh_devices(self, now: float, cycle: _Cycle) -> None:
        lib = self.library
        try:
            count = int(lib.nvmlDeviceGetCount())
        except Exception as error:
            message = f"device list not refreshed, known GPUs read as before: {_describe(error)}"
            cycle.problem("nvmlDeviceGetCount", "nvml_error", message)
            return
        retry = self._unidentified and not self._just_opened
        self._just_opened = False
        if count != self._count or retry:
            self._enumerate(count, now, cycle.problems)

    def _report_missing(self, gpu: _Gpu, cycle: _Cycle) -> None:
        missing_since = gpu.missing_since
        since = (
            "" if missing_since is None or math.isnan(missing_since) else f" since {missing_since}"
        )
        message = (
            f"GPU present before (index {gpu.index}) is missing from NVML's device list{since} "
            f"(NVML now counts {self._count}): lost, reported until the reader is reopened"
        )
        cycle.problem(gpu.uuid, "gpu_lost", message)
        cycle.add(gpu.uuid, [("up", 0.0, "boolean")])

    def _read_gpu(self, gpu: _Gpu, cycle: _Cycle) -> None:
        lib = self.library
        values: Values = []
        for item in FIELDS:
            location = f"{gpu.uuid}/{item.name}"
            try:
                values.extend(item.read(lib, gpu.handle))
            except _NotSupported:
                gpu.not_supported[item.name] = None
            except lib.NVMLError as error:
                code = _error_code(error)
                if code == NVML_ERROR_NOT_SUPPORTED:
                    gpu.not_supported[item.name] = None
                elif code in _DEVICE_FAILURES:
                    reason = _DEVICE_FAILURES[code]
                    message = (
                        f"{_describe(error)} while reading {item.name}: the GPU has fallen off "
                        "the bus or failed; its readings are withheld and up is 0 until it "
                        "answers again"
                    )
                    cycle.problem(location, reason, message)
                    cycle.add(gpu.uuid, [("up", 0.0, "boolean")])
                    return
                else:
                    cycle.problem(location, "nvml_error", f"{item.name}: {_describe(error)}")
            except Exception as error:  # a bug or an odd library costs this field only
                if (gpu.uuid, item.name) not in self._logged:
                    self._logged.add((gpu.uuid, item.name))
                    log.exception("nvml: %s failed on %s", item.name, gpu.uuid)
                cycle.problem(location, "read_error", f"{item.name}: {error!r}")
        cycle.add(gpu.uuid, [("up", 1.0, "boolean"), *values])
        if not gpu.not_supported_reported:
            gpu.not_supported_reported = True
            if gpu.not_supported:
                names = ", ".join(gpu.not_supported)
                message = (
                    f"{len(gpu.not_supported)} of {len(FIELDS) + 1} fields not supported on "
                    f"this GPU (skipped, reported once): {names}"
                )
                cycle.problem(gpu.uuid, "not_supported", message)

    def _poll_events(self, cycle: _Cycle) -> None:
        """Count waiting XID events per GPU, without blocking (timeout 0)."""
        lib = self.library
        if self._event_set is None:
            return
        for _ in range(self.max_events_per_read):
            try:
                event = lib.nvmlEventSetWait(self._event_set, 0)
            except lib.NVMLError as error:
                if _error_code(error) != NVML_ERROR_TIMEOUT:  # timeout: no event waiting
                    cycle.problem("nvmlEventSetWait", "nvml_error", _describe(error))
                return
            except Exception as error:
                cycle.problem("nvmlEventSetWait", "read_error", repr(error))
                return
            if not int(event.eventType) & NVML_EVENT_TYPE_XID_CRITICAL_ERROR:
                continue
            code = int(event.eventData)
            gpu: _Gpu | None = self._by_handle.get(_handle_key(event.device))
            if gpu is None:
                try:
                    gpu = self._gpus.get(_text(lib.nvmlDeviceGetUUID(event.device)))
                except Exception:
                    gpu = None
            if gpu is None:
                message = f"XID {code} on a GPU that is not in the device list"
                cycle.problem("nvmlEventSetWait", "xid_unattributed", message)
                continue
            gpu.xid_events += 1
            gpu.xid_last_code = code
        message = f"more than {self.max_events_per_read} events waiting: the rest are read next"
        cycle.problem("nvmlEventSetWait", "event_backlog", message)


# --- the source ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NvmlHealth:
    """Whether the source can read NVML; ``reason`` as nvml_available words it."""

    available: bool
    reason: str
    devices: int = 0  # GPUs the reader knows (lost ones included)


class NvmlSource(ClosedOnExit):
    """NVML as a source that never raises at construction or read.

    It opens an NvmlReader when made; when NVML cannot be used (nvidia-ml-py absent, no
    driver, no GPU) ``health()`` says so with the reason, ``read_readings`` returns no readings
    and one ``unavailable`` problem, and opening is tried again at a read at least
    ``retry_seconds`` after the last try (a driver loaded after boot is picked up). Reads are
    serialized by a lock.
    """

    def __init__(
        self,
        *,
        library: Library | None = None,
        host: str | None = None,
        name: str = SOURCE,
        retry_seconds: float = 60.0,
    ) -> None:
        self.name = name
        self.host = host if host is not None else socket.gethostname()
        self.target = f"nvml://{self.host}"
        self.retry_seconds = retry_seconds
        self._library = library
        self._reader: NvmlReader | None = None
        self._reason = "not opened"
        self._last_attempt: float | None = None  # no clock at construction: first read retries
        self._closed = False
        self._lock = threading.Lock()
        self._try_open()

    def health(self) -> NvmlHealth:
        reader = self._reader
        if reader is None:
            return NvmlHealth(False, self._reason)
        return NvmlHealth(True, self._reason, len(reader.devices))

    def _try_open(self) -> None:
        try:
            library = _load_library(self._library)
        except Exception as error:
            self._reason = _import_reason(error)
            return
        try:
            reader = NvmlReader(library=library, host=self.host, target=self.target)
            reader.open()
        except Exception as error:
            self._reason = _unavailable_reason(error)
            return
        if not reader.devices and not reader.device_count:
            reader.close()
            self._reason = "no_gpu: NVML found no GPU"
            return
        self._reader = reader
        self._reason = f"available: NVML sees {reader.device_count} GPU(s)"

    def read_readings(self, now: float) -> Frames:
        """READINGS and PROBLEMS frames for this cycle (NvmlReader.read)."""
        with self._lock:
            if (
                self._reader is None
                and not self._closed
                and (self._last_attempt is None or now - self._last_attempt >= self.retry_seconds)
            ):
                self._last_attempt = now
                self._try_open()
            reader = self._reader
            if reader is None:
                cycle = _Cycle()
                cycle.problem("nvmlInit", "unavailable", self._reason)
                return cycle.frames(self.target, self.host)
            try:
                return reader.read(now)
            except Exception as error:  # a bug must cost this cycle, not the service
                log.exception("nvml: read failed")
                reader.close()
                self._reader = None
                self._last_attempt = now
                self._reason = f"read_failed: {error!r}"
                cycle = _Cycle()
                cycle.problem("read", "read_error", repr(error))
                return cycle.frames(self.target, self.host)

    def close(self) -> None:
        """Shut NVML down; later reads return the ``unavailable`` problem, never reopen."""
        with self._lock:
            self._closed = True
            self._reason = "closed: the source was closed"
            if self._reader is not None:
                self._reader.close()
                self._reader = None
