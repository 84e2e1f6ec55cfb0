"""The engine may send a command's first frames in the same write as its reply's headers (newer engines start the
stream at once). The HTTP layer then holds them in its read buffer: read from the raw socket, as docker-py's exec
socket is (docker/docker-py#3332), they are lost, and whole frames lost leave the rest aligned: a dump would be
stored without its beginning. A real engine cannot be made to do this on demand; a socket server that answers as one
does, every reply in one write, can."""

import json
import socket
import threading
from pathlib import Path

from incarnate.datasources.engine_api import exec_out
from incarnate.host import Host
from tests.unit.test_exec_frames import frame


def reply(status: str, body: bytes = b"", headers: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body


class Engine(threading.Thread):
    """Answers docker-py's requests on a Unix socket; the exec start's reply carries `output` in the same write."""

    def __init__(self, path: Path, output: bytes) -> None:
        super().__init__(daemon=True)
        self.output, self.listener = output, socket.socket(socket.AF_UNIX)
        self.listener.bind(str(path))
        self.listener.listen()

    def run(self) -> None:
        while True:
            connection, _ = self.listener.accept()
            threading.Thread(target=self.serve, args=(connection,), daemon=True).start()

    def serve(self, connection: socket.socket) -> None:
        with connection:
            pending = b""
            while True:
                while b"\r\n\r\n" not in pending:
                    data = connection.recv(65536)
                    if not data:
                        return
                    pending += data
                head, _, pending = pending.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(pending) < length:
                    pending += connection.recv(65536)
                pending = pending[length:]
                path = head.split(b" ")[1].decode()
                if path.endswith("/version"):
                    connection.sendall(reply("200 OK", json.dumps({"ApiVersion": "1.41"}).encode()))
                elif path.endswith("/exec"):
                    connection.sendall(reply("201 Created", json.dumps({"Id": "e1"}).encode()))
                elif path.endswith("/start"):
                    connection.sendall(
                        b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                        b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" + self.output
                    )
                    return  # the stream ends with the connection
                else:  # exec inspect
                    connection.sendall(reply("200 OK", json.dumps({"Running": False, "ExitCode": 0}).encode()))


def test_frames_sent_with_the_engine_s_reply_are_read(tmp_path):
    output = b"-- MariaDB dump 10.19\n" + b"INSERT INTO t VALUES (1);\n" * 100
    engine = Engine(tmp_path / "engine.sock", frame(1, output[:22]) + frame(2, b"warning\n") + frame(1, output[22:]))
    engine.start()
    with exec_out(
        Host(docker_host=f"unix://{tmp_path / 'engine.sock'}"),
        "db",
        ["mariadb-dump"],
        user=None,
        what="dumping database demo",
    ) as stream:
        assert stream.read() == output
