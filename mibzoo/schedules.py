"""Schedules of the KL weight γ_t that a model reads at every training step (KL warm-up).

The rates of the objective, the closed-form KLs to the prior (KL(q(z|x) ‖ p(z)) and the private
KL(q(u_i|x_i) ‖ p(u_i)) inside the ELBO costs C0, C1, C4 and the MVAE marginal term, and the
private structural term), are multiplied by γ_t during training; at evaluation γ = 1, so reported
losses are the model's true objective. The cross terms KL(q(z|x) ‖ q(z|x_i)) are not warmed up:
they train the single-modality posteriors, which must keep pace with the joint one (measured:
warming them up left JMVAE's image → label coherence at 0.65 after 2 epochs, docs/mib_mm.md). Warm-up (Bowman et al.
2016; Sønderby et al. 2016) lets the decoders learn to use z before its rate is paid in full,
which is what keeps a low-entropy modality such as a label in the shared latent (see
docs/mib_mm.md).

A schedule is a small serializable object like a Keras learning-rate schedule: it is called with
the step (the count of network updates, ``model.optimizer.iterations``) and written into a zoo
config in its serialized form ``{"class_name": "LinearWarmup", "config": {"warmup_steps": 1000}}``.

Example:

```python
schedule = mibzoo.schedules.LinearWarmup(warmup_steps=1000)
float(schedule(250))                                   # 0.25
model = mibzoo.load("jmvae", kl_schedule=schedule.serialize())
```
"""
import math

import keras
from keras import ops

from mibzoo.errors import ConfigError, did_you_mean


@keras.saving.register_keras_serializable(package="mibzoo")
class LinearWarmup:
    """γ_t = start + (1 − start) · clip((t − delay_steps) / warmup_steps, 0, 1): ``start`` for the
    first ``delay_steps`` updates, then a linear ramp to 1, then constant.

    Args:
        warmup_steps: network updates the ramp takes (a positive integer).
        start: γ at step 0, in [0, 1].
        delay_steps: network updates before the ramp starts (a non-negative integer; default 0).
            Written into the config only when not 0, so schedules without a delay serialize as before.

    Example:

    ```python
    LinearWarmup(warmup_steps=100, start=0.2)(50)   # 0.6
    ```
    """

    def __init__(self, warmup_steps, start=0.0, delay_steps=0):
        self.warmup_steps = int(warmup_steps)
        self.start = float(start)
        self.delay_steps = int(delay_steps)

    def __call__(self, step):
        progress = (ops.cast(step, "float32") - float(self.delay_steps)) / float(self.warmup_steps)
        return self.start + (1.0 - self.start) * ops.clip(progress, 0.0, 1.0)

    def get_config(self):
        config = {"warmup_steps": self.warmup_steps, "start": self.start}
        if self.delay_steps:
            config["delay_steps"] = self.delay_steps
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def serialize(self):
        """The form a zoo config holds: ``{"class_name": ..., "config": {...}}``."""
        return {"class_name": type(self).__name__, "config": self.get_config()}


SCHEDULES = {"LinearWarmup": LinearWarmup}


def _check_linear_warmup(config, source, field):
    unknown = sorted(set(config) - {"warmup_steps", "start", "delay_steps"})
    if unknown:
        raise ConfigError(source, f"{field}.config.{unknown[0]}", config[unknown[0]],
                          "only the keys ['delay_steps', 'start', 'warmup_steps']"
                          + did_you_mean(unknown[0], ["delay_steps", "start", "warmup_steps"]))
    steps = config.get("warmup_steps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ConfigError(source, f"{field}.config.warmup_steps", steps, "a positive integer (network updates)")
    start = config.get("start", 0.0)
    if isinstance(start, bool) or not isinstance(start, (int, float)) or not math.isfinite(start) \
            or not 0.0 <= start <= 1.0:
        raise ConfigError(source, f"{field}.config.start", start, "a number in [0, 1]")
    out = {"warmup_steps": steps, "start": float(start)}
    if "delay_steps" in config:
        delay = config["delay_steps"]
        if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
            raise ConfigError(source, f"{field}.config.delay_steps", delay,
                              "a non-negative integer (network updates before the ramp)")
        if delay:
            out["delay_steps"] = delay
    return out


_CHECKS = {"LinearWarmup": _check_linear_warmup}


def validate_schedule(spec, source, field="kl_schedule"):
    """Validates a schedule given as an instance or in serialized form; returns the serialized form
    (or None for no schedule).

    Raises:
        ConfigError: naming the field, the bad value and what is allowed.
    """
    if spec is None:
        return None
    if isinstance(spec, tuple(SCHEDULES.values())):
        spec = spec.serialize()
    allowed = "null or {\"class_name\": one of %s, \"config\": {...}}" % sorted(SCHEDULES)
    if not isinstance(spec, dict) or set(spec) - {"class_name", "config"} or "class_name" not in spec:
        raise ConfigError(source, field, spec, allowed)
    name = spec["class_name"]
    if name not in SCHEDULES:
        raise ConfigError(source, f"{field}.class_name", name,
                          f"one of {sorted(SCHEDULES)}." + did_you_mean(str(name), SCHEDULES))
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise ConfigError(source, f"{field}.config", config, "a dict of the schedule's arguments")
    return {"class_name": name, "config": _CHECKS[name](config, source, field)}


def get(spec):
    """A schedule object from its validated serialized form (None stays None)."""
    if spec is None:
        return None
    return SCHEDULES[spec["class_name"]].from_config(spec["config"])
