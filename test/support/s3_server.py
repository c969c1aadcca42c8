#!/usr/bin/python3
"""A small S3 server for tests: GetObject only, every signature checked.

Run it with /usr/bin/python3: it needs botocore (Debian's python3-botocore),
AWS's own SDK core, whose SigV4 signer recomputes each request's signature.
A request whose signature differs is answered 403, as S3 answers it, with
S3's XML error body. Nothing else of S3 is implemented.

It serves the files under --root: ROOT/BUCKET/KEY is the object KEY of the
bucket BUCKET, addressed either path-style (http://127.0.0.1:PORT/BUCKET/KEY)
or virtual-hosted (http://BUCKET.localhost:PORT/KEY: a Host whose name ends
in ".localhost" names the bucket in its first label; curl resolves every
*.localhost name to the loopback address itself, RFC 6761).

The checks, in the order S3 makes them:
  - an Authorization header "AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/s3/
    aws4_request, SignedHeaders=..., Signature=..." (unsigned requests: 403
    AccessDenied, except for the buckets named by --public-bucket);
  - the access key is --access-key (else 403 InvalidAccessKeyId);
  - host, x-amz-date and x-amz-content-sha256 are signed, and so is every
    x-amz-* header sent and, stricter than S3, a Range and an If-Range
    (else 403 AccessDenied);
  - x-amz-date within 15 minutes of the server's clock (else 403
    RequestTimeTooSkewed), the scope's date its day;
  - with --session-token, x-amz-security-token equals it (else 403
    InvalidToken);
  - the signature botocore computes with --secret-key for the request's
    method, path, signed headers and scope (else 403 SignatureDoesNotMatch);
  - the bucket (404 NoSuchBucket) and the key (404 NoSuchKey) exist.
Then the object is served: 200, or 206 for "Range: bytes=A-" / "bytes=A-B"
(an If-Range that is not the ETag gets the whole object), with S3's ETag
(the MD5 of the content, quoted) and Last-Modified.

--drop BUCKET/KEY:OFFSET (repeatable): the first response for that object
that starts at 0 closes the connection once OFFSET body bytes are sent (a
dropped download); later ones are whole.

--cert and --key (PEM files): HTTPS instead of HTTP.

Each request is appended to --log as a JSON line: method, host, path,
range, signed_headers, status, and body_bytes sent. --ports-file receives
{"port": N} once the server listens on 127.0.0.1.
"""

import argparse
import datetime
import email.utils
import hashlib
import http.server
import json
import os
import re
import socketserver
import ssl
import sys
import threading
import urllib.parse

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request,\s*"
    r"SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$")
RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")
MAX_SKEW = datetime.timedelta(minutes=15)


