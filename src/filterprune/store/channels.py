"""``channels.txt`` and width specs: plain descriptions of a pruned architecture's widths.

``channels.txt`` (written into a U-Net run folder, read by ``--channel-txt``) holds one positive
integer per line: the output channels of each conv layer, in module order (blank lines and
``#`` comments are skipped). A width spec (``--spec``) is JSON: a plan (as in ``plan.json``) or
an object ``{layer: channels}`` (optionally under ``"widths"``). Both are untrusted input: errors
name the file, the line or layer, and the fix. :mod:`filterprune.store.widths` turns them into
plans.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError, MissingFileError
from ..plan import Plan
from .files import atomic_write_text, read_text

__all__ = ["read_channel_txt", "read_spec", "write_channel_txt"]


def read_spec(path: str | Path) -> Plan | dict[str, int]:
    """Read a JSON spec: a plan (as in ``plan.json``) or widths ``{layer: channels}``.

    The widths may also sit under a ``"widths"`` key.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"spec file {str(path)!r} does not exist")
    try:
        data = json.loads(read_text(path, what="spec file"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"spec file {str(path)!r} is not valid JSON ({exc})") from None
    if isinstance(data, dict) and "removed_outputs" in data:
        return Plan.from_dict(data, source=str(path))
    if isinstance(data, dict) and isinstance(data.get("widths"), dict):
        data = data["widths"]
    if not isinstance(data, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in data.values()
    ):
        raise ConfigError(
            f"spec file {str(path)!r} must hold a plan or an object layer -> channel count, e.g. "
            '{"inc.0": 32, "inc.3": 48}'
        )
    return dict(data)


def write_channel_txt(path: str | Path, channels: list[int]) -> Path:
    """Write one integer per line (atomically)."""
    return atomic_write_text(path, "".join(f"{int(c)}\n" for c in channels))


def read_channel_txt(path: str | Path, *, expected: int | None = None) -> list[int]:
    """Read a channel list: one positive integer per line (blank lines and ``#`` comments skipped).

    Args:
        path: The text file.
        expected: The number of lines required (the model's conv count), if known.

    Raises:
        FileNotFoundError: The file is missing.
        ValueError: A line is not an integer or not positive, or the count is wrong; the message
            names the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"channel list {str(path)!r} does not exist")
    channels = []
    for number, raw in enumerate(read_text(path, what="channel list").splitlines(), 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(
                f"{path}:{number}: {text!r} is not an integer; write one channel count per line"
            ) from None
        if value < 1:
            raise ConfigError(f"{path}:{number}: channel count must be >= 1, got {value}")
        channels.append(value)
    if expected is not None and len(channels) != expected:
        raise ConfigError(
            f"{path}: has {len(channels)} channel counts but the model has {expected} conv layers; "
            "write one line per conv layer, in order (see filterprune.loop.channel_layers)"
        )
    return channels
