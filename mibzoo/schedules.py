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
The same schedules weight any term over training (``term_options: {term: {"weight_schedule": ...}}``):
`LinearWarmup` ramps linearly, `GeometricWarmup` log-linearly, for a weight that spans decades;
`PiecewiseConstant` holds values between boundaries (the model's ``loss_schedule``: IRM's division of
its loss once its penalty is on).

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


class _Schedule:
    """What every schedule shares: its constructor arguments are its config, and its serialized
    form is ``{"class_name": ..., "config": ...}``."""

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def serialize(self):
        """The form a zoo config holds: ``{"class_name": ..., "config": {...}}``."""
        return {"class_name": type(self).__name__, "config": self.get_config()}


class _Warmup(_Schedule):
    """What the warm-up schedules share: a start weight held for ``delay_steps`` updates, a ramp of
    ``warmup_steps`` updates to 1, then 1; subclasses say how the ramp interpolates (``_ramp``)."""

    def __init__(self, warmup_steps, start=0.0, delay_steps=0):
        self.warmup_steps = int(warmup_steps)
        self.start = float(start)
        self.delay_steps = int(delay_steps)

    def progress(self, step):
        """clip((t − delay_steps) / warmup_steps, 0, 1): how far along the ramp step ``t`` is."""
        return ops.clip((ops.cast(step, "float32") - float(self.delay_steps)) / float(self.warmup_steps), 0.0, 1.0)

    def __call__(self, step):
        return self._ramp(self.progress(step))

    def get_config(self):
        config = {"warmup_steps": self.warmup_steps, "start": self.start}
        if self.delay_steps:
            config["delay_steps"] = self.delay_steps
        return config


@keras.saving.register_keras_serializable(package="mibzoo")
class LinearWarmup(_Warmup):
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

    def _ramp(self, progress):
        return self.start + (1.0 - self.start) * progress


@keras.saving.register_keras_serializable(package="mibzoo")
class GeometricWarmup(_Warmup):
    """γ_t = start^(1 − clip((t − delay_steps) / warmup_steps, 0, 1)): ``start`` for the first
    ``delay_steps`` updates, then a ramp that multiplies γ by the same factor start^(−1 / warmup_steps)
    at every update until it reaches 1, then constant.

    For a weight that spans orders of magnitude. A linear ramp from ``start`` = 2e-5 passes 1 % of
    the full weight after 1 % of its steps, so it is a step in all but name; this ramp spends the same
    number of updates on every decade, so the objective's balance between the weighted term and the
    others moves gradually (a continuation).

    Args:
        warmup_steps: network updates the ramp takes (a positive integer).
        start: γ at step 0, in (0, 1].
        delay_steps: network updates before the ramp starts (a non-negative integer; default 0).

    Example:

    ```python
    GeometricWarmup(warmup_steps=100, start=1e-4)(50)   # 0.01
    ```
    """

    def __init__(self, warmup_steps, start, delay_steps=0):
        if not 0.0 < float(start) <= 1.0:
            raise ValueError(f"GeometricWarmup: start {start!r} must be in (0, 1]: the ramp interpolates log γ, "
                             f"and log 0 is not finite")
        super().__init__(warmup_steps, start, delay_steps)

    def _ramp(self, progress):
        return ops.exp((1.0 - progress) * math.log(self.start))


