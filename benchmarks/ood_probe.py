"""One seed of a Colored-MNIST zoo entry with a given budget and overrides, with its trajectory
(issue 12 follow-up: how ``ood_cmnist`` and ``ood_cmnist_irm`` behave with larger batches, other
weights and other estimators).

    PYTHONPATH=$PWD python benchmarks/ood_probe.py ENTRY EPOCHS BATCH ['{"beta2": 3000}'] [--hide 0.5] [--seed 0]
        [--beta1 0.99] [--adam-beta2 0.99] [--weight-decay 1.0] [--cosine] [--scramble-colour] [--ema 0.99]
        [--adam-restart 201] [--predict-sweep] [--calibration] [--drop-unlabelled | --hide-env-too]
        [--recalibration-curvature {as_is,identity,constant}] [--term-spread 40]

Trains ENTRY (a zoo entry with modalities image, label, env) on the training environments of
``colored_mnist`` as `mibzoo reproduce table4` does (`mibzoo.reproduce.table3.train_zoo_model`,
Adam 1e-3, critics Adam ``--critic-lr``), the JSON overrides replacing the entry's hyperparameters
or model fields. About eight times per run it prints the accuracy of argmax p(y | x) (2 draws of
z) on every 25th training image and the first 2,000 test images, with the epoch means of the OOD
terms (weighted); at the end the accuracies of `mibzoo.reproduce.table4.label_accuracies` on all
images (8 draws), the numbers the table reports.

``--scramble-colour`` (a diagnostic, issue 12's fourth session): every image's digit is moved to
a channel drawn at random (seeded), in training and test alike, so colour says nothing about the
label or the environment and only the digit shape can predict Y: how fast the entry learns shape.
"""
import argparse
import json
import time

import numpy as np


def scramble_colour(arrays, rng):
    """``arrays`` with each image's digit (the sum of its two channels) in a channel drawn at random."""
    digits = np.asarray(arrays["image"]).sum(-1)
    channel = rng.integers(0, 2, len(digits))
    images = np.stack([digits * (channel == 0)[:, None, None], digits * (channel == 1)[:, None, None]], -1)
    return {**arrays, "image": images.astype("float32")}


def patch_recalibration_curvature(curvature):
    """Diagnostic (thirty-third session), for this process: `environment_recalibration`'s paired
    Newton gain ½ aᵀ H⁻¹ b computed with H the identity (``"identity"``: ½ aᵀ b, which no longer
    divides by the curvature, so it penalizes a confident colour use as IRMv1's squared gradient
    does), or with H held constant in the gradient (``"constant"``: the same value, but the network
    is not trained through H). Asks whether IRMv1 sheds the colour under IRM's schedule where the
    recalibration does not because of the division by H or because of the gradient through it.
    (``"identity"`` is kept so the recorded commands rerun; for the term it is the option
    ``"step": "gradient"`` of `environment_recalibration`, which entries can use.)

    Thirty-fifth session: ``"bound"`` replaces H by Böhning's bound on it, the group's mean of
    φ ½ (I − 11ᵀ/K) φᵀ (`recalibration._features` φ). It has no π in it, so the gain ½ aᵀ B⁻¹ b is
    the drop one majorize-minimize step is sure to give, a lower bound on the recalibration's gain
    (Böhning 1992); it keeps the division by the logits' second moment and drops the weighting by
    π(1 − π). ``"bound_constant"``: the same with B held constant in the gradient."""
    from keras import ops

    from mibzoo.estimators import recalibration

    if curvature in ("bound", "bound_constant"):
        plain_statistics = recalibration._group_statistics

        def group_statistics(logits, labels, groups, weights, inputs, ridge, step="newton"):
            if step != "newton":
                raise ValueError(f"--recalibration-curvature {curvature}: replaces Newton's H, but the term has "
                                 f"step={step!r}; give the override's environment_recalibration \"step\": \"newton\"")
            grads, _, membership, counts = plain_statistics(logits, labels, groups, weights, inputs, ridge, step)
            features = recalibration._features(ops.cast(logits, "float32"),
                                               None if inputs is None else ops.cast(inputs, "float32"))
            classes = ops.shape(logits)[-1]
            # Böhning's bound on softmax's Hessian in the logits: ½ (I − 11ᵀ / K) ≽ diag(π) − ππᵀ
            bound = 0.5 * (ops.eye(classes, dtype="float32") - 1.0 / classes)
            rows = ops.einsum("bkp,kl,blq->bpq", features, bound, features)
            hessian = recalibration.group_mean_hessian(rows, membership, counts, ridge)
            return grads, ops.stop_gradient(hessian) if curvature == "bound_constant" else hessian, membership, counts

        recalibration._group_statistics = group_statistics
        return

    plain = recalibration._paired_gains

    def paired_gains(first, second, hessian):
        if curvature == "constant":
            return plain(first, second, ops.stop_gradient(hessian))
        return 0.5 * ops.sum(ops.cast(first, "float32") * ops.cast(second, "float32"), axis=-1)

    recalibration._paired_gains = paired_gains


