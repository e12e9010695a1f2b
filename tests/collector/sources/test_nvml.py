"""The NVML source: the real library path where it runs here, a stand-in library for the rest,
and a test on a real GPU that runs only where one is present."""

from __future__ import annotations

import ctypes
import importlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl
import pytest

from collector import schemas
from collector.sources import nvml
from collector.sources.nvml import NvmlReader, NvmlSource, nvml_available

ROOT = Path(__file__).resolve().parents[3]
HOST = "node-a"
TARGET = f"nvml://{HOST}"
UNAVAILABLE_KEYS = {
    "no_library",
    "library_not_found",
    "driver_not_loaded",
    "no_permission",
    "version_mismatch",
    "init_failed",
    "count_failed",
    "no_gpu",
}


def _import_pynvml() -> ModuleType | None:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        return None


PYNVML = _import_pynvml()
GPU_PRESENT = nvml_available()[0]


# --- the real library -------------------------------------------------------------------------


@pytest.mark.skipif(GPU_PRESENT, reason="a GPU is present: test_reads_the_real_gpu covers it")
def test_real_nvml_is_unavailable_here_and_says_why() -> None:
    available, reason = nvml_available()
    assert available is False
    assert reason.split(":")[0] in UNAVAILABLE_KEYS, reason
    if PYNVML is None:
        assert reason.startswith("no_library: nvidia-ml-py is not installed")


@pytest.mark.skipif(GPU_PRESENT, reason="a GPU is present: test_reads_the_real_gpu covers it")
def test_real_source_reports_itself_unavailable() -> None:
    with NvmlSource(host=HOST) as source:
        health = source.health()
        assert health.available is False
        assert health.reason == nvml_available()[1]
        readings, problems = source.read_readings(1000.0)
    assert readings.height == 0
    assert readings.schema == pl.Schema(schemas.READINGS)
    assert problems.schema == pl.Schema(schemas.PROBLEMS)
    assert problems.rows() == [(nvml.SOURCE, TARGET, "nvmlInit", "unavailable", health.reason)]


