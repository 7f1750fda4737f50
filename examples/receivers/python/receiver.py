"""A Cronhook webhook receiver that verifies each request's signature.

    pip install -r requirements.txt
    WEBHOOK_SECRET=whsec_... PORT=8000 python receiver.py

The secret is the job's (`GET /v1/jobs/{id}/secret`, or the `secret` the
job was created with). Verify the raw bytes before reading them; a job's
body may be JSON, a plain string or nothing at all, so verify with
`json_parse=False` and read the body yourself: standardwebhooks' default
parses JSON and raises on a text body or an empty one.
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

webhook = Webhook(os.environ["WEBHOOK_SECRET"])
printing = threading.Lock()  # requests are handled on threads


def say(line):
    with printing:
        print(line, flush=True)


class Receiver(BaseHTTPRequestHandler):
    def handle_one(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        try:
            webhook.verify(body, dict(self.headers), json_parse=False)
        except WebhookVerificationError as e:
            say(f"rejected {self.headers.get('webhook-id')}: {e}")
            self.send_response(401)
            self.end_headers()
            return
        if not body:
            kind = "empty"
        elif self.headers.get("content-type", "").startswith("application/json"):
            json.loads(body)  # your job's JSON body
            kind = "json"
        else:
            body.decode("utf-8")  # a string body, as the job gave it
            kind = "text"
        # webhook-id is the run's id, the same on every retry: do the work
        # once per id.
        say(f"verified {self.headers['webhook-id']} {kind}")
        self.send_response(204)
        self.end_headers()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Receiver)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)
