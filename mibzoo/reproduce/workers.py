"""Runs of a reproduced table shared among worker processes (`mibzoo reproduce table3 --jobs N`,
``table4 --jobs N``).

Each worker is started with "spawn" (TensorFlow is not fork-safe) and gets ``cores // jobs``
TensorFlow threads, set before it imports TensorFlow, so that the jobs share the cores instead of
each taking all of them. Every run is seeded on its own, so what a run measures does not depend on
the worker that trains it (only, as always, on the thread settings).
"""
import os


def worker_threads(threads):
    """A worker process's initializer: ``threads`` TensorFlow threads. It runs before the worker
    imports TensorFlow, so that the jobs share the cores instead of each taking all of them."""
    for variable in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        os.environ[variable] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"


def run_shared(function, calls, jobs):
    """Yields ``(k, function(*calls[k]))`` for every call: in order in this process when ``jobs`` ≤ 1,
    else as they finish in ``jobs`` spawned worker processes (``function`` must be importable by name)."""
    if jobs <= 1:
        for k, arguments in enumerate(calls):
            yield k, function(*arguments)
        return
    import concurrent.futures
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // jobs)
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=worker_threads, initargs=(threads,)) as pool:
        futures = {pool.submit(function, *arguments): k for k, arguments in enumerate(calls)}
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future.result()