@keras.saving.register_keras_serializable(package="mibzoo")
class PiecewiseConstant(_Schedule):
    """γ_t = ``values[i]`` for ``boundaries[i − 1]`` ≤ t < ``boundaries[i]`` (``values[0]`` before the first
    boundary, ``values[-1]`` from the last one on): `keras.optimizers.schedules.PiecewiseConstantDecay`
    switches one step later (after a boundary, not at it); this one counts network updates as this
    module's other schedules do and serializes like them.

    Written for the model's ``loss_schedule``: IRM's code divides its whole loss by the penalty's
    weight from the step the penalty enters (Arjovsky et al. 2019), ``PiecewiseConstant([190],
    [1.0, 1 / 91257])``. The objective's minimizers are unchanged; what changes is Adam's trajectory:
    its second moment still holds the gradients from before, so the steps after the onset stay at
    that scale instead of being renormalized to the penalty's (docs/results_ood.md, thirty-second
    session).

    Args:
        boundaries: network updates at which γ changes, strictly increasing positive integers.
        values: ``len(boundaries) + 1`` positive numbers.

    Example:

    ```python
    PiecewiseConstant(boundaries=[200], values=[1.0, 1e-3])(250)   # 0.001
    ```
    """

    def __init__(self, boundaries, values):
        self.boundaries = [int(b) for b in boundaries]
        self.values = [float(v) for v in values]
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(f"PiecewiseConstant: {len(self.boundaries)} boundaries need {len(self.boundaries) + 1} "
                             f"values, got {len(self.values)}")

    def __call__(self, step):
        step = ops.cast(step, "float32")
        gamma = ops.convert_to_tensor(self.values[0], "float32")
        for boundary, value in zip(self.boundaries, self.values[1:]):
            gamma = ops.where(step >= float(boundary), value, gamma)
        return gamma

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values)}


SCHEDULES = {"LinearWarmup": LinearWarmup, "GeometricWarmup": GeometricWarmup, "PiecewiseConstant": PiecewiseConstant}


def _reject_unknown_keys(config, keys, source, field):
    """A `ConfigError` naming the first key of ``config`` outside ``keys``, with a suggestion."""
    unknown = sorted(set(config) - set(keys))
    if unknown:
        raise ConfigError(source, f"{field}.config.{unknown[0]}", config[unknown[0]],
                          f"only the keys {sorted(keys)}" + did_you_mean(unknown[0], sorted(keys)))


def _check_warmup(config, source, field, zero_start=True):
    _reject_unknown_keys(config, ("warmup_steps", "start", "delay_steps"), source, field)
    steps = config.get("warmup_steps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ConfigError(source, f"{field}.config.warmup_steps", steps, "a positive integer (network updates)")
    start = config.get("start", 0.0 if zero_start else None)
    if isinstance(start, bool) or not isinstance(start, (int, float)) or not math.isfinite(start) \
            or not (0.0 <= start if zero_start else 0.0 < start) or start > 1.0:
        raise ConfigError(source, f"{field}.config.start", start,
                          "a number in [0, 1]" if zero_start else "a number in (0, 1] (the ramp is geometric)")
    out = {"warmup_steps": steps, "start": float(start)}
    if "delay_steps" in config:
        delay = config["delay_steps"]
        if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
            raise ConfigError(source, f"{field}.config.delay_steps", delay,
                              "a non-negative integer (network updates before the ramp)")
        if delay:
            out["delay_steps"] = delay
    return out


def _check_piecewise(config, source, field):
    _reject_unknown_keys(config, ("boundaries", "values"), source, field)
    boundaries, values = config.get("boundaries"), config.get("values")
    if not isinstance(boundaries, list) or not boundaries \
            or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in boundaries) \
            or any(b >= c for b, c in zip(boundaries, boundaries[1:])):
        raise ConfigError(source, f"{field}.config.boundaries", boundaries,
                          "a non-empty list of strictly increasing positive integers (network updates)")
    if not isinstance(values, list) or len(values) != len(boundaries) + 1 \
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0
                   for v in values):
        raise ConfigError(source, f"{field}.config.values", values,
                          f"a list of {len(boundaries) + 1} positive numbers (one more than the boundaries)")
    return {"boundaries": list(boundaries), "values": [float(v) for v in values]}


_CHECKS = {"LinearWarmup": _check_warmup,
           "GeometricWarmup": lambda config, source, field: _check_warmup(config, source, field, zero_start=False),
           "PiecewiseConstant": _check_piecewise}


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
