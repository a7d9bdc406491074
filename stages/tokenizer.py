"""Tokenizer stage: learn (scratch) or extend (pretrained base) the tokenizer.

    python -m stages.tokenizer --train data/processed/train.jsonl --output-dir models/tokenizer

The result is written with ``save_pretrained``: ``AutoTokenizer.from_pretrained`` loads it.
"""

from __future__ import annotations

import logging
import sys

from aitale import cli
from aitale.errors import ParamsError
from aitale.io import atomic_dir, read_jsonl
from aitale.modeling.tokenizer import build_tokenizer
from aitale.params import ModelParams, load_section

log = logging.getLogger("tokenizer")


def main(argv: list[str] | None = None) -> int:
    parser = cli.stage_parser(__doc__, ModelParams, "model")
    parser.add_argument("--train", required=True, help="train split (jsonl); scratch tokenizers learn from it alone")
    parser.add_argument("--output-dir", required=True, help="folder for the save_pretrained tokenizer")
    args = parser.parse_args(argv)
    cli.setup_logging()
    try:
        params = load_section(ModelParams, "model", args.config, cli.overrides(args))
    except ParamsError as err:
        log.error("%s", err)
        return 2
    texts = [record["structured"] for record in read_jsonl(args.train)]
    tokenizer = build_tokenizer(params, texts)
    with atomic_dir(args.output_dir) as staging:
        tokenizer.save_pretrained(staging)
    log.info("tokenizer: %d tokens (base: %s) -> %s", len(tokenizer), params.base, args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
