"""modelfetch-s3emu over raw HTTP/1.1 (http.client, one keep-alive connection): GET/HEAD, every Range form
including suffix and past-the-end (416), ListObjectsV2 with continuation and delimiter, ListObjectsV1 markers,
If-Match → 412, replace → new ETag, 404 NoSuchKey, the per-request latency, the per-connection rate cap (within
30 %), the link cap shared across connections, and the stats counters. Starts its own emulators on free
ports. Usage: test_s3emu.py EMULATOR"""
import http.client
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


class Emu:
    def __init__(self, exe, root, *args):
        self.port_file = os.path.join(root, "port.%d" % random.randrange(1 << 30))
        self.proc = subprocess.Popen([exe, "--dir", os.path.join(root, "data"), "--bucket", "bkt",
                                      "--port-file", self.port_file, "--quiet", *args])
        for _ in range(100):
            if os.path.exists(self.port_file):
                break
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.port = int(f.read())

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def req(c, method, path, headers=None):
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    return r, r.read()


def test_objects(c, blob):
    r, body = req(c, "GET", "/bkt/dir/blob.bin")
    check(r.status == 200 and body == blob, "GET whole")
    etag = r.getheader("ETag")
    check(re.fullmatch(r'"[0-9a-f]{32}-[0-9]+"', etag or "") is not None, "ETag format %r" % etag)
    check(r.getheader("Last-Modified", "").endswith("GMT"), "Last-Modified")
    r, body = req(c, "HEAD", "/bkt/dir/blob.bin")
    check(r.status == 200 and body == b"" and r.getheader("Content-Length") == str(len(blob)), "HEAD")
    check(r.getheader("ETag") == etag, "HEAD ETag equals GET ETag")
    n = len(blob)
    cases = [("bytes=0-0", 0, 0), ("bytes=10-19", 10, 19), ("bytes=%d-" % (n - 5), n - 5, n - 1),
             ("bytes=-7", n - 7, n - 1), ("bytes=-%d" % (n + 100), 0, n - 1), ("bytes=5-%d" % (n + 100), 5, n - 1)]
    for rng, a, b in cases:
        r, body = req(c, "GET", "/bkt/dir/blob.bin", {"Range": rng})
        check(r.status == 206 and body == blob[a:b + 1], "%s: status %d, %d bytes" % (rng, r.status, len(body)))
        check(r.getheader("Content-Range") == "bytes %d-%d/%d" % (a, b, n), "%s Content-Range %s" % (rng, r.getheader("Content-Range")))
    for rng in ["bytes=%d-" % n, "bytes=%d-%d" % (n + 10, n + 20), "bytes=-0"]:
        r, body = req(c, "GET", "/bkt/dir/blob.bin", {"Range": rng})
        check(r.status == 416 and r.getheader("Content-Range") == "bytes */%d" % n, "%s → %d" % (rng, r.status))
        check(b"<Code>InvalidRange</Code>" in body, "%s body" % rng)
    for rng in ["bytes=9-3", "items=0-1", "bytes=0-1,4-5"]:  # ignored: the whole object
        r, body = req(c, "GET", "/bkt/dir/blob.bin", {"Range": rng})
        check(r.status == 200 and body == blob, "%s ignored" % rng)
    r, body = req(c, "GET", "/bkt/dir/blob.bin", {"If-Match": etag, "Range": "bytes=0-3"})
    check(r.status == 206 and body == blob[:4], "If-Match equal")
    r, body = req(c, "GET", "/bkt/dir/blob.bin", {"If-Match": '"0123"', "Range": "bytes=0-3"})
    check(r.status == 412 and b"PreconditionFailed" in body, "If-Match mismatch → %d" % r.status)
    r, body = req(c, "HEAD", "/bkt/dir/nothere")  # no body, or the next response on the connection breaks
    check(r.status == 404 and body == b"", "HEAD 404 without a body")
    r, body = req(c, "GET", "/bkt/dir/nothere")
    check(r.status == 404 and b"<Code>NoSuchKey</Code>" in body, "404 NoSuchKey")
    r, body = req(c, "GET", "/bkt/../etc/passwd")
    check(r.status == 404, "path escape refused")
    r, body = req(c, "GET", "/otherbucket/dir/blob.bin")
    check(r.status == 404 and b"NoSuchBucket" in body, "other bucket")
    r, body = req(c, "PUT", "/bkt/new")
    check(r.status == 501, "PUT refused")
    # Replace: a new ETag, the old one fails If-Match; the SigV4 header is accepted unverified.
    r, body = req(c, "POST", "/_emu/replace?key=dir/blob.bin")
    new = json.loads(body)["etag"]
    check(r.status == 200 and new != etag, "replace bumps the ETag")
    r, _ = req(c, "HEAD", "/bkt/dir/blob.bin", {"Authorization": "AWS4-HMAC-SHA256 Credential=x/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"})
    check(r.status == 200 and r.getheader("ETag") == new, "HEAD after replace, signed")
    r, _ = req(c, "GET", "/bkt/dir/blob.bin", {"If-Match": etag, "Range": "bytes=0-0"})
    check(r.status == 412, "old ETag → 412 after replace")


