"""A one-page summary of a pruning run: ``summary.md`` and ``summary.html`` in the run folder."""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from filterprune.report.render import to_html, to_markdown
from filterprune.report.tables import Table
from filterprune.store.files import atomic_write_text

__all__ = ["MAX_HTML_COLUMNS", "split_columns", "write_summary"]

MAX_HTML_COLUMNS = 9  # wider tables are split into parts (the first column repeated) on the page

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;"
    "color:#222}"
    "table{border-collapse:collapse;margin:0.6em 0 1.4em;font-size:13px;max-width:100%}"
    "td,th{border:1px solid #ccc;padding:3px 7px;overflow-wrap:anywhere}"
    "td.n{text-align:right;white-space:nowrap}th{background:#f3f3f3}"
    "caption{font-weight:bold;text-align:left;padding-bottom:4px}"
    "ul.notes{font-size:13px;margin-top:-0.8em}"
    "img{max-width:100%;height:auto}figure{margin:1em 0}"
)

ImagePaths = Iterable[str | os.PathLike | Iterable[str | os.PathLike]]


def split_columns(table: Table, limit: int = MAX_HTML_COLUMNS) -> list[Table]:
    """``table`` as parts of at most ``limit`` columns, each starting with the first column.

    A table that fits is returned as is; the parts are titled ``"<title> (1/3)"`` and so on,
    and the notes go with the last part.
    """
    if len(table.columns) <= limit:
        return [table]
    key, rest = table.columns[0], table.columns[1:]
    step = limit - 1
    chunks = [rest[i : i + step] for i in range(0, len(rest), step)]
    return [
        Table(
            f"{table.title} ({n}/{len(chunks)})",
            [key, *chunk],
            [{c.key: row.get(c.key) for c in (key, *chunk)} for row in table.rows],
            list(table.notes) if n == len(chunks) else [],
        )
        for n, chunk in enumerate(chunks, 1)
    ]


def _flatten_images(images: ImagePaths) -> list[Path]:
    """Flatten nested paths (e.g. the ``(png, svg)`` pairs the plot functions return).

    When both ``x.png`` and ``x.svg`` are given, only the PNG is kept.
    """
    flat: list[Path] = []
    for item in images:
        if isinstance(item, str | os.PathLike):
            flat.append(Path(item))
        else:
            flat += [Path(p) for p in item]
    pngs = {p.with_suffix("") for p in flat if p.suffix.lower() == ".png"}
    unique: list[Path] = []
    for p in flat:
        if p.suffix.lower() == ".svg" and p.with_suffix("") in pngs:
            continue
        if p not in unique:
            unique.append(p)
    return unique


def _link(image: Path, run_dir: Path) -> str:
    """Image path relative to ``run_dir`` when possible (so the folder can be moved), else absolute."""
    try:
        return Path(os.path.relpath(image.resolve(), run_dir.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return image.resolve().as_posix()


def write_summary(
    run_dir: str | Path,
    *,
    settings: Table | None = None,
    iteration_table: Table | None = None,
    layer_table: Table | None = None,
    tables: Sequence[Table | None] = (),
    images: ImagePaths = (),
    title: str = "filterprune run summary",
) -> Path:
    """Write ``summary.md`` (and ``summary.html``) into ``run_dir`` with tables and figures.

    Args:
        run_dir: Run folder; created if missing. Images are linked relative to it.
        settings: The run's settings and machine (:func:`~filterprune.report.run_settings`),
            shown first.
        iteration_table: Table from :func:`~filterprune.report.tables.iteration_table`.
        layer_table: Table from :func:`~filterprune.report.tables.layer_table`.
        tables: More tables shown after those two (e.g. latency, deployment); ``None`` entries
            are skipped.
        images: Image paths, or the ``(png, svg)`` pairs returned by the plot functions.
        title: Page heading.

    Returns:
        Path of ``summary.md``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tables = [t for t in (settings, iteration_table, layer_table, *tables) if t is not None]
    links = [(p.stem, _link(p, run_dir)) for p in _flatten_images(images)]

    md = [f"# {title}", ""]
    for table in tables:
        md += [f"## {table.title}", "", to_markdown(table)]
    if links:
        md += ["## Figures", ""]
        md += [f"![{stem}]({link})\n" for stem, link in links]
    md_path = run_dir / "summary.md"
    atomic_write_text(md_path, "\n".join(md))

    esc = html.escape
    page = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{_STYLE}</style>",
        f"</head><body><h1>{esc(title)}</h1>",
    ]
    page += [to_html(part) for table in tables for part in split_columns(table.with_values())]
    if links:
        page.append("<h2>Figures</h2>")
        page += [
            f'<figure><img src="{esc(link)}" alt="{esc(stem)}"><figcaption>{esc(stem)}'
            "</figcaption></figure>"
            for stem, link in links
        ]
    page.append("</body></html>\n")
    atomic_write_text(run_dir / "summary.html", "\n".join(page))
    return md_path
