"""Per-epoch figures from step end times, shared by `throughput.py` and `peer_multivae.py` (NumPy
only, so that the peer's environment, which has no TensorFlow, can import it too)."""
import resource

import numpy as np


def epoch_figures(times, epoch_starts, batch):
    """Steady rate and stall figures of a run of several epochs.

    Args:
        times: wall-clock time at the end of every training step, in order.
        epoch_starts: ``(index of the epoch's first step in times, wall-clock start)`` per epoch.
        batch: examples per step.

    Returns:
        ``examples_per_second`` over every epoch after the first without its first step,
        ``epoch_seconds`` (median over those epochs), ``first_step_seconds`` (the worst first step
        of epochs 2..), ``first_step_ratio`` (that against the median steady step),
        ``steady_step_seconds`` and this process's ``peak_rss_mb``.
    """
    times = np.asarray(times)
    starts = list(epoch_starts) + [(len(times), None)]
    steady, firsts, epoch_seconds = [], [], []
    for (first, began), (end, _) in zip(starts[1:-1], starts[2:]):
        firsts.append(times[first] - began)
        steady.extend(np.diff(times[first:end]))
        epoch_seconds.append(times[end - 1] - began)
    median = float(np.median(steady))
    return {"examples_per_second": float(batch * len(steady) / np.sum(steady)),
            "epoch_seconds": float(np.median(epoch_seconds)), "first_step_ratio": float(max(firsts) / median),
            "first_step_seconds": float(max(firsts)), "steady_step_seconds": median,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
