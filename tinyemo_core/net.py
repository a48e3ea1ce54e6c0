"""Small networking helpers shared by the local servers (the Prefect server and the generator server)."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (bind to port 0 and read back what the kernel chose)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
