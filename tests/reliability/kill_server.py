"""Runs ``filterprune`` commands in forked children and SIGKILLs them on request.

Started once per test session by test_sigkill.py. It imports torch and filterprune once, then
for every request forks a child that runs ``filterprune.cli.main(argv)`` (one thread, output to a
log file), and kills it with SIGKILL after ``kill_after`` seconds if it is still running. A fork
starts in milliseconds, so many kills fit in a few seconds. The server itself never runs a torch
op, so its children start from a clean (fork-safe) state.

Protocol, one JSON object per line: ``{"argv": [...], "kill_after": 0.4 | null, "log": PATH,
"env": {...}, "err": PATH}`` on stdin (``env``: variables set in the child, e.g. the crash hook's
``FILTERPRUNE_TEST_CRASH_AT``; ``err``: a file for the child's stderr alone, whose fd 2 it is); ``{"killed": bool, "status": int | null, "seconds": float}`` on
stdout. A child that killed itself reports ``killed`` true as well.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time


def _child(argv: list[str], log: str, env: dict[str, str], err: str | None) -> None:
    os.environ.update(env)
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(fd, 1)
        os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) if err else fd, 2)
        import torch

        from filterprune.cli import main

        torch.set_num_threads(1)
        code = main(argv)
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - report anything as a failure status
        code = 99
    os._exit(code)


def _run(
    argv: list[str], kill_after: float | None, log: str, env: dict[str, str], err: str | None
) -> dict:
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(argv, log, env, err)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        elapsed = time.monotonic() - start
        if done:
            code = os.waitstatus_to_exitcode(status)
            killed = code == -signal.SIGKILL  # the crash hook killed it
            return {"killed": killed, "status": None if killed else code, "seconds": elapsed}
        if kill_after is not None and elapsed >= kill_after:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"killed": True, "status": None, "seconds": elapsed}
        time.sleep(0.001)


def serve() -> None:
    import torch  # noqa: F401
    import torch._dynamo  # noqa: F401 - imported lazily by MAC counting; import it once here

    import filterprune.cli.main  # noqa: F401
    import filterprune.report  # noqa: F401
    from filterprune.tasks._deps import require

    require("sklearn.datasets", feature="digits data")  # the built-in data's own imports
    require("sklearn.model_selection", feature="digits data")

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        reply = _run(
            request["argv"],
            request.get("kill_after"),
            request["log"],
            request.get("env") or {},
            request.get("err"),
        )
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    serve()
