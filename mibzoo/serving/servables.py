"""The manager that keeps the loaded SavedModel versions (`mibzoo.serving.loaded_version`) in sync
with a base directory. A model that works here has passed the same loading and by-tensor-name
execution as in TF Serving. The manager polls ``BASE/*/N/`` like TF Serving's file-system source: new version
directories are loaded, vanished ones unloaded, replaced ones reloaded, and requests
without a version go to the highest loaded version.
"""
import gc
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mibzoo import serving_contract, warmup
from mibzoo.serving.errors import ServingStatusError, not_found
from mibzoo.serving.loaded_version import LoadedVersion

logger = logging.getLogger("mibzoo.serving")


@dataclass
class VersionStatus:
    """A version's state as TF Serving reports it (START, LOADING, AVAILABLE, END)."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""

    def as_json(self):
        return {
            "version": str(self.version),
            "state": self.state,
            "status": {"error_code": self.error_code, "error_message": self.error_message},
        }


def _identity(path):
    """What a version directory looks like now; changes when it is replaced or rewritten."""
    parts = []
    for child in (path, path / "saved_model.pb", path / "variables"):
        try:
            st = os.stat(child)
        except FileNotFoundError:
            parts.append(None)
        else:
            parts.append((st.st_ino, st.st_mtime_ns))
    return tuple(parts)


def _freeze_long_lived_objects():
    """Moves every object alive now (TensorFlow's modules and the loaded graphs: about half a million
    objects) out of the garbage collector's reach.

    Each REST request builds and drops thousands of lists; they trigger full collections, and a full
    collection that scans TensorFlow's objects pauses the server for tens to hundreds of
    milliseconds: the heavy tail of large-batch REST latency (benchmarks/serving_latency.py). Frozen
    objects are not scanned; what requests create is collected as before.
    """
    gc.collect()
    gc.freeze()


class ModelManager:
    """Keeps every model version under a base directory loaded, polling for changes.

    Args:
        base: the model base directory (``BASE/NAME/VERSION/``).
        poll_seconds: how often the poll thread rescans `base`.
        replay_warmup: run each version's ``assets.extra/tf_serving_warmup_requests`` at
            load time and fail the load if one fails, as TF Serving does.
        session_config: optional ``tf.compat.v1.ConfigProto`` for every Session.
    """

    def __init__(self, base, poll_seconds=1.0, replay_warmup=True, session_config=None):
        self.base = Path(base)
        self.poll_seconds = poll_seconds
        self.replay_warmup = replay_warmup
        self.session_config = session_config
        self._lock = threading.Lock()  # guards the tables below
        self._scan_lock = threading.Lock()  # one scan (and load) at a time
        self._loaded = {}  # name -> {version: LoadedVersion}
        self._status = {}  # name -> {version: VersionStatus}
        self._failed = {}  # (name, version) -> identity of the directory that failed
        self._stop = threading.Event()
        self._thread = None
        self._closed = False

    # -- polling -------------------------------------------------------------------

    def start(self):
        """Scans once now, then keeps scanning every `poll_seconds` in a thread."""
        self.scan()
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="mibzoo-model-poll", daemon=True)
            self._thread.start()
        return self

    def _poll(self):
        while not self._stop.wait(self.poll_seconds):
            try:
                self.scan()
            except Exception:  # keep polling whatever a broken directory does
                logger.exception("scanning %s failed", self.base)

    def stop(self):
        """Stops polling and unloads everything (sessions close when idle)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            self._closed = True
            retired = [v for versions in self._loaded.values() for v in versions.values()]
            self._loaded.clear()
            self._status.clear()
        for version in retired:
            version.release()

    def _on_disk(self):
        return serving_contract.servable_models(self.base)

    def scan(self):
        """Brings the loaded versions in line with the base directory, once."""
        with self._scan_lock:
            if self._closed:
                return
            on_disk = self._on_disk()
            # Unload versions (and models) that disappeared.
            retired = []
            with self._lock:
                for name in list(self._status):
                    for version in list(self._status[name]):
                        if version not in on_disk.get(name, {}):
                            self._status[name].pop(version)
                            loaded = self._loaded.get(name, {}).pop(version, None)
                            if loaded is not None:
                                retired.append(loaded)
                            self._failed.pop((name, version), None)
                    if not self._status[name]:
                        self._status.pop(name)
                        self._loaded.pop(name, None)
            for loaded in retired:
                logger.info("unloading %s version %d", loaded.model, loaded.version)
                loaded.release()
            # Load new, replaced, or changed-since-failure versions.
            for name, versions in sorted(on_disk.items()):
                for version, path in sorted(versions.items()):
                    identity = _identity(path)
                    with self._lock:
                        current = self._loaded.get(name, {}).get(version)
                        if current is not None and current.identity == identity:
                            continue
                        # Retry a failed load only once the directory has changed again.
                        if self._failed.get((name, version)) == identity:
                            continue
                        if current is None:
                            self._status.setdefault(name, {})[version] = VersionStatus(version, "LOADING")
                    self._load(name, version, path, identity)

    def _load(self, name, version, path, identity):
        started = time.monotonic()
        try:
            loaded = LoadedVersion(name, version, path, identity, self.session_config)
            if self.replay_warmup:
                self._warm_up(loaded)
        except Exception as err:
            code = err.code if isinstance(err, ServingStatusError) else "UNKNOWN"
            message = str(err).strip().splitlines()
            message = " | ".join(message[:6]) if message else type(err).__name__
            logger.error("loading %s version %d from %s failed: %s", name, version, path, message)
            with self._lock:
                self._failed[(name, version)] = identity
                # A replacement that fails leaves the loaded version serving.
                if version not in self._loaded.get(name, {}):
                    self._status.setdefault(name, {})[version] = VersionStatus(
                        version, "END", code, message
                    )
            return
        with self._lock:
            if self._closed:
                previous = loaded  # stopped meanwhile: drop what we just loaded
            else:
                previous = self._loaded.setdefault(name, {}).get(version)
                self._loaded[name][version] = loaded
                self._status.setdefault(name, {})[version] = VersionStatus(version, "AVAILABLE")
                self._failed.pop((name, version), None)
        if previous is not None:
            previous.release()
        _freeze_long_lived_objects()
        logger.info("loaded %s version %d in %.2fs", name, version, time.monotonic() - started)

    def _warm_up(self, loaded):
        try:
            try:
                requests = warmup.read_warmup_requests(loaded.path)
            except ImportError:
                logger.warning("%s: cannot replay warm-up records without "
                               "tensorflow-serving-api", loaded.path)
                return
            for i, (signature, inputs) in enumerate(requests):
                try:
                    loaded.predict(signature, inputs, max_batch=2**62)
                except ServingStatusError as err:
                    raise ServingStatusError(err.code, f"warm-up record {i} ({signature}) failed: "
                                                       f"{err.message}") from None
        except BaseException:
            loaded.release()
            raise

    # -- lookups -------------------------------------------------------------------

    def model_names(self):
        with self._lock:
            return sorted(self._status)

    def get(self, name, version=None):
        """An acquired `LoadedVersion` (call ``release()`` when done).

        Args:
            name: the model name.
            version: an integer version, or None for the highest loaded version.

        Raises:
            ServingStatusError: NOT_FOUND with TF Serving's text, UNAVAILABLE if stopped.
        """
        for attempt in range(2):
            with self._lock:
                if self._closed:
                    raise ServingStatusError("UNAVAILABLE", "the server is shutting down")
                versions = self._loaded.get(name, {})
                key = version if version is not None else (max(versions) if versions else None)
                loaded = versions.get(key)
            if loaded is not None and loaded.acquire():
                return loaded
            if attempt == 0:
                # The directory may have changed since the last poll: look once now.
                self.scan()
        what = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
        raise not_found(f"Servable not found for request: {what}")

    def status(self, name, version=None):
        """The `VersionStatus` list of a model (one version if `version` is given).

        Raises:
            ServingStatusError: NOT_FOUND with TF Serving's text.
        """
        for attempt in range(2):
            with self._lock:
                versions = dict(self._status.get(name, {}))
            if versions and (version is None or version in versions):
                break
            if attempt == 0:
                self.scan()
        if not versions:
            raise not_found(f"Could not find any versions of model {name}")
        if version is not None:
            if version not in versions:
                raise not_found(f"Could not find version {version} of model {name}")
            return [versions[version]]
        return [versions[v] for v in sorted(versions)]
