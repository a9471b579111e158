"""Send the quick-start event to the listener of `make run`, signed as GitHub signs webhooks.

    .venv/bin/python examples/send_event.py [FILE] [--url URL] [--secret SECRET]

FILE defaults to examples/events/quickstart_event.json. The signature is an HMAC-SHA256 of
the exact bytes sent, in the `X-Hub-Signature-256: sha256=<hex>` header.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import sys
import uuid
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", default=HERE / "events" / "quickstart_event.json")
    parser.add_argument("--url", default="http://127.0.0.1:8080/webhook")
    parser.add_argument(
        "--secret", default=os.environ.get("MFO_WEBHOOK_SECRET", "dev-webhook-secret")
    )
    args = parser.parse_args()
    body = Path(args.file).read_bytes()
    signature = hmac.new(args.secret.encode(), body, hashlib.sha256).hexdigest()
    response = httpx.post(
        args.url,
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": f"sha256={signature}",
            "X-GitHub-Delivery": str(uuid.uuid4()),
        },
        timeout=10,
    )
    print(response.status_code, response.text)
    return 0 if response.status_code == 202 else 1


if __name__ == "__main__":
    sys.exit(main())