def list_all(c, v2, prefix="", delimiter="", max_keys=None):
    keys, prefixes, pages, token = [], [], 0, None
    while True:
        q = ["list-type=2"] if v2 else []
        q += ["prefix=" + prefix, "delimiter=" + delimiter]
        if max_keys:
            q.append("max-keys=%d" % max_keys)
        if token:
            q.append(("continuation-token=" if v2 else "marker=") + token)
        r, body = req(c, "GET", "/bkt?" + "&".join(q))
        check(r.status == 200, "list status %d" % r.status)
        root = ET.fromstring(body)
        pages += 1
        page_keys = [e.text for e in root.iter(NS + "Key")]
        page_prefixes = [e.find(NS + "Prefix").text for e in root.iter(NS + "CommonPrefixes")]
        if v2:
            check(int(root.find(NS + "KeyCount").text) == len(page_keys) + len(page_prefixes), "KeyCount")
        keys += page_keys
        prefixes += page_prefixes
        if root.find(NS + "IsTruncated").text != "true":
            check(root.find(NS + "NextContinuationToken") is None, "no token on the last page")
            return keys, prefixes, pages
        tag = "NextContinuationToken" if v2 else "NextMarker"
        token = root.find(NS + tag).text
        if pages > 100:
            check(False, "listing does not end")
            return keys, prefixes, pages