def _python(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_module_imports_and_reports_unavailable_without_pynvml() -> None:
    result = _python(
        "import sys, json\n"
        "sys.modules['pynvml'] = None  # the import of pynvml now fails, as when not installed\n"
        "from collector.sources import nvml\n"
        "available, reason = nvml.nvml_available()\n"
        "health = nvml.NvmlSource(host='node-a').health()\n"
        "try:\n"
        "    nvml.NvmlReader(host='node-a')\n"
        "    reader = 'made'\n"
        "except ImportError:\n"
        "    reader = 'ImportError'\n"
        "print(json.dumps({'available': available, 'reason': reason, 'reader': reader,\n"
        "    'source_available': health.available, 'source_reason': health.reason}))\n"
    )
    assert result["available"] is False
    assert result["reason"].startswith("no_library: nvidia-ml-py is not installed")
    assert "gigawatt[nvml]" in result["reason"]
    assert result["source_available"] is False
    assert result["source_reason"] == result["reason"]
    assert result["reader"] == "ImportError"


def test_importing_the_module_does_not_import_pynvml() -> None:
    result = _python(
        "import sys, json\n"
        "import collector.sources.nvml\n"
        "print(json.dumps({'loaded': 'pynvml' in sys.modules}))\n"
    )
    assert result == {"loaded": False}


@pytest.mark.skipif(not GPU_PRESENT, reason="no GPU here: nvml_available() is False")
def test_reads_the_real_gpu() -> None:
    with NvmlReader() as reader:
        readings, problems = reader.read(time.time())
    assert reader.devices, "NVML sees a GPU but the reader enumerated none"
    assert all(device.startswith("GPU-") for device in reader.devices)
    power = readings.filter(pl.col("metric") == "power_watts")
    assert power.height == len(reader.devices)
    assert (power["value"] > 0).all(), power
    up = readings.filter(pl.col("metric") == "up")
    assert up["value"].to_list() == [1.0] * len(reader.devices), problems
    assert set(readings["device"]) == set(reader.devices)
    assert not problems.filter(pl.col("reason").is_in(["gpu_lost", "read_error"])).height


# --- the real pynvml over a stub libnvidia-ml.so.1 --------------------------------------------

# The C library NVML would be, reduced to what the source calls: two GPUs, the second without
# ECC or a memory sensor and lost from its second temperature read on; one XID 79 queued on
# the first; no nvmlDeviceGetCurrentClocksEventReasons (an older driver). It lets pynvml's own
# ctypes code (handles, structures, unions, error mapping) run here without a GPU.
STUB_LIBNVIDIA_ML = r"""
#include <string.h>
typedef struct { int index; } device_t;
typedef union {
    double dVal; unsigned uiVal; unsigned long ulVal; unsigned long long ullVal;
    long long sllVal; int siVal; unsigned short usVal;
} value_t;
typedef struct {
    unsigned fieldId, scopeId; long long timestamp, latencyUsec;
    int valueType, nvmlReturn; value_t value;
} field_value_t;
typedef struct { unsigned gpu, memory; } utilization_t;
typedef struct { unsigned long long total, free, used; } memory_t;
typedef struct { unsigned version; int sensorType; int temperature; } temperature_t;
typedef struct {
    device_t *device; unsigned long long eventType, eventData;
    unsigned gpuInstanceId, computeInstanceId;
} event_t;
enum { OK = 0, INVALID_ARGUMENT = 2, NOT_SUPPORTED = 3, TIMEOUT = 10, GPU_IS_LOST = 15 };
static device_t devices[2] = {{0}, {1}};
static int xids_queued = 1, temperature_reads_of_second = 0;

int nvmlInitWithFlags(unsigned flags) { return OK; }
int nvmlShutdown(void) { return OK; }
const char *nvmlErrorString(int result) { return "stub error"; }
int nvmlDeviceGetCount_v2(unsigned *count) { *count = 2; return OK; }
int nvmlDeviceGetHandleByIndex_v2(unsigned index, device_t **device) {
    *device = &devices[index]; return OK;
}
int nvmlDeviceGetUUID(device_t *d, char *uuid, unsigned length) {
    strcpy(uuid, d->index ? "GPU-bbbb" : "GPU-aaaa"); return OK;
}
int nvmlDeviceGetPowerUsage(device_t *d, unsigned *mw) {
    *mw = d->index ? 99999 : 612437; return OK;
}
int nvmlDeviceGetTotalEnergyConsumption(device_t *d, unsigned long long *mj) {
    *mj = 81044217332ULL; return OK;
}
int nvmlDeviceGetEnforcedPowerLimit(device_t *d, unsigned *mw) { *mw = 700000; return OK; }
int nvmlDeviceGetTemperatureV(device_t *d, temperature_t *t) {
    if (d->index == 1 && ++temperature_reads_of_second > 1) return GPU_IS_LOST;
    if (t->version != 0x100000C || t->sensorType != 0) return INVALID_ARGUMENT;
    t->temperature = 64; return OK;
}
int nvmlDeviceGetFieldValues(device_t *d, int count, field_value_t *values) {
    for (int i = 0; i < count; i++) {
        if (values[i].fieldId != 82) return INVALID_ARGUMENT;
        values[i].valueType = 1;
        values[i].nvmlReturn = d->index ? NOT_SUPPORTED : OK;
        values[i].value.uiVal = 71;
    }
    return OK;
}
int nvmlDeviceGetUtilizationRates(device_t *d, utilization_t *u) {
    u->gpu = 87; u->memory = 31; return OK;
}
int nvmlDeviceGetMemoryInfo(device_t *d, memory_t *m) {
    m->total = 85899345920ULL; m->used = 42949672960ULL; m->free = m->total - m->used;
    return OK;
}
int nvmlDeviceGetClockInfo(device_t *d, int type, unsigned *mhz) {
    if (type != 1 && type != 2) return INVALID_ARGUMENT;
    *mhz = type == 1 ? 1980 : 2619; return OK;
}
int nvmlDeviceGetCurrentClocksThrottleReasons(device_t *d, unsigned long long *reasons) {
    *reasons = 0x44; return OK;
}
int nvmlDeviceGetTotalEccErrors(device_t *d, int error, int counter, unsigned long long *n) {
    if (d->index) return NOT_SUPPORTED;
    *n = error * 10 + counter; return OK;
}
int nvmlEventSetCreate(void **set) { *set = (void *)0x1234; return OK; }
int nvmlEventSetFree(void *set) { return OK; }
int nvmlDeviceGetSupportedEventTypes(device_t *d, unsigned long long *types) {
    *types = 0x8 | 0x1; return OK;
}
int nvmlDeviceRegisterEvents(device_t *d, unsigned long long types, void *set) {
    return types == 0x8 ? OK : INVALID_ARGUMENT;
}
int nvmlEventSetWait_v2(void *set, event_t *event, unsigned timeout_ms) {
    if (timeout_ms != 0) return INVALID_ARGUMENT;
    if (!xids_queued) return TIMEOUT;
    xids_queued--;
    event->device = &devices[0]; event->eventType = 0x8; event->eventData = 79;
    return OK;
}
"""


def test_real_pynvml_over_a_stub_library(tmp_path: Path) -> None:
    if PYNVML is None:
        pytest.skip("nvidia-ml-py not installed")
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the stub libnvidia-ml.so.1")
    (tmp_path / "stub.c").write_text(STUB_LIBNVIDIA_ML)
    built = subprocess.run(
        [compiler, "-shared", "-fPIC", "-o", "libnvidia-ml.so.1", "stub.c"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    result = _python(
        "import json\n"
        "from collector.sources import nvml\n"
        "available = nvml.nvml_available()\n"
        "cycles = []\n"
        "with nvml.NvmlReader(host='node-a') as reader:\n"
        "    for now in (1.0, 2.0):\n"
        "        readings, problems = reader.read(now)\n"
        "        cycles.append([readings.rows(), problems.rows()])\n"
        "print(json.dumps({'available': available, 'cycles': cycles}))\n",
        env={**os.environ, "LD_LIBRARY_PATH": str(tmp_path)},
    )
    assert result["available"] == [True, "available: NVML sees 2 GPU(s)"]
    (first, first_problems), (second, second_problems) = result["cycles"]
    a = {metric: value for _, _, _, device, _, metric, value, *_ in first if device == "GPU-aaaa"}
    assert a == {
        "up": 1.0,
        "power_watts": 612.437,
        "energy_joules": 81_044_217.332,
        "power_limit_watts": 700.0,
        "temperature_celsius": 64.0,
        "memory_temperature_celsius": 71.0,
        "utilization_ratio": 0.87,
        "memory_used_bytes": 42_949_672_960.0,
        "memory_total_bytes": 85_899_345_920.0,
        "clock_sm_hertz": 1_980_000_000.0,
        "clock_memory_hertz": 2_619_000_000.0,
        "clock_event_reasons": 68.0,
        **{f"clock_event_{name}": 0.0 for name, _ in nvml.CLOCK_EVENT_REASONS},
        "clock_event_sw_power_cap": 1.0,
        "clock_event_hw_thermal_slowdown": 1.0,
        "ecc_uncorrected_volatile_errors": 10.0,
        "ecc_uncorrected_aggregate_errors": 11.0,
        "ecc_corrected_volatile_errors": 0.0,
        "ecc_corrected_aggregate_errors": 1.0,
        "xid_events": 1.0,
        "xid_last_code": 79.0,
    }
    assert first[0][:6] == ["nvml", "nvml://node-a", "node-a", "GPU-aaaa", "accelerator", "up"]
    assert [(row[2], row[3]) for row in first_problems] == [("GPU-bbbb", "not_supported")]
    assert "5 of 15" in first_problems[0][4]
    b = {metric: value for _, _, _, device, _, metric, value, *_ in second if device == "GPU-bbbb"}
    assert b == {"up": 0.0, "xid_events": 0.0}
    location = "GPU-bbbb/nvmlDeviceGetTemperatureV(NVML_TEMPERATURE_GPU)"
    assert [(row[2], row[3]) for row in second_problems] == [(location, "gpu_lost")]
    assert "NVMLError_GpuIsLost" in second_problems[0][4]


# --- a stand-in for pynvml --------------------------------------------------------------------

# pynvml's error classes and codes (nvml.h). Where pynvml imports, its own classes are used; the
# stand-ins below are made only where it does not, with the same names, values and mapping.
ERROR_CODES = {
    "NVMLError_NotSupported": 3,
    "NVMLError_NoPermission": 4,
    "NVMLError_DriverNotLoaded": 9,
    "NVMLError_Timeout": 10,
    "NVMLError_LibraryNotFound": 12,
    "NVMLError_FunctionNotFound": 13,
    "NVMLError_GpuIsLost": 15,
    "NVMLError_ResetRequired": 16,
    "NVMLError_Unknown": 999,
}


def _stand_in_errors() -> dict[str, type[Exception]]:
    """NVMLError and subclasses built like pynvml's: NVMLError(code) gives the subclass for the
    code, and each subclass takes no argument."""

    class NVMLError(Exception):
        _valClassMapping: dict[int, type[NVMLError]] = {}  # noqa: RUF012 (pynvml's own name)
        value: int

        def __new__(cls, value: int) -> NVMLError:
            if cls is NVMLError:
                cls = NVMLError._valClassMapping.get(value, cls)
            error = Exception.__new__(cls)
            error.value = value
            return error

        def __str__(self) -> str:
            names = {code: name for name, code in ERROR_CODES.items()}
            return names.get(self.value, f"NVML Error with code {self.value}")

    classes: dict[str, type[Exception]] = {"NVMLError": NVMLError}
    for name, code in ERROR_CODES.items():

        def new(cls: type[NVMLError], *args: object, _code: int = code) -> NVMLError:
            return NVMLError.__new__(cls, _code)

        subclass = type(name, (NVMLError,), {"__new__": new})
        NVMLError._valClassMapping[code] = subclass
        classes[name] = subclass
    return classes


ERRORS: dict[str, type[Exception]] = (
    {name: getattr(PYNVML, name) for name in ("NVMLError", *ERROR_CODES)}
    if PYNVML is not None
    else _stand_in_errors()
)


def error(name: str) -> Exception:
    """An instance of pynvml's error class ``NVMLError_<name>``."""
    return ERRORS[f"NVMLError_{name}"]()


# pynvml's ctypes structures, as plain objects with the same field names (checked against
# pynvml's _fields_ where it imports).
@dataclass
class c_nvmlUtilization_t:
    gpu: int
    memory: int


@dataclass
class c_nvmlMemory_t:
    total: int
    free: int
    used: int


@dataclass
class c_nvmlValue_t:
    dVal: float = 0.0
    uiVal: int = 0
    ulVal: int = 0
    ullVal: int = 0
    sllVal: int = 0
    siVal: int = 0
    usVal: int = 0


@dataclass
class c_nvmlFieldValue_t:
    fieldId: int
    scopeId: int = 0
    timestamp: int = 0
    latencyUsec: int = 0
    valueType: int = 1
    nvmlReturn: int = 0
    value: c_nvmlValue_t = field(default_factory=c_nvmlValue_t)


@dataclass
class c_nvmlEventData_t:
    device: Any
    eventType: int
    eventData: int
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


XID = 0x8  # nvmlEventTypeXidCriticalError


@dataclass
class FakeGpu:
    """One GPU as NVML reports it, in NVML's own units: mW, mJ, degrees C, %, bytes, MHz."""

    uuid: str
    power_mw: int = 250_123
    energy_mj: int = 81_044_217_332
    power_limit_mw: int = 700_000
    temperature_c: int = 64
    memory_temperature: c_nvmlFieldValue_t | None = None  # None: 71 C as an unsigned int
    utilization_percent: int = 87
    memory_used_bytes: int = 40 * 2**30
    memory_total_bytes: int = 80 * 2**30
    clock_sm_mhz: int = 1980
    clock_mem_mhz: int = 2619
    clock_event_reasons: int = 0
    # (errorType, counterType) -> count; errorType 1 uncorrected, 0 corrected; counter 0 volatile
    ecc: dict[tuple[int, int], int] = field(
        default_factory=lambda: {(1, 0): 2, (0, 0): 17, (1, 1): 3, (0, 1): 120}
    )
    supported_events: int = XID | 0x1 | 0x2
    errors: dict[str, Exception] = field(default_factory=dict)  # pynvml function -> error


class FakeNvml:
    """A stand-in for the pynvml module, injected as ``library``.

    Why a stand-in: no GPU runs on this machine or on CI, so the real library can only fail
    here. These tests check what this source does with NVML's answers (unit conversions, error
    handling, lost and missing GPUs, XID counting, clock event decoding), not NVML itself;
    test_reads_the_real_gpu does that where a GPU is present. The stand-in keeps pynvml's
    function names and parameter names (checked against pynvml where it imports), its error
    classes (pynvml's own where it imports), its units and its handles: ctypes pointers, a new
    pointer object per call, as pynvml's nvmlDeviceGetHandleByIndex returns.
    """

    NVML_FI_DEV_MEMORY_TEMP = 82
    nvmlEventTypeXidCriticalError = XID

    def __init__(self, gpus: list[FakeGpu]) -> None:
        self.present = list(gpus)  # what nvmlDeviceGetCount and ...ByIndex see, in order
        self._cells = {gpu.uuid: ctypes.c_int(position) for position, gpu in enumerate(gpus)}
        self._by_address = {ctypes.addressof(cell): uuid for uuid, cell in self._cells.items()}
        self._all = {gpu.uuid: gpu for gpu in gpus}
        self.initialized = 0
        self.init_error: Exception | None = None
        self.event_set_error: Exception | None = None
        self.event_sets_open = 0
        self.registered: set[str] = set()
        self.events: deque[c_nvmlEventData_t] = deque()
        self.waits: list[int] = []  # timeoutms of every nvmlEventSetWait
        for name, cls in ERRORS.items():
            setattr(self, name, cls)

    # test controls

    def add(self, gpu: FakeGpu) -> None:
        if gpu.uuid not in self._cells:
            cell = self._cells[gpu.uuid] = ctypes.c_int(len(self._cells))
            self._by_address[ctypes.addressof(cell)] = gpu.uuid
        self._all[gpu.uuid] = gpu
        self.present.append(gpu)

    def xid(self, uuid: str, code: int) -> None:
        """The driver reports XID ``code`` on a GPU (queued if registered, as NVML does)."""
        if uuid in self.registered:
            # A new pointer object, as pynvml's c_nvmlEventData_t.device is.
            self.events.append(c_nvmlEventData_t(ctypes.pointer(self._cells[uuid]), XID, code))

    def _gpu(self, handle: Any, function: str) -> FakeGpu:
        gpu = self._all[self._by_address[ctypes.addressof(handle.contents)]]
        if function in gpu.errors:
            raise gpu.errors[function]
        return gpu

    # pynvml's API (the subset the source calls)

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error
        self.initialized += 1

    def nvmlShutdown(self) -> None:
        assert self.initialized > 0, "nvmlShutdown without nvmlInit"
        self.initialized -= 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.present)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        gpu = self.present[index]
        if "nvmlDeviceGetHandleByIndex" in gpu.errors:
            raise gpu.errors["nvmlDeviceGetHandleByIndex"]
        return ctypes.pointer(self._cells[gpu.uuid])

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return self._gpu(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return self._gpu(handle, "nvmlDeviceGetPowerUsage").power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        return self._gpu(handle, "nvmlDeviceGetTotalEnergyConsumption").energy_mj

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return self._gpu(handle, "nvmlDeviceGetEnforcedPowerLimit").power_limit_mw

    def nvmlDeviceGetTemperatureV(self, handle: Any, sensor: int, version: int = 0x100000C) -> int:
        assert sensor == 0  # NVML_TEMPERATURE_GPU
        return self._gpu(handle, "nvmlDeviceGetTemperatureV").temperature_c

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        assert sensor == 0
        return self._gpu(handle, "nvmlDeviceGetTemperature").temperature_c

    def nvmlDeviceGetFieldValues(self, handle: Any, fieldIds: list[int]) -> list[Any]:
        gpu = self._gpu(handle, "nvmlDeviceGetFieldValues")
        assert fieldIds == [self.NVML_FI_DEV_MEMORY_TEMP]
        if gpu.memory_temperature is not None:
            return [gpu.memory_temperature]
        return [c_nvmlFieldValue_t(fieldIds[0], valueType=1, value=c_nvmlValue_t(uiVal=71))]

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        gpu = self._gpu(handle, "nvmlDeviceGetUtilizationRates")
        return c_nvmlUtilization_t(gpu=gpu.utilization_percent, memory=31)

    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: int | None = None) -> Any:
        gpu = self._gpu(handle, "nvmlDeviceGetMemoryInfo")
        free = gpu.memory_total_bytes - gpu.memory_used_bytes
        return c_nvmlMemory_t(total=gpu.memory_total_bytes, free=free, used=gpu.memory_used_bytes)

    def nvmlDeviceGetClockInfo(self, handle: Any, type: int) -> int:
        gpu = self._gpu(handle, f"nvmlDeviceGetClockInfo({type})")
        return {1: gpu.clock_sm_mhz, 2: gpu.clock_mem_mhz}[type]

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        return self._gpu(handle, "nvmlDeviceGetCurrentClocksEventReasons").clock_event_reasons

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: Any) -> int:
        return self._gpu(handle, "nvmlDeviceGetCurrentClocksThrottleReasons").clock_event_reasons

    def nvmlDeviceGetTotalEccErrors(self, handle: Any, errorType: int, counterType: int) -> int:
        gpu = self._gpu(handle, f"nvmlDeviceGetTotalEccErrors({errorType}, {counterType})")
        return gpu.ecc[(errorType, counterType)]

    def nvmlEventSetCreate(self) -> Any:
        if self.event_set_error is not None:
            raise self.event_set_error
        self.event_sets_open += 1
        return ctypes.c_void_p(0xE5E7)

    def nvmlDeviceGetSupportedEventTypes(self, handle: Any) -> int:
        return self._gpu(handle, "nvmlDeviceGetSupportedEventTypes").supported_events

    def nvmlDeviceRegisterEvents(self, handle: Any, eventTypes: int, eventSet: Any) -> None:
        gpu = self._gpu(handle, "nvmlDeviceRegisterEvents")
        assert eventTypes == XID
        self.registered.add(gpu.uuid)

    def nvmlEventSetWait(self, eventSet: Any, timeoutms: int) -> Any:
        self.waits.append(timeoutms)
        if not self.events:
            raise error("Timeout")
        return self.events.popleft()

    def nvmlEventSetFree(self, eventSet: Any) -> None:
        self.event_sets_open -= 1


UUIDS = (
    "GPU-5a1c8f0e-2d3b-4c6a-9e71-0b8d2f4a6c13",
    "GPU-9b2e4d71-8c0a-4f35-b6d2-3e1f7a9c5b08",
    "GPU-c47f0a2b-6e19-4d8c-a3b5-71d0e9f2c864",
)


def fake(count: int = 2) -> FakeNvml:
    return FakeNvml([FakeGpu(uuid) for uuid in UUIDS[:count]])


def values(readings: pl.DataFrame, device: str) -> dict[str, float]:
    rows = readings.filter(pl.col("device") == device)
    assert rows["metric"].n_unique() == rows.height, "a metric read twice in one cycle"
    return dict(zip(rows["metric"], rows["value"], strict=True))


def reasons(problems: pl.DataFrame) -> list[tuple[str, str]]:
    return list(zip(problems["location"], problems["reason"], strict=True))


# --- the stand-in matches pynvml --------------------------------------------------------------


@pytest.mark.skipif(PYNVML is None, reason="nvidia-ml-py not installed: nothing to compare with")
def test_stand_in_has_pynvml_names_signatures_and_structures() -> None:
    assert PYNVML is not None
    for name, method in inspect.getmembers(fake(1)):
        if not name.startswith("nvml") or not callable(method):
            continue
        real = getattr(PYNVML, name)
        assert list(inspect.signature(method).parameters) == list(
            inspect.signature(real).parameters
        ), name
    for stand_in in (c_nvmlUtilization_t, c_nvmlMemory_t, c_nvmlValue_t, c_nvmlFieldValue_t):
        real_fields = [name for name, _ in getattr(PYNVML, stand_in.__name__)._fields_]
        assert [f.name for f in fields(stand_in)] == real_fields, stand_in.__name__
    real_event = [name for name, _ in PYNVML.c_nvmlEventData_t._fields_]
    assert [f.name for f in fields(c_nvmlEventData_t)] == real_event


@pytest.mark.skipif(PYNVML is None, reason="nvidia-ml-py not installed: nothing to compare with")
def test_constants_match_pynvml() -> None:
    assert PYNVML is not None
    for name in dir(nvml):
        if name.startswith("NVML_") and hasattr(PYNVML, name):
            assert getattr(nvml, name) == getattr(PYNVML, name), name
    for name, code in ERROR_CODES.items():
        assert getattr(PYNVML, name)().value == code
        assert type(PYNVML.NVMLError(code)) is getattr(PYNVML, name)
    assert nvml.NVML_EVENT_TYPE_XID_CRITICAL_ERROR == PYNVML.nvmlEventTypeXidCriticalError == XID
    for reason, bit in nvml.CLOCK_EVENT_REASONS:
        assert getattr(PYNVML, _pynvml_reason(reason)) == bit, reason


def _pynvml_reason(reason: str) -> str:
    words = {"gpu": "Gpu", "sw": "Sw", "hw": "Hw", "applications": "Applications"}
    return "nvmlClocksEventReason" + "".join(words.get(w, w.title()) for w in reason.split("_"))


# --- readings and units -----------------------------------------------------------------------


def test_readings_in_base_units_with_identity() -> None:
    library = fake(1)
    with NvmlReader(library=library, host=HOST) as reader:
        readings, problems = reader.read(1000.0)
    assert readings.schema == pl.Schema(schemas.READINGS)
    assert problems.height == 0, problems.rows()
    assert values(readings, UUIDS[0]) == {
        "up": 1.0,
        "power_watts": 250.123,  # 250123 mW
        "energy_joules": 81_044_217.332,  # 81044217332 mJ
        "power_limit_watts": 700.0,  # 700000 mW
        "temperature_celsius": 64.0,
        "memory_temperature_celsius": 71.0,
        "utilization_ratio": 0.87,  # 87 %
        "memory_used_bytes": 42_949_672_960.0,  # 40 GiB
        "memory_total_bytes": 85_899_345_920.0,  # 80 GiB
        "clock_sm_hertz": 1_980_000_000.0,  # 1980 MHz
        "clock_memory_hertz": 2_619_000_000.0,  # 2619 MHz
        "clock_event_reasons": 0.0,
        **{f"clock_event_{name}": 0.0 for name, _ in nvml.CLOCK_EVENT_REASONS},
        "ecc_uncorrected_volatile_errors": 2.0,
        "ecc_uncorrected_aggregate_errors": 3.0,
        "ecc_corrected_volatile_errors": 17.0,
        "ecc_corrected_aggregate_errors": 120.0,
        "xid_events": 0.0,
    }
    first = readings.row(0, named=True)
    assert first | {"metric": None, "value": None, "unit": None} == {
        "source": "nvml",
        "target": TARGET,
        "host": HOST,
        "device": UUIDS[0],
        "device_kind": "accelerator",
        "metric": None,
        "value": None,
        "unit": None,
        "estimated": False,
        "timestamp_seconds": None,
    }
    units = dict(zip(readings["metric"], readings["unit"], strict=True))
    assert units["power_watts"] == units["power_limit_watts"] == "watts"
    assert units["energy_joules"] == "joules"
    assert units["clock_sm_hertz"] == "hertz"
    assert units["utilization_ratio"] == "ratio"
    assert units["memory_used_bytes"] == "bytes"
    assert units["temperature_celsius"] == units["memory_temperature_celsius"] == "celsius"
    assert units["clock_event_reasons"] == "bitmask"
    assert units["ecc_corrected_volatile_errors"] == units["xid_events"] == "count"


def test_host_defaults_to_the_host_name() -> None:
    import socket

    reader = NvmlReader(library=fake(1))
    assert reader.host == socket.gethostname()
    assert reader.target == f"nvml://{socket.gethostname()}"


def test_memory_temperature_as_double_and_zero_as_no_sensor() -> None:
    library = fake(2)
    library.present[0].memory_temperature = c_nvmlFieldValue_t(
        82, valueType=0, value=c_nvmlValue_t(dVal=68.5)
    )
    library.present[1].memory_temperature = c_nvmlFieldValue_t(82, value=c_nvmlValue_t(uiVal=0))
    with NvmlReader(library=library, host=HOST) as reader:
        readings, problems = reader.read(1.0)
    assert values(readings, UUIDS[0])["memory_temperature_celsius"] == 68.5
    assert "memory_temperature_celsius" not in values(readings, UUIDS[1])
    assert reasons(problems) == [(UUIDS[1], "not_supported")]


@pytest.mark.parametrize(
    ("mask", "active"),
    [
        (0x0, set()),
        (0x4 | 0x40, {"sw_power_cap", "hw_thermal_slowdown"}),
        (0x8 | 0x20 | 0x80, {"hw_slowdown", "sw_thermal_slowdown", "hw_power_brake_slowdown"}),
        (0x1 | 0x2 | 0x10, {"gpu_idle", "applications_clocks_setting", "sync_boost"}),
        (0x100, {"display_clock_setting"}),
        (0x4 | 0x800, {"sw_power_cap"}),  # an unnamed bit is kept in the mask only
    ],
)
def test_clock_event_reasons_decoded(mask: int, active: set[str]) -> None:
    library = fake(1)
    library.present[0].clock_event_reasons = mask
    with NvmlReader(library=library, host=HOST) as reader:
        readings, _ = reader.read(1.0)
    got = values(readings, UUIDS[0])
    assert got["clock_event_reasons"] == float(mask)
    decoded = {name for name, _ in nvml.CLOCK_EVENT_REASONS if got[f"clock_event_{name}"] == 1.0}
    assert decoded == active
    named = [metric for metric in got if metric.startswith("clock_event_")]
    assert len(named) == len(nvml.CLOCK_EVENT_REASONS) + 1
    assert {got[metric] for metric in named if metric != "clock_event_reasons"} <= {0.0, 1.0}


def test_older_calls_used_where_the_driver_lacks_the_newer_ones() -> None:
    library = fake(1)
    library.present[0].clock_event_reasons = 0x4
    library.present[0].errors = {
        "nvmlDeviceGetTemperatureV": error("FunctionNotFound"),
        "nvmlDeviceGetCurrentClocksEventReasons": error("FunctionNotFound"),
    }
    with NvmlReader(library=library, host=HOST) as reader:
        readings, problems = reader.read(1.0)
    got = values(readings, UUIDS[0])
    assert got["temperature_celsius"] == 64.0
    assert got["clock_event_sw_power_cap"] == 1.0
    assert problems.height == 0


# --- errors -----------------------------------------------------------------------------------


def test_not_supported_is_skipped_and_counted_once() -> None:
    library = fake(2)
    unsupported = library.present[0]
    unsupported.errors = {
        f"nvmlDeviceGetTotalEccErrors({kind}, {counter})": error("NotSupported")
        for kind in (0, 1)
        for counter in (0, 1)
    }
    unsupported.errors["nvmlDeviceGetEnforcedPowerLimit"] = error("NotSupported")
    unsupported.memory_temperature = c_nvmlFieldValue_t(82, nvmlReturn=3)  # NOT_SUPPORTED
    with NvmlReader(library=library, host=HOST) as reader:
        readings, problems = reader.read(1.0)
        again_readings, again = reader.read(2.0)
    got = values(readings, UUIDS[0])
    assert got["up"] == 1.0
    assert got["power_watts"] == 250.123
    assert not {m for m in got if m.startswith("ecc_")}
    assert "power_limit_watts" not in got and "memory_temperature_celsius" not in got
    assert reasons(problems) == [(UUIDS[0], "not_supported")]
    message = problems["message"][0]
    assert message.startswith("6 of 15 fields not supported")
    assert "nvmlDeviceGetEnforcedPowerLimit" in message
    assert "nvmlDeviceGetFieldValues(NVML_FI_DEV_MEMORY_TEMP)" in message
    assert again.height == 0  # once per reader lifetime
    assert values(again_readings, UUIDS[0]) == got
    assert len(values(readings, UUIDS[1])) == len(got) + 6


def test_gpu_lost_mid_read_is_reported_failed_and_the_others_are_read() -> None:
    library = fake(3)
    lost = library.present[1]
    lost.errors = {"nvmlDeviceGetTemperatureV": error("GpuIsLost")}
    with NvmlReader(library=library, host=HOST) as reader:
        readings, problems = reader.read(1.0)
        assert values(readings, UUIDS[1]) == {"up": 0.0, "xid_events": 0.0}  # power withheld
        location = f"{UUIDS[1]}/nvmlDeviceGetTemperatureV(NVML_TEMPERATURE_GPU)"
        assert reasons(problems) == [(location, "gpu_lost")]
        assert "NVMLError_GpuIsLost" in problems["message"][0]
        for other in (UUIDS[0], UUIDS[2]):
            got = values(readings, other)
            assert got["up"] == 1.0 and got["power_watts"] == 250.123
            assert len(got) == 26  # up, 20 readings from 10 calls, 4 ECC, xid_events
        # Every call on a lost GPU fails: reported again, never dropped.
        lost.errors = {"nvmlDeviceGetPowerUsage": error("GpuIsLost")}
        readings, problems = reader.read(2.0)
        assert values(readings, UUIDS[1])["up"] == 0.0
        assert reasons(problems) == [(f"{UUIDS[1]}/nvmlDeviceGetPowerUsage", "gpu_lost")]
        # Answers again: up again.
        lost.errors = {}
        readings, problems = reader.read(3.0)
        assert values(readings, UUIDS[1])["up"] == 1.0
        assert problems.height == 0


def test_reset_required_is_a_failed_gpu_too() -> None:
    library = fake(2)
    library.present[0].errors = {"nvmlDeviceGetPowerUsage": error("ResetRequired")}
    with NvmlReader(library=library, host=HOST) as reader:
        readings, problems = reader.read(1.0)
    assert values(readings, UUIDS[0]) == {"up": 0.0, "xid_events": 0.0}
    assert reasons(problems) == [(f"{UUIDS[0]}/nvmlDeviceGetPowerUsage", "reset_required")]
    assert values(readings, UUIDS[1])["up"] == 1.0


def test_other_nvml_errors_become_problems_and_the_rest_is_read() -> None:
    library = fake(2)
    library.present[0].errors = {
        "nvmlDeviceGetPowerUsage": error("Unknown"),
        "nvmlDeviceGetMemoryInfo": error("NoPermission"),
        # A code this pynvml has no class for: NVMLError(code) stays the base class.
        "nvmlDeviceGetClockInfo(1)": ERRORS["NVMLError"](1234),
        # Not an NVML error at all (a bug, an odd library): a read_error, not a crash.
        "nvmlDeviceGetUtilizationRates": ValueError("odd answer"),
    }
    with NvmlReader(library=library, host=HOST) as reader:
        readings, problems = reader.read(1.0)
    got = values(readings, UUIDS[0])
    assert got["up"] == 1.0
    assert got["energy_joules"] == 81_044_217.332
    assert got["clock_memory_hertz"] == 2_619_000_000.0
    for missing in ("power_watts", "memory_used_bytes", "clock_sm_hertz", "utilization_ratio"):
        assert missing not in got
    prefix = f"{UUIDS[0]}/"
    assert reasons(problems) == [
        (f"{prefix}nvmlDeviceGetPowerUsage", "nvml_error"),
        (f"{prefix}nvmlDeviceGetUtilizationRates", "read_error"),
        (f"{prefix}nvmlDeviceGetMemoryInfo", "nvml_error"),
        (f"{prefix}nvmlDeviceGetClockInfo(NVML_CLOCK_SM)", "nvml_error"),
    ]
    messages = problems["message"].to_list()
    assert "NVMLError_Unknown" in messages[0]
    assert "odd answer" in messages[1]
    assert "NVMLError_NoPermission" in messages[2]
    assert "NVMLError (" in messages[3] and "1234" in messages[3]
    assert values(readings, UUIDS[1])["power_watts"] == 250.123


def test_field_value_errors_are_read_from_the_field() -> None:
    library = fake(2)
    library.present[0].memory_temperature = c_nvmlFieldValue_t(82, nvmlReturn=15)  # lost
    library.present[1].memory_temperature = c_nvmlFieldValue_t(82, nvmlReturn=999)  # unknown
    with NvmlReader(library=library, host=HOST) as reader:
        readings, problems = reader.read(1.0)
    field_name = "nvmlDeviceGetFieldValues(NVML_FI_DEV_MEMORY_TEMP)"
    assert reasons(problems) == [
        (f"{UUIDS[0]}/{field_name}", "gpu_lost"),
        (f"{UUIDS[1]}/{field_name}", "nvml_error"),
    ]
    assert values(readings, UUIDS[0])["up"] == 0.0
    assert values(readings, UUIDS[1])["up"] == 1.0


# --- enumeration: lost and missing GPUs -------------------------------------------------------


def test_gpu_missing_from_the_list_later_is_reported_lost_not_dropped() -> None:
    library = fake(3)
    with NvmlReader(library=library, host=HOST) as reader:
        reader.read(1.0)
        gone = library.present.pop(1)  # the driver no longer lists it; count 3 -> 2
        for now in (2.0, 3.0):
            readings, problems = reader.read(now)
            assert values(readings, UUIDS[1]) == {"up": 0.0, "xid_events": 0.0}
            assert reasons(problems) == [(UUIDS[1], "gpu_lost")]
            assert "since 2.0" in problems["message"][0]
            assert values(readings, UUIDS[0])["up"] == values(readings, UUIDS[2])["up"] == 1.0
        assert reader.devices == UUIDS
        library.add(gone)  # back (after a reset), at a new index
        readings, problems = reader.read(4.0)
    assert values(readings, UUIDS[1])["up"] == 1.0
    assert problems.height == 0
    assert readings["device"].unique(maintain_order=True).to_list() == list(UUIDS)


def test_new_gpu_is_picked_up_when_the_count_changes() -> None:
    library = fake(1)
    with NvmlReader(library=library, host=HOST) as reader:
        reader.read(1.0)
        library.add(FakeGpu(UUIDS[2], power_mw=1))
        readings, _ = reader.read(2.0)
    assert values(readings, UUIDS[2])["power_watts"] == 0.001
    assert library.registered == {UUIDS[0], UUIDS[2]}


def test_gpu_lost_at_enumeration_is_reported_by_index_and_retried() -> None:
    library = fake(2)
    library.present[1].errors = {"nvmlDeviceGetHandleByIndex": error("GpuIsLost")}
    with NvmlReader(library=library, host=HOST) as reader:
        readings, problems = reader.read(1.0)
        assert reasons(problems) == [("index 1", "gpu_lost")]
        assert set(readings["device"]) == {UUIDS[0]}
        readings, problems = reader.read(2.0)
        assert reasons(problems) == [("index 1", "gpu_lost")]
        library.present[1].errors = {}
        readings, problems = reader.read(3.0)
    assert values(readings, UUIDS[1])["up"] == 1.0
    assert problems.height == 0


# --- XID events -------------------------------------------------------------------------------


def test_xid_events_are_counted_per_gpu_without_blocking() -> None:
    library = fake(3)
    with NvmlReader(library=library, host=HOST) as reader:
        assert library.registered == set(UUIDS)
        library.xid(UUIDS[0], 79)
        library.xid(UUIDS[0], 48)
        library.xid(UUIDS[2], 13)
        readings, problems = reader.read(1.0)
        assert [values(readings, uuid)["xid_events"] for uuid in UUIDS] == [2.0, 0.0, 1.0]
        assert values(readings, UUIDS[0])["xid_last_code"] == 48.0
        assert values(readings, UUIDS[2])["xid_last_code"] == 13.0
        assert "xid_last_code" not in values(readings, UUIDS[1])
        assert problems.height == 0
        library.xid(UUIDS[0], 63)
        readings, _ = reader.read(2.0)
    assert values(readings, UUIDS[0])["xid_events"] == 3.0  # counted since the reader opened
    assert values(readings, UUIDS[0])["xid_last_code"] == 63.0
    assert library.waits and set(library.waits) == {0}


def test_xid_backlog_is_bounded_per_read() -> None:
    library = fake(1)
    with NvmlReader(library=library, host=HOST, max_events_per_read=4) as reader:
        for _ in range(6):
            library.xid(UUIDS[0], 31)
        readings, problems = reader.read(1.0)
        assert values(readings, UUIDS[0])["xid_events"] == 4.0
        assert reasons(problems) == [("nvmlEventSetWait", "event_backlog")]
        readings, problems = reader.read(2.0)
    assert values(readings, UUIDS[0])["xid_events"] == 6.0
    assert problems.height == 0


def test_no_event_support_means_no_xid_readings() -> None:
    library = fake(2)
    library.event_set_error = error("NotSupported")
    library.present[1].supported_events = 0x1  # no XID events on this one either way
    with NvmlReader(library=library, host=HOST) as reader:
        readings, problems = reader.read(1.0)
    assert not readings.filter(pl.col("metric").str.starts_with("xid_")).height
    assert reasons(problems) == [(UUIDS[0], "not_supported"), (UUIDS[1], "not_supported")]
    assert all(nvml.XID_FIELD in message for message in problems["message"])


# --- life cycle and the source ----------------------------------------------------------------


def test_reader_initializes_once_and_shuts_down() -> None:
    library = fake(2)
    reader = NvmlReader(library=library, host=HOST)
    with pytest.raises(RuntimeError):
        reader.read(1.0)
    with reader:
        assert library.initialized == 1 and library.event_sets_open == 1
        reader.open()  # idempotent
        reader.read(1.0)
        reader.read(2.0)
        assert library.initialized == 1
    assert library.initialized == 0 and library.event_sets_open == 0
    reader.close()  # idempotent
    assert library.initialized == 0


@pytest.mark.parametrize(
    ("init_error", "count", "key"),
    [
        (None, 2, "available"),
        (None, 0, "no_gpu"),
        ("LibraryNotFound", 2, "library_not_found"),
        ("DriverNotLoaded", 2, "driver_not_loaded"),
        ("NoPermission", 2, "no_permission"),
        ("Unknown", 2, "init_failed"),
    ],
)
def test_nvml_available_says_which_step_failed(
    init_error: str | None, count: int, key: str
) -> None:
    library = fake(count)
    library.init_error = error(init_error) if init_error else None
    available, reason = nvml_available(library)
    assert available is (key == "available")
    assert reason.split(":")[0] == key, reason
    assert library.initialized == 0  # shut down again after the check


def test_source_with_a_library_reads_and_reports_health() -> None:
    library = fake(2)
    with NvmlSource(library=library, host=HOST) as source:
        health = source.health()
        assert health.available and health.devices == 2
        assert health.reason == "available: NVML sees 2 GPU(s)"
        readings, problems = source.read_readings(1.0)
        assert set(readings["device"]) == set(UUIDS[:2])
        assert problems.height == 0
    assert library.initialized == 0
    assert source.health() == nvml.NvmlHealth(False, "closed: the source was closed")
    readings, problems = source.read_readings(999.0)  # closed: not reopened
    assert readings.height == 0 and reasons(problems) == [("nvmlInit", "unavailable")]
    assert library.initialized == 0


def test_source_retries_opening_after_retry_seconds() -> None:
    library = fake(1)
    library.init_error = error("DriverNotLoaded")
    source = NvmlSource(library=library, host=HOST, retry_seconds=60.0)
    assert source.health().reason.startswith("driver_not_loaded")
    readings, problems = source.read_readings(100.0)
    assert readings.height == 0
    assert reasons(problems) == [("nvmlInit", "unavailable")]
    library.init_error = None  # the driver is loaded
    readings, problems = source.read_readings(130.0)  # 30 s after the last try: not yet
    assert readings.height == 0 and source.health().available is False
    readings, problems = source.read_readings(160.0)
    assert source.health().available
    assert values(readings, UUIDS[0])["power_watts"] == 250.123
    source.close()
    assert library.initialized == 0


def test_source_without_gpus_is_unavailable() -> None:
    library = fake(0)
    source = NvmlSource(library=library, host=HOST)
    assert source.health().available is False
    assert source.health().reason.startswith("no_gpu")
    assert library.initialized == 0
