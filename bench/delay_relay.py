#!/usr/bin/env python3
"""A TCP relay that makes 127.0.0.1 look like a far, narrow link (python3
standard library only), for benchmarks:

  delay_relay.py --listen-port-file F --upstream 127.0.0.1:PORT \
      [--rtt-ms 50] [--connection-rate BYTES/S] [--link-rate BYTES/S]

Every connection to the relay's port (127.0.0.1, chosen free, written to F)
is forwarded to the upstream, and:
  - each direction's bytes are held half of --rtt-ms before they go on, so a
    request and its answer take one round trip more (what tc netem's delay
    does, without privileges);
  - each connection's bytes are paced to --connection-rate (a token bucket
    with 128 KiB of burst): the cap a server or a shaper puts on each flow;
  - all connections together are paced to --link-rate: the link.
0 means no cap. SIGTERM stops it.
"""

import argparse
import asyncio
import os
import signal
import socket
import time

READ = 64 * 1024
BURST = 128 * 1024


class Bucket:
    """Pacing to `rate` bytes/s; the debt of a large take is waited off."""

    def __init__(self, rate):
        self.rate = rate
        self.tokens = BURST
        self.stamp = time.monotonic()

    async def take(self, count):
        if not self.rate:
            return
        now = time.monotonic()
        self.tokens = min(BURST, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= count
        if self.tokens < 0:
            await asyncio.sleep(-self.tokens / self.rate)


async def pipe(reader, writer, delay, buckets):
    """Copies reader to writer, each piece `delay` seconds late, paced."""
    line = asyncio.Queue(maxsize=4096)

    async def receive():
        while True:
            data = await reader.read(READ)
            for bucket in buckets:
                await bucket.take(len(data))
            await line.put((time.monotonic() + delay, data))
            if not data:
                return

    async def send():
        while True:
            due, data = await line.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(receive(), send())
    except (ConnectionError, OSError):
        pass


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen-port-file", required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--rtt-ms", type=float, default=50)
    parser.add_argument("--connection-rate", type=float, default=0)
    parser.add_argument("--link-rate", type=float, default=0)
    args = parser.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    delay = args.rtt_ms / 2000.0
    link_down = Bucket(args.link_rate)
    link_up = Bucket(args.link_rate)

    async def serve(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return
        for w in (client_writer, server_writer):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        down = [Bucket(args.connection_rate), link_down]
        up = [Bucket(args.connection_rate), link_up]
        await asyncio.gather(pipe(server_reader, client_writer, delay, down),
                             pipe(client_reader, server_writer, delay, up))
        for w in (client_writer, server_writer):
            w.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    listen_port = server.sockets[0].getsockname()[1]
    tmp = args.listen_port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(str(listen_port))
    os.rename(tmp, args.listen_port_file)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