def test_listing(c, data):
    names = sorted(["top%02d" % i for i in range(7)] + ["d%d/f%d" % (i, j) for i in range(5) for j in range(3)] +
                   ["dir/blob.bin", "dir/small.txt", "e/x/y/z"])
    for n in names:
        if not os.path.exists(os.path.join(data, n)):
            os.makedirs(os.path.dirname(os.path.join(data, n)) or data, exist_ok=True)
            with open(os.path.join(data, n), "w") as f:
                f.write(n)
    for v2 in (True, False):
        keys, prefixes, pages = list_all(c, v2, max_keys=4)
        check(keys == names and prefixes == [] and pages == (len(names) + 3) // 4, "flat listing v2=%s pages=%d" % (v2, pages))
        keys, prefixes, pages = list_all(c, v2, delimiter="/", max_keys=3)
        want_p = sorted({n.split("/")[0] + "/" for n in names if "/" in n})
        want_k = [n for n in names if "/" not in n]
        check(keys == want_k and prefixes == want_p, "delimited v2=%s: %s %s" % (v2, keys, prefixes))
        check(pages == (len(want_k) + len(want_p) + 2) // 3, "delimited pages %d" % pages)
        keys, prefixes, _ = list_all(c, v2, prefix="d1/")
        check(keys == ["d1/f0", "d1/f1", "d1/f2"], "prefix d1/: %s" % keys)
        keys, prefixes, _ = list_all(c, v2, prefix="e/", delimiter="/")
        check(keys == [] and prefixes == ["e/x/"], "nested prefix: %s" % prefixes)
    r, body = req(c, "GET", "/bkt?list-type=2&start-after=top05")
    check([e.text for e in ET.fromstring(body).iter(NS + "Key")] == ["top06"], "start-after")


def timed_get(port, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.monotonic()
    r, body = req(c, "GET", path, headers)
    dt = time.monotonic() - t0
    c.close()
    return r, body, dt


def test_pacing(exe, root):
    e = Emu(exe, root, "--latency-ms", "150", "--conn-rate", "20M")
    try:
        r, body, dt = timed_get(e.port, "/bkt/dir/small.txt")
        check(r.status == 200 and dt >= 0.15, "latency honoured: %.3f s" % dt)
        r, body, dt = timed_get(e.port, "/bkt/big.bin")
        rate = len(body) / (dt - 0.15)
        check(0.7 * 20e6 <= rate <= 1.3 * 20e6, "per-connection cap 20 MB/s: measured %.1f MB/s" % (rate / 1e6))
        # Latency is per connection: 4 parallel requests take ~one latency, not four.
        out = []
        ts = [threading.Thread(target=lambda: out.append(timed_get(e.port, "/bkt/dir/small.txt")[2])) for _ in range(4)]
        t0 = time.monotonic()
        [t.start() for t in ts]
        [t.join() for t in ts]
        check(time.monotonic() - t0 < 0.45, "latency does not serialise connections: %.3f s" % (time.monotonic() - t0))
    finally:
        e.stop()
    e = Emu(exe, root, "--latency-ms", "0", "--conn-rate", "0", "--link-rate", "30M")
    try:
        out = []
        ts = [threading.Thread(target=lambda: out.append(timed_get(e.port, "/bkt/big.bin"))) for _ in range(3)]
        t0 = time.monotonic()
        [t.start() for t in ts]
        [t.join() for t in ts]
        total = sum(len(x[1]) for x in out)
        rate = total / (time.monotonic() - t0)
        check(0.7 * 30e6 <= rate <= 1.3 * 30e6, "link cap 30 MB/s over 3 connections: %.1f MB/s" % (rate / 1e6))
    finally:
        e.stop()


def main():
    exe = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="mf-s3emu-") as root:
        data = os.path.join(root, "data")
        os.makedirs(os.path.join(data, "dir"))
        blob = bytes(random.Random(7).getrandbits(8) for _ in range(100_000))
        with open(os.path.join(data, "dir", "blob.bin"), "wb") as f:
            f.write(blob)
        with open(os.path.join(data, "big.bin"), "wb") as f:
            f.write(os.urandom(10_000_000))
        e = Emu(exe, root, "--latency-ms", "0", "--conn-rate", "0")
        try:
            c = e.conn()
            test_objects(c, blob)
            os.remove(os.path.join(data, "big.bin"))
            test_listing(c, data)
            r, body = req(c, "GET", "/_emu/stats")
            s = json.loads(body)
            check(s["get_object"] >= 15 and s["head_object"] == 3 and s["list"] >= 10, "stats counters %s" % s)
            check(s["connections"] == 1, "one keep-alive connection served everything: %d" % s["connections"])
            check(s["bytes_served"] >= 4 * len(blob), "bytes_served %d" % s["bytes_served"])
            req(c, "POST", "/_emu/reset-stats")
            r, body = req(c, "GET", "/_emu/stats")
            check(json.loads(body)["get_object"] == 0, "reset-stats")
        finally:
            e.stop()
        with open(os.path.join(data, "big.bin"), "wb") as f:
            f.write(os.urandom(10_000_000))
        test_pacing(exe, root)
    if failures:
        print("%d failure(s)" % len(failures), file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
