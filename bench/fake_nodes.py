"""Many nodes in one process, for measuring the pinger: each a real noded
NodeProtocol over its own AMP port, with its own (empty) files.

usage: fake_nodes.py COUNT SECRET WORK_DIR   (writes WORK_DIR/fake-nodes.json)
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

from twisted.internet.protocol import Factory
from twisted.internet.threads import deferToThread

from noded.config import load_config
from noded.files import NodeFiles
from noded.node import Node, NodeProtocol


def main() -> None:
    from twisted.internet import reactor

    running: Any = reactor
    count, secret, work = int(sys.argv[1]), sys.argv[2].encode(), Path(sys.argv[3])
    ports = {}
    for index in range(count):
        name = f"fake{index:02d}"
        config = load_config(
            environ={},
            options={("node", "data_dir"): str(work / name), ("node", "id"): name},
        )
        node = Node(config, NodeFiles(work / name), secret, deferToThread, running)
        factory = Factory.forProtocol(functools.partial(NodeProtocol, node))
        port = running.listenTCP(0, factory, interface="127.0.0.1")
        ports[name] = port.getHost().port
    (work / "fake-nodes.json").write_text(json.dumps(ports))
    running.run()


if __name__ == "__main__":
    main()
