#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 server for tests (python3 standard library only).

It listens on two ports of 127.0.0.1, two origins: "primary" and "other"
(a redirect from one to the other crosses origins, and the other one records
what it received). Both serve the files under --root and apply the faults of
--script, a JSON object mapping request paths to a fault:

  {"/short.img": {"file": "disk.img", "close_after": 1000},
   "/moved":     {"redirect": "other:/disk.img"},
   "/gone":      {"status": 410}}

Fault keys (all optional; a path not in the script is served plainly):
  file            file under --root to serve (default: the request path)
  body            literal body text instead of a file
  status          status code (default 200; 302 with "redirect")
  reason          reason phrase (default: the standard one)
  headers         extra response headers, {"Name": "value"}
  redirect        Location: "other:/p" or "primary:/p" (that origin's absolute
                  URL), or any text as is ("/p", "file:///etc/passwd")
  content_length  the Content-Length to declare (a lie when it differs from the
                  body); null: send none and end the body by closing
  chunked         true: Transfer-Encoding: chunked, no Content-Length
  close_after     send only this many body bytes, then close the connection
  reset_after     send this many body bytes, then reset the connection (RST)
  stall_after     send this many body bytes, then send nothing more (the
                  connection stays open until the client goes)
  trickle         {"bytes": n, "interval": seconds}: the body n bytes at a time
  delay_headers   seconds to wait before answering
  times           apply the fault to the first n requests for the path only;
                  later ones are served plainly
  ranges          false: ignore Range headers (default: single ranges
                  "bytes=a-b" / "bytes=a-" are answered with 206)

Every request is appended to --log as one JSON line before it is answered:
  {"origin": "primary", "method": "GET", "target": "/p?q", "path": "/p",
   "query": "q", "headers": {"authorization": "Basic ...", ...}}
(header names in lower case; repeated headers joined with ", ").