def single_draw_logits(model, images, seed, chunk=5000):
    """``[N]``: the logit log p(y=1 | z) − log p(y=0 | z) at one draw z ~ q(z | x) per image, the
    view of p(y | z) the training terms have (`MIBModel.generate`, class probabilities)."""
    out = []
    for i in range(0, len(images), chunk):
        p = np.asarray(model.generate({"image": images[i:i + chunk]}, "label", num_samples=1, seed=seed, mode="mean"))[0]
        out.append(np.log(p[:, 1] + 1e-7) - np.log(p[:, 0] + 1e-7))
    return np.concatenate(out)


def mean_latent_accuracies(model, arrays, batch_size=2000):
    """``{env: accuracy}`` of argmax p(y | z) at z the mean of q(z | x) (`MIBModel.reconstruct`)."""
    correct = []
    for start in range(0, len(arrays["image"]), batch_size):
        probs = model.reconstruct({"image": arrays["image"][start:start + batch_size]})["label"]
        correct.append(np.argmax(np.asarray(probs), -1) == arrays["label"][start:start + batch_size])
    correct, env = np.concatenate(correct), np.asarray(arrays["env"])
    return {int(e): float(correct[env == e].mean()) for e in np.unique(env)}


def predict_sweep(model, train, test, seed):
    """Lines of train envs / test env / env 0 − env 1 / swapped accuracy (%) of the predictor at several
    numbers of draws of z, and at the posterior mean. Swapped: the test environment with the two colour
    channels exchanged, so the colour agrees with the label 90 % of the time instead of 10 %; a
    predictor that ignores the colour scores the same on both, and their mean is its shape alone."""
    from mibzoo.reproduce.ood_baselines import swap_colours
    from mibzoo.reproduce.table4 import label_accuracies

    swapped = swap_colours(test)
    lines = ["  prediction sweep (train envs / test env / env 0 - env 1 / test env with the colours swapped):"]
    readers = [(f"{k} draws", lambda arrays, k=k: label_accuracies(model, arrays, k, seed)) for k in (1, 2, 8, 32, 128)]
    for name, read in readers + [("mean of q(z | x)", lambda arrays: mean_latent_accuracies(model, arrays))]:
        env, te, sw = read(train), read(test), read(swapped)
        lines.append(f"    {name}: {100 * (env[0] + env[1]) / 2:.1f} / {100 * np.mean(list(te.values())):.1f} / "
                     f"{100 * (env[0] - env[1]):+.2f} / {100 * np.mean(list(sw.values())):.1f}")
    return "\n".join(lines)


def colour_of(images):
    """``[N]`` 0/1: the channel that holds the digit (Colored-MNIST's colour)."""
    images = np.asarray(images)
    return (images[..., 1].sum((1, 2)) > images[..., 0].sum((1, 2))).astype(int)


