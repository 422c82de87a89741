"""Render a :class:`~filterprune.report.tables.Table` as Markdown, CSV, JSON or HTML.

Markdown and HTML are for people: formatted values (MACs as K/M/G, sizes with two decimals, N/A
for a missing value) and only the columns that have a value (:meth:`Table.with_values`; e.g. no
latency columns when latency was not measured). CSV and JSON are for programs: every column and
the raw numbers, so they parse back to exactly the table's values.
"""

from __future__ import annotations

import csv
import html
import io
import json
from typing import Any

from filterprune.report.formatting import NUMERIC_KINDS, format_value
from filterprune.report.tables import Column, Table

from ..errors import ConfigError

__all__ = ["table_from_json", "to_csv", "to_html", "to_json", "to_markdown"]


def _cells(table: Table, row: dict[str, Any]) -> list[str]:
    return [format_value(row.get(c.key), c.kind) for c in table.columns]


def to_markdown(table: Table) -> str:
    """GitHub-flavoured Markdown table (numbers right-aligned), then the notes as a bullet list.

    All-empty columns are left out (:meth:`~filterprune.report.tables.Table.with_values`).
    """
    table = table.with_values()

    def escape(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(escape(c.header) for c in table.columns) + " |"
    rule = "| " + " | ".join("---:" if c.kind in NUMERIC_KINDS else "---" for c in table.columns)
    lines = [header, rule + " |"]
    lines += ["| " + " | ".join(escape(x) for x in _cells(table, r)) + " |" for r in table.rows]
    if table.notes:
        lines.append("")
        lines += [f"* {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """CSV with the column keys as header and raw values (``None`` -> empty field)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.keys)
    for row in table.rows:
        writer.writerow(["" if row.get(k) is None else row.get(k) for k in table.keys])
    return buffer.getvalue()


def to_json(table: Table, *, indent: int | None = 2) -> str:
    """JSON object with ``title``, ``columns`` (key, header, kind), ``rows`` and ``notes``."""
    payload = {
        "title": table.title,
        "columns": [{"key": c.key, "header": c.header, "kind": c.kind} for c in table.columns],
        "rows": [{k: row.get(k) for k in table.keys} for row in table.rows],
        "notes": list(table.notes),
    }
    return json.dumps(payload, indent=indent, ensure_ascii=False)


def table_from_json(text: str) -> Table:
    """Inverse of :func:`to_json`."""
    data = json.loads(text)
    try:
        columns = [Column(c["key"], c["header"], c["kind"]) for c in data["columns"]]
        return Table(data["title"], columns, list(data["rows"]), list(data.get("notes", [])))
    except (KeyError, TypeError) as err:
        raise ConfigError(f"table_from_json: not a table written by to_json ({err!r})") from err


def to_html(table: Table) -> str:
    """HTML ``<table>`` (with a caption) followed by the notes as a ``<ul>``; all-empty columns
    are left out, as in :func:`to_markdown`."""
    table = table.with_values()
    esc = html.escape
    parts = [f"<table>\n<caption>{esc(table.title)}</caption>\n<thead><tr>"]
    parts += [f"<th>{esc(c.header)}</th>" for c in table.columns]
    parts.append("</tr></thead>\n<tbody>\n")
    for row in table.rows:
        cells = zip(table.columns, _cells(table, row), strict=True)
        parts.append(
            "<tr>"
            + "".join(
                f'<td style="text-align:right">{esc(v)}</td>'
                if c.kind in NUMERIC_KINDS
                else f"<td>{esc(v)}</td>"
                for c, v in cells
            )
            + "</tr>\n"
        )
    parts.append("</tbody>\n</table>\n")
    if table.notes:
        parts.append(
            '<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in table.notes) + "</ul>\n"
        )
    return "".join(parts)
