"""Baselines of Table 4 (Colored-MNIST, Sec. 6) on the data of the `colored_mnist` dataset:
ERM, IRMv1 and the grayscale oracle, as Arjovsky et al. (2019) train them, and Fishr (Rame et al.
2022), which its authors train with IRM's settings and penalty schedule.

All four are the same MLP (input → 390 → ReLU → 390 → ReLU → 1 logit, Glorot-uniform weights,
zero biases, as IRM's PyTorch code), trained full-batch with Adam on

    L = mean_e R^e + λ_L2 ‖w‖² + λ_t · mean_e ‖∇_{s | s=1} R^e(s · f)‖²,

R^e the mean binary cross-entropy of environment e, λ_t = 1 before step ``anneal_steps`` and
``penalty_weight`` after, the whole loss divided by λ_t when λ_t > 1 (IRM's code). ‖w‖² sums the
squares of every weight and bias. IRMv1 uses the published Colored-MNIST hyperparameters
(`IRM_SETTINGS`); ERM is the same with no penalty; the oracle is ERM on grayscale images (the two
colour channels summed), which cannot see the colour. Fishr replaces IRMv1's penalty by
Σ_e ‖v_e − v̄‖², v_e the variance over environment e's images of the per-image gradient of the risk
with respect to the final layer (`mibzoo.estimators.gradient_variance`, ``pairs="none"`` as Fishr's
code on whole environments), everything else IRM's (`FISHR_SETTINGS`, as Fishr's Colored-MNIST
script; its README reports 71.0 ± 0.9 / 69.5 ± 1.0 on the training / test environments, IRMv1
71.0 ± 0.5 / 65.6 ± 1.8 in the same reproduction).

Accuracies: train = mean of the accuracies of environments 0 and 1; test = environment 2.

Precision: the recipe is IRM's in float32. ``precision="mixed_bfloat16"`` runs the MLP's matrix
products in bfloat16 with float32 weights, optimizer and loss (Keras' mixed policy). On a CPU with
bfloat16 matrix units (AMX, AVX512-BF16) a full-batch step then takes 0.16 s against 0.30 s in float32
(benchmarks/table4_budget.py), the difference between the table fitting issue 12's 30 minutes or
not. `default_precision` picks it where the CPU has those units. The training step multiplies
[x, 1] by [W; b] rather than adding each layer's bias after its product (`bias_folded_kernels`): on
a CPU, oneDNN's bfloat16 product with a fused bias runs at a third of the plain product's speed.
"""
import dataclasses

import numpy as np

from mibzoo.run_records import bfloat16_units, cpu_flags

ENVIRONMENTS = (0, 1)


@dataclasses.dataclass(frozen=True)
class Settings:
    """One baseline's training settings (IRM's flags).

    Attributes:
        hidden: width of both hidden layers.
        l2: weight of ‖w‖².
        learning_rate: Adam's learning rate.
        penalty_weight: λ after the annealing steps (0: no penalty, ERM).
        anneal_steps: steps with λ = 1 (with ``penalty_weight`` > 0).
        steps: full-batch steps.
        grayscale: sum the colour channels before the MLP (the oracle).
        penalty: which penalty ``penalty_weight`` weighs, one of `PENALTIES`: ``"irm"`` (IRMv1) or
            ``"fishr"`` (the gradient-variance gap).
    """

    hidden: int = 390
    l2: float = 0.0011
    learning_rate: float = 0.0005
    penalty_weight: float = 0.0
    anneal_steps: int = 0
    steps: int = 501
    grayscale: bool = False
    penalty: str = "irm"

    def __post_init__(self):
        if self.penalty not in PENALTIES:
            raise ValueError(f"ood_baselines.Settings: penalty={self.penalty!r}; allowed: {list(PENALTIES)}")


PENALTIES = ("irm", "fishr")

# Published Colored-MNIST settings of IRMv1 (Arjovsky et al. 2019, their README: hidden_dim 390,
# l2_regularizer_weight 0.00110794568, lr 0.0004898536566546834, penalty_anneal_iters 190,
# penalty_weight 91257.18613115903, steps 501), rounded as the issue gives them.
IRM_SETTINGS = Settings(penalty_weight=91257.0, anneal_steps=190)
ERM_SETTINGS = Settings()
ORACLE_SETTINGS = Settings(grayscale=True)
# Fishr's Colored-MNIST script (Rame et al. 2022) keeps every one of IRM's settings.
FISHR_SETTINGS = Settings(penalty_weight=91257.0, anneal_steps=190, penalty="fishr")
BASELINES = {"ERM": ERM_SETTINGS, "IRM": IRM_SETTINGS, "oracle (ERM on grayscale)": ORACLE_SETTINGS,
             "Fishr": FISHR_SETTINGS}


