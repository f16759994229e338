"""`mibzoo serve BASE`: TF Serving's REST (and gRPC) API over a model base directory."""
import logging
import signal


def register(subparsers):
    """Adds ``mibzoo serve`` to the command line."""
    parser = subparsers.add_parser(
        "serve",
        help="serve exported models with TF Serving's REST API (local development server)",
        description=(
            "Serve every model version under BASE (BASE/NAME/VERSION/, as exported by "
            "mibzoo) with TF Serving's REST API: GET /v1/models/NAME[/metadata], POST "
            "/v1/models/NAME[/versions/N]:predict. New versions dropped into BASE are picked "
            "up while running. For production use the tensorflow/serving image "
            "(serving/README.md)."
        ),
    )
    parser.add_argument("base", metavar="BASE", help="the model base directory")
    parser.add_argument("--port", type=_port, default=8501, help="REST port (default: 8501; 0 picks a free one)")
    parser.add_argument(
        "--host", default="127.0.0.1",
        help="interface to bind (default: 127.0.0.1, this machine only; 0.0.0.0 for all)",
    )
    parser.add_argument(
        "--max-batch", type=int, default=1024,
        help="largest batch accepted per request (default: 1024)",
    )
    parser.add_argument(
        "--grpc-port", type=_port, default=None,
        help="also serve TF Serving's gRPC API on this port (TF Serving uses 8500)",
    )
    parser.add_argument(
        "--poll-seconds", type=float, default=1.0,
        help="how often BASE is rescanned for new versions (default: 1)",
    )
    parser.add_argument(
        "--request-timeout", type=float, default=30.0,
        help="seconds allowed per request (default: 30)",
    )
    parser.set_defaults(func=_serve_command)


def _port(text):
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port: expected 0..65535 (0 picks a free one)")
    return value


def _serve_command(args):
    from pathlib import Path

    from mibzoo.serving.local_server import LocalServer

    if not Path(args.base).is_dir():
        raise FileNotFoundError(f"{args.base}: no such directory (export a model there first)")
    if args.max_batch < 1:
        raise ValueError(f"--max-batch {args.max_batch}: expected a positive integer")
    for flag, value in (("--poll-seconds", args.poll_seconds), ("--request-timeout", args.request_timeout)):
        if not value > 0 or value == float("inf"):
            raise ValueError(f"{flag} {value}: expected a finite number of seconds > 0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # The session loader logs every checkpoint restore at INFO; keep the server log ours.
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    server = LocalServer(
        args.base,
        host=args.host,
        port=args.port,
        max_batch=args.max_batch,
        grpc_port=args.grpc_port,
        poll_seconds=args.poll_seconds,
        request_timeout=args.request_timeout,
    )
    server.start()
    models = server.manager.model_names()
    print(f"serving {len(models)} model(s) from {args.base}: {', '.join(models) or '(none yet)'}")
    print(f"REST: {server.url}/v1/models/<NAME>" + (
        f"   gRPC: {server.grpc_target}" if server.grpc_target else ""))
    print("Ctrl-C to stop.", flush=True)
    # `docker stop`, CI runners and process managers send SIGTERM: stop as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    server.serve_forever()
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt
