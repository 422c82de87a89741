"""Every setting of ``PruneConfig`` has its ``filterprune prune`` flag, and every flag a setting.

A new setting is added in ``filterprune.config``; this test then names the flag it still lacks
(or asks for a line in ``cli.prune.CONFIG_ONLY`` saying why it has none).
"""

from __future__ import annotations

from filterprune.cli.main import build_parser
from filterprune.cli.prune import CONFIG_ONLY, FLAGS, flag_values
from filterprune.config import FLAT, TOP_LEVEL


def _prune_parser():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices["prune"]


def _options() -> set[str]:
    return {o for a in _prune_parser()._actions for o in a.option_strings}


def test_every_setting_has_a_flag_or_a_reason():
    options = _options()
    missing = []
    for name in (*FLAT, *TOP_LEVEL):
        if name in CONFIG_ONLY:
            continue
        flags = FLAGS.get(name, "--" + name.replace("_", "-")).split("/")
        if name == "latency":
            flags = [o for o in options if o.startswith("--latency-")]
        if not flags or not all(f in options for f in flags):
            missing.append(f"{name}: {flags}")
    assert not missing, "settings without their flag:\n" + "\n".join(missing)


def test_the_flags_give_every_setting_and_nothing_else(tmp_path):
    args = build_parser().parse_args(["prune", "--load", str(tmp_path)])
    given = set(flag_values(args, {}))
    settings = {*FLAT, *TOP_LEVEL} - set(CONFIG_ONLY)
    assert given == settings, (sorted(given - settings), sorted(settings - given))


def test_config_only_names_real_settings():
    assert set(CONFIG_ONLY) <= {*FLAT, *TOP_LEVEL}
    assert set(FLAGS) <= {*FLAT, *TOP_LEVEL}