def features(images, grayscale=False):
    """``[N, D]`` float32 MLP inputs: the flattened 14×14×2 image, or its channel sum (``grayscale``)."""
    images = np.asarray(images, "float32")
    if images.ndim != 4 or images.shape[-1] != 2:
        raise ValueError(f"features: expected Colored-MNIST images [N, 14, 14, 2], got shape {list(images.shape)}")
    if grayscale:
        images = images.sum(-1)
    return images.reshape(len(images), -1)


def single_channel_split(images):
    """Colored-MNIST draws each digit in one of its two channels and leaves the other 0, so the first
    layer's product x · W over the 392 flattened inputs equals d · W_c over the 196 pixels of the
    digit d, W_c the kernel's rows of channel c (every second row, from c: `features` flattens
    [14, 14, 2] with the channel last). Half the first layer's multiply-adds, forward and in the
    kernel's gradient, are then products with zeros; this returns what skips them.

    Args:
        images: ``[N, 14, 14, 2]``.

    Returns:
        ``(digits, channels)``: ``[N, 196]`` float32 channel sums and ``[N]`` the channel (0 or 1)
        each image is drawn in; ``None`` when some image has non-zero pixels in both channels or in
        neither, where the product is not of this form.
    """
    images = np.asarray(images, "float32")
    if images.ndim != 4 or images.shape[-1] != 2:
        raise ValueError(f"single_channel_split: expected Colored-MNIST images [N, 14, 14, 2], "
                         f"got shape {list(images.shape)}")
    inked = (images.reshape(len(images), -1, 2) != 0).any(axis=1)  # [N, 2]
    if not np.all(inked.sum(axis=1) == 1):
        return None
    return images.sum(-1).reshape(len(images), -1), inked[:, 1].astype("int64")


PRECISIONS = ("float32", "mixed_bfloat16")


def default_precision(flags=None, gpu=None):
    """``"mixed_bfloat16"`` where the baselines run on a CPU that multiplies bfloat16 matrices in
    hardware (``flags``: `cpu_flags` by default), else ``"float32"``: without those units bfloat16
    products are emulated and slower than float32 ones. With a GPU (``gpu``: whether TensorFlow sees
    one, by default) the step runs there, where float32 is fast and bfloat16 depends on the GPU, so
    float32."""
    if gpu is None:
        import tensorflow as tf
        gpu = bool(tf.config.list_physical_devices("GPU"))
    if gpu:
        return "float32"
    flags = cpu_flags() if flags is None else set(flags)
    return "mixed_bfloat16" if bfloat16_units(flags) else "float32"


def resolve_jit_compile(jit_compile, precision="float32", accelerator=None):
    """Whether the baseline's step is compiled with XLA: ``jit_compile`` itself when a bool, and for
    ``"auto"`` Keras' own rule for ``compile(jit_compile="auto")``: only where TensorFlow sees a device
    other than the CPU (``accelerator``: whether it does, by default). On two 2-core Intel Xeon CPUs
    the oneDNN step was faster than XLA's: 0.30 against 0.35 s a full-batch float32 step on one with
    AMX, and 13 % (0.054 ± 0.010 s) on average over seven alternating pairs on one without (docs/results_ood.md,
    thirty-sixth session). Never in bfloat16: XLA's CPU backend does not use the bfloat16 matrix
    units (a mixed step took 0.40 s with XLA against 0.16 s without)."""
    if jit_compile not in (True, False, "auto"):
        from mibzoo.errors import ConfigError
        raise ConfigError("ood_baselines", "jit_compile", jit_compile, "True, False or 'auto'")
    if precision != "float32":
        return False
    if jit_compile != "auto":
        return jit_compile
    if accelerator is None:
        import tensorflow as tf
        accelerator = any(d.device_type != "CPU" for d in tf.config.list_physical_devices())
    return bool(accelerator)


def check_precision(precision):
    """``precision`` if it is one of `PRECISIONS`, else a `ConfigError` naming them."""
    if precision not in PRECISIONS:
        from mibzoo.errors import ConfigError, did_you_mean
        raise ConfigError("ood_baselines", "precision", precision,
                          f"one of {list(PRECISIONS)}" + did_you_mean(precision, PRECISIONS))
    return precision


