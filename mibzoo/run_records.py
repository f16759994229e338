"""The records a run and a reported number carry: versions, the machine, times, and JSON files
written atomically (``run.json``, ``metrics.json``, the reproduce tables' JSON)."""
import datetime
import json
import os
import pathlib
import platform

import numpy as np

from mibzoo.files import write_text


def versions():
    """Versions of everything a number depends on."""
    import keras
    import tensorflow as tf

    import mibzoo
    from mibzoo.tfp import tfp
    return {"mibzoo": mibzoo.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "tensorflow_probability": tfp.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The set of CPU feature flags ``cpuinfo`` lists (empty where the file is missing: not Linux)."""
    path = pathlib.Path(cpuinfo)
    if not path.exists():
        return set()
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


# CPU flags of instructions that multiply bfloat16 matrices in hardware, and how `machine` names them.
BFLOAT16_UNITS = {"amx_bf16": "AMX", "avx512_bf16": "AVX512-BF16"}


def bfloat16_units(flags):
    """The names of the bfloat16 matrix units among CPU ``flags`` (`BFLOAT16_UNITS`), in that order."""
    return [name for flag, name in BFLOAT16_UNITS.items() if flag in flags]


def machine(cpuinfo="/proc/cpuinfo"):
    """A one-line description of the machine a number was measured on: CPU model and its bfloat16
    matrix units if it has any, the cores this process may use, memory and OS (add the load average
    where other jobs share the machine). The units are named because two machines with the same CPU
    model name can differ in them, and a bfloat16 step's time with them."""
    cpu = platform.processor() or platform.machine() or "unknown CPU"
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    units = bfloat16_units(cpu_flags(cpuinfo))
    if units:
        cpu += f" with {' and '.join(units)}"
    memory = ""
    try:
        memory = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores{memory}, {platform.system()} {platform.release()}"


def now():
    """The current UTC time, ISO 8601 to the second (the times in run records)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_json(path, data):
    """Writes JSON atomically (temporary file, then rename): readers never see half a file."""
    write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


def read_json(path):
    """Reads a JSON file (UTF-8)."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
