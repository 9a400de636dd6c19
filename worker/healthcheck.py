"""Container health check: ``python -m worker.healthcheck [/healthz|/readyz]``.

Exit 0 when the local endpoint on ``OW_METRICS_PORT`` answers 200, else 1 (the
exec-form HEALTHCHECK of the image and of each compose role).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = args[0] if args else "/healthz"
    port = os.environ.get("OW_METRICS_PORT", "0")
    if not port.isdigit() or int(port) == 0:
        print("OW_METRICS_PORT is not set: no endpoint to check", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return 0 if resp.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
