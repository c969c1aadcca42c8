#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 server for tests (python3 standard library only).

It listens on two ports of 127.0.0.1, two origins: "primary" and "other"
(a redirect from one to the other crosses origins, and the other one records
what it received). Both serve the files under --root and apply the faults of
--script, a JSON object mapping request paths to a fault:

  {"/short.img": {"file": "disk.img", "close_after": 1000},
   "/moved":     {"redirect": "other:/disk.img"},
   "/gone":      {"status": 410},
   "/flaky":     {"file": "disk.img", "status": 503, "times": 2,
                  "headers": {"Retry-After": "1"}}}

Fault keys (all optional; a path not in the script is served plainly):
  file            file under --root to serve (default: the request path)
  body            literal body text instead of a file
  status          status code (default 200; 302 with "redirect")
  reason          reason phrase (default: the standard one)
  headers         extra response headers, {"Name": "value"}
  header_lines    more header lines, sent as given after all others, names
                  repeatable: [["Content-Length", "2097152"], ...]
  filler_headers  {"count": n, "bytes": m}: n more headers "X-Filler-i" with
                  values of m bytes each (oversized headers)
  excess          after the body, this many bytes more than it declares; the
                  headers, the whole body and these go out in one write (for
                  small bodies), and the connection closes
  raw             literal bytes sent instead of a response, then the
                  connection closes (replies that are not HTTP)
  redirect        Location: "other:/p" or "primary:/p" (that origin's absolute
                  URL), or any text as is ("/p", "file:///etc/passwd")
  content_length  the Content-Length to declare (a lie when it differs from the
                  body); null: send none and end the body by closing
  chunked         true: Transfer-Encoding: chunked, no Content-Length
  close_after     the connection closes when the body reaches this offset of
                  the file: a response from offset 0 sends that many bytes, one
                  that starts at the offset (a resume) sends none
  reset_after     the same, resetting the connection (RST)
  stall_after     the same, then nothing more is sent (the connection stays
                  open until the client goes)
  close_every     each response sends this many bytes, then closes (so that
                  every resume gets further)
  gate            {"after": n, "file": path}: at offset n, wait until `path`
                  exists, then go on; with "reached": path2, create path2 on
                  arriving there. A list of them: a gate at each offset
  trickle         {"bytes": n, "interval": seconds}: the body n bytes at a time
  delay_headers   seconds to wait before answering
  times           apply the fault to the first n requests for the path only;
                  later ones get "then" (default: served plainly, the same file)
  then            the fault for the requests after the first `times`; it may
                  have "times" and "then" of its own
  ranges          false: ignore Range headers and send no Accept-Ranges
                  (default: single ranges "bytes=a-b" / "bytes=a-" are
                  answered with 206)
  if_range        false: ignore If-Range (default: a Range whose If-Range does
                  not match the ETag or Last-Modified gets the whole body, 200)
  content_range   the Content-Range to declare on a 206 (a lie)
  etag            the ETag to send; false: none (default: from the file's
                  inode, modification time and size, or the body's digest)
  last_modified   the Last-Modified to send; false: none (default: the file's
                  modification time)
  head_status     status code for HEAD requests (e.g. 405: HEAD refused)

Every request is appended to --log as one JSON line before it is answered:
  {"origin": "primary", "method": "GET", "target": "/p?q", "path": "/p",
   "query": "q", "headers": {"authorization": "Basic ...", ...}}
(header names in lower case; repeated headers joined with ", ").

Every response is appended to --sent-log (when given) once it ended:
  {"origin": "primary", "method": "GET", "path": "/p", "status": 206,
   "first": 1000, "bytes": 5000, "ending": "complete"}
where first is the offset of its first body byte, bytes the body bytes written
to the socket, and ending one of complete, close, reset, stall, client (the
client went away).

CONNECT host:port requests (from clients using this server as a proxy) are
recorded the same way, then tunnelled when the host is 127.0.0.1 or localhost.

When both ports listen, --ports-file receives {"port": P, "other_port": Q}
(written to a temporary name, then renamed). SIGTERM stops the server.
"""

import argparse
import email.utils
import hashlib
import json
import os
import select
import socket
import struct
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

PIECE = 256 * 1024


class State:
    def __init__(self, root, script, log_path, sent_log_path):
        self.root = os.path.realpath(root)
        self.script = script
        self.log_path = log_path
        self.sent_log_path = sent_log_path
        self.lock = threading.Lock()
        self.counts = {}
        self.ports = {}

    def append(self, path, entry):
        if not path:
            return
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self.lock:
            with open(path, "a", encoding="utf-8") as log:
                log.write(line)
                log.flush()

    def record(self, entry):
        self.append(self.log_path, entry)

    def record_sent(self, entry):
        self.append(self.sent_log_path, entry)

    def fault_for(self, path):
        fault = self.script.get(path)
        if fault is None:
            return {}
        with self.lock:
            count = self.counts.get(path, 0) + 1
            self.counts[path] = count
        # Walk the chain: each link covers "times" requests, then "then".
        while True:
            times = fault.get("times")
            if times is None or count <= times:
                return fault
            count -= times
            if "then" in fault:
                fault = fault["then"]
            else:
                return {"file": fault.get("file")} if fault.get("file") else {}


class Body:
    """The bytes of a response: a file read piece by piece, or literal bytes."""

    def __init__(self, path=None, data=None):
        self.path = path
        self.data = data
        if path is not None:
            info = os.stat(path)
            self.length = info.st_size
            self.etag = '"%x-%x-%x"' % (info.st_ino, info.st_mtime_ns, info.st_size)
            self.last_modified = email.utils.formatdate(info.st_mtime, usegmt=True)
        else:
            self.length = len(data)
            self.etag = '"b-%s"' % hashlib.sha1(data).hexdigest()[:16]
            self.last_modified = "Mon, 01 Jan 2024 00:00:00 GMT"

    def pieces(self, start, end, step):
        """Yields the bytes [start, end) in pieces of at most `step`."""
        if self.path is None:
            for offset in range(start, end, step):
                yield self.data[offset:min(end, offset + step)]
            return
        with open(self.path, "rb") as f:
            f.seek(start)
            offset = start
            while offset < end:
                piece = f.read(min(step, end - offset))
                if not piece:
                    return
                offset += len(piece)
                yield piece


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

    def do_CONNECT(self):
        self.record_request()
        host, _, port = self.path.rpartition(":")
        if host not in ("127.0.0.1", "localhost") or not port.isdigit():
            self.send_simple(403, b"tunnels to 127.0.0.1 only\n")
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
        except OSError:
            self.send_simple(502, b"cannot connect\n")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        client = self.connection
        try:
            while True:
                readable, _, _ = select.select([client, upstream], [], [], 60)
                if not readable:
                    return
                for source in readable:
                    data = source.recv(PIECE)
                    if not data:
                        return
                    (upstream if source is client else client).sendall(data)
        except OSError:
            return
        finally:
            upstream.close()

    # -- request handling -------------------------------------------------

    def record_request(self):
        split = urlsplit(self.path)
        headers = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = headers[key] + ", " + value if key in headers else value
        self.server.state.record({
            "origin": self.server.origin_name,
            "method": self.command,
            "target": self.path,
            "path": split.path,
            "query": split.query,
            "headers": headers,
        })
        return split

    def answer(self, send_body):
        state = self.server.state
        split = self.record_request()
        fault = state.fault_for(split.path)

        delay = fault.get("delay_headers")
        if delay:
            time.sleep(float(delay))

        if "raw" in fault:
            self.close_connection = True
            self.wfile.write(fault["raw"].encode("latin-1"))
            self.wfile.flush()
            return

        if not send_body and "head_status" in fault:
            self.send_simple(int(fault["head_status"]), b"")
            return

        if "redirect" in fault:
            self.send_redirect(fault)
            return

        status = int(fault.get("status", 200))
        if "body" in fault:
            body = Body(data=fault["body"].encode("utf-8"))
        elif status >= 300:
            body = Body(data=(HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_
                              else "error").encode("utf-8") + b"\n")
        else:
            path = self.file_path(fault.get("file") or unquote(split.path))
            if path is None:
                self.send_simple(404, b"not found\n")
                return
            body = Body(path=path)

        etag = fault.get("etag", body.etag)
        last_modified = fault.get("last_modified", body.last_modified)
        extra = {}
        if etag:
            extra["ETag"] = etag
        if last_modified:
            extra["Last-Modified"] = last_modified

        start, end = 0, body.length
        range_header = self.headers.get("Range")
        if status == 200 and range_header and fault.get("ranges", True):
            if_range = self.headers.get("If-Range")
            honour = (if_range is None or not fault.get("if_range", True)
                      or if_range in (etag, last_modified))
            if honour:
                parsed = self.parse_range(range_header, body.length)
                if parsed is None:
                    self.send_simple(416, b"range not satisfiable\n",
                                     {"Content-Range": "bytes */%d" % body.length})
                    return
                start, last = parsed
                end = last + 1
                extra["Content-Range"] = fault.get(
                    "content_range", "bytes %d-%d/%d" % (start, last, body.length))
                status = 206

        self.send_body(status, fault, body, start, end, extra, send_body)

    def file_path(self, name):
        root = self.server.state.root
        path = os.path.realpath(os.path.join(root, name.lstrip("/")))
        if not path.startswith(root + os.sep) or not os.path.isfile(path):
            return None
        return path

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
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_body(self, status, fault, body, start, end, extra, send_body):
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
            self.send_header("Content-Length", str(end - start))
        for name, value in list(extra.items()) + list(fault.get("headers", {}).items()):
            self.send_header(name, value)
        filler = fault.get("filler_headers")
        if filler:
            value = "f" * int(filler["bytes"])
            for number in range(int(filler["count"])):
                self.send_header("X-Filler-%d" % number, value)
        for name, value in fault.get("header_lines", []):
            self.send_header(name, value)
        excess = int(fault.get("excess", 0))
        if excess and send_body:
            self.send_header("Connection", "close")
            self._headers_buffer.append(b"\r\n")
            whole = b"".join(self._headers_buffer) + b"".join(
                body.pieces(start, end, PIECE)) + b"x" * excess
            self._headers_buffer = []
            self.wfile.write(whole)
            self.wfile.flush()
            self.server.state.record_sent({
                "origin": self.server.origin_name, "method": self.command,
                "path": urlsplit(self.path).path, "status": status, "first": start,
                "bytes": end - start + excess, "ending": "complete"})
            return
        self.end_headers()
        if not send_body:
            return

        # Where this response stops early: an offset of the file.
        stop_at, ending = end, None
        for key in ("close_after", "reset_after", "stall_after"):
            if key in fault and start <= int(fault[key]) <= end:
                stop_at, ending = int(fault[key]), key
        if "close_every" in fault and start + int(fault["close_every"]) < stop_at:
            stop_at, ending = start + int(fault["close_every"]), "close_after"
        gates = fault.get("gate") or []
        if isinstance(gates, dict):
            gates = [gates]
        gates = sorted((g for g in gates if start <= int(g["after"]) < stop_at),
                       key=lambda g: int(g["after"]))
        trickle = fault.get("trickle")
        step = int(trickle["bytes"]) if trickle else PIECE
        interval = float(trickle["interval"]) if trickle else 0.0
        sent = 0
        result = "complete"
        try:
            offset = start
            cuts = [start] + [int(g["after"]) for g in gates] + [stop_at]
            segments = list(zip(cuts, cuts[1:]))
            for number, (first, last) in enumerate(segments):
                if number > 0:
                    gate = gates[number - 1]
                    self.wfile.flush()
                    if gate.get("reached"):
                        open(gate["reached"], "w").close()
                    while not os.path.exists(gate["file"]):
                        time.sleep(0.02)
                for piece in body.pieces(first, last, step):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                    self.wfile.flush()
                    sent += len(piece)
                    offset += len(piece)
                    if interval:
                        time.sleep(interval)
            if ending is None:
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            else:
                result = {"close_after": "close", "reset_after": "reset",
                          "stall_after": "stall"}[ending]
                self.end_connection(ending)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            result = "client"
        finally:
            self.server.state.record_sent({
                "origin": self.server.origin_name,
                "method": self.command,
                "path": urlsplit(self.path).path,
                "status": status,
                "first": start,
                "bytes": sent,
                "ending": result,
            })

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
    request_queue_size = 64

    def __init__(self, origin_name, state):
        super().__init__(("127.0.0.1", 0), Handler)
        self.origin_name = origin_name
        self.state = state


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="directory whose files are served")
    parser.add_argument("--script", help="JSON file mapping request paths to faults")
    parser.add_argument("--log", required=True, help="JSON lines file recording every request")
    parser.add_argument("--sent-log", help="JSON lines file recording every response sent")
    parser.add_argument("--ports-file", required=True, help="where the chosen ports are written")
    args = parser.parse_args()

    script = {}
    if args.script:
        with open(args.script, encoding="utf-8") as f:
            script = json.load(f)
    open(args.log, "w").close()
    if args.sent_log:
        open(args.sent_log, "w").close()
    state = State(args.root, script, args.log, args.sent_log)
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