def calibration_report(logits, labels, envs, colours):
    """Lines: per training environment, the accuracy where the colour agrees with the (noisy) label
    and where it does not (equal for a predictor that ignores the colour), the halves recalibration
    gain (the term's estimate at n ≈ 25,000) and the refitted logistic recalibration
    y ~ a · logit + b (scikit-learn, unregularized) with its cross-entropy drop; and the same refit
    pooled over the environments.
    The gain over the pooled refit is what E tells about Y beyond p(y | z); the rest is a
    miscalibration every environment shares."""
    from sklearn.linear_model import LogisticRegression

    from mibzoo.estimators.recalibration import recalibration_gain

    def refit(rows):
        x, y = logits[rows, None], labels[rows]
        fit = LogisticRegression(C=1e6).fit(x, y)
        p0, p1 = 1 / (1 + np.exp(-logits[rows])), fit.predict_proba(x)[:, 1]
        ce = [-np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9)) for p in (p0, p1)]
        return ce[0], ce[0] - ce[1], fit.coef_[0][0], fit.intercept_[0]

    right = (logits > 0) == labels
    lines = []
    for e in sorted(set(envs.tolist())):
        rows = envs == e
        two = np.stack([np.zeros(rows.sum()), logits[rows]], 1).astype("float32")
        gain = float(recalibration_gain(two, np.eye(2, dtype="float32")[labels[rows]], np.ones((rows.sum(), 1), "float32")))
        ce, drop, a, b = refit(rows)
        agree = [100 * np.mean(right[rows & ((colours == labels) == match)]) for match in (True, False)]
        lines.append(f"  env {e}: accuracy {100 * np.mean(right[rows]):.1f} (colour agrees {agree[0]:.1f} / not "
                     f"{agree[1]:.1f}) cross-entropy {ce:.4f} gain {gain:.5f} refit drop {drop:.5f} (a {a:.2f}, b {b:.2f})")
    ce, drop, a, b = refit(np.ones(len(envs), bool))
    lines.append(f"  pooled: refit drop {drop:.5f} (a {a:.2f}, b {b:.2f})")
    return lines


def colored_mnist_splits(hide, seed):
    """``(original, train, present, test, swapped)``: Colored-MNIST's training environments as they
    are and with a share ``hide`` of their labels hidden (seeded; ``present`` is None when nothing is
    hidden), its test environment, and that with the colour channels swapped."""
    import mibzoo.data
    from mibzoo.experiment_data import hide_labels
    from mibzoo.reproduce.ood_baselines import swap_colours

    train = original = mibzoo.data.load_arrays("colored_mnist", "train")
    test = mibzoo.data.load_arrays("colored_mnist", "test")
    present = None
    if hide:
        train, present = hide_labels(train, "label", hide, seed)
    return original, train, present, test, swap_colours(test)


def run_arguments(parser):
    """The arguments every Colored-MNIST probe takes: the entry, its epochs and batch size, JSON
    overrides, the seed and the share of training labels hidden. Returns ``parser``."""
    parser.add_argument("entry")
    parser.add_argument("epochs", type=int)
    parser.add_argument("batch", type=int)
    parser.add_argument("overrides", nargs="?", default="{}", help="JSON: hyperparameters or model fields")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hide", type=float, default=0.0, help="share of training labels hidden")
    return parser


