"""Resumable checkpoints: kept beside the stage's outputs while a run is unfinished.

DVC deletes a stage's outputs before it runs the stage, so an unfinished run works in
``<checkpoints>.partial``, a folder DVC does not manage, where the next run finds it after a
kill. A finished run publishes the folder's checkpoints (and its DVCLive curves) as the
stage's declared outputs, which DVC then caches, pushes and restores from its run-cache.

A checkpoint is only reused by the run that wrote it: each file carries a fingerprint of
the params, data and tokenizer, and one from a different configuration is discarded.

Checkpoints travel through the team's DVC remote, so loading one must never run code: they
hold only tensors, numbers, strings and containers of them, and are read with
``torch.load(weights_only=True)``, which refuses anything else (a pickle that would call a
function) with :class:`CheckpointError` instead of unpickling it.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from aitale.io import replace_dir

log = logging.getLogger(__name__)

LAST, BEST = "last.pt", "best.pt"
# The wall time a resumed run's curves go on from: beside the checkpoint, never in it, so that a
# published checkpoint holds only what the params and data decide (the same bytes on every rerun).
CLOCK = "clock.json"


class CheckpointError(RuntimeError):
    """A checkpoint file holds something other than tensors and plain values: it is not loaded."""


class Checkpoints:
    def __init__(self, folder: str | Path, fingerprint: str):
        self.published = Path(folder)
        self.folder = self.published.with_name(self.published.name + ".partial")
        self.live = self.folder / "live"  # the run's DVCLive folder until it is published
        self.fingerprint = fingerprint
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in (LAST, BEST):
            if (self.folder / name).exists() and self._read(name) is None:
                log.info("discarding %s: written by a run with other params or data", self.folder / name)
                (self.folder / name).unlink()

    def publish(self, live: str | Path) -> None:
        """The finished run's curves to ``live`` and its checkpoints to the checkpoint folder."""
        if self.live.exists():
            replace_dir(self.live, live)
        (self.folder / CLOCK).unlink(missing_ok=True)
        replace_dir(self.folder, self.published)

    def save_last(self, weights: dict[str, torch.Tensor], optimizer: dict[str, Any], scheduler, state: dict[str, Any]):
        """``weights`` and ``optimizer``: full state dicts, as one process has them (gathered under FSDP);
        ``state["seconds"]``, the wall time so far, goes to the unpublished clock file."""
        state = dict(state)
        (self.folder / CLOCK).write_text(json.dumps({"seconds": state.pop("seconds", 0.0)}))
        self._write(
            LAST,
            {
                "model": weights,
                "optimizer": optimizer,
                "scheduler": scheduler.state_dict(),
                "state": state,
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
            },
        )

    def save_best(self, weights: dict[str, torch.Tensor]) -> None:
        self._write(BEST, {"model": weights})

    def load_last(self) -> dict[str, Any] | None:
        saved = self._read(LAST)
        clock = self.folder / CLOCK
        if saved is not None and clock.exists():
            saved["state"]["seconds"] = json.loads(clock.read_text())["seconds"]
        return saved

    def load_best(self) -> dict[str, torch.Tensor] | None:
        saved = self._read(BEST)
        return None if saved is None else saved["model"]

    def _write(self, name: str, payload: dict[str, Any]) -> None:
        # Written aside and renamed: a kill during the write leaves the previous checkpoint intact.
        tmp = self.folder / f".{name}.tmp"
        torch.save({"fingerprint": self.fingerprint, **payload}, tmp)
        os.replace(tmp, self.folder / name)

    def _read(self, name: str) -> dict[str, Any] | None:
        path = self.folder / name
        if not path.exists():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            found = re.search(r"GLOBAL (\S+)", str(err))
            what = f"it calls {found.group(1)}" if found else "it holds objects other than tensors and values"
            raise CheckpointError(
                f"{path}: refused to load: {what}, and unpickling it could run code. This pipeline did not "
                "write it: delete it to train from the start, and check who can write to the DVC remote"
            ) from None
        return saved if saved.get("fingerprint") == self.fingerprint else None
