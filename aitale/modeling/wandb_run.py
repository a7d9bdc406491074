"""Weights & Biases beside DVCLive, for a team that reviews its runs there: one W&B run per stage run.

Switched on from the environment, never from params, so that switching it on or off reruns no stage:
``AITALE_WANDB=1``, or W&B's own ``WANDB_MODE`` (``offline``, ``online``) or ``WANDB_PROJECT``;
``WANDB_MODE=disabled`` keeps it off. W&B writes under ``wandb/`` in ``$WANDB_DIR``, else in the DVC
project's root (``$DVC_ROOT``, which ``dvc exp run`` points at the project even when a run executes
in a temporary copy), else in the working folder: no stage declares that folder and git ignores it, so
the outputs and ``dvc.lock`` are the same with W&B on or off.

Runs are grouped by the git commit and, under ``dvc exp run``, the experiment's name (DVC gives it to
the stages as ``DVC_EXP_NAME``); ``WANDB_RUN_GROUP`` names another group.
"""

from __future__ import annotations

import logging
import os
import subprocess

log = logging.getLogger(__name__)

SWITCH = "AITALE_WANDB"
PROJECT = "ai-tale"  # unless WANDB_PROJECT names another
NO_KEY = (
    "W&B tracking is on (%s) but no W&B key was found: `wandb login` or WANDB_API_KEY sends runs to W&B, "
    "WANDB_MODE=offline writes them under wandb/ for a later `wandb sync`; going on with DVCLive alone"
)


class WandbRun:
    """A W&B run, or none when W&B is off: every call is then a no-op, so that callers never branch."""

    def __init__(self, run=None):
        self.run = run

    def config(self, values: dict) -> None:
        if self.run is not None:
            self.run.config.update(values, allow_val_change=True)

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)

    def table(self, name: str, rows: list[dict], step: int | None = None) -> None:
        """``rows`` (dicts with the same keys) as a W&B table: the keys are its columns."""
        if self.run is None or not rows:
            return
        import wandb

        columns = list(rows[0])
        self.log({name: wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in rows])}, step)

    def finish(self, summary: dict | None = None) -> None:
        if self.run is None:
            return
        self.run.summary.update(summary or {})
        self.run.finish()
        self.run = None


OFF = WandbRun()  # W&B switched off: shared, since it holds nothing


def start_run(stage: str, config: dict | None = None, enabled: bool = True) -> WandbRun:
    """The stage run's W&B run, named after its DVC stage (``specialise@age-3-5``), or a no-op one when W&B
    is off, ``enabled`` is false (a process other than the main one), or there is no key to send it with."""
    if not (enabled and (switch := switched_on(os.environ))):
        return OFF
    import wandb

    if os.environ.get("WANDB_MODE", "online") not in ("offline", "dryrun") and not wandb.api.api_key:
        log.warning(NO_KEY, switch)  # and never wandb's login prompt, which would wait for an answer
        return OFF
    try:
        run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", PROJECT),
            group=os.environ.get("WANDB_RUN_GROUP") or group(os.environ),
            job_type=stage.split("@")[0],
            name=stage,
            config=config or {},
            dir=os.environ.get("WANDB_DIR") or os.environ.get("DVC_ROOT"),
        )
    except wandb.Error as err:  # online, and the server refuses the key or cannot be reached
        log.warning("W&B: %s; going on with DVCLive alone", err)
        return OFF
    return WandbRun(run)


def switched_on(environ) -> str | None:
    """The variable that switches W&B on, if any."""
    if environ.get("WANDB_MODE") == "disabled":
        return None
    if environ.get(SWITCH) == "1":
        return f"{SWITCH}=1"
    return next((name for name in ("WANDB_MODE", "WANDB_PROJECT") if environ.get(name)), None)


def group(environ) -> str:
    """The short sha of the commit checked out, then the experiment's name under ``dvc exp run``."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    except OSError:  # no git
        commit = ""
    return "-".join(part for part in (commit.strip() or "no-commit", environ.get("DVC_EXP_NAME")) if part)
