"""The image's entrypoint: `serve` (or no command) starts the service; anything else is exec'd.
A service that fails to import or start is one line on stderr; `serve --verbose` shows its traceback.

`python3 -m ocibuild.runtime.entrypoint` needs no shell, so it works on distroless bases.
The image config names the service in `OCIBUILD_SERVICE` and sets the working directory to the
service source.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    if argv and argv[0] != "serve":
        os.execvp(argv[0], argv)
    args = argv[1:]
    verbose = "--verbose" in args
    args = [a for a in args if a != "--verbose"]
    port = None
    if args[:1] == ["--port"] and len(args) == 2 and args[1].isascii() and args[1].isdigit():
        port = int(args[1])
    elif args:
        print("usage: serve [--port PORT] [--verbose]", file=sys.stderr)
        return 2
    from ocibuild.contract import SERVICE_ENV, SRC_ENV
    from ocibuild.errors import OcibuildError
    from ocibuild.runtime.server import serve

    try:
        serve(Path(os.environ.get(SRC_ENV, ".")), os.environ[SERVICE_ENV], port=port)
    except OcibuildError as exc:
        if verbose:  # the user's own traceback is chained to the error
            traceback.print_exc()
        else:
            print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
