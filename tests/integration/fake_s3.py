"""A minimal in-process S3 for tests that need object keys no file system can hold (`a/../../etc/passwd`,
a 1000-character name, a key that is both a file and a prefix) or a TLS endpoint with a throw-away
certificate. Path-style, unsigned: ListObjectsV2 (prefix, '/' delimiter, no paging), HEAD, and GET with
one Range and If-Match. modelfetch-s3emu serves a directory, so it cannot hold such keys.

    with FakeS3({"a.bin": b"..."}, bucket="b", tls=(cert, key)) as s3:
        s3.endpoint  # "https://127.0.0.1:PORT"
        s3.requests  # paths asked for, in order
"""
import hashlib
import http.server
import ssl
import threading
import urllib.parse
from xml.sax.saxutils import escape

LAST_MODIFIED_HTTP = "Wed, 21 Oct 2015 07:28:00 GMT"
LAST_MODIFIED_ISO = "2015-10-21T07:28:00.000Z"


class FakeS3:
    def __init__(self, objects, bucket="models", tls=None):
        self.objects = dict(objects)
        self.bucket = bucket
        self.requests = []
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                fake.serve(self, body=False)

            def do_GET(self):
                fake.serve(self, body=True)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.endpoint = "%s://127.0.0.1:%d" % (scheme, self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def etag(data):
        return '"%s"' % hashlib.md5(data).hexdigest()

    def reply(self, h, status, headers, payload, body):
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        if body:
            h.wfile.write(payload)

    def serve(self, h, body):
        url = urllib.parse.urlsplit(h.path)
        with self.lock:
            self.requests.append(h.path)
        parts = url.path.split("/", 2)  # "", bucket, key
        if len(parts) < 2 or parts[1] != self.bucket:
            return self.reply(h, 404, [], b"<Error><Code>NoSuchBucket</Code></Error>", body)
        if len(parts) == 2 or parts[2] == "":
            return self.list(h, urllib.parse.parse_qs(url.query, keep_blank_values=True), body)
        key = urllib.parse.unquote(parts[2])
        data = self.objects.get(key)
        if data is None:
            return self.reply(h, 404, [], b"<Error><Code>NoSuchKey</Code></Error>", body)
        tag = self.etag(data)
        match = h.headers.get("If-Match")
        if match and match != tag:
            return self.reply(h, 412, [], b"<Error><Code>PreconditionFailed</Code></Error>", body)
        headers = [("ETag", tag), ("Last-Modified", LAST_MODIFIED_HTTP), ("Accept-Ranges", "bytes")]
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            first = int(first)
            last = min(int(last) if last else len(data) - 1, len(data) - 1)
            if first >= len(data):
                return self.reply(h, 416, [("Content-Range", "bytes */%d" % len(data))], b"", body)
            headers.append(("Content-Range", "bytes %d-%d/%d" % (first, last, len(data))))
            return self.reply(h, 206, headers, data[first:last + 1], body)
        return self.reply(h, 200, headers, data, body)

    def list(self, h, q, body):
        prefix = q.get("prefix", [""])[0]
        delim = q.get("delimiter", [""])[0]
        contents, prefixes = [], set()
        for key in sorted(self.objects):
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix):]
            if delim and delim in rest:
                prefixes.add(prefix + rest[:rest.index(delim) + 1])
            else:
                contents.append(key)
        xml = ['<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>',
               "<Name>%s</Name><Prefix>%s</Prefix><IsTruncated>false</IsTruncated>" % (self.bucket, escape(prefix))]
        for key in contents:
            d = self.objects[key]
            xml.append("<Contents><Key>%s</Key><Size>%d</Size><ETag>%s</ETag><LastModified>%s</LastModified>"
                       "</Contents>" % (escape(key), len(d), escape(self.etag(d)), LAST_MODIFIED_ISO))
        for p in sorted(prefixes):
            xml.append("<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>" % escape(p))
        xml.append("</ListBucketResult>")
        self.reply(h, 200, [("Content-Type", "application/xml")], "".join(xml).encode(), body)
