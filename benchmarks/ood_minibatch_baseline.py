"""IRM's Colored-MNIST MLP trained on minibatches, as the zoo entries train, instead of the full batches
of `mibzoo reproduce table4`'s baselines (issue 12, thirty-first session: does a penalty that works on
whole environments still work on minibatches of 2,500 images?).

    PYTHONPATH=$PWD python benchmarks/ood_minibatch_baseline.py {none,irm,fishr,fishr_squared} \
        [--batch 2500] [--updates 600] [--anneal 190] [--weight 91257] [--seed 0] \
        [--hidden 390] [--l2 0.0011] [--lr 0.0005] [--bottleneck 8] [--head-hidden 64]

Everything else is IRM's recipe (`mibzoo.reproduce.ood_baselines`: 390 units, L2 0.0011, Adam 5e-4,
the penalty weight 1 before update ``--anneal`` and ``--weight`` after, the loss divided by it). Each
minibatch is drawn from both training environments; the risk is the mean over the environments of
their mean cross-entropy. Penalties, from the minibatch: ``irm``, IRMv1's squared scale gradient per
environment from the batch's halves (unbiased); ``fishr``, Fishr's gradient-variance gap from the
halves; ``fishr_squared``, the same squared on all rows (Fishr's own form). Every 100 updates it prints
the risk and the penalty; at the end a JSON line with the accuracies (%) on the training environments,
the test environment, the test environment with its colours swapped, and their colour-neutral mean.
"""
import argparse
import json
import time

import numpy as np

PENALTIES = ("none", "irm", "fishr", "fishr_squared")


def draw_from_prior_product(keras, ops, loc, logvar, seeds, sample):
    """The product of the expert N(loc, e^logvar) with the prior N(0, 1), as the zoo's q(z | x) is
    formed (`mibzoo.inference.product_of_experts`): its mean, or (``sample``) a draw."""
    from mibzoo.inference import product_of_experts

    zero = ops.zeros_like(loc)
    mean, post_logvar = product_of_experts(zero, zero, loc[:, None], logvar[:, None], ops.ones_like(loc[:, None]))
    if not sample:
        return mean
    return mean + ops.exp(0.5 * post_logvar) * keras.random.normal(ops.shape(mean), seed=seeds)


def prior_gated_latent(keras, ops):
    """A Keras layer: [B, 2K] (loc, logvar) -> [B, K], `draw_from_prior_product` of the expert they
    give (with ``natural``, the first K numbers are its natural parameter η = loc / e^logvar)."""
    from mibzoo.inference import clip_logvar

    class PriorGatedLatent(keras.layers.Layer):
        def __init__(self, sample, seed, natural=False, **kwargs):
            super().__init__(**kwargs)
            self.sample, self.natural, self.seeds = sample, natural, keras.random.SeedGenerator(seed)

        def call(self, x):
            loc, logvar = ops.split(x, 2, axis=-1)
            if self.natural:
                logvar = clip_logvar(logvar)
                loc = loc * ops.exp(logvar)
            return draw_from_prior_product(keras, ops, loc, logvar, self.seeds, self.sample)

    return PriorGatedLatent


