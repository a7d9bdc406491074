"""Experiment tracking with DVCLive: losses, learning rate, speed, memory and sample stories.

The same calls feed the stage's Weights & Biases run when W&B is switched on (:mod:`aitale.wandb_run`).

``dvcyaml=False``: the plots are declared in ``dvc.yaml`` by hand, and no tool rewrites it.
Only the main process logs. Samples are written as Markdown and rendered as PNG images,
which ``dvc plots show`` and the DVCLive report display next to the loss curves.

Speed and memory go to a second DVCLive folder: they differ from run to run, so they are a
record of the run (git-tracked under ``metrics/speed/``) rather than part of the stage's
outputs, which are byte-identical for the same params and seed.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from aitale.modeling.wandb_run import OFF, WandbRun
from dvclive import Live


class Tracker:
    def __init__(
        self,
        folder: str | Path,
        speed_folder: str | Path,
        enabled: bool,
        params: dict | None = None,
        wandb: WandbRun = OFF,
    ):
        self.folders = (Path(folder), Path(speed_folder))
        self.enabled = enabled
        self.params = params or {}
        self.live: Live | None = None
        self.speed: Live | None = None
        self.wandb = wandb

    def start(self, resumed: bool, step: int) -> None:
        if not self.enabled:
            return
        if resumed:
            # DVCLive rewrites its summaries in place, so a kill can leave them empty; both are
            # rewritten from here (the step comes from the checkpoint), so start them afresh.
            for folder in self.folders:
                for summary in ("metrics.json", "params.yaml"):
                    (folder / summary).unlink(missing_ok=True)
        self.live, self.speed = (
            Live(str(folder), resume=resumed, dvcyaml=False, save_dvc_exp=False, report=None) for folder in self.folders
        )
        for live in (self.live, self.speed):
            live.step = step
            live.log_params(self.params)
        self.wandb.config(self.params)

    def log_step(self, step: int, metrics: dict[str, float], speed: dict[str, float]) -> None:
        self._log(self.live, step, metrics)
        self._log(self.speed, step, speed)
        self.wandb.log({**metrics, **{f"speed/{name}": value for name, value in speed.items()}}, step)

    def log_eval(self, step: int, metrics: dict[str, float]) -> None:
        self._log(self.live, step, metrics)
        self.wandb.log(metrics, step)

    def log_samples(self, step: int, samples: dict[str, str]) -> None:
        self.wandb.table("samples", [{"step": step, "title": t, "story": s} for t, s in samples.items()], step)
        if self.live is None:
            return
        text = "".join(f"## {title}\n\n{story}\n\n" for title, story in samples.items())
        folder = self.folders[0] / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"step-{step:06d}.md").write_text(f"# Samples at step {step}\n\n{text}", encoding="utf-8")
        self.live.log_image(f"samples/step-{step:06d}.png", render_text(f"Step {step}\n\n{text}"))

    def end(self) -> None:
        for live in (self.live, self.speed):
            if live is not None:
                live.end()

    @staticmethod
    def _log(live: Live | None, step: int, metrics: dict[str, float]) -> None:
        if live is None:
            return
        live.step = step
        for name, value in metrics.items():
            live.log_metric(name, value)
        live.make_summary()


def steps_tsv(text: str) -> dict[int, float]:
    """A DVCLive step plot (``step`` and the metric, tab-separated) as {step: value}."""
    rows = [line.split("\t") for line in text.splitlines()[1:] if line.strip()]
    return {int(row[0]): float(row[-1]) for row in rows}


def loss_curve(loss_tsv: str, seconds_tsv: str) -> list[list[float]]:
    """[seconds of training, train loss] at each step: ``train/loss`` joined to the speed folder's
    ``elapsed_seconds`` (the clock lives with the timings, outside the stage's cached outputs)."""
    loss, seconds = steps_tsv(loss_tsv), steps_tsv(seconds_tsv)
    return [[round(seconds[step], 2), loss[step]] for step in sorted(loss) if step in seconds]


def render_text(text: str, width: int = 100) -> Image.Image:
    """Plain text as a white PNG page: sample stories are read, not plotted."""
    lines = [wrapped for line in text.splitlines() for wrapped in (textwrap.wrap(line, width) or [""])]
    font = ImageFont.load_default()
    line_height = 14
    image = Image.new("RGB", (width * 7 + 20, line_height * len(lines) + 20), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((10, 10 + i * line_height), line, fill="black", font=font)
    return image
