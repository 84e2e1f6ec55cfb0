"""A TCP forwarder for the tests: `python forward.py LISTEN_HOST:PORT TARGET_HOST:PORT`, every connection copied both
ways until either side closes. Run inside a network namespace (`ip netns exec`), it listens there."""

import socket
import sys
import threading


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for side in (source, target):
            try:
                side.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    server = socket.create_server(listen, reuse_port=True)
    while True:
        client, _ = server.accept()
        try:
            upstream = socket.create_connection(target, timeout=10)
        except OSError:
            client.close()
            continue
        upstream.settimeout(None)
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=pipe, args=(source, sink), daemon=True).start()


if __name__ == "__main__":
    serve(address(sys.argv[1]), address(sys.argv[2]))
