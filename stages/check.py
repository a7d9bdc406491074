"""Check stage: validate every section of params.yaml at once, before any other stage runs.

Every stage of ``dvc.yaml`` depends on ``--output``, so ``dvc repro`` (and ``dvc exp run``) runs
this first: a bad value stops the run here, naming every invalid key with its value and the
accepted range, before DVC deletes any other stage's outputs. The output's content is the same
for all valid params, so a valid edit reruns only the stages that read the edited key.

    python -m stages.check                     # what `make check` runs
    python -m stages.check --output metrics/params_check.json
"""

from __future__ import annotations

import argparse
import logging
import sys

from aitale import cli
from aitale.errors import ParamsError
from aitale.io import write_json
from aitale.params import load_params

log = logging.getLogger("check")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=cli.DEFAULT_CONFIG, help="params file (default: %(default)s)")
    parser.add_argument("--output", help="file written when the params are valid (the same content every time)")
    args = parser.parse_args(argv)
    cli.setup_logging()
    try:
        load_params(args.config)
    except ParamsError as err:
        log.error(
            "%s\nNothing was run. Fix the keys above; no output was changed "
            "(`git checkout params.yaml` goes back to the committed params).",
            err,
        )
        return 2
    if args.output:
        write_json(args.output, {"params": args.config, "valid": True})
    log.info("%s: every section is valid", args.config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