def zoo_label_path(keras, ops, seed, sample=True, expert_output="natural"):
    """``(trunk, final)``: Keras layers that run `ood_cmnist_irm`'s own networks (built by `mibzoo.load`
    with ``expert_output``, weights initialized as the zoo initializes them) from a flattened image to
    p(y | z): the image encoder, q(z | x) as the product of its expert with the prior (a draw, or its
    mean), and the label decoder up to its last layer (``trunk``); the last layer's two logits as one,
    l₁ − l₀ (``final``)."""
    import mibzoo
    import mibzoo.data

    specs = {name: {k: v for k, v in spec.items() if k != "description"}
             for name, spec in mibzoo.data.info("colored_mnist").modalities.items()}
    keras.utils.set_random_seed(seed)
    model = mibzoo.load("ood_cmnist_irm", modalities=specs, seed=seed, expert_output=expert_output)
    decoder_layers = model.decoders["label"].net.layers

    class Trunk(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.encoder, self.decoder_layers = model.encoders["image"], decoder_layers[:-1]
            self.seeds = keras.random.SeedGenerator(seed)

        def call(self, x):
            loc, logvar, _, _ = model.encode_modality("image", ops.reshape(x, (-1, 14, 14, 2)))
            h = draw_from_prior_product(keras, ops, loc, logvar, self.seeds, sample)
            for layer in self.decoder_layers:
                h = layer(h)
            return h

    class Final(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = decoder_layers[-1]

        def call(self, h):
            logits = self.dense(h)
            return logits[:, 1:] - logits[:, :1]

    return Trunk(), Final()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("penalty", choices=PENALTIES)
    parser.add_argument("--batch", type=int, default=2500)
    parser.add_argument("--updates", type=int, default=600)
    parser.add_argument("--anneal", type=int, default=190)
    parser.add_argument("--weight", type=float, default=91257.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=None, help="width of the two hidden layers (IRM's 390)")
    parser.add_argument("--l2", type=float, default=None, help="weight of the squared weights (IRM's 0.0011)")
    parser.add_argument("--lr", type=float, default=None, help="Adam's learning rate (IRM's 0.0005)")
    parser.add_argument("--bottleneck", type=int, default=0, help="a linear layer of this width after the hidden layers")
    parser.add_argument("--head-hidden", type=int, default=0, help="a ReLU layer of this width before the logit")
    parser.add_argument("--latent", choices=("linear", "prior_mean", "prior_sample", "natural_sample"), default="linear",
                        help="with --bottleneck K: the bottleneck is K linear units (linear), or the mean "
                             "(prior_mean) or a draw (prior_sample) of a Gaussian expert N(loc, e^logvar) of 2K "
                             "outputs multiplied by the prior N(0, 1), as the zoo's q(z | x) (product_of_experts); "
                             "natural_sample: the same draw with the expert given by its natural parameter "
                             "η = loc / e^logvar, as the zoo's encoders emit it (MIBModel.encode_modality)")
    parser.add_argument("--zoo-networks", choices=("sample", "mean", "sample_mean_output"), default=None,
                        help="train ood_cmnist_irm's own image encoder, q(z | x) (a draw or its mean) and label "
                             "decoder (zoo_label_path) in this loop instead of an MLP; --hidden, --bottleneck, "
                             "--head-hidden and --latent do not apply; sample_mean_output: a draw, the encoders built "
                             "with expert_output 'mean' (their outputs the expert's mean, not its natural parameter)")
    parser.add_argument("--no-divide", action="store_true",
                        help="do not divide the loss by the penalty weight after the onset (IRM does; the zoo "
                             "entries' weighted sums do not), so Adam sees the gradient's scale jump")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    import mibzoo.data
    from mibzoo.estimators.gradient_variance import gradient_variance_gap, last_layer_gradients
    from mibzoo.estimators.halves import group_half_means
    from mibzoo.reproduce import ood_baselines

    train = mibzoo.data.load_arrays("colored_mnist", "train")
    test = mibzoo.data.load_arrays("colored_mnist", "test")
    keras.utils.set_random_seed(args.seed)
    settings = ood_baselines.IRM_SETTINGS
    x = ood_baselines.features(train["image"]).astype("float32")
    y = np.asarray(train["label"], "float32")
    environments = np.eye(2, dtype="float32")[np.asarray(train["env"])]
    PriorGatedLatent = prior_gated_latent(keras, keras.ops)
    if args.latent != "linear" and not args.bottleneck:
        parser.error("--latent needs --bottleneck K (the latent's size)")
    hidden = settings.hidden if args.hidden is None else args.hidden
    l2 = settings.l2 if args.l2 is None else args.l2
    mlp = ood_baselines.build_mlp(x.shape[1], hidden, args.seed)
    if args.bottleneck or args.head_hidden:
        init = lambda k: keras.initializers.GlorotUniform(seed=args.seed * 3 + k)  # noqa: E731
        width = args.bottleneck * (1 if args.latent == "linear" else 2)
        head = []
        if args.bottleneck:
            head.append(keras.layers.Dense(width, kernel_initializer=init(3)))
        if args.latent != "linear":
            head.append(PriorGatedLatent(args.latent.endswith("sample"), args.seed, args.latent == "natural_sample"))
        if args.head_hidden:
            head.append(keras.layers.Dense(args.head_hidden, activation="relu", kernel_initializer=init(4)))
        final = keras.layers.Dense(1, kernel_initializer=init(2))
        mlp = keras.Sequential([keras.Input((x.shape[1],)), *mlp.layers[:-1], *head, final])
    if args.zoo_networks:
        trunk, final = zoo_label_path(keras, keras.ops, args.seed, sample=args.zoo_networks != "mean",
                                      expert_output="mean" if args.zoo_networks == "sample_mean_output" else "natural")
        mlp = keras.Sequential([keras.Input((x.shape[1],)), trunk, final])
    optimizer = keras.optimizers.Adam(settings.learning_rate if args.lr is None else args.lr)
    optimizer.build(mlp.trainable_variables)
    hidden_layers, final_layer = mlp.layers[:-1], mlp.layers[-1]

    @tf.function(jit_compile=True)
    def step(xb, yb, eb, weight):
        with tf.GradientTape() as tape:
            h = xb
            for layer in hidden_layers:
                h = layer(h)
            logits = final_layer(h)[:, 0]
            rows = tf.nn.sigmoid_cross_entropy_with_logits(labels=yb, logits=logits)
            risk = tf.reduce_mean(tf.reduce_sum(eb * rows[:, None], 0) / tf.reduce_sum(eb, 0))
            residuals = tf.sigmoid(logits) - yb
            if args.penalty == "irm":
                # d/ds BCE(s f) at s = 1 is (σ(f) − y) f: its environment means from the two halves.
                means, _, _ = group_half_means((residuals * logits)[:, None], eb)
                penalty = tf.reduce_mean(means[0, :, 0] * means[1, :, 0])
            elif args.penalty.startswith("fishr"):
                penalty = gradient_variance_gap(last_layer_gradients(residuals[:, None], h), eb,
                                                pairs="none" if args.penalty == "fishr_squared" else "halves")
            else:
                penalty = tf.constant(0.0)
            norm = tf.add_n([tf.reduce_sum(tf.square(w)) for w in mlp.trainable_variables])
            loss = (risk + l2 * norm + weight * penalty) / (1.0 if args.no_divide else tf.maximum(weight, 1.0))
        optimizer.apply_gradients(zip(tape.gradient(loss, mlp.trainable_variables), mlp.trainable_variables))
        return risk, penalty

    rng = np.random.default_rng(args.seed)
    order, position, started = rng.permutation(len(x)), 0, time.perf_counter()
    for update in range(args.updates):
        if position + args.batch > len(x):
            order, position = rng.permutation(len(x)), 0
        rows = order[position:position + args.batch]
        position += args.batch
        weight = args.weight if update >= args.anneal else min(1.0, args.weight)
        risk, penalty = step(x[rows], y[rows], environments[rows], tf.constant(weight, tf.float32))
        if update % 100 == 0:
            print(f"update {update}: risk {float(risk):.4f} penalty {float(penalty):.3g}", flush=True)

    def accuracy(arrays):
        logits = mlp(ood_baselines.features(arrays["image"]).astype("float32"))[:, 0]
        return 100.0 * ood_baselines.accuracy(logits, np.asarray(arrays["label"], "float32"))

    env = np.asarray(train["env"])
    train_acc = float(np.mean([accuracy({k: v[env == e] for k, v in train.items()}) for e in (0, 1)]))
    test_acc, swapped = accuracy(test), accuracy(ood_baselines.swap_colours(test))
    print(json.dumps({**vars(args), "train": round(train_acc, 2), "test": round(test_acc, 2),
                      "swapped": round(swapped, 2), "neutral": round((test_acc + swapped) / 2, 2),
                      "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
