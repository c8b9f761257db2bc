"""`python -m bot.devstack.serving --port P --model_config_file F --ssl_config_file S ...`"""

from __future__ import annotations

import logging
import os
import sys

from bot.devstack.serving.flags import parse_flags
from bot.devstack.serving.server import run


def main() -> int:
    flags = parse_flags(sys.argv[1:])
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(levelname).1s %(name)s] %(message)s",
        datefmt="%H:%M:%S",
    )
    return run(flags)


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    # A reload that waits forever for a new model (as upstream's does) keeps a gRPC worker thread blocked;
    # interpreter shutdown would join it and hang, so exit like a killed server process does.
    os._exit(code)
