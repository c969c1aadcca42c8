#!/usr/bin/env python3
"""A Bearer token server for registry tests (python3 standard library only).

It answers the distribution spec's token requests,
  GET /token?service=SERVICE&scope=repository:NAME:pull,push
with {"token": JWT, "access_token": JWT, "expires_in": 300}, as the
docker-registry's token authentication (auth: token: in its config)
expects them: a JWT signed RS256 with --key, whose certificate --cert goes
in the x5c header (the registry trusts it through its rootcertbundle),
issuer --issuer, audience the service asked for.

Credentials: with --user and --password, a request must carry them as Basic
auth (else 401); without them every request is anonymous. --anonymous-pull
lets requests without credentials have pull access anyway. A request with
wrong credentials is always refused (401).

It listens on a free port of 127.0.0.1 (HTTPS with --tls-cert and --tls-key),
writes {"port": N} to --ports-file once listening, and appends one JSON line
per request to --log: {"path", "query", "authorization": "basic"|"none"}.
"""
import argparse
import base64
import http.server
import json
import ssl
import subprocess
import sys
import time
import urllib.parse


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(args, audience, access):
    with open(args.cert, "rb") as f:
        pem = f.read().decode()
    der = base64.b64decode("".join(
        line for line in pem.splitlines() if line and not line.startswith("-----")))
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
    now = int(time.time())
    claims = {"iss": args.issuer, "sub": "cdi-test", "aud": audience,
              "exp": now + 300, "nbf": now - 10, "iat": now,
              "jti": "%d-%f" % (now, time.monotonic()), "access": access}
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(claims).encode()))
    signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", args.key],
                               input=signing_input.encode(), capture_output=True,
                               check=True).stdout
    return signing_input + "." + b64url(signature)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--key", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--anonymous-pull", action="store_true")
    parser.add_argument("--tls-cert", default="")
    parser.add_argument("--tls-key", default="")
    parser.add_argument("--ports-file", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *unused):
            pass

        def answer(self, status, body, headers=()):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            authorization = self.headers.get("Authorization", "")
            authenticated = False
            if authorization.lower().startswith("basic "):
                try:
                    user, _, password = base64.b64decode(
                        authorization[6:].strip()).decode().partition(":")
                except ValueError:
                    user, password = "", None
                if not args.user or user != args.user or password != args.password:
                    self.log(url, query, "basic-wrong")
                    return self.answer(401, {"details": "wrong credentials"},
                                       [("WWW-Authenticate", 'Basic realm="token"')])
                authenticated = True
            self.log(url, query, "basic" if authenticated else "none")
            if url.path != "/token":
                return self.answer(404, {"details": "not found"})
            if args.user and not authenticated and not args.anonymous_pull:
                return self.answer(401, {"details": "credentials required"},
                                   [("WWW-Authenticate", 'Basic realm="token"')])
            access = []
            for scope in query.get("scope", []):
                parts = scope.split(":")
                if len(parts) < 3:
                    continue
                actions = parts[-1].split(",")
                if not authenticated:
                    actions = [a for a in actions if a == "pull"]
                access.append({"type": parts[0], "name": ":".join(parts[1:-1]),
                               "actions": actions})
            audience = query.get("service", [""])[0]
            token = make_token(args, audience, access)
            self.answer(200, {"token": token, "access_token": token, "expires_in": 300,
                              "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                         time.gmtime())})

        def log(self, url, query, authorization):
            with open(args.log, "a") as f:
                f.write(json.dumps({"path": url.path, "query": url.query,
                                    "authorization": authorization}) + "\n")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(args.ports_file + ".tmp", "w") as f:
        json.dump({"port": server.server_address[1]}, f)
    import os
    os.rename(args.ports_file + ".tmp", args.ports_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
