"""The unsafe floor: what a user would build instead of python-executor.

One warm interpreter that has imported numpy and pandas, serving the seed's
POST /execute by exec'ing each script in a fresh namespace and calling its
main(). No isolation at all: a script sees and can change the server, the
host and every later script. It exists only so that benchmarks/ can state the
price of isolation; never expose it.

    python3 benchmarks/floor.py [PORT]    # prints "listening 127.0.0.1:PORT"
"""
import contextlib
import http.server
import io
import json
import sys

import numpy as np
import pandas as pd


def jsonable(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, pd.DataFrame):
        return o.to_dict(orient="records")
    raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)


def execute(script):
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            ns = {"__name__": "__script__"}
            exec(compile(script, "<script>", "exec"), ns)
            if not callable(ns.get("main")):
                raise NameError("Script must define a main() function")
            result = ns["main"]()
        return json.dumps({"result": result, "stdout": out.getvalue().rstrip("\n")}, default=jsonable)
    except Exception as e:
        return json.dumps({"error": "%s: %s" % (type(e).__name__, e), "stdout": out.getvalue().rstrip("\n")})


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes

    def do_GET(self):
        self.reply(b'{"status":"ok"}')

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.reply(execute(json.loads(body)["script"]).encode())

    def reply(self, data):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("listening %s:%d" % srv.server_address, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:  # how the benchmark stops it
        pass


if __name__ == "__main__":
    main()
