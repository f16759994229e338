"""`mibzoo train`, `mibzoo evaluate` and `mibzoo compare`: runs and comparisons from the command line.

```
mibzoo train wyner_vae --dataset mnist_label --epochs 10 --out runs/wyner
mibzoo evaluate runs/wyner
mibzoo compare jmvae mvae wyner_vae mib_mm --dataset mnist_label --epochs 10 --seeds 0 1 2 --out compare_out/
```

``--dataset`` takes a dataset name (`mibzoo.data.list_datasets()`) or an ``.npz`` file written by
`mibzoo.experiment_data.save_npz`. ``--set KEY=JSON`` overrides a model field or
hyperparameter (``--set beta=4 --set 'shared=[{"name": "z", "size": 8}]'``);
``--modality-options JSON`` is merged into every modality spec (``'{"hidden": 32}'``).
"""
import json


def _json_value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare word, e.g. --set at_inference=hard


def _overrides(pairs):
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set: got {pair!r}, expected KEY=VALUE with a JSON value (e.g. beta=4)")
        out[key] = _json_value(value)
    return out


def _modality_options(text):
    if text is None:
        return None
    value = _json_value(text)
    if not isinstance(value, dict):
        raise ValueError(f"--modality-options: got {text!r}, expected a JSON object such as "
                         f"'{{\"hidden\": 32, \"layers\": 1, \"filters\": [8, 16]}}'")
    return value


def _hidden_labels(pairs):
    """``["label=0.5"]`` → ``{"label": 0.5}``."""
    out = {}
    for pair in pairs:
        modality, sep, fraction = pair.partition("=")
        try:
            out[modality] = float(fraction)
        except ValueError:
            sep = ""
        if not sep or not modality:
            raise ValueError(f"--hide-labels: got {pair!r}, expected MODALITY=FRACTION such as label=0.5")
    return out


def _add_budget(parser, epochs_default, resumable=False):
    # A resumed run keeps its recorded settings: `train` leaves them unset (None) unless given.
    recorded = " (a resumed run keeps its recorded value)" if resumable else ""
    parser.add_argument("--dataset", required=True, help="dataset name or .npz file (mibzoo.experiment_data)")
    parser.add_argument("--epochs", type=int, default=epochs_default, help=f"training epochs (default {epochs_default})")
    parser.add_argument("--batch-size", type=int, default=None if resumable else 128,
                        help=("batch size (default: the entry's zoo config 'batch_size', else 128)" if resumable
                              else "batch size (default 128, for every entry)") + recorded)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N training examples" + recorded)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="Adam learning rate of the networks (default: the entry's, from its zoo config's "
                             "'optimizers'; 1e-3 unless it sets one)" + recorded)
    parser.add_argument("--set", action="append", metavar="KEY=JSON", help="model override (repeatable)")
    parser.add_argument("--modality-options", metavar="JSON", help="merged into every modality spec")
    parser.add_argument("--hide-labels", action="append", metavar="MODALITY=FRACTION",
                        help="semi-supervised: hide that share of the modality's training values, chosen by the seed "
                             "(repeatable)" + recorded)
    parser.add_argument("--data-dir", default=None, help="data directory (default $MIBZOO_DATA_DIR or ~/.cache/mibzoo/data)")


def _add_evaluation(parser):
    parser.add_argument("--iwae-k", type=int, default=50, help="importance samples of the log-likelihood (default 50)")
    parser.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test examples")
    parser.add_argument("--likelihood-limit", type=int, default=1000,
                        help="test examples for the log-likelihood (default 1000)")
    parser.add_argument("--probe-train-limit", type=int, default=10000,
                        help="training examples the linear probe is fit on (default 10000)")
    parser.add_argument("--prior-samples", type=int, default=1000,
                        help="prior samples for joint coherence, sample quality and code accuracy (default 1000)")
    parser.add_argument("--metrics", nargs="+", default=None, help="metric groups (default: all)")
    parser.add_argument("--classifier-dir", default=None, help="classifier cache (default ~/.cache/mibzoo/classifiers)")


