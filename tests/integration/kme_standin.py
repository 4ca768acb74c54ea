#!/usr/bin/env python3
"""A stand-in for a QKD device's ETSI GS QKD 014 KME, for the southbound
tests (no device here): one HTTPS server with mutual TLS that plays both
ends of one QKD link, as ETSI GS QKD 014 v1.1.1 describes them.

  kme_standin.py --port P --cert C --key K --ca CA --master SAE --slave SAE
                 [--key-size BITS] [--max-per-request N] [--ready FILE]

The caller is the SAE its verified client certificate names (subject CN).
  GET  /api/v1/keys/{peer}/status       either SAE, peer the other one
  GET|POST /api/v1/keys/{slave}/enc_keys  the master SAE only: fresh random
                                        keys, each remembered for the slave
  GET|POST /api/v1/keys/{master}/dec_keys the slave SAE only: the keys of
                                        those IDs, each served once
Wrong SAE: 401; unknown or already served key IDs, bad size or number:
400 with an Error object ("keys not found"). Each request is logged on
stdout as one line ("enc 34", "dec 34", "status slave", "refused 401 ...")
so a test can count them. Key material is never printed.
"""
import argparse
import base64
import json
import os
import ssl
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LOCK = threading.Lock()
WAITING = {}  # key ID -> key bytes, taken by enc_keys, not yet by dec_keys


def log(line):
    with LOCK:
        print(line, flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as libcurl expects

    def log_message(self, fmt, *args):  # quiet: our own lines only
        pass

    def caller(self):
        cert = self.connection.getpeercert()
        for rdn in cert.get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    return v
        return None

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, code, message):
        log("refused %d %s" % (code, message))
        self.reply(code, {"message": message})

    def params(self):
        q = parse_qs(urlparse(self.path).query)
        if self.command == "POST":
            n = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(n) if n > 0 else b"{}"
            try:
                return json.loads(raw or b"{}"), q
            except ValueError:
                return None, q
        return {}, q

    def route(self):
        a = self.server.args
        parts = urlparse(self.path).path.strip("/").split("/")
        if len(parts) != 5 or parts[:3] != ["api", "v1", "keys"]:
            return self.error(404, "no such path")
        peer, what = parts[3], parts[4]
        me = self.caller()
        body, q = self.params()
        if body is None:
            return self.error(400, "bad JSON")
        if what == "status":
            if (me, peer) not in ((a.master, a.slave), (a.slave, a.master)):
                return self.error(401, "unauthorized")
            log("status %s" % ("master" if me == a.master else "slave"))
            with LOCK:
                stored = 1000000 - len(WAITING)
            return self.reply(200, {
                "source_KME_ID": "kme-standin", "target_KME_ID": "kme-standin",
                "master_SAE_ID": me, "slave_SAE_ID": peer,
                "key_size": a.key_size, "stored_key_count": stored,
                "max_key_count": 1000000,
                "max_key_per_request": a.max_per_request,
                "max_key_size": 8192, "min_key_size": 8,
                "max_SAE_ID_count": 0})
        if what == "enc_keys":
            if me != a.master or peer != a.slave:
                return self.error(401, "unauthorized")
            number = int(body.get("number", q.get("number", [1])[0]))
            size = int(body.get("size", q.get("size", [a.key_size])[0]))
            if size % 8 or not 8 <= size <= 8192:
                return self.error(400, "bad size")
            if not 1 <= number <= a.max_per_request:
                return self.error(400, "bad number")
            keys = []
            with LOCK:
                for _ in range(number):
                    kid, k = str(uuid.uuid4()), os.urandom(size // 8)
                    WAITING[kid] = k
                    keys.append({"key_ID": kid,
                                 "key": base64.b64encode(k).decode()})
            log("enc %d" % number)
            return self.reply(200, {"keys": keys})
        if what == "dec_keys":
            if me != a.slave or peer != a.master:
                return self.error(401, "unauthorized")
            if self.command == "POST":
                ids = [x.get("key_ID") for x in body.get("key_IDs", [])]
            else:
                ids = q.get("key_ID", [])
            with LOCK:
                if not ids or any(i not in WAITING for i in ids):
                    found = None
                else:
                    found = [(i, WAITING.pop(i)) for i in ids]
            if found is None:
                return self.error(400, "keys not found")
            log("dec %d" % len(found))
            # the order of the answer is not the order asked: a KM must
            # match keys by ID
            found.reverse()
            return self.reply(200, {"keys": [
                {"key_ID": i, "key": base64.b64encode(k).decode()}
                for i, k in found]})
        return self.error(404, "no such path")

    do_GET = route
    do_POST = route


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--master", required=True)
    p.add_argument("--slave", required=True)
    p.add_argument("--key-size", type=int, default=256)
    p.add_argument("--max-per-request", type=int, default=64)
    p.add_argument("--ready")
    args = p.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.load_verify_locations(args.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED  # mutual TLS
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.args = args
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    if args.ready:
        with open(args.ready, "w") as f:
            f.write("%d\n" % os.getpid())
    log("ready")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
