"""One run of a fairness zoo entry (Table 3) with a given budget and overrides, and why its DEO is
what it is (issue 11 follow-up: fair_mine's critic, the Adult DEO floor of fair_mmd / fair_tc).

    PYTHONPATH=$PWD python benchmarks/fair_probe.py ENTRY EPOCHS ['{"beta2": 3000}'] [--dataset adult]
        [--seed 0] [--batch 128] [--critic-lr 2e-4] [--critic-steps 1]

Trains ENTRY on one split exactly as `mibzoo reproduce table3` does (`table3_runs.splits`,
`train_zoo_model`, Adam 1e-3), the JSON overrides replacing the entry's hyperparameters or model
fields; ``--critic-lr`` / ``--critic-steps`` set the entry's ``optimizers.critic`` (Adam, β1 = 0.5)
and the steps of its ``critic:<term>`` phase per encoder step. Prints the table's scores of U_x
(ACC, DEO, DP) with the signed TPR gap TPR(a=0) − TPR(a=1) (negative: men favoured), the accuracy
of a linear probe reading ``a`` from U_x (test split; chance is the majority share), from one draw
of q(u | x), among the positives (y = 1, where equal opportunity compares the groups) and from
z; lower bounds on I(U_x; a) in nats from a linear and an MLP probe (`fairness.probe_information`);
the final epoch's training terms (weighted) and the wall time.
"""
import argparse
import json
import time

import numpy as np


def _signed_gap(y, y_hat, a):
    return float(np.mean(y_hat[(y == 1) & (a == 0)]) - np.mean(y_hat[(y == 1) & (a == 1)]))


def _probe(train_features, train_labels, test_features, test_labels, seed):
    from mibzoo.metrics.fairness import linear_classifier

    classifier = linear_classifier(seed).fit(train_features, train_labels)
    return classifier, float(np.mean(classifier.predict(test_features) == test_labels))


