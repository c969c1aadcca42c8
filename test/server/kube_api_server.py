#!/usr/bin/env python3
"""A stand-in for the Kubernetes API server in tests (python3 standard library only).

It holds one DataImportCron (--namespace, --name) with the annotations of
--annotations (a JSON object), and answers, over HTTPS (--tls-cert,
--tls-key) on a free port of 127.0.0.1:
  GET   /apis/cdi.kubevirt.io/v1beta1/namespaces/NS/dataimportcrons/NAME
  PATCH the same, with a JSON patch (application/json-patch+json) of "add"
        operations under /metadata/annotations/, applied to the object
Requests must carry "Authorization: Bearer --token" (else 401). Each request
is appended to --log as a JSON line: {"method", "path", "content_type",
"body"}. {"port": N} goes to --ports-file once listening.
"""
import argparse
import http.server
import json
import os
import ssl
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--annotations", default="{}")
    parser.add_argument("--token", required=True)
    parser.add_argument("--tls-cert", required=True)
    parser.add_argument("--tls-key", required=True)
    parser.add_argument("--ports-file", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    path = "/apis/cdi.kubevirt.io/v1beta1/namespaces/%s/dataimportcrons/%s" % (
        args.namespace, args.name)
    cron = {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataImportCron",
            "metadata": {"name": args.name, "namespace": args.namespace,
                         "annotations": json.loads(args.annotations)}}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *unused):
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_request(self, method):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode() if length else ""
            with open(args.log, "a") as f:
                f.write(json.dumps({"method": method, "path": self.path,
                                    "content_type": self.headers.get("Content-Type", ""),
                                    "body": body}) + "\n")
            if self.headers.get("Authorization", "") != "Bearer " + args.token:
                return self.answer(401, {"kind": "Status", "message": "Unauthorized"})
            if self.path != path:
                return self.answer(404, {"kind": "Status", "message": "dataimportcrons not found"})
            if method == "PATCH":
                for op in json.loads(body):
                    prefix = "/metadata/annotations/"
                    if op.get("op") != "add" or not op.get("path", "").startswith(prefix):
                        return self.answer(422, {"kind": "Status", "message": "bad patch"})
                    key = op["path"][len(prefix):].replace("~1", "/").replace("~0", "~")
                    cron["metadata"]["annotations"][key] = op["value"]
            self.answer(200, cron)

        def do_GET(self):
            self.handle_request("GET")

        def do_PATCH(self):
            self.handle_request("PATCH")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(args.ports_file + ".tmp", "w") as f:
        json.dump({"port": server.server_address[1]}, f)
    os.rename(args.ports_file + ".tmp", args.ports_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
