#!/usr/bin/env python3
"""A TCP relay that drops connections mid-way, for tests (standard library only).

It listens on a free port of 127.0.0.1 and relays each connection, bytes as
they are (TLS passes through end to end), to 127.0.0.1:--upstream-port.
--drop-after N1,N2,...: the first connection whose client has sent more than
N1 bytes is closed at that point (both sides, as a network that fails), then
the next one that passes N2, and so on; a connection that never reaches the
next threshold (a short request) passes untouched, as every one does once the
list is used up.

When it listens, --ports-file receives {"port": P} (written to a temporary
name, then renamed). SIGTERM stops it.
"""

import argparse
import json
import os
import select
import socket
import sys
import threading

lock = threading.Lock()
thresholds = []


def take_threshold(sent):
    """Whether a connection that has sent `sent` bytes is to be dropped now."""
    with lock:
        if thresholds and sent > thresholds[0]:
            thresholds.pop(0)
            return True
    return False


def relay(client, upstream_port):
    try:
        upstream = socket.create_connection(("127.0.0.1", upstream_port), timeout=10)
    except OSError:
        client.close()
        return
    sent = 0
    try:
        while True:
            readable, _, _ = select.select([client, upstream], [], [], 120)
            if not readable:
                return
            for source in readable:
                data = source.recv(64 * 1024)
                if not data:
                    return
                if source is client:
                    sent += len(data)
                    if take_threshold(sent):
                        return
                    upstream.sendall(data)
                else:
                    client.sendall(data)
    except OSError:
        return
    finally:
        for sock in (upstream, client):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--drop-after", default="")
    parser.add_argument("--ports-file", required=True)
    args = parser.parse_args()
    thresholds.extend(int(n) for n in args.drop_after.split(",") if n)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    temporary = args.ports_file + ".tmp"
    with open(temporary, "w") as out:
        json.dump({"port": listener.getsockname()[1]}, out)
    os.rename(temporary, args.ports_file)
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=relay, args=(connection, args.upstream_port), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
