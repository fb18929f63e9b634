"""A free local TCP port for a server a benchmark or test starts.

Its own module, without imports of the pipeline, so that ``tests/conftest.py`` can share it
without pulling Dagster (as ``served_ui`` does) into every test session.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
