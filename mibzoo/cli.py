"""The `mibzoo` command line (also `python -m mibzoo`).

Each feature area adds its sub-commands through a `register(subparsers)` function in its
own module, listed in `_SUBCOMMAND_MODULES`; this file only wires them together.
"""
import argparse
import importlib
import os
import sys

# Command-line runs hide TensorFlow's C++ start-up chatter (set TF_CPP_MIN_LOG_LEVEL=0 to see it);
# this must happen before anything imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Modules that contribute sub-commands; each defines `register(subparsers)`.
_SUBCOMMAND_MODULES = [
    "mibzoo.registry",
    "mibzoo.data.cli",
    "mibzoo.serving.cli",
    "mibzoo.export",
    "mibzoo.quickstart",
    "mibzoo.runs_cli",
    "mibzoo.reproduce",
]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="mibzoo",
        description="Structured latent-variable generative models (Zhang et al., ICML 2020) as a Keras zoo.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in _SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv=None):
    """Runs the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, OSError, RuntimeError) as err:
        # Errors that mibzoo raises on purpose carry a full explanation:
        # show it without a traceback.
        print(f"mibzoo {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