def add_run_arguments(parser):
    """The arguments that say what to train (shared with fair_epochs.py): entry, epochs, overrides, data set."""
    parser.add_argument("entry")
    parser.add_argument("epochs", type=int)
    parser.add_argument("overrides", nargs="?", default="{}", help="JSON: hyperparameters or model fields")
    parser.add_argument("--dataset", default="adult", choices=("adult", "german"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_arguments(parser)
    parser.add_argument("--seed", "--seeds", dest="seeds", type=int, nargs="+", default=[0],
                        help="one run per seed (German: per split); with several, a summary over them")
    parser.add_argument("--batch", type=int, default=None, help="default: the table's batch size")
    parser.add_argument("--critic-lr", type=float, default=None, help="Adam rate of the critic phase")
    parser.add_argument("--critic-beta1", type=float, default=None)
    parser.add_argument("--critic-steps", type=int, default=None, help="critic steps per encoder step")
    args = parser.parse_args()

    import keras

    import mibzoo
    import mibzoo.data
    from mibzoo.metrics import fairness
    from mibzoo.reproduce.table3_runs import FULL, splits, train_zoo_model

    overrides = json.loads(args.overrides)
    model_cfg = mibzoo.describe(args.entry)["model"]
    critics = [p["name"] for p in mibzoo.load(args.entry).phases if p["name"].startswith("critic:")]
    if args.critic_lr is not None or args.critic_beta1 is not None:
        critic = dict(model_cfg.get("optimizers", {}).get("critic", {"learning_rate": 2e-4, "beta_1": 0.5}))
        critic.update({k: v for k, v in (("learning_rate", args.critic_lr), ("beta_1", args.critic_beta1))
                       if v is not None})
        overrides["optimizers"] = {**model_cfg.get("optimizers", {}), "critic": critic}
    if args.critic_steps is not None:
        overrides["phases"] = [{"name": c, "steps": args.critic_steps} for c in critics] + [{"name": "dist", "steps": 1}]

    modalities = mibzoo.data.info(args.dataset).modalities
    rows = []
    for seed, train, test in splits(args.dataset, args.seeds, FULL):
        batch = args.batch or FULL.batch_size[args.dataset]
        logs = {}

        class Last(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, epoch_logs=None):
                logs.update({k: float(v) for k, v in (epoch_logs or {}).items()})

        started = time.perf_counter()
        model = train_zoo_model(args.entry, modalities, train, args.epochs, batch, seed, overrides=overrides,
                                callbacks=[Last()])
        seconds = time.perf_counter() - started

        u_train = fairness.representation(model, train)
        u_test = fairness.representation(model, test)
        classifier, _ = _probe(u_train, train["target"], u_test, test["target"], seed)
        y_hat = classifier.predict(u_test).astype("int64")
        scores = fairness.fairness_scores(test["target"], y_hat, test["a"])
        gap = _signed_gap(np.asarray(test["target"]), y_hat, np.asarray(test["a"]))
        positives = np.asarray(test["target"]) == 1
        tpr = {g: float(np.mean(y_hat[positives & (np.asarray(test["a"]) == g)])) for g in (0, 1)}
        n_pos = {g: int(np.sum(positives & (np.asarray(test["a"]) == g))) for g in (0, 1)}
        # Is the spread of DEO over seeds the test rows, the probe's threshold or the representation?
        # (1) the signed gap's standard deviation over bootstrap draws of the test rows (this model);
        # (2) the gap at probe thresholds 0.4 / 0.6 instead of 0.5; (3) a threshold-free gap: the
        # difference of the groups' mean decision function among the positives, in units of its std.
        y_test, a_test_arr = np.asarray(test["target"]), np.asarray(test["a"])
        boot_rng = np.random.default_rng(1000 + seed)
        boot = []
        for _ in range(1000):
            rows_b = boot_rng.integers(0, len(y_test), len(y_test))
            yb, ab, hb = y_test[rows_b], a_test_arr[rows_b], y_hat[rows_b]
            if np.any((yb == 1) & (ab == 0)) and np.any((yb == 1) & (ab == 1)):
                boot.append(_signed_gap(yb, hb, ab))
        boot_sd = float(np.std(boot))
        proba = classifier.predict_proba(u_test)[:, 1]
        gap_at = {t: _signed_gap(y_test, (proba >= t).astype("int64"), a_test_arr) for t in (0.4, 0.6)}
        margin = classifier.decision_function(u_test)[positives]
        a_pos_arr = a_test_arr[positives]
        score_gap = float((margin[a_pos_arr == 0].mean() - margin[a_pos_arr == 1].mean()) / margin.std())
        _, a_from_u = _probe(u_train, train["a"], u_test, test["a"], seed)
        # The estimators see samples of q(u | x), not its mean: how much of a one draw keeps.
        rng = np.random.default_rng(seed)
        drawn = []
        for part in (train, test):
            private = model.encode({"x": part["x"]})["private"]["x"]
            loc, logvar = np.asarray(private["loc"]), np.asarray(private["logvar"])
            drawn.append(loc + np.exp(0.5 * logvar) * rng.standard_normal(loc.shape))
        _, a_from_sample = _probe(drawn[0], train["a"], drawn[1], test["a"], seed)
        # Equal opportunity compares the groups among y = 1: how well U_x tells a apart there.
        pos_train, pos_test = np.asarray(train["target"]) == 1, np.asarray(test["target"]) == 1
        _, a_given_y = _probe(u_train[pos_train], np.asarray(train["a"])[pos_train], u_test[pos_test],
                              np.asarray(test["a"])[pos_test], seed)
        a_pos = np.asarray(test["a"])[pos_test]
        chance_given_y = max(np.mean(a_pos), 1 - np.mean(a_pos))
        z_train = model.encode({"x": train["x"], "a": train["a"]})["loc"]
        z_test = model.encode({"x": test["x"], "a": test["a"]})["loc"]
        _, a_from_z = _probe(np.asarray(z_train), train["a"], np.asarray(z_test), test["a"], seed)
        chance = max(np.mean(test["a"]), 1 - np.mean(test["a"]))
        # I(U_x; a) in nats, bounded from below by probes (Barber-Agakov, `fairness.probe_information`):
        # a linear one (what the table's classifier could use) and an MLP (what a nonlinear reader finds);
        # among y = 1 as well, where equal opportunity compares the groups.
        from sklearn.neural_network import MLPClassifier

        def mlp():
            return MLPClassifier((64,), batch_size=256, max_iter=30, early_stopping=True, random_state=seed)

        a_train, a_test = np.asarray(train["a"]), np.asarray(test["a"])
        info = {"linear": fairness.probe_information(u_train, a_train, u_test, a_test),
                "mlp": fairness.probe_information(u_train, a_train, u_test, a_test, mlp()),
                "linear|y=1": fairness.probe_information(u_train[pos_train], a_train[pos_train], u_test[pos_test],
                                                         a_test[pos_test])}
        info_z = fairness.probe_information(np.asarray(z_train), a_train, np.asarray(z_test), a_test)
        terms = " ".join(f"{k}={v:.4g}" for k, v in sorted(logs.items()))
        print(f"{args.entry} {args.dataset} seed {seed} {args.epochs} ep batch {batch} {json.dumps(overrides)}\n"
              f"  ACC {scores['acc']:.3f} DEO {scores['deo']:.3f} (signed {gap:+.3f}; TPR a=0 {tpr[0]:.3f} of {n_pos[0]}, "
              f"a=1 {tpr[1]:.3f} of {n_pos[1]} positives) DP {scores['dp']:.3f} | "
              f"probe a from U_x {a_from_u:.3f} (one draw of u {a_from_sample:.3f}), from z {a_from_z:.3f} (chance {chance:.3f}); "
              f"among y = 1 from U_x {a_given_y:.3f} (chance {chance_given_y:.3f}) | {seconds:.0f} s\n"
              f"  gap: bootstrap sd over test rows {boot_sd:.3f}; at threshold 0.4 {gap_at[0.4]:+.3f}, 0.6 "
              f"{gap_at[0.6]:+.3f}; positives' mean decision function a=0 minus a=1 {score_gap:+.3f} sd\n"
              f"  I(U_x; a) >= " + " ".join(f"{k} {v:.4f}" for k, v in info.items()) + f" nats; I(z; a) >= {info_z:.4f}\n"
              f"  last epoch: {terms}", flush=True)
        rows.append({"acc": scores["acc"], "deo": scores["deo"], "gap": gap, "dp": scores["dp"],
                     "tpr_a0": tpr[0], "tpr_a1": tpr[1], "boot_sd": boot_sd, "gap_t0.4": gap_at[0.4],
                     "gap_t0.6": gap_at[0.6], "score_gap": score_gap,
                     "a_from_u": a_from_u, **{f"I_{k}": v for k, v in info.items()}})
    if len(rows) > 1:
        print(f"{args.entry} {args.dataset} over seeds {args.seeds}:")
        for key in rows[0]:
            values = np.array([r[key] for r in rows])
            print(f"  {key:12s} {values.mean():.4f} ± {values.std(ddof=1):.4f}  ("
                  + ", ".join(f"{v:.3f}" for v in values) + ")")
        deo = np.array([r["deo"] for r in rows])
        for key in ("a_from_u", "I_linear", "I_mlp", "I_linear|y=1"):
            print(f"  correlation of DEO with {key} over seeds: {np.corrcoef(deo, [r[key] for r in rows])[0, 1]:+.2f}")


if __name__ == "__main__":
    main()