class S3Error(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cdi-test-s3"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.handle_get(send_body=False)

    def do_GET(self):
        self.handle_get(send_body=True)

    # -- addressing ---------------------------------------------------------

    def locate(self):
        host = self.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host
        raw_path = self.path.split("?", 1)[0]
        path = urllib.parse.unquote(raw_path)
        if name.endswith(".localhost"):
            return name[: -len(".localhost")], path.lstrip("/")
        parts = path.lstrip("/").split("/", 1)
        return parts[0], parts[1] if len(parts) > 1 else ""

    # -- authentication -----------------------------------------------------

    def check_signature(self, bucket):
        options = self.server.options
        authorization = self.headers.get("Authorization")
        if authorization is None:
            if bucket in options.public_bucket:
                return ""
            raise S3Error(403, "AccessDenied", "Access Denied")
        match = AUTH_RE.match(authorization)
        if not match:
            raise S3Error(400, "AuthorizationHeaderMalformed",
                          "The authorization header is malformed.")
        access_key, day, region, service, signed, signature = match.groups()
        if access_key != options.access_key:
            raise S3Error(403, "InvalidAccessKeyId",
                          "The AWS Access Key Id you provided does not exist in our records.")
        signed_names = signed.split(";")
        present = {name.lower() for name in self.headers.keys()}
        required = {"host", "x-amz-date", "x-amz-content-sha256"}
        required |= {n for n in present if n.startswith("x-amz-")}
        required |= {n for n in ("range", "if-range") if n in present}
        unsigned = sorted(required - set(signed_names))
        if unsigned:
            raise S3Error(403, "AccessDenied",
                          "There were headers present in the request which were not signed: "
                          + ", ".join(unsigned))
        missing = [n for n in signed_names if n not in present]
        if missing:
            raise S3Error(403, "AccessDenied",
                          "Signed headers missing from the request: " + ", ".join(missing))
        amz_date = self.headers.get("x-amz-date", "")
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
        except ValueError:
            raise S3Error(403, "AccessDenied", "Invalid x-amz-date " + amz_date)
        if abs(datetime.datetime.utcnow() - when) > MAX_SKEW or day != amz_date[:8]:
            raise S3Error(403, "RequestTimeTooSkewed",
                          "The difference between the request time and the current time is "
                          "too large.")
        token = self.headers.get("x-amz-security-token")
        if options.session_token and token != options.session_token:
            raise S3Error(403, "InvalidToken",
                          "The provided token is malformed or otherwise invalid.")
        if token is not None and not options.session_token:
            raise S3Error(403, "InvalidToken",
                          "The provided token is malformed or otherwise invalid.")

        # AWS's signer recomputes the signature over what the client says it
        # signed.
        headers = {}
        for name in signed_names:
            values = self.headers.get_all(name)
            headers[name] = ",".join(values)
        request = AWSRequest(method=self.command, url="http://" + self.headers["Host"] + self.path,
                             headers=headers)
        request.context["timestamp"] = amz_date
        credentials = Credentials(options.access_key, options.secret_key, token)
        signer = S3SigV4Auth(credentials, service, region)
        canonical = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical)
        expected = signer.signature(string_to_sign, request)
        if signer.signed_headers(signer.headers_to_sign(request)) != signed or expected != signature:
            raise S3Error(403, "SignatureDoesNotMatch",
                          "The request signature we calculated does not match the signature "
                          "you provided. Check your key and signing method.")
        return signed

    # -- the object ---------------------------------------------------------

    def handle_get(self, send_body):
        entry = {"method": self.command, "host": self.headers.get("Host", ""),
                 "path": self.path, "range": self.headers.get("Range", ""),
                 "signed_headers": "", "status": 0, "body_bytes": 0}
        try:
            bucket, key = self.locate()
            entry["signed_headers"] = self.check_signature(bucket)
            bucket_dir = os.path.join(self.server.options.root, bucket)
            if not bucket or "/" in bucket or bucket.startswith(".") or \
                    not os.path.isdir(bucket_dir):
                raise S3Error(404, "NoSuchBucket", "The specified bucket does not exist")
            path = os.path.normpath(os.path.join(bucket_dir, key))
            if not key or not path.startswith(bucket_dir + os.sep) or not os.path.isfile(path):
                raise S3Error(404, "NoSuchKey", "The specified key does not exist.")
            self.send_object(bucket + "/" + key, path, entry, send_body)
        except S3Error as error:
            body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
                    "<Message>%s</Message><Resource>%s</Resource>"
                    "<RequestId>cdi-test</RequestId></Error>" % (
                        error.code, error.message, self.path.split("?", 1)[0])).encode()
            entry["status"] = error.status
            self.send_response(error.status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.deliver(entry, body if send_body else b"")
        finally:
            if not entry.pop("recorded", False):
                self.server.record(entry)

    def deliver(self, entry, payload):
        # The request is logged before its last bytes leave: a client that has
        # read the whole answer finds it in the log.
        entry["body_bytes"] = len(payload)
        self.server.record(entry)
        entry["recorded"] = True
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def send_object(self, name, path, entry, send_body):
        with open(path, "rb") as f:
            data = f.read()
        size = len(data)
        etag = '"%s"' % hashlib.md5(data).hexdigest()
        modified = email.utils.formatdate(os.stat(path).st_mtime, usegmt=True)
        first, last = 0, size - 1
        status = 200
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if wanted and (if_range is None or if_range in (etag, modified)):
            match = RANGE_RE.match(wanted)
            if match:
                first = int(match.group(1))
                if match.group(2):
                    last = min(int(match.group(2)), size - 1)
                if first >= size or first > last:
                    raise S3Error(416, "InvalidRange", "The requested range is not satisfiable")
                status = 206
        body = data[first:last + 1]
        cut = None
        if status == 200 and send_body:
            cut = self.server.take_drop(name)
        entry["status"] = status
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", modified)
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, size))
        if cut is not None:
            self.send_header("Connection", "close")
        if not send_body:
            self.deliver(entry, b"")
        elif cut is not None:
            self.close_connection = True
            self.deliver(entry, body[:cut])
        else:
            self.deliver(entry, body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, options):
        super().__init__(("127.0.0.1", options.port), Handler)
        self.options = options
        self.lock = threading.Lock()
        self.drops = {}
        for spec in options.drop:
            name, offset = spec.rsplit(":", 1)
            self.drops[name] = int(offset)

    def take_drop(self, name):
        with self.lock:
            return self.drops.pop(name, None)

    def record(self, entry):
        if not self.options.log:
            return
        with self.lock, open(self.options.log, "a") as log:
            log.write(json.dumps(entry) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--session-token", default="")
    parser.add_argument("--public-bucket", action="append", default=[])
    parser.add_argument("--drop", action="append", default=[])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", default="")
    parser.add_argument("--ports-file", default="")
    parser.add_argument("--cert", default="")
    parser.add_argument("--key", default="")
    options = parser.parse_args()
    options.root = os.path.realpath(options.root)
    server = Server(options)
    if options.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(options.cert, options.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    if options.ports_file:
        temporary = options.ports_file + ".tmp"
        with open(temporary, "w") as f:
            json.dump({"port": str(server.server_address[1])}, f)
        os.rename(temporary, options.ports_file)
    else:
        print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