def build_mlp(input_size, hidden, seed, precision="float32"):
    """IRM's MLP as a Keras model: two ReLU layers of ``hidden`` units and one logit, its layers
    under the dtype policy ``precision`` (`PRECISIONS`; the weights are float32 under both)."""
    import keras

    check_precision(precision)
    init = lambda k: keras.initializers.GlorotUniform(seed=seed * 3 + k)  # noqa: E731
    return keras.Sequential([
        keras.Input((input_size,)),
        keras.layers.Dense(hidden, activation="relu", kernel_initializer=init(0), dtype=precision),
        keras.layers.Dense(hidden, activation="relu", kernel_initializer=init(1), dtype=precision),
        keras.layers.Dense(1, kernel_initializer=init(2), dtype=precision),
    ], name="irm_mlp")


def mean_nll(logits, labels):
    """R(f): mean binary cross-entropy of logits ``[N]`` against 0/1 labels ``[N]``."""
    import tensorflow as tf
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def irm_penalty(logits, labels, risk=mean_nll):
    """IRMv1's penalty (Arjovsky et al. 2019, Eq. IRMv1): ‖∇_{s | s=1} R(s · f)‖², the squared
    gradient of the risk with respect to a dummy classifier scale s = 1.0, by automatic
    differentiation (differentiable: the outer loss takes its gradient).

    Args:
        logits: the classifier's logits (any shape ``risk`` accepts).
        labels: the targets.
        risk: ``risk(logits, labels) -> scalar`` (default: mean binary cross-entropy).
    """
    import tensorflow as tf

    logits = tf.convert_to_tensor(logits)
    scale = tf.ones((), logits.dtype)
    with tf.GradientTape() as tape:
        tape.watch(scale)
        loss = risk(logits * scale, labels)
    grad = tape.gradient(loss, scale)
    return tf.square(grad)


def fishr_penalty(features, logits, labels, groups):
    """Fishr's penalty (Rame et al. 2022, Eq. 4) on IRM's MLP: Σ_e ‖v_e − v̄‖², v_e the variance over
    environment e's rows of the per-row gradient of the binary cross-entropy with respect to the final
    layer's kernel and bias, (σ(f) − y) · [h, 1] (`last_layer_gradients`), on whole environments
    (`gradient_variance_gap` with ``pairs="none"``).

    Args:
        features: ``[N, H]`` the final layer's input h.
        logits: ``[N]`` the logits f.
        labels: ``[N]`` 0/1 labels.
        groups: ``[N, G]`` one-hot environment of each row.
    """
    from keras import ops

    from mibzoo.estimators.gradient_variance import gradient_variance_gap, last_layer_gradients

    residuals = ops.sigmoid(ops.cast(logits, "float32")) - ops.cast(labels, "float32")
    return gradient_variance_gap(last_layer_gradients(residuals[:, None], features), groups, pairs="none")


def accuracy(logits, labels):
    """Fraction of examples whose logit has the sign of the label (logit > 0 ⇔ y = 1)."""
    logits, labels = np.asarray(logits).reshape(-1), np.asarray(labels).reshape(-1)
    return float(np.mean((logits > 0).astype(labels.dtype) == labels))


def swap_colours(arrays):
    """The arrays with the two colour channels of every image exchanged (``[..., 2]`` images), so
    that each digit is drawn in the other colour. In Colored-MNIST's test environment the colour
    agrees with the label 10 % of the time; swapped, 90 %. A predictor's accuracy is linear in that
    agreement rate, so the mean of its accuracies on the two is its accuracy where the colour says
    nothing about the label (the shape alone), and half their difference is what the colour adds
    (positive: it reverses the colour, negative: it follows it)."""
    images = np.asarray(arrays["image"])
    if images.shape[-1] != 2:
        raise ValueError(f"swap_colours: images of {images.shape[-1]} channel(s); expected Colored-MNIST's 2")
    return {**arrays, "image": images[..., ::-1]}


def with_ones_column(x):
    """``[N, D + 1]``: ``x`` ``[N, D]`` (a tensor) with a column of ones appended, in its dtype."""
    import tensorflow as tf
    return tf.concat([x, tf.ones((tf.shape(x)[0], 1), x.dtype)], 1)


