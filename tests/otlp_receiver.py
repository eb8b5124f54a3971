"""An OTLP/HTTP metrics receiver for the tests, built on the official
definitions (PyPI's opentelemetry-proto): every POST body is parsed with the
generated ExportMetricsServiceRequest class, and what it held is kept.

    python3 otlp_receiver.py [PORT]     # prints "port N" once it listens

POST /v1/metrics    parses the body (a body that does not parse: 400 and the
                    parser's error, and it is counted as malformed); answers
                    200 with an ExportMetricsServiceResponse, or the fault
                    set below
GET  /received      every point received so far, one JSON object per line:
                    resource, scope, metric, unit, kind, temporality,
                    monotonic, attributes, start and time (ns), value
GET  /malformed     how many bodies did not parse
GET  /log           one JSON object per POST /v1/metrics: its arrival
                    (seconds, monotonic), the status answered, the points
                    it held and its Content-Encoding
POST /freeze        from now on record nothing and answer no export (the
                    connection is closed unanswered, as a receiver going
                    down does): what /received says after this is final
POST /fault         the next answers: a JSON body {"status": 503, "count": 2,
                    "retry_after": "1", "rejected": 0, "message": "",
                    "delay": 0.05}; an error status answers a
                    google.rpc.Status with the message, as OTLP/HTTP says,
                    or, with "body_hex", these bytes (a damaged body);
                    delay (seconds) holds the answer that long

A body with Content-Encoding: gzip is gunzipped first (one that does not
gunzip counts as malformed).

Listens on 127.0.0.1 only, on PORT or one the kernel picks.
"""

import gzip
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

LOCK = threading.Lock()
POINTS = []
MALFORMED = [0]
FAULTS = []
LOG = []
FROZEN = [False]


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def rpc_status(code, message):
    """A google.rpc.Status: code (1) and message (2)."""
    m = message.encode()
    return b"\x08" + varint(code) + b"\x12" + varint(len(m)) + m


def attrs(kvs):
    out = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


def record(req):
    for rm in req.resource_metrics:
        resource = attrs(rm.resource.attributes)
        for sm in rm.scope_metrics:
            scope = [sm.scope.name, sm.scope.version]
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                data = getattr(m, kind)
                for p in data.data_points:
                    which = p.WhichOneof("value")
                    POINTS.append(
                        {
                            "resource": resource,
                            "scope": scope,
                            "metric": m.name,
                            "description": m.description,
                            "unit": m.unit,
                            "kind": kind,
                            "temporality": getattr(data, "aggregation_temporality", None),
                            "monotonic": getattr(data, "is_monotonic", None),
                            "attributes": attrs(p.attributes),
                            "start": p.start_time_unix_nano,
                            "time": p.time_unix_nano,
                            "value": repr(getattr(p, which)) if which else None,
                        }
                    )


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with LOCK:
            if self.path == "/received":
                body = "".join(json.dumps(p) + "\n" for p in POINTS).encode()
            elif self.path == "/malformed":
                body = str(MALFORMED[0]).encode()
            elif self.path == "/log":
                body = "".join(json.dumps(e) + "\n" for e in LOG).encode()
            else:
                return self.answer(404)
        self.answer(200, body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/freeze":
            with LOCK:
                FROZEN[0] = True
            return self.answer(200)
        if self.path == "/fault":
            f = json.loads(body)
            with LOCK:
                FAULTS.extend([f] * int(f.get("count", 1)))
            return self.answer(200)
        if self.path != "/v1/metrics":
            return self.answer(404)
        arrived = time.monotonic()
        encoding = self.headers.get("Content-Encoding", "")
        if self.headers.get("Content-Type") != "application/x-protobuf":
            return self.answer(415)
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding:
                raise ValueError("unknown Content-Encoding " + encoding)
            req = ExportMetricsServiceRequest.FromString(body)
        except (DecodeError, ValueError, OSError, EOFError) as e:
            with LOCK:
                MALFORMED[0] += 1
                LOG.append({"at": arrived, "status": 400, "points": 0, "encoding": encoding})
            return self.answer(400, str(e).encode())
        points = sum(
            len(getattr(m, m.WhichOneof("data")).data_points)
            for rm in req.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        )
        with LOCK:
            fault = FAULTS.pop(0) if FAULTS else None
        if fault and fault.get("delay"):
            time.sleep(float(fault["delay"]))
        with LOCK:
            if FROZEN[0]:
                self.close_connection = True
                return
            status = fault.get("status", 200) if fault else 200
            LOG.append({"at": arrived, "status": status, "points": points, "encoding": encoding})
            if status != 200:
                headers = [("Content-Type", "application/x-protobuf")]
                if fault.get("retry_after"):
                    headers.append(("Retry-After", fault["retry_after"]))
                body = (
                    bytes.fromhex(fault["body_hex"])
                    if "body_hex" in fault
                    else rpc_status(3, fault.get("message", ""))
                )
                return self.answer(status, body, headers)
            record(req)
        resp = ExportMetricsServiceResponse()
        if fault and (fault.get("rejected") or fault.get("message")):
            resp.partial_success.rejected_data_points = int(fault.get("rejected", 0))
            resp.partial_success.error_message = fault.get("message", "")
        self.answer(
            200,
            resp.SerializeToString(),
            [("Content-Type", "application/x-protobuf")],
        )


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client killed mid-request (the tests SIGKILL the agent) is
        # expected; anything else is printed.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = Server(("127.0.0.1", port), Handler)
    print("port", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