When both ports listen, --ports-file receives {"port": P, "other_port": Q}
(written to a temporary name, then renamed). SIGTERM stops the server.
"""

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class State:
    def __init__(self, root, script, log_path):
        self.root = os.path.realpath(root)
        self.script = script
        self.log_path = log_path
        self.lock = threading.Lock()
        self.counts = {}
        self.ports = {}

    def record(self, entry):
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self.lock:
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(line)
                log.flush()

    def fault_for(self, path):
        fault = self.script.get(path)
        if fault is None:
            return {}
        with self.lock:
            count = self.counts.get(path, 0) + 1
            self.counts[path] = count
        times = fault.get("times")
        if times is not None and count > times:
            return {"file": fault.get("file")} if fault.get("file") else {}
        return fault


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fault-server/1"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 - quiet by design
        pass

    def do_GET(self):
        self.answer(send_body=True)

    def do_HEAD(self):
        self.answer(send_body=False)

    # -- request handling -------------------------------------------------

    def answer(self, send_body):
        state = self.server.state
        split = urlsplit(self.path)
        headers = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = headers[key] + ", " + value if key in headers else value
        state.record({
            "origin": self.server.origin_name,
            "method": self.command,
            "target": self.path,
            "path": split.path,
            "query": split.query,
            "headers": headers,
        })
        fault = state.fault_for(split.path)

        delay = fault.get("delay_headers")
        if delay:
            time.sleep(float(delay))

        if "redirect" in fault:
            self.send_redirect(fault)
            return

        status = int(fault.get("status", 200))
        if "body" in fault:
            body = fault["body"].encode("utf-8")
        elif status >= 300 and "file" not in fault:
            body = (HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_
                    else "error").encode("utf-8") + b"\n"
        else:
            body = self.read_file(fault.get("file") or unquote(split.path))
            if body is None:
                self.send_simple(404, b"not found\n")
                return

        extra = {}
        range_header = self.headers.get("Range")
        if (status == 200 and range_header and fault.get("ranges", True)):
            parsed = self.parse_range(range_header, len(body))
            if parsed is None:
                self.send_simple(416, b"range not satisfiable\n",
                                 {"Content-Range": "bytes */%d" % len(body)})
                return
            start, end = parsed
            extra["Content-Range"] = "bytes %d-%d/%d" % (start, end, len(body))
            body = body[start:end + 1]
            status = 206

        self.send_body(status, fault, body, extra, send_body)

    def read_file(self, name):
        path = os.path.realpath(os.path.join(self.server.state.root, name.lstrip("/")))
        if not path.startswith(self.server.state.root + os.sep) or not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return f.read()

    @staticmethod
    def parse_range(header, length):
        if not header.startswith("bytes=") or "," in header:
            return None
        first, _, last = header[len("bytes="):].partition("-")
        try:
            if first == "":
                count = int(last)
                start, end = max(0, length - count), length - 1
            else:
                start = int(first)
                end = int(last) if last else length - 1
        except ValueError:
            return None
        end = min(end, length - 1)
        if start > end or start >= length:
            return None
        return start, end

    def origin_url(self, which, path):
        port = self.server.state.ports[which]
        return "http://127.0.0.1:%d%s" % (port, path)

    def send_redirect(self, fault):
        target = fault["redirect"]
        for which in ("other", "primary"):
            if target.startswith(which + ":"):
                target = self.origin_url(which, target[len(which) + 1:])
        status = int(fault.get("status", 302))
        self.send_response(status, fault.get("reason"))
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        for name, value in fault.get("headers", {}).items():
            self.send_header(name, value)
        self.end_headers()

    def send_simple(self, status, body, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_body(self, status, fault, body, extra, send_body):
        chunked = bool(fault.get("chunked"))
        self.send_response(status, fault.get("reason"))
        self.send_header("Content-Type", "application/octet-stream")
        if fault.get("ranges", True):
            self.send_header("Accept-Ranges", "bytes")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif "content_length" in fault:
            if fault["content_length"] is None:
                self.close_connection = True
                self.send_header("Connection", "close")
            else:
                self.send_header("Content-Length", str(int(fault["content_length"])))
        else:
            self.send_header("Content-Length", str(len(body)))
        for name, value in list(extra.items()) + list(fault.get("headers", {}).items()):
            self.send_header(name, value)
        self.end_headers()
        if not send_body:
            return

        limit = None
        ending = None
        for key in ("close_after", "reset_after", "stall_after"):
            if key in fault:
                limit, ending = int(fault[key]), key
        payload = body if limit is None else body[:limit]
        trickle = fault.get("trickle")
        step = int(trickle["bytes"]) if trickle else 256 * 1024
        interval = float(trickle["interval"]) if trickle else 0.0
        try:
            for offset in range(0, len(payload), step):
                piece = payload[offset:offset + step]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                self.wfile.flush()
                if interval:
                    time.sleep(interval)
            if ending is None:
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                return
            self.end_connection(ending)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def end_connection(self, ending):
        self.wfile.flush()
        self.close_connection = True
        if ending == "close_after":
            self.connection.shutdown(socket.SHUT_RDWR)
        elif ending == "reset_after":
            # SO_LINGER with a zero timeout turns close() into a reset.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        elif ending == "stall_after":
            # Hold the connection open, sending nothing, until the client goes.
            self.connection.settimeout(1.0)
            while True:
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        return
                except socket.timeout:
                    continue
                except OSError:
                    return
                time.sleep(0.2)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, origin_name, state):
        super().__init__(("127.0.0.1", 0), Handler)
        self.origin_name = origin_name
        self.state = state


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="directory whose files are served")
    parser.add_argument("--script", help="JSON file mapping request paths to faults")
    parser.add_argument("--log", required=True, help="JSON lines file recording every request")
    parser.add_argument("--ports-file", required=True, help="where the chosen ports are written")
    args = parser.parse_args()

    script = {}
    if args.script:
        with open(args.script, encoding="utf-8") as f:
            script = json.load(f)
    open(args.log, "w").close()
    state = State(args.root, script, args.log)
    servers = {name: Server(name, state) for name in ("primary", "other")}
    for name, server in servers.items():
        state.ports[name] = server.server_address[1]
    for server in servers.values():
        threading.Thread(target=server.serve_forever, daemon=True).start()

    temporary = args.ports_file + ".tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump({"port": state.ports["primary"], "other_port": state.ports["other"]}, f)
    os.rename(temporary, args.ports_file)
    print("listening on 127.0.0.1:%d and 127.0.0.1:%d" %
          (state.ports["primary"], state.ports["other"]), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    sys.exit(main())
