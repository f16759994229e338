"""The records a run and a reported number carry: versions, the machine, times, and JSON files
written atomically (``run.json``, ``metrics.json``, the reproduce tables' JSON)."""
import datetime
import json
import os
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


def machine():
    """A one-line description of the machine a number was measured on: CPU model, the cores this
    process may use, memory and OS (add the load average where other jobs share the machine)."""
    cpu = platform.processor() or platform.machine() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
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
