"""Listening sockets bound before the server starts, so port 0 can be announced."""

from __future__ import annotations

import socket

__all__ = ["bind_socket", "url_for"]


def bind_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket. `IPPROTO_TCP` is given explicitly: asyncio turns on TCP_NODELAY only
    for sockets whose protocol says TCP, and without it every response waits ~40 ms on the
    peer's delayed ACK."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def url_for(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
