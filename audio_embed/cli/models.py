"""``audio-embed models``: the embedders, their dimensions, layers and weights, and
(``--settings``) the ``--model-option`` keys each takes, with their defaults."""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any

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
        epilog=f"examples:\n  {PROG} models\n  {PROG} models 'HUBERT*'\n  {PROG} models --json\n"
        f"  {PROG} models BIRDNET_V24 --settings",
    )
    p.add_argument(
        "pattern", nargs="?", metavar="PATTERN", help="shell-style filter, e.g. 'HUBERT*'"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--settings",
        action="store_true",
        help="also list the settings each model takes (--model-option KEY=VALUE) with their "
        "defaults (the JSON always has them)",
    )
    return p


def _setting(value: Any) -> str:
    """A default as --model-option KEY=VALUE reads it back (text, else compact JSON)."""
    if value is None:
        return "auto"  # the model chooses: from its weights or its other settings
    if value is inspect.Parameter.empty:
        return "required"
    from audio_embed.registry import setting_text

    return setting_text(value)


def _settings_json(defaults: dict[str, Any] | None) -> dict[str, Any] | None:
    if defaults is None:
        return None
    return {
        k: "required" if v is inspect.Parameter.empty else (list(v) if isinstance(v, tuple) else v)
        for k, v in defaults.items()
    }


def run(run: Run) -> int:
    from audio_embed.registry import get_spec, list_embedders, setting_defaults

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
                "settings": _settings_json(setting_defaults(name)),
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
    if not run.args.settings:
        run.echo(f"Each model's settings (--model-option KEY=VALUE): {PROG} models NAME --settings")
        return 0
    run.echo()
    run.echo("SETTINGS (--model-option KEY=VALUE; default after '='; auto: the model chooses):")
    width = max(len(str(r["name"])) for r in rows)
    for r in rows:
        defaults = setting_defaults(str(r["name"]))
        if defaults is None:
            text = "not declared by its factory (a wrong key names them when it can)"
        else:
            text = " ".join(f"{k}={_setting(v)}" for k, v in defaults.items()) or "none"
        run.echo(f"{str(r['name']).ljust(width)}  {text}")
    return 0
