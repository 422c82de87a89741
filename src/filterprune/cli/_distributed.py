"""The subcommands under torchrun: join the process group, pick this rank's device, quiet the rest.

``torchrun --nproc-per-node N -m filterprune prune ...`` starts N copies of the command. Each
joins the group that torchrun describes in its environment; without torchrun nothing changes.
"""

from __future__ import annotations

import argparse
import atexit

import torch

from ..parallel import init_from_env, is_distributed, is_main_process, local_process_index
from ._output import setup_logging


def join_torchrun(args: argparse.Namespace) -> bool:
    """Join torchrun's process group if launched by torchrun (``WORLD_SIZE`` > 1).

    Then sets ``args.device`` to this rank's GPU, ``cuda:LOCAL_RANK``, when it is unset or
    ``cuda`` and CUDA is available (``cpu`` otherwise), and ``args.quiet`` on every rank but 0.
    The group is left when the process exits.

    Returns:
        Whether this process writes files and prints: rank 0, or the only process.
    """
    joined = False
    if not is_distributed():
        joined = init_from_env()
        if not joined:
            return True
    if args.device in (None, "cuda"):
        args.device = f"cuda:{local_process_index()}" if torch.cuda.is_available() else "cpu"
    if not is_main_process():
        args.quiet = True
        setup_logging(quiet=True)
    if joined:
        atexit.register(_leave)
    return is_main_process()


def _leave() -> None:
    if is_distributed():
        # leave together: a rank that tears its group down while another still finishes its
        # work (rank 0 saving) can be aborted by the collective library's threads at exit
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
