"""modelfetch-s3emu for the Python integration tests (and bench_prefetch.py): one launcher.

Emu(exe, data_dir, bucket, *extra_args) starts the emulator on a free port (--port-file, --quiet) serving the
folders of data_dir as the bucket, and returns once it listens (RuntimeError after 10 s). .port and .url name
it; .stats() and .reset() are its /_emu/stats and /_emu/reset-stats; .post(path) any other /_emu/ action
(e.g. /_emu/expire-credentials); .stop() terminates it. Also a context manager."""
import json
import os
import random
import subprocess
import time
import urllib.request


class Emu:
    def __init__(self, exe, data, bucket, *args):
        self.port_file = os.path.join(os.path.dirname(os.path.abspath(data)), "port.%d" % random.randrange(1 << 30))
        self.proc = subprocess.Popen([exe, "--dir", data, "--bucket", bucket, "--port-file", self.port_file,
                                      "--quiet", *args])
        for _ in range(200):
            if os.path.exists(self.port_file) and os.path.getsize(self.port_file) > 0:
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        try:
            with open(self.port_file) as f:
                self.port = int(f.read())
        except (OSError, ValueError):
            self.stop()
            raise RuntimeError("modelfetch-s3emu did not start (exit %s)" % self.proc.returncode)
        self.url = "http://127.0.0.1:%d" % self.port

    def post(self, path):
        req = urllib.request.Request(self.url + path, method="POST", data=b"")
        urllib.request.urlopen(req, timeout=10).read()

    def stats(self):
        return json.loads(urllib.request.urlopen(self.url + "/_emu/stats", timeout=10).read())

    def reset(self):
        self.post("/_emu/reset-stats")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
