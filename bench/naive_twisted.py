"""The naive twisted.web upload: a Resource that reads request.content.

twisted.web has already buffered the whole body (into a temporary file, since
it is over 100 kB) before render_PUT runs; the resource then copies it into
place and fsyncs. Usage: naive_twisted.py PORT_FILE OUT_DIR
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Site


class Upload(Resource):
    isLeaf = True

    def __init__(self, out_dir: Path) -> None:
        super().__init__()
        self.out_dir = out_dir

    def render_PUT(self, request: object) -> bytes:
        target = self.out_dir / "naive.out"
        with target.open("wb") as handle:
            shutil.copyfileobj(request.content, handle, 1 << 20)  # type: ignore[attr-defined]
            handle.flush()
            os.fsync(handle.fileno())
        target.unlink()
        request.setResponseCode(201)  # type: ignore[attr-defined]
        return b""


def main() -> None:
    from twisted.internet import reactor

    running: Any = reactor
    port_file, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    port = running.listenTCP(0, Site(Upload(out_dir)), interface="127.0.0.1")
    port_file.write_text(str(port.getHost().port))
    running.run()


if __name__ == "__main__":
    main()
