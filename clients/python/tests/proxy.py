"""A loopback HTTP/1.1 proxy that can lose an answer: it forwards each request to the server,
reads the server's whole response, and for a request that `drop` selects closes the client's
connection instead of passing the response on — the server has committed, the client never
hears. Enough HTTP for this API: Content-Length bodies, keep-alive."""

from __future__ import annotations

import socket
import threading
from typing import Callable


def _read_message(sock: socket.socket, buf: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf.extend(chunk)
    head_end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:head_end])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(buf) < head_end + length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf.extend(chunk)
    message = bytes(buf[: head_end + length])
    del buf[: head_end + length]
    return message


_PROBLEM = (b'{"type":"/problems/unavailable","title":"Unavailable","status":503,'
            b'"code":"unavailable","detail":"shutting down","request_id":"r"}')
UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n"
    b"retry-after: 1\r\ncontent-length: " + str(len(_PROBLEM)).encode() + b"\r\n\r\n" + _PROBLEM
)


class LossyProxy:
    """``drop(request)``: lose the server's answer; ``refuse(request)``: answer 503 with
    ``Retry-After: 1`` without passing the request on (as a server that is shutting down)."""

    def __init__(self, upstream: str, drop: Callable[[bytes], bool],
                 refuse: Callable[[bytes], bool] = lambda _: False):
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.drop = drop
        self.refuse = refuse
        self.dropped = 0
        self.refused = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        from_client, from_server = bytearray(), bytearray()
        try:
            while True:
                request = _read_message(client, from_client)
                if request is None:
                    return
                if self.refuse(request):
                    self.refused += 1
                    client.sendall(UNAVAILABLE)
                    continue
                upstream.sendall(request)
                response = _read_message(upstream, from_server)
                if response is None:
                    return
                if self.drop(request):
                    self.dropped += 1
                    return  # the answer is lost with the connection
                client.sendall(response)
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self.listener.close()