def term_spread(model, train, present, batch, batches, seed, shown):
    """Each of ``shown``'s terms the model logs, evaluated (`evaluate` on one batch at a time) on
    ``batches`` random training batches of ``batch`` rows: its mean, its standard deviation over
    batches, and the mean in units of that deviation (below 1: one batch's estimate is mostly its
    minibatch noise)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed + 1000)
    values = {}
    for _ in range(batches):
        rows = rng.choice(len(train["image"]), batch, replace=False)
        data = {name: np.asarray(train[name])[rows] for name in ("image", "label", "env")}
        if present is not None:
            data["present"] = {name: np.asarray(mask, "float32")[rows] for name, mask in present.items()}
        one = tf.data.Dataset.from_tensors(data)
        for name, value in model.evaluate(one, return_dict=True, verbose=0).items():
            if name in shown and name != "loss":
                values.setdefault(name, []).append(float(value))
    lines = [f"  terms on {batches} training batches of {batch} (mean / std over batches / mean in stds):"]
    for name, seen in values.items():
        mean, std = float(np.mean(seen)), float(np.std(seen, ddof=1))
        lines.append(f"    {name}: {mean:.4g} / {std:.4g} / {mean / std if std else float('inf'):.2f}")
    return "\n".join(lines)


def main():
    parser = run_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--critic-lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, nargs=2, metavar=("EPOCHS", "BATCH"),
                        help="first train EPOCHS at batch BATCH, then EPOCHS/BATCH as given (irm_anneal_steps "
                             "counts the network updates of both)")
    parser.add_argument("--fork-seed", type=int, default=None,
                        help="with --warmup: the main stage's data order and training noise (z draws) come from "
                             "this seed instead of --seed + 1, so that runs forked from one warmed-up state "
                             "differ only in what happens after the fork")
    parser.add_argument("--main-lr", type=float, default=None,
                        help="with --warmup: the networks' learning rate of the main stage (default: --lr)")
    parser.add_argument("--beta1", type=float, default=0.9, help="Adam's beta_1 of the networks")
    parser.add_argument("--adam-beta2", type=float, default=0.999,
                        help="Adam's beta_2 of the networks (the memory of its squared-gradient average)")
    parser.add_argument("--adam-restart", type=int, nargs="*", default=[],
                        help="network updates at which Adam's moments restart with their bias correction "
                             "(mibzoo.optimizers.RestartingAdam), e.g. the penalty's onset")
    parser.add_argument("--weight-decay", type=float, default=None,
                        help="Adam's decoupled weight decay of the networks (Keras' weight_decay)")
    parser.add_argument("--cosine", action="store_true",
                        help="the learning rate follows a cosine decay to 0 over the run's network updates")
    parser.add_argument("--lr-drop", type=float, nargs=2, default=None, metavar=("UPDATE", "FACTOR"),
                        help="the networks' learning rate is multiplied by FACTOR from network update UPDATE on "
                             "(a step decay, e.g. once the colour has left after the penalty's onset)")
    parser.add_argument("--ema", type=float, default=None,
                        help="also report the accuracies of an exponential moving average of the weights with this "
                             "momentum, updated after every training batch (Polyak averaging)")
    parser.add_argument("--predict-sweep", action="store_true",
                        help="after training, also print the accuracies of p(y | x) = E_q(z|x) p(y | z) at 1, 2, 8, 32 "
                             "and 128 draws of z, and of p(y | z) at the mean of q(z | x), each also on the test "
                             "images with the colour channels swapped")
    parser.add_argument("--calibration", action="store_true",
                        help="at the end, per training environment: the recalibration gain and the refitted scale and "
                             "shift of p(y | z)'s logit at one draw of z, and the same pooled (calibration_report)")
    hidden_rows = parser.add_mutually_exclusive_group()  # what becomes of the rows whose label --hide hides
    hidden_rows.add_argument("--drop-unlabelled", action="store_true",
                             help="with --hide: train on the labelled examples only (the hidden ones are removed, not "
                                  "kept without a label); accuracies are still read on every training image")
    hidden_rows.add_argument("--hide-env-too", action="store_true",
                             help="with --hide: the examples whose label is hidden lose their environment index too "
                                  "(they train as image-only rows)")
    parser.add_argument("--scramble-colour", action="store_true",
                        help="put every digit in a random channel (colour carries no signal)")
    parser.add_argument("--term-spread", type=int, default=0, metavar="N",
                        help="after training: each shown term's value on N random training batches of the run's "
                             "batch size (evaluation mode), printed as mean, standard deviation and their ratio: "
                             "how much of one batch's estimate is signal")
    parser.add_argument("--recalibration-curvature", choices=("as_is", "identity", "constant", "bound", "bound_constant"),
                        default="as_is",
                        help="diagnostic: environment_recalibration's Newton gain ½ aᵀ H⁻¹ b with H the identity (half "
                             "the paired squared gradient along the scale and shift: IRMv1's penalty with a shift), or "
                             "with H a constant to the gradient (the same value, no gradient through the curvature), or with H "
                             "Böhning's bound on it (the mean of φ ½ (I − 11ᵀ/K) φᵀ over the group's rows, no π in it: "
                             "the gain is then the drop one majorize-minimize step certainly gives, a lower bound), or that bound "
                             "held constant in the gradient")
    args = parser.parse_args()
    if args.ema is not None and not 0.0 < args.ema < 1.0:
        parser.error(f"--ema: got {args.ema}, expected a momentum strictly between 0 and 1")
    if any(step < 1 for step in args.adam_restart):
        parser.error(f"--adam-restart: got {args.adam_restart}, expected network updates >= 1")

    import keras

    import mibzoo.data
    from mibzoo.experiment_data import hide_all_labels
    from mibzoo.reproduce.table3 import train_zoo_model
    from mibzoo.reproduce.table4 import label_accuracies

    if args.recalibration_curvature != "as_is":
        patch_recalibration_curvature(args.recalibration_curvature)
    train = original = mibzoo.data.load_arrays("colored_mnist", "train")
    test = mibzoo.data.load_arrays("colored_mnist", "test")
    if args.scramble_colour:
        rng = np.random.default_rng(args.seed)
        train = original = scramble_colour(train, rng)
        test = scramble_colour(test, rng)
    present = None
    if args.hide:
        # hide_labels draws its rows from the seed and the size alone, so with --hide-env-too E is
        # hidden on exactly the rows whose Y is
        hidden = {"label": args.hide, **({"env": args.hide} if args.hide_env_too else {})}
        train, present = hide_all_labels(train, hidden, args.seed)
        if args.drop_unlabelled:
            kept = present["label"] > 0
            train, present = {k: np.asarray(v)[kept] for k, v in train.items()}, None
    elif args.drop_unlabelled or args.hide_env_too:
        parser.error("--drop-unlabelled and --hide-env-too need --hide (the share of examples whose label is hidden)")
    for flag, value in (("--fork-seed", args.fork_seed), ("--main-lr", args.main_lr)):
        if value is not None and not args.warmup:
            parser.error(f"{flag} sets the main stage after the warm-up; it needs --warmup")
    test_part = {k: v[:2000] for k, v in test.items()}
    train_part = {k: v[::25] for k, v in original.items()}
    shown = ("loss", "sufficiency", "conditional_independence", "conditional_independence_critic", "irm",
             "environment_recalibration", "risk_variance", "environment_calibration", "label_conditional_invariance",
             "gradient_variance", "conditional_moment")

    class Trajectory(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % max(1, args.epochs // 8):
                return
            tr = label_accuracies(self.model, train_part, 2, args.seed)
            te = label_accuracies(self.model, test_part, 2, args.seed)
            terms = " ".join(f"{k}={float(v):.4g}" for k, v in (logs or {}).items() if k in shown)
            print(f"  epoch {epoch + 1} network updates {int(self.model.optimizer.iterations)}: train "
                  f"{100 * np.mean([tr[0], tr[1]]):.1f} test {100 * np.mean(list(te.values())):.1f} {terms}", flush=True)

    class WeightAverage(keras.callbacks.Callback):
        """An exponential moving average of every trainable weight, updated after each batch."""

        def on_train_batch_end(self, batch, logs=None):
            weights = [np.asarray(v) for v in self.model.trainable_weights]
            if not hasattr(self, "average"):
                self.average = weights
            else:
                self.average = [args.ema * a + (1 - args.ema) * w for a, w in zip(self.average, weights)]

    averaging = WeightAverage() if args.ema else None
    callbacks = [Trajectory()] + ([averaging] if averaging else [])
    started = time.perf_counter()
    first_epochs, first_batch = args.warmup or (args.epochs, args.batch)
    rate = args.lr
    if args.cosine:
        if args.warmup:
            parser.error("--cosine decays over one fit; it cannot be combined with --warmup")
        rate = keras.optimizers.schedules.CosineDecay(args.lr, first_epochs * -(-len(train["image"]) // first_batch))
    if args.lr_drop:
        if args.cosine or args.warmup:
            parser.error("--lr-drop sets the schedule of one fit; it cannot be combined with --cosine or --warmup")
        update, factor = args.lr_drop
        rate = keras.optimizers.schedules.PiecewiseConstantDecay([int(update)], [args.lr, args.lr * factor])
    adam = {"beta_1": args.beta1, "beta_2": args.adam_beta2,
            **({"weight_decay": args.weight_decay} if args.weight_decay else {}),
            **({"restarts": args.adam_restart} if args.adam_restart else {})}
    model = train_zoo_model(args.entry, mibzoo.data.info("colored_mnist").modalities, train, first_epochs,
                            first_batch, args.seed, rate, overrides=json.loads(args.overrides), present=present,
                            compile_options={"critic_optimizer": keras.optimizers.Adam(args.critic_lr)},
                            callbacks=callbacks, adam_options=adam)
    if args.warmup:  # the same model, optimizers and phase schedule continue at the main batch size
        import tensorflow as tf

        columns = {name: train[name] for name in ("image", "label", "env")}
        if present is not None:
            columns["present"] = {name: np.asarray(mask, "float32") for name, mask in present.items()}
        if args.main_lr is not None:
            model.optimizer.learning_rate.assign(args.main_lr)
        fork = args.seed + 1 if args.fork_seed is None else args.fork_seed
        if args.fork_seed is not None:  # the training noise after the fork: a new stream, as a new seed starts one
            model.seed_generator.state.assign(np.array([args.fork_seed, 0], model.seed_generator.state.dtype))
        ds = (tf.data.Dataset.from_tensor_slices(columns).shuffle(len(columns["image"]), seed=fork)
              .batch(args.batch))
        print(f"  warm-up done ({first_epochs} epochs at batch {first_batch}); continuing", flush=True)
        model.fit(ds, epochs=args.epochs, verbose=0, shuffle=False, callbacks=callbacks)
    seconds = time.perf_counter() - started

    def accuracies():
        """The table's accuracies (8 draws of z, all images): train envs, test env."""
        env = label_accuracies(model, original, 8, args.seed)
        te = label_accuracies(model, test, 8, args.seed)
        return (f"train envs {100 * np.mean([env[0], env[1]]):.1f} test env {100 * np.mean(list(te.values())):.1f} "
                f"(env 0 {100 * env[0]:.2f}, env 1 {100 * env[1]:.2f})")

    optimizer = (f"beta1 {args.beta1} beta2 {args.adam_beta2} weight decay {args.weight_decay} cosine {args.cosine} "
                 f"lr drop {args.lr_drop} "
                 f"restarts {args.adam_restart}")
    print(f"{args.entry} warm-up {args.warmup} fork {args.fork_seed} main lr {args.main_lr} "
          f"epochs {args.epochs} batch {args.batch} seed {args.seed} hide {args.hide} "
          f"{optimizer} {args.overrides}: {accuracies()} ({seconds:.0f} s training)")
    if args.predict_sweep:
        print(predict_sweep(model, original, test, args.seed))
    if args.calibration:
        logits = single_draw_logits(model, np.asarray(original["image"]), args.seed)
        print("  calibration of p(y | z), one draw of z, all training images and labels:")
        print("\n".join(calibration_report(logits, np.asarray(original["label"]).astype(int),
                                         np.asarray(original["env"]).astype(int), colour_of(original["image"]))))
    if args.term_spread:
        print(term_spread(model, train, present, args.batch, args.term_spread, args.seed, shown))
    if averaging:
        for variable, value in zip(model.trainable_weights, averaging.average):
            variable.assign(value)
        print(f"  weights averaged (momentum {args.ema}): {accuracies()}")


if __name__ == "__main__":
    main()
