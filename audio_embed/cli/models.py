"""``audio-embed models``: the embedders, their dimensions, layers and weights."""

from __future__ import annotations

import argparse
import json

from audio_embed.cli.options import Formatter, Subparsers, common_options
from audio_embed.cli.session import EXIT_FAILURE, PROG, Run

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """The ``models`` subcommand."""
    p = subparsers.add_parser(
        "models",
        parents=[common_options()],
        formatter_class=Formatter,
        help="list the embedders: dimension, layers, weights source, licence, availability",
        description="List the registered embedders. WEIGHTS says whether the model can be "
        "used now without a network (weights in the local cache, or none needed).",
        epilog=f"examples:\n  {PROG} models\n  {PROG} models 'HUBERT*'\n  {PROG} models --json",
    )
    p.add_argument(
        "pattern", nargs="?", metavar="PATTERN", help="shell-style filter, e.g. 'HUBERT*'"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def run(run: Run) -> int:
    from audio_embed.registry import get_spec, list_embedders

    names = list_embedders(run.args.pattern)
    if not names:
        run.warn(f"no embedder matches {run.args.pattern!r}; try `{PROG} models` for all.")
        return EXIT_FAILURE
    rows = []
    for name in names:
        spec = get_spec(name)
        # a multi-layer variant shows the blocks it concatenates
        layers = ",".join(map(str, spec.layers)) if spec.layers else spec.num_layers
        rows.append(
            {
                "name": spec.name,
                "dim": spec.dim,
                "layers": layers,
                "available": spec.available(),
                "license": spec.license,
                "source": spec.source,
                "description": spec.description,
            }
        )
    if run.args.json:
        run.echo(json.dumps(rows, indent=2))
        return 0
    table = [["NAME", "DIM", "LAYERS", "WEIGHTS", "LICENCE", "SOURCE"]]
    for r in rows:
        table.append(
            [
                str(r["name"]),
                str(r["dim"]),
                str(r["layers"] or "-"),
                "yes" if r["available"] else "download",
                str(r["license"]),
                str(r["source"]),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        cells = [
            c.rjust(w) if i in (1, 2) else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        run.echo("  ".join(cells).rstrip())
    run.echo()
    run.echo(
        "WEIGHTS: 'yes' = usable now without a network; 'download' = fetched on first use "
        "(or pass --checkpoint PATH)."
    )
    return 0
