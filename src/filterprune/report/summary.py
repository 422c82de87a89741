"""A one-page summary of a pruning run: ``summary.md`` and ``summary.html`` in the run folder."""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from filterprune.report.render import to_html, to_markdown
from filterprune.report.tables import Table
from filterprune.store.files import atomic_write_text

__all__ = ["write_summary"]

ImagePaths = Iterable[str | os.PathLike | Iterable[str | os.PathLike]]


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
    iteration_table: Table | None = None,
    layer_table: Table | None = None,
    tables: Sequence[Table | None] = (),
    images: ImagePaths = (),
    title: str = "filterprune run summary",
) -> Path:
    """Write ``summary.md`` (and ``summary.html``) into ``run_dir`` with tables and figures.

    Args:
        run_dir: Run folder; created if missing. Images are linked relative to it.
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
    tables = [t for t in (iteration_table, layer_table, *tables) if t is not None]
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
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px}"
        "caption{font-weight:bold;text-align:left}img{max-width:100%}</style>",
        f"</head><body><h1>{esc(title)}</h1>",
    ]
    page += [to_html(table) for table in tables]
    if links:
        page.append("<h2>Figures</h2>")
        page += [f'<p><img src="{esc(link)}" alt="{esc(stem)}"></p>' for stem, link in links]
    page.append("</body></html>\n")
    atomic_write_text(run_dir / "summary.html", "\n".join(page))
    return md_path