def bias_folded_kernels(mlp, compute_dtype, channel=None):
    """IRM's MLP (`build_mlp`) as products with a column of ones, for `folded_forward`: x · W + b =
    [x, 1] · [W; b]. Each hidden layer's kernel is [[W, 0], [b, 1]], whose extra unit is ReLU(1) = 1 and
    passes the ones column to the next layer; the final layer's is [W; b].

    Why: in bfloat16 oneDNN's product with a bias added in the same op (as TensorFlow fuses a Dense
    layer's MatMul, BiasAdd and ReLU) runs at a third of the plain product's speed on a CPU: 36–40 ms
    against 10–15 ms for 25,000 × 390 by 390 × 390, and the bias's own gradient is one more pass over
    the activations (benchmarks/table4_budget.py, forty-second session). With the bias in the product
    the step is matrix products and ReLUs only.

    Args:
        mlp: the Keras model of `build_mlp` (its Dense layers' ``kernel`` and ``bias``).
        compute_dtype: the products' dtype (the layers' ``compute_dtype``).
        channel: ``None``, or 0 / 1: the first kernel's rows of that colour channel alone (every second
            row from ``channel``, `single_channel_split`'s product from the digit's 196 pixels).

    Returns:
        The kernels, first to last; differentiable with respect to the model's weights.
    """
    import tensorflow as tf

    dense = mlp.layers
    kernels = []
    for i, layer in enumerate(dense):
        kernel = layer.kernel if i or channel is None else layer.kernel[channel::2]
        folded = tf.concat([kernel, layer.bias[None, :]], 0)
        if i < len(dense) - 1:  # one more unit: 1 from the ones row, 0 from every input
            rows = int(folded.shape[0])
            folded = tf.concat([folded, tf.one_hot(rows - 1, rows, dtype=folded.dtype)[:, None]], 1)
        kernels.append(tf.cast(folded, compute_dtype))
    return kernels


def folded_forward(x, kernels):
    """IRM's MLP on ``x`` ``[N, D + 1]`` (`with_ones_column`) with `bias_folded_kernels`: ``(h, logits)``,
    h ``[N, H + 1]`` the final layer's input with its ones column and logits ``[N, 1]``."""
    import tensorflow as tf

    h = x
    for kernel in kernels[:-1]:
        h = tf.nn.relu(tf.matmul(h, kernel))
    return h, tf.matmul(h, kernels[-1])


def _environments(arrays, grayscale):
    env = np.asarray(arrays["env"])
    x = features(arrays["image"], grayscale)
    y = np.asarray(arrays["label"], "float32")
    return {e: (x[env == e], y[env == e]) for e in np.unique(env)}


