#!/usr/bin/env python3
"""Request signing checked independently: `sluice publish` sends one
PutRecords to a tiny HTTP server on loopback, at a fixed clock (faketime
'2026-01-02 03:04:05'); the server records the request, and botocore's
SigV4Auth signs the same method, URL, headers and body again. The two
Authorization headers must be equal (with and without a session token).

usage: kinesis_sign.py SLUICE_BIN     (exit 77: skipped, with the reason)
"""
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

try:
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
except ImportError:
    print("SKIP: botocore is not installed (python3-botocore; "
          "scripts/setup.sh test)", file=sys.stderr)
    sys.exit(77)

FAKE_TIME = "2026-01-02 03:04:05"
REGION = "eu-central-1"
ACCESS_KEY = "AKIDEXAMPLESLUICE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

captured = []


class Recorder(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        captured.append({"method": "POST", "path": self.path,
                         "headers": list(self.headers.items()),
                         "body": body})
        n_records = len(json.loads(body)["Records"])
        reply = json.dumps({"FailedRecordCount": 0, "Records": [
            {"SequenceNumber": str(i + 1),
             "ShardId": "shardId-000000000000"}
            for i in range(n_records)]})
        data = reply.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def resign(req, port, token):
    """botocore's Authorization for the captured request."""
    headers = {k.lower(): v for k, v in req["headers"]}
    auth = headers["authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    amz_date = headers["x-amz-date"]
    # The headers sluice signed, as sent; botocore adds X-Amz-Date (from
    # its clock, fixed below to the captured one) and the token itself.
    missing = [k for k in signed if k not in headers]
    if missing:
        raise SystemExit("signed but not sent: %s (%s)" % (missing, auth))
    pass_on = {k: headers[k] for k in signed
               if k not in ("x-amz-date", "x-amz-security-token")}
    missing = [k for k in signed if k not in headers]
    if missing:
        raise SystemExit("signed but not sent: %s" % missing)
    aws = botocore.awsrequest.AWSRequest(
        method=req["method"], url="http://127.0.0.1:%d%s" % (port,
                                                           req["path"]),
        data=req["body"], headers=pass_on)
    creds = botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY, token)
    signer = botocore.auth.SigV4Auth(creds, "kinesis", REGION)
    # add_auth's steps at the captured time (add_auth itself reads the
    # clock, differently in each botocore version).
    aws.context["timestamp"] = amz_date
    signer._modify_request_before_signing(aws)
    canonical = signer.canonical_request(aws)
    signature = signer.signature(signer.string_to_sign(aws, canonical), aws)
    signer._inject_signature_to_request(aws, signature)
    return aws.headers["Authorization"], amz_date


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    sluice = sys.argv[1]
    if not shutil.which("faketime"):
        print("SKIP: faketime is not installed (scripts/setup.sh test)",
              file=sys.stderr)
        return 77
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        feed = os.path.join(tmp, "feed.jsonl")
        with open(feed, "w") as f:
            f.write('{"id":"sku-1","url":"https://img.example/1.jpg",'
                    '"meta":{"w":"\\u00e9t\\u00e9"}}\n')
        # A body over 1 MiB too: libcurl adds "Expect: 100-continue" to
        # those, which must not upset the signature.
        big = os.path.join(tmp, "big.jsonl")
        with open(big, "w") as f:
            for i in range(200):
                f.write('{"id":"sku-%d","key":"k%d","url":"https://img.example'
                        '/%s%d.jpg"}\n' % (i, i, "x" * 8000, i))
        for token, feed_file, label in (
                (None, feed, "plain keys"),
                ("IQoJb3JpZ2luX2VjEXAMPLE/TOKEN+with=chars", feed,
                 "with a session token"),
                (None, big, "a body over 1 MiB")):
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith("AWS_")}
            env.update(AWS_ENDPOINT_URL_KINESIS="http://127.0.0.1:%d" % port,
                       AWS_REGION=REGION, AWS_ACCESS_KEY_ID=ACCESS_KEY,
                       AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                       AWS_CONFIG_FILE="/nonexistent",
                       AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
            if token:
                env["AWS_SESSION_TOKEN"] = token
            # faketime preloads its library: under AddressSanitizer the
            # runtime then does not come first, which is fine here.
            env["ASAN_OPTIONS"] = ":".join(
                o for o in (env.get("ASAN_OPTIONS"),
                            "verify_asan_link_order=0") if o)
            captured.clear()
            r = subprocess.run(["faketime", FAKE_TIME, sluice, "publish",
                                "--to", "kinesis://signed-stream",
                                feed_file],
                               env=env, capture_output=True, text=True,
                               timeout=60)
            if r.returncode != 0 or len(captured) != 1:
                print("FAIL [%s]: sluice exited %d, %d requests: %s"
                      % (label, r.returncode, len(captured), r.stderr))
                failed = 1
                continue
            req = captured[0]
            got = dict((k.lower(), v) for k, v in req["headers"])
            want, amz_date = resign(req, port, token)
            checks = [
                (amz_date.startswith("20260102T0304"),
                 "X-Amz-Date %s is not the fixed clock's" % amz_date),
                (got["authorization"] == want,
                 "Authorization differs:\n  sluice:   %s\n  botocore: %s"
                 % (got["authorization"], want)),
                (got.get("x-amz-target") == "Kinesis_20131202.PutRecords",
                 "X-Amz-Target %s" % got.get("x-amz-target")),
                (not token or got.get("x-amz-security-token") == token,
                 "X-Amz-Security-Token %s" % got.get("x-amz-security-token")),
                ("x-amz-security-token" in
                 got["authorization"].split("SignedHeaders=")[1]
                 if token else True,
                 "the session token is not signed"),
            ]
            for ok, why in checks:
                if not ok:
                    print("FAIL [%s]: %s" % (label, why))
                    failed = 1
            if all(ok for ok, _ in checks):
                print("ok   %s (%d bytes%s): %s" % (
                    label, len(req["body"]),
                    ", expect: " + got["expect"] if "expect" in got else "",
                    got["authorization"]))
    server.shutdown()
    return failed


if __name__ == "__main__":
    sys.exit(main())