def register(subparsers):
    """Adds the ``train``, ``evaluate`` and ``compare`` sub-commands."""
    train = subparsers.add_parser("train", help="train a zoo entry into a run directory (resumes if it exists)")
    train.add_argument("name", help="zoo entry (mibzoo list)")
    _add_budget(train, epochs_default=10, resumable=True)
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--seed", type=int, default=None, help="seed of weights, noise and data order (default 0)")
    train.add_argument("--image-examples", type=int, default=8,
                       help="test examples in the TensorBoard image summaries (default 8, 0: none)")
    train.add_argument("--evaluate", action="store_true", help="compute the metrics at the end (mibzoo evaluate)")
    train.add_argument("--restore-most-invariant", type=int, metavar="FROM_EPOCH", default=None,
                       help="end with the weights of the epoch (from FROM_EPOCH on) whose p(target | z) is most "
                            "invariant across the training environments, not of the last (recorded as "
                            "selected_epoch in run.json; mibzoo.callbacks.InvarianceReading)")
    train.add_argument("--invariance-columns", nargs=2, metavar=("TARGET", "ENVIRONMENT"), default=None,
                       help="the modalities --restore-most-invariant reads (default: label env)")
    train.add_argument("--verbose", type=int, default=2, help="Keras progress output (0, 1, 2; default 2)")
    train.set_defaults(func=_train)

    evaluate = subparsers.add_parser("evaluate", help="compute the metrics of a finished run (RUN_DIR/metrics.json)")
    evaluate.add_argument("run_dir", help="run directory written by mibzoo train")
    _add_evaluation(evaluate)
    evaluate.add_argument("--data-dir", default=None, help="data directory")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the sampled metrics")
    evaluate.add_argument("--plot-examples", type=int, default=8,
                          help="test examples in the sample grids written to RUN_DIR/plots (default 8, 0: none)")
    evaluate.set_defaults(func=_evaluate)

    compare = subparsers.add_parser("compare", help="train and evaluate zoo entries under the same budget")
    compare.add_argument("names", nargs="+", help="zoo entries (mibzoo list)")
    _add_budget(compare, epochs_default=10)
    compare.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)")
    compare.add_argument("--out", required=True, help="output directory (results.md/.csv/.json and PNGs)")
    _add_evaluation(compare)
    compare.add_argument("--no-progress", action="store_true", help="no progress bar")
    compare.set_defaults(func=_compare)


def _selection(args):
    from mibzoo.experiment import restore_most_invariant

    if args.restore_most_invariant is None:
        if args.invariance_columns is not None:
            raise ValueError("--invariance-columns: needs --restore-most-invariant FROM_EPOCH (the first epoch that "
                             "may be kept)")
        return None
    return restore_most_invariant(args.restore_most_invariant, *(args.invariance_columns or ()))


def _train(args):
    from mibzoo.experiment import train_run

    record = train_run(args.name, args.dataset, args.epochs, args.out, batch_size=args.batch_size, seed=args.seed,
                       overrides=_overrides(args.set) if args.set else None, limit=args.limit,
                       modality_options=_modality_options(args.modality_options), learning_rate=args.learning_rate,
                       data_dir=args.data_dir, image_examples=args.image_examples, verbose=args.verbose,
                       hidden_labels=_hidden_labels(args.hide_labels) if getattr(args, "hide_labels", None) else None,
                       restore_most_invariant=_selection(args))
    selected = f", the weights of epoch {record['selected_epoch']}" if record.get("selected_epoch") else ""
    print(f"trained {record['entry']} on {record['dataset']} for {record['epochs_completed']} epochs "
          f"({record['train_seconds']:.1f} s{selected}): {args.out}")
    if args.evaluate:
        _print_metrics(_evaluate_values(args.out, args))
    return 0


def _evaluate_values(run_dir, args):
    from mibzoo.experiment import evaluate_run

    return evaluate_run(run_dir, metrics=getattr(args, "metrics", None), iwae_k=getattr(args, "iwae_k", 50),
                        limit=getattr(args, "test_limit", None),
                        likelihood_limit=getattr(args, "likelihood_limit", 1000),
                        probe_train_limit=getattr(args, "probe_train_limit", 10000),
                        prior_samples=getattr(args, "prior_samples", 1000),
                        classifier_dir=getattr(args, "classifier_dir", None), data_dir=args.data_dir,
                        seed=getattr(args, "seed", 0), plot_examples=getattr(args, "plot_examples", 8))


def _print_metrics(values):
    width = max((len(k) for k in values), default=0)
    for key, value in values.items():
        print(f"{key:{width}s}  {value:.4f}")


def _evaluate(args):
    values = _evaluate_values(args.run_dir, args)
    _print_metrics(values)
    print(f"written: {args.run_dir}/metrics.json")
    return 0


def _compare(args):
    from mibzoo.compare import compare

    report = compare(args.names, args.dataset, epochs=args.epochs, seeds=args.seeds, batch_size=args.batch_size,
                     limit=args.limit, test_limit=args.test_limit, likelihood_limit=args.likelihood_limit,
                     probe_train_limit=args.probe_train_limit, prior_samples=args.prior_samples, iwae_k=args.iwae_k,
                     learning_rate=args.learning_rate, overrides=_overrides(args.set),
                     modality_options=_modality_options(args.modality_options), metrics=args.metrics,
                     out=args.out, progress=not args.no_progress, data_dir=args.data_dir,
                     classifier_dir=args.classifier_dir)
    print(report.table())
    print(f"written: {args.out}/results.md, results.csv, results.json and PNGs")
    return 0
