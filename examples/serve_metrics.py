"""A client of the real service: start ``speakerembed serve``, send it requests, read /metrics.

Usage::

    python examples/serve_metrics.py

It starts the service on 127.0.0.1 and a free port with the offline Resemblyzer weights, waits
until ``/readyz`` answers, then, as any HTTP client would (here, the standard library):

* posts ``alice_1.wav`` as a raw body to ``/v1/embeddings``;
* posts two clips as multipart to ``/v1/similarity`` (same voice, then two voices);
* posts a text file, to show the JSON error every refusal gets;
* reads ``/metrics`` and prints the service's request counts.

Then it stops the service with SIGTERM, which answers what is in flight and exits 0.
Needs ``pip install 'speakerembed[serve,resemblyzer]'``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

AUDIO = Path(__file__).resolve().parent / "audio"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(url: str, body: bytes | None = None, content_type: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def multipart(*paths: Path) -> tuple[bytes, str]:
    """A multipart/form-data body with one file part per path."""
    boundary = uuid.uuid4().hex
    parts = []
    for i, path in enumerate(paths):
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file{i}"; filename="{path.name}"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        )
        parts.append(head.encode() + path.read_bytes() + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def main() -> int:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "speakerembed", "serve", "--weights", "resemblyzer", "--device", "cpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    service = subprocess.Popen([*cmd, "--port", str(port)], stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if request(url + "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if service.poll() is not None or time.monotonic() > deadline:
                print("the service did not start", file=sys.stderr)
                return 1
            time.sleep(0.2)
        print(f"service ready on {url}")

        status, body = request(url + "/v1/embeddings", (AUDIO / "alice_1.wav").read_bytes(), "audio/wav")
        answer = json.loads(body)
        emb = answer["embeddings"][0]
        print(
            f"POST /v1/embeddings: {status}, {len(emb['embedding'])} floats, "
            f"duration {emb['duration_s']:.2f} s, speech {emb['speech_s']:.2f} s, weights {answer['weights']}"
        )
        for a, b in (("alice_1", "alice_2"), ("alice_1", "bob_1")):
            data, ctype = multipart(AUDIO / f"{a}.wav", AUDIO / f"{b}.wav")
            status, body = request(url + "/v1/similarity", data, ctype)
            print(f"POST /v1/similarity {a} {b}: {status}, cosine {json.loads(body)['similarity']:.3f}")
        status, body = request(url + "/v1/embeddings", b"this is not audio\n" * 10, "audio/wav")
        print(f"POST /v1/embeddings (a text file): {status}, {json.loads(body)['error']['type']}")

        status, body = request(url + "/metrics")
        print(f"GET /metrics: {status}")
        for line in body.decode().splitlines():
            if line.startswith("speakerembed_serve_request_duration_seconds_count"):
                print(f"  {line}")
    finally:
        service.send_signal(signal.SIGTERM)
        code = service.wait(timeout=60)
    print(f"service stopped with SIGTERM, exit code {code}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