def train_baseline(settings, train, test, seed, progress=None, jit_compile="auto", precision="float32"):
    """Trains one baseline full-batch on the training environments; returns its accuracies.

    Args:
        settings: a `Settings` (`ERM_SETTINGS`, `IRM_SETTINGS`, `ORACLE_SETTINGS`, `FISHR_SETTINGS`).
        train: arrays of the training split (``image``, ``label``, ``env`` with envs 0 and 1).
        test: arrays of the test split (environment 2).
        seed: seed of the weights.
        progress: optional ``progress(step, logs)`` called every 100 steps.
        jit_compile: compile the step with XLA: True, False or ``"auto"`` (default: with an
            accelerator only, as Keras' ``compile``; `resolve_jit_compile`). Never in bfloat16.
        precision: ``"float32"`` (IRM's) or ``"mixed_bfloat16"`` (see the module's docstring).

    Returns:
        ``{"train_acc", "test_acc", "swapped_acc", "env_acc": {env: acc}, "train_nll", "penalty"}``;
        ``swapped_acc`` on the test split with its colours swapped (`swap_colours`).
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    envs = _environments(train, settings.grayscale)
    missing = [e for e in ENVIRONMENTS if e not in envs]
    if missing:
        raise ValueError(f"train_baseline: the training arrays have no example of environment {missing[0]} "
                         f"(environments present: {sorted(envs)})")
    mlp = build_mlp(envs[ENVIRONMENTS[0]][0].shape[1], settings.hidden, seed, precision)
    compute = mlp.layers[0].compute_dtype
    # Each environment's rows, as the first layer reads them: with the digits in one channel
    # (`single_channel_split`) their channel sums ordered by channel and the count drawn in channel 0,
    # so that the first layer multiplies 196 inputs, not 392 of which half are 0. The order of the
    # rows within an environment changes none of the per-environment means the loss is made of.
    # The inputs are cast once, not at every step's first layer.
    rows = [envs[e] for e in ENVIRONMENTS]
    splits = [None if settings.grayscale else single_channel_split(np.reshape(x, (-1, 14, 14, 2))) for x, _ in rows]
    first_counts = [None] * len(rows)
    if all(split is not None for split in splits):
        orders = [np.argsort(channels, kind="stable") for _, channels in splits]
        rows = [(digits[order], y[order]) for (digits, _), (_, y), order in zip(splits, rows, orders)]
        first_counts = [int(np.sum(channels == 0)) for _, channels in splits]
    tensors = [(tf.cast(x, compute), tf.constant(y)) for x, y in rows]
    jit_compile = resolve_jit_compile(jit_compile, precision)
    optimizer = keras.optimizers.Adam(settings.learning_rate)
    optimizer.build(mlp.trainable_variables)

    sizes = [int(y.shape[0]) for _, y in tensors]
    groups = tf.constant(np.repeat(np.eye(len(sizes), dtype="float32"), sizes, axis=0))
    # Each environment's row blocks, with a column of ones (the biases are rows of the kernels:
    # `bias_folded_kernels`), and the channel whose rows of the first kernel each block multiplies.
    blocks = [[(with_ones_column(x[:count]), 0), (with_ones_column(x[count:]), 1)] if count is not None
              else [(with_ones_column(x), None)] for (x, _), count in zip(tensors, first_counts)]
    channels = sorted({channel for env_blocks in blocks for _, channel in env_blocks}, key=str)

    @tf.function(jit_compile=jit_compile)
    def step(penalty_weight):
        with tf.GradientTape() as tape:
            kernels = {channel: bias_folded_kernels(mlp, compute, channel) for channel in channels}
            nlls, penalties, features, all_logits = [], [], [], []
            for env_blocks, (_, y) in zip(blocks, tensors):
                outputs = [folded_forward(x, kernels[channel]) for x, channel in env_blocks]
                logits = tf.cast(tf.concat([logits for _, logits in outputs], 0)[:, 0], tf.float32)
                nlls.append(mean_nll(logits, y))
                if settings.penalty == "irm":
                    penalties.append(irm_penalty(logits, y))
                else:  # the final layer's input, without its ones column
                    features.extend(h[:, :-1] for h, _ in outputs)
                all_logits.append(logits)
            nll = tf.reduce_mean(tf.stack(nlls))
            if settings.penalty == "fishr":
                penalty = fishr_penalty(tf.concat(features, 0), tf.concat(all_logits, 0),
                                        tf.concat([y for _, y in tensors], 0), groups)
            else:
                penalty = tf.reduce_mean(tf.stack(penalties))
            weight_norm = tf.add_n([tf.reduce_sum(tf.square(w)) for w in mlp.trainable_variables])
            loss = nll + settings.l2 * weight_norm + penalty_weight * penalty
            loss = loss / tf.maximum(penalty_weight, 1.0)  # IRM divides by λ when λ > 1
        grads = tape.gradient(loss, mlp.trainable_variables)
        optimizer.apply_gradients(zip(grads, mlp.trainable_variables))
        return nll, penalty

    nll = penalty = None
    for t in range(settings.steps):
        weight = settings.penalty_weight if t >= settings.anneal_steps else min(1.0, settings.penalty_weight)
        nll, penalty = step(tf.constant(weight, tf.float32))
        if progress is not None and t % 100 == 0:
            progress(t, {"nll": float(nll), "penalty": float(penalty)})

    def logits_of(x):
        return tf.cast(mlp(tf.cast(x, compute), training=False), tf.float32)

    env_acc = {int(e): accuracy(logits_of(x), y) for e, (x, y) in envs.items()}
    test_envs = _environments(test, settings.grayscale)
    test_x = np.concatenate([x for x, _ in test_envs.values()])
    test_y = np.concatenate([y for _, y in test_envs.values()])
    test_acc = accuracy(logits_of(test_x), test_y)
    swapped = _environments(swap_colours(test), settings.grayscale)
    swapped_acc = accuracy(logits_of(np.concatenate([x for x, _ in swapped.values()])),
                           np.concatenate([y for _, y in swapped.values()]))
    return {"train_acc": float(np.mean([env_acc[e] for e in ENVIRONMENTS])), "test_acc": test_acc,
            "swapped_acc": swapped_acc, "env_acc": env_acc, "train_nll": float(nll), "penalty": float(penalty)}
