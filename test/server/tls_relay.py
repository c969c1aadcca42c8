#!/usr/bin/env python3
"""A TLS front for a plain TCP service on 127.0.0.1, for tests (standard library only).

It accepts TLS connections on a free port of 127.0.0.1 with --cert and --key,
and relays each one, decrypted, to 127.0.0.1:--upstream-port. In front of
tinyproxy it makes an https:// proxy: TLS between the client and the proxy.

When it listens, --ports-file receives {"port": P} (written to a temporary
name, then renamed). SIGTERM stops it.
"""

import argparse
import json
import os
import select
import socket
import ssl
import sys
import threading


def relay(client, upstream_port):
    try:
        upstream = socket.create_connection(("127.0.0.1", upstream_port), timeout=10)
    except OSError:
        client.close()
        return
    try:
        while True:
            readable, _, _ = select.select([client, upstream], [], [], 120)
            if not readable:
                return
            for source in readable:
                data = source.recv(256 * 1024)
                if not data:
                    return
                (upstream if source is client else client).sendall(data)
    except (OSError, ssl.SSLError):
        return
    finally:
        upstream.close()
        client.close()


def serve(listener, context, upstream_port):
    while True:
        connection, _ = listener.accept()

        def handshake_then_relay(connection=connection):
            try:
                wrapped = context.wrap_socket(connection, server_side=True)
            except (OSError, ssl.SSLError):
                # A client that refuses our certificate: nothing to relay.
                connection.close()
                return
            relay(wrapped, upstream_port)

        threading.Thread(target=handshake_then_relay, daemon=True).start()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--ports-file", required=True)
    args = parser.parse_args()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)

    temporary = args.ports_file + ".tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump({"port": listener.getsockname()[1]}, f)
    os.rename(temporary, args.ports_file)
    print("relaying TLS on 127.0.0.1:%d to 127.0.0.1:%d" %
          (listener.getsockname()[1], args.upstream_port), flush=True)
    serve(listener, context, args.upstream_port)


if __name__ == "__main__":
    sys.exit(main())
