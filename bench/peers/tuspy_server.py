"""tuspyserver (a FastAPI router) on uvicorn, on loopback, on a free port.

usage: python tuspy_server.py PORT_FILE DIRECTORY  (run in the peers venv)
"""

import socket
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from tuspyserver import create_tus_router

port_file, directory = Path(sys.argv[1]), sys.argv[2]
app = FastAPI()
app.include_router(create_tus_router(prefix="files", files_dir=directory))
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(128)
port_file.write_text(str(listener.getsockname()[1]))
server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
server.run(sockets=[listener])
