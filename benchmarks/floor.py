"""The unsafe floor: what a user would build instead of python-executor.

One warm interpreter that has imported numpy and pandas, serving the seed's
POST /execute by exec'ing each script in a fresh namespace and calling its
main(). No isolation at all: a script sees and can change the server, the
host and every later script. It exists only so that benchmarks/ can state the
price of isolation; never expose it.

    python3 benchmarks/floor.py [PORT] [--fork]    # prints "listening 127.0.0.1:PORT"

With --fork each script runs in a child forked for it, which answers through
a pipe and exits: issue 12's reference, the least a fork per job costs (no
sandbox, no confinement, no cleanup; one request at a time).
"""
import contextlib
import http.server
import io
import json
import os
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


def forked(script):
    """execute(script) in a child of its own."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            view = memoryview(execute(script).encode())
            while view:
                view = view[os.write(w, view):]
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return data.decode()


RUN = execute


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes

    def do_GET(self):
        self.reply(b'{"status":"ok"}')

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.reply(RUN(json.loads(body)["script"]).encode())

    def reply(self, data):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    global RUN
    args = [a for a in sys.argv[1:] if a != "--fork"]
    port = int(args[0]) if args else 0
    server = http.server.ThreadingHTTPServer
    if "--fork" in sys.argv:
        RUN, server = forked, http.server.HTTPServer  # one thread: fork() as the reference does
    srv = server(("127.0.0.1", port), Handler)
    print("listening %s:%d" % srv.server_address, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:  # how the benchmark stops it
        pass


if __name__ == "__main__":
    main()
