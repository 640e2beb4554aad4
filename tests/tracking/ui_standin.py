"""A stand-in for ``python -m mlflow ui``: answers ``/health`` and starts a stubborn child.

Run as ``ui_standin.py -m mlflow ui --backend-store-uri URI --host H --port P ...`` (the command
``ablate ui`` builds, with this script in place of the interpreter). It records its arguments and
the job-execution setting in ``$UI_STANDIN_OUT`` and starts a grandchild that ignores SIGTERM, as
a hung MLflow worker would, so stopping the process group needs the SIGKILL that follows.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


class Health(http.server.BaseHTTPRequestHandler):
    """200 on /health, 404 elsewhere."""

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    args = sys.argv[1:]
    child = subprocess.Popen([sys.executable, "-c", STUBBORN])
    with open(os.environ["UI_STANDIN_OUT"], "w") as out:
        json.dump(
            {
                "argv": args,
                "job_execution": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION"),
                "pid": os.getpid(),
                "child": child.pid,
            },
            out,
        )
    host, port = args[args.index("--host") + 1], int(args[args.index("--port") + 1])
    http.server.HTTPServer((host, port), Health).serve_forever()


if __name__ == "__main__":
    main()
