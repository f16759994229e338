"""`mibzoo reproduce NAME`: one command per published table of the paper.

Each table lives in its own module of this package (``table3.py``: fair representation learning,
``table4.py``: out-of-distribution generalization, ...) and defines ``TABLE``, a `Table` naming
what it reproduces and the function that runs it. Tables are discovered by module, so adding one
is adding a file: no list to edit, no dispatch over names.

```
mibzoo reproduce list
mibzoo reproduce table3 --out docs/
```
"""
import dataclasses
import importlib
import pathlib
import pkgutil
from typing import Callable

from mibzoo.errors import did_you_mean


@dataclasses.dataclass(frozen=True)
class Table:
    """A published result that one command reproduces.

    Attributes:
        name: the command's argument (``"table3"``).
        title: what the table shows, with the paper's section.
        run: ``run(out_dir, seeds, quick, **options) -> path of the written report``.
        default_seeds: seeds used when the command gives none.
        add_arguments: optional ``add_arguments(parser)`` for table-specific options; the parsed
            values reach ``run`` as keyword arguments (``dest`` names).
    """

    name: str
    title: str
    run: Callable
    default_seeds: tuple = (0, 1, 2, 3, 4)
    add_arguments: Callable = None


def write_generated_block(path, generated, title, begin, end):
    """Writes a table's generated report block (``generated``, which starts with the ``begin`` marker
    and ends with the ``end`` one) into the markdown file ``path``: it replaces the text between the
    markers and keeps everything outside them; a file without the markers becomes ``# title`` and
    the block. Written atomically (`mibzoo.files.write_text`)."""
    from mibzoo.files import write_text

    path = pathlib.Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + generated.rstrip("\n") + rest.split(end, 1)[1]
    else:
        text = f"# {title}\n\n" + generated
    write_text(path, text)


def tables():
    """``{name: Table}`` of every module in this package that defines ``TABLE``."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        table = getattr(module, "TABLE", None)
        if isinstance(table, Table):
            found[table.name] = table
    return dict(sorted(found.items()))


def get(name):
    """The `Table` called ``name``; unknown names get a `ValueError` listing the known ones."""
    known = tables()
    if name not in known:
        raise ValueError(f"unknown table {name!r}.{did_you_mean(name, known)} Reproducible tables: "
                         f"{', '.join(known) or 'none'}")
    return known[name]


def register(subparsers):
    """`mibzoo reproduce NAME [--out DIR] [--seeds ...] [--quick]` and `mibzoo reproduce list`."""
    parser = subparsers.add_parser("reproduce", help="reproduce a table of the paper with one command")
    sub = parser.add_subparsers(dest="table", metavar="TABLE")
    sub.required = True
    listing = sub.add_parser("list", help="the tables this command reproduces")
    listing.set_defaults(func=_list_command)
    for table in tables().values():
        one = sub.add_parser(table.name, help=table.title)
        one.add_argument("--out", default="docs", help="folder of the written report (default docs/)")
        one.add_argument("--seeds", type=int, nargs="+", default=None,
                         help=f"seeds (default {' '.join(map(str, table.default_seeds))})")
        one.add_argument("--quick", action="store_true",
                         help="a small budget that checks the pipeline end to end (not the published budget)")
        if table.add_arguments is not None:
            table.add_arguments(one)
        one.set_defaults(func=_run_command, table_obj=table)


def _list_command(args):
    for table in tables().values():
        print(f"{table.name:10s} {table.title}")
    return 0


def _run_command(args):
    table = args.table_obj
    options = {k: v for k, v in vars(args).items()
               if k not in ("command", "table", "table_obj", "func", "out", "seeds", "quick")}
    seeds = args.seeds if args.seeds is not None else list(table.default_seeds)
    path = table.run(args.out, seeds=seeds, quick=args.quick, **options)
    print(f"written: {path}")
    return 0
