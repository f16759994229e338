"""The PyTorch peer's training step, timed the way `throughput.py --peer-architecture` times ours.

Runs in an environment that has MultiVae (not a mibzoo dependency), for example:

    python3 -m venv /tmp/peer && /tmp/peer/bin/pip install multivae==1.0.3 torch==2.14.1
    /tmp/peer/bin/python benchmarks/peer_multivae.py --model JMVAE --epochs 3

and is called by ``benchmarks/throughput.py --peer-architecture --peer-python /tmp/peer/bin/python``,
which interleaves each zoo entry with its MultiVae counterpart so that ratios come from one run.

What is timed: MultiVae's models built with their default networks (``--describe`` prints them: MLP
encoders of two 512-unit layers and decoders of one per modality, DMVAE's encoders of one, a joint
encoder where the model has one), latent 20,
Bernoulli image and categorical label likelihoods, on the same MNIST-shaped random data as
``throughput.py`` (binary 1x28x28 images, one-hot labels), batch 128, Adam(1e-3). Each step is what
MultiVae's ``BaseTrainer.train_step`` does per batch (the model's forward with ``epoch``,
``dataset_size`` and ``batch_ratio``; backward; optimizer step; ``loss.item()``), on batches
already in memory: the DataLoader's collation is left out, which favours the peer. Prints one JSON
line with the same fields as ``throughput.epoch_profile``.
"""
import argparse
import json
import time

import numpy as np
import torch

from step_profile import epoch_figures  # benchmarks/, the script's folder

BATCH = 128
LATENT = 20
INPUT_DIMS = {"image": (1, 28, 28), "label": (10,)}
DISTRIBUTIONS = {"image": "bernoulli", "label": "categorical"}


def build(name):
    """MultiVae model ``name`` (JMVAE, MVAE, MMVAE, MoPoE, MVTCAE, DMVAE) at its defaults with the
    benchmark's modalities; DMVAE's private latents are 4-dimensional for both modalities (mibzoo's
    `dmvae` entry has a 4-dimensional one for the image only)."""
    from multivae import models

    config_class = getattr(models, f"{name}Config")
    options = {"n_modalities": 2, "latent_dim": LATENT, "input_dims": INPUT_DIMS, "decoders_dist": DISTRIBUTIONS}
    if name == "DMVAE":
        options["modalities_specific_dim"] = {"image": 4, "label": 4}
    return getattr(models, name)(config_class(**options))


def mnist_shaped(n, seed=0):
    rng = np.random.default_rng(seed)
    images = torch.from_numpy((rng.random((n, *INPUT_DIMS["image"])) > 0.7).astype("float32"))
    labels = torch.nn.functional.one_hot(torch.from_numpy(rng.integers(0, 10, n)), 10).float()
    return images, labels


def profile(name, steps, epochs):
    from multivae.data.datasets.base import DatasetOutput

    torch.manual_seed(0)
    model = build(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, labels = mnist_shaped(BATCH * steps)
    batches = [DatasetOutput(data={"image": images[k:k + BATCH], "label": labels[k:k + BATCH]})
               for k in range(0, BATCH * steps, BATCH)]
    model.train()
    times, epoch_starts = [], []
    for epoch in range(epochs):
        epoch_starts.append((len(times), time.perf_counter()))
        for index, inputs in enumerate(batches):
            output = model(inputs, epoch=epoch + 1, dataset_size=BATCH * steps, uses_ddp=False,
                           batch_ratio=index / len(batches))
            optimizer.zero_grad()
            output.loss.backward()
            optimizer.step()
            output.loss.item()
            times.append(time.perf_counter())
    return {"entry": f"MultiVae {name}", **epoch_figures(times, epoch_starts, BATCH),
            "parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def describe(name):
    """Parameter count of every network of MultiVae model ``name`` and its Linear layers' sizes:
    what ``throughput.py --peer-architecture`` builds our entries after."""
    model = build(name)
    out = {"model": name, "parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
           "networks": {}}
    for group, child in model.named_children():
        members = child.items() if isinstance(child, torch.nn.ModuleDict) else [(None, child)]
        for key, net in members:
            linears = [f"{m.in_features}->{m.out_features}" for m in net.modules() if isinstance(m, torch.nn.Linear)]
            out["networks"][f"{group}.{key}" if key else group] = {
                "parameters": int(sum(p.numel() for p in net.parameters())), "class": type(net).__name__,
                "linear": linears}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="MultiVae model class: JMVAE, MVAE, MMVAE, MoPoE, MVTCAE, DMVAE")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--epoch-steps", type=int, default=469)
    parser.add_argument("--threads", type=int, default=None, help="torch's intra-op threads (default: torch's, "
                        "one per core)")
    parser.add_argument("--describe", action="store_true", help="print the model's networks instead of timing it")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.describe:
        print(json.dumps(describe(args.model), indent=1))
        return
    print(json.dumps(profile(args.model, args.epoch_steps, args.epochs)))


if __name__ == "__main__":
    main()
