"""The AWS default credential chain end to end through the modelfetch CLI (issue 14).

  credentials-s3rver: each provider alone against s3rver, which verifies SigV4 (environment, profile static
      keys, credential_process, web identity through a loopback STS fake, container endpoint fake, IMDSv2
      fake); precedence when several are set; `stat` and the --debug line name the provider, never a value.
      Needs the server scripts/test starts (exit 77 without it, unless MODELFETCH_TEST_REQUIRE_S3=1).
  credentials-shim: the same through the shim (a program reading with mmap page faults, and with read()),
      the refusals retried after a refresh, no secret in the debug log or the stats file.
  credentials-expiry: a 40 MiB `modelfetch cat` that lasts several credential lifetimes, against a fake S3
      that checks the session token's validity: with refresh ahead (no request refused) and with tokens the
      server revokes early (refused with ExpiredToken: one refresh, one retry); byte-exact both times; no
      secret or token in any output. Also: IMDS that never answers, the chain gives up within 2 s.

Every fake listens on 127.0.0.1; IMDS is always pointed at a fake or disabled.
"""
import datetime
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Server:
    """A threaded loopback HTTP server whose handler is `fn(method, path, headers, body) -> (status, body)`."""

    def __init__(self, fn):
        self.fn = fn
        self.requests = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                outer.requests.append((self.command, self.path, dict(self.headers), body))
                status, out, extra = outer.fn(self.command, self.path, self.headers, body)
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                if "Content-Length" not in extra:
                    self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_GET = do_PUT = do_POST = do_HEAD = handle_any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Issuer:
    """Hands out numbered temporary credentials: (key, secret, token, expiration epoch)."""

    def __init__(self, life_s, key=None, secret=None):
        self.life_s, self.key, self.secret = life_s, key, secret
        self.issued = []
        self.lock = threading.Lock()

    def next(self):
        with self.lock:
            n = len(self.issued)
            c = (self.key or "ASIAFAKE%04d" % n, self.secret or "SeCrEt-%d-never-printed" % n,
                 "ToKeN-%d-never-printed-%s" % (n, os.urandom(6).hex()), time.time() + self.life_s)
            self.issued.append(c)
            return c


def container_fake(issuer, want_auth=None):
    def fn(method, path, headers, body):
        if want_auth is not None and headers.get("Authorization") != want_auth:
            return 401, b"", {}
        k, s, t, exp = issuer.next()
        return 200, json.dumps({"AccessKeyId": k, "SecretAccessKey": s, "Token": t, "Expiration": iso(exp)}).encode(), {}
    return Server(fn)


def imds_fake(issuer):
    def fn(method, path, headers, body):
        if method == "PUT" and path == "/latest/api/token":
            return 200, b"imds-session-token", {}
        if headers.get("X-aws-ec2-metadata-token") != "imds-session-token":
            return 401, b"", {}
        if path == "/latest/meta-data/iam/security-credentials/":
            return 200, b"node-role", {}
        if path == "/latest/meta-data/iam/security-credentials/node-role":
            k, s, t, exp = issuer.next()
            return 200, json.dumps({"Code": "Success", "AccessKeyId": k, "SecretAccessKey": s, "Token": t,
                                    "Expiration": iso(exp)}).encode(), {}
        return 404, b"", {}
    return Server(fn)


def sts_fake(issuer, seen_tokens):
    def fn(method, path, headers, body):
        form = urllib.parse.parse_qs(body.decode())
        if method != "POST" or form.get("Action") != ["AssumeRoleWithWebIdentity"] or "Authorization" in headers:
            return 400, b"<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>", {}
        seen_tokens.append(form["WebIdentityToken"][0])
        k, s, t, exp = issuer.next()
        x = ("<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
             "<AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken>%s</SessionToken>"
             "<Expiration>%s</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
             "</AssumeRoleWithWebIdentityResponse>" % (k, s, t, iso(exp)))
        return 200, x.encode(), {}
    return Server(fn)


def base_env(tmp, **extra):
    """No AWS_* from the caller's environment, no home profile, IMDS off unless a test points it at a fake."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODELFETCH_", "LD_PRELOAD"))}
    env.update(HOME=tmp, AWS_EC2_METADATA_DISABLED="true", AWS_REGION="us-east-1", MODELFETCH_RETRY_BASE_MS="10")
    env.update(extra)
    return env


def run(cli, args, env, timeout=60):
    t0 = time.monotonic()
    p = subprocess.run([cli] + args, env=env, capture_output=True, timeout=timeout)
    return p, time.monotonic() - t0


def no_secrets(blob, issuer_lists, extra=()):
    for issuer in issuer_lists:
        for k, s, t, _ in issuer.issued:
            if s.encode() in blob or t.encode() in blob:
                return False
    return all(x.encode() not in blob for x in extra)


# ---------------------------------------------------------------------------------------------- s3rver


def s3rver_mode(cli):
    import mfs3
    mfs3.require_server()
    key, secret = os.environ["MODELFETCH_TEST_KEY"], os.environ["MODELFETCH_TEST_SECRET"]
    s3 = mfs3.boto3_client()
    pre = mfs3.run_prefix()
    payload = os.urandom(3000)
    s3.put_object(Bucket=mfs3.BUCKET, Key=pre + "obj.bin", Body=payload)
    url = "s3://%s/%sobj.bin" % (mfs3.BUCKET, pre)
    endpoint = os.environ["MODELFETCH_TEST_ENDPOINT"]
    issuer = Issuer(900, key, secret)  # s3rver knows one key pair; the session tokens differ each time
    outputs = []
    with tempfile.TemporaryDirectory() as tmp:
        def env(**extra):
            return base_env(tmp, AWS_ENDPOINT_URL=endpoint, **extra)

        def stat_with(name, e, want_provider):
            p, _ = run(cli, ["--debug", "stat", url], e)
            outputs.append(p.stdout + p.stderr)
            line = ("credentials\t%s" % want_provider).encode()
            check(p.returncode == 0 and b"size\t3000\n" in p.stdout and line in p.stdout,
                  "%s: stat signed and accepted by s3rver, provider named (rc %d, %r, %r)"
                  % (name, p.returncode, p.stdout, p.stderr[-300:]))
            check(("credentials: from " + want_provider.split(",")[0]).encode() in p.stderr,
                  "%s: the --debug line names the provider" % name)
            c, _ = run(cli, ["cat", url], e)
            check(c.returncode == 0 and c.stdout == payload, "%s: cat is byte-exact" % name)

        stat_with("environment", env(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret), "environment")
        creds = os.path.join(tmp, "credentials")
        with open(creds, "w") as f:
            f.write("[default]\naws_access_key_id = WRONGKEY\naws_secret_access_key = wrong\n"
                    "[ci]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (key, secret))
        stat_with("profile static keys", env(AWS_SHARED_CREDENTIALS_FILE=creds, AWS_PROFILE="ci"),
                  "profile ci (static keys)")
        script = os.path.join(tmp, "helper.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nprintf '{\"Version\": 1, \"AccessKeyId\": \"%s\", \"SecretAccessKey\": \"%s\", "
                    "\"SessionToken\": \"proc-token\", \"Expiration\": \"%s\"}'\n" % (key, secret, iso(time.time() + 900)))
        os.chmod(script, 0o700)
        cfg = os.path.join(tmp, "config")
        with open(cfg, "w") as f:
            f.write("[profile laptop]\nregion = us-east-1\ncredential_process = %s\n" % script)
        stat_with("profile credential_process", env(AWS_CONFIG_FILE=cfg, AWS_PROFILE="laptop"),
                  "profile laptop (credential_process), temporary")

        seen = []
        sts = sts_fake(issuer, seen)
        tok = os.path.join(tmp, "token")
        with open(tok, "w") as f:
            f.write("eyJ.web-identity-jwt.sig")
        stat_with("web identity", env(AWS_ROLE_ARN="arn:aws:iam::123456789012:role/model-reader",
                                      AWS_WEB_IDENTITY_TOKEN_FILE=tok, AWS_ENDPOINT_URL_STS=sts.url),
                  "web-identity, temporary")
        check(seen and seen[0] == "eyJ.web-identity-jwt.sig", "web identity: STS got the token file's JWT")

        cont = container_fake(issuer, want_auth="pod-identity-token")
        auth = os.path.join(tmp, "auth")
        with open(auth, "w") as f:
            f.write("pod-identity-token\n")
        stat_with("container", env(AWS_CONTAINER_CREDENTIALS_FULL_URI=cont.url + "/v1/credentials",
                                   AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=auth), "container, temporary")

        imds = imds_fake(issuer)
        stat_with("imds", env(AWS_EC2_METADATA_DISABLED="false", AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url),
                  "imds, temporary")

        # Precedence: everything set at once; the environment's keys win, then (without them) the profile.
        allset = env(AWS_SHARED_CREDENTIALS_FILE=creds, AWS_PROFILE="ci", AWS_ROLE_ARN="arn:aws:iam::1:role/r",
                     AWS_WEB_IDENTITY_TOKEN_FILE=tok, AWS_ENDPOINT_URL_STS=sts.url,
                     AWS_CONTAINER_CREDENTIALS_FULL_URI=cont.url, AWS_CONTAINER_AUTHORIZATION_TOKEN="pod-identity-token",
                     AWS_EC2_METADATA_DISABLED="false", AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
        stat_with("precedence: profile before web identity, container, imds", allset, "profile ci (static keys)")
        allset.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret)
        stat_with("precedence: environment first", allset, "environment")
        wrong = dict(allset, AWS_ACCESS_KEY_ID="AKIAWRONG", AWS_SECRET_ACCESS_KEY="wrong-secret-never-printed")
        p, _ = run(cli, ["stat", url], wrong)
        outputs.append(p.stdout + p.stderr)
        check(p.returncode == 1 and b"403" in p.stderr, "precedence: wrong environment keys are used (403), not "
              "the good profile behind them")
        # Anonymous (s3rver serves unsigned requests too; that nothing is signed is checked in expiry mode).
        p, _ = run(cli, ["stat", url], env(AWS_NO_SIGN_REQUEST="true", AWS_ACCESS_KEY_ID=key,
                                             AWS_SECRET_ACCESS_KEY=secret))
        check(p.returncode == 0 and b"credentials\tnone (anonymous" in p.stdout,
              "AWS_NO_SIGN_REQUEST=true: stat reports anonymous access (%r)" % p.stdout)
        for s in (sts, cont, imds):
            s.close()
    blob = b"".join(outputs)
    check(no_secrets(blob, [issuer], extra=[secret, "wrong-secret-never-printed", "pod-identity-token",
                                             "web-identity-jwt", "proc-token"]),
          "no secret, token or signature in any output")


# ---------------------------------------------------------------------------------------------- expiry


class TokenCheckingS3:
    """One object; every request must carry a session token that `issuer` issued and that is still valid
    (`revoke_early_s` before its advertised expiration it is refused, as when a role session is revoked or
    clocks disagree). GETs take `delay_s` each, so a load spans several credential lifetimes."""

    def __init__(self, issuer, data, delay_s, revoke_early_s):
        self.issuer, self.data, self.delay_s, self.revoke_early_s = issuer, data, delay_s, revoke_early_s
        self.refused = 0
        self.tokens_used = set()
        self.server = Server(self.serve)

    def serve(self, method, path, headers, body):
        tok = headers.get("x-amz-security-token")
        valid = {t: exp for _, _, t, exp in self.issuer.issued}
        if "Authorization" not in headers or tok not in valid or time.time() >= valid[tok] - self.revoke_early_s:
            self.refused += 1
            return 403, b"<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>", {}
        self.tokens_used.add(tok)
        size = len(self.data)
        common = {"ETag": '"e1"', "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT", "Accept-Ranges": "bytes"}
        if method == "HEAD":
            return 200, b"", dict(common, **{"Content-Length": str(size)})
        rng = headers.get("Range", "")
        first, last = rng[len("bytes="):].split("-")
        first, last = int(first), min(int(last), size - 1)
        time.sleep(self.delay_s)
        return 206, self.data[first:last + 1], dict(common, **{"Content-Range": "bytes %d-%d/%d" % (first, last, size)})


class ListingTokenS3(TokenCheckingS3):
    """TokenCheckingS3 serving one key, `models/m/model.bin`, with ListObjectsV2 for the shim's mount."""

    KEY = "m/model.bin"

    def serve(self, method, path, headers, body):
        url = urllib.parse.urlsplit(path)
        q = urllib.parse.parse_qs(url.query)
        if method == "GET" and url.path.rstrip("/") == "/models" and q.get("list-type") == ["2"]:
            status, out, extra = super().serve("HEAD", path, headers, body)  # the token check only
            if status != 200:
                return status, out, extra
            prefix, delim = q.get("prefix", [""])[0], q.get("delimiter", [""])[0]
            contents = prefixes = ""
            if self.KEY.startswith(prefix):
                rest = self.KEY[len(prefix):]
                if delim and delim in rest:
                    prefixes = "<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>" % (prefix + rest.split(delim)[0] + delim)
                else:
                    contents = ("<Contents><Key>%s</Key><Size>%d</Size><ETag>\"e1\"</ETag>"
                                "<LastModified>2015-10-21T07:28:00.000Z</LastModified></Contents>" % (self.KEY, len(self.data)))
            x = ("<ListBucketResult><Name>models</Name><Prefix>%s</Prefix><KeyCount>1</KeyCount><IsTruncated>false"
                 "</IsTruncated>%s%s</ListBucketResult>" % (prefix, contents, prefixes))
            return 200, x.encode(), {"Content-Type": "application/xml"}
        if url.path != "/models/" + self.KEY:
            return 404, b"<Error><Code>NoSuchKey</Code></Error>", {}
        return super().serve(method, path, headers, body)


def shim_mode(cli, lib):
    """Credentials expiring while a program reads a model through the shim: mmap (page faults) and read."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shim"))
    import sanitizer
    data = os.urandom(24 << 20)
    want = hashlib.sha256(data).hexdigest()
    prog = ("import hashlib, mmap, sys\n"
            "f = open(sys.argv[1], 'rb')\n"
            "m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if sys.argv[2] == 'mmap' else None\n"
            "h = hashlib.sha256()\n"
            "pos = 0\n"
            "while True:\n"
            "    b = m[pos:pos + (1 << 20)] if m is not None else f.read(1 << 20)\n"
            "    if not b: break\n"
            "    h.update(b); pos += len(b)\n"
            "print(h.hexdigest())\n")
    with tempfile.TemporaryDirectory() as tmp:
        for how in ("mmap", "read"):
            issuer = Issuer(life_s=3)
            s3 = ListingTokenS3(issuer, data, delay_s=0.25, revoke_early_s=1.2)
            cont = container_fake(issuer)
            stats = os.path.join(tmp, "stats-%s.json" % how)
            mount = os.path.join(tmp, "mnt-" + how)
            env = base_env(tmp, AWS_ENDPOINT_URL=s3.server.url, AWS_CONTAINER_CREDENTIALS_FULL_URI=cont.url,
                           MODELFETCH_REMOTE="s3://models/m", MODELFETCH_MOUNT=mount, MODELFETCH_PREFETCH="none",
                           MODELFETCH_CHUNK_SIZE="1M", MODELFETCH_MAX_CONNECTIONS="2", MODELFETCH_STATS=stats,
                           MODELFETCH_LOG="debug", MODELFETCH_CREDENTIAL_REFRESH_AHEAD_S="0")
            sanitizer.preload_env(lib, env)
            t0 = time.monotonic()
            p = subprocess.run(["/usr/bin/python3", "-c", prog, os.path.join(mount, "model.bin"), how], env=env,
                               capture_output=True, timeout=150)
            secs = time.monotonic() - t0
            check(p.returncode == 0 and p.stdout.decode().strip() == want,
                  "shim %s: a %.1f s load over 3 s credentials is byte-exact (rc %d, %r)"
                  % (how, secs, p.returncode, p.stderr[-400:]))
            check(len(s3.tokens_used) >= 2 and s3.refused >= 1,
                  "shim %s: %d tokens used, %d refusals retried after a refresh" % (how, len(s3.tokens_used), s3.refused))
            blob = p.stdout + p.stderr + (open(stats, "rb").read() if os.path.exists(stats) else b"")
            check(os.path.exists(stats) and no_secrets(blob, [issuer]),
                  "shim %s: no secret or token in the debug log or the stats file" % how)
            s3.server.close()
            cont.close()


def expiry_mode(cli):
    data = os.urandom(40 << 20)  # 5 parts of 8 MiB for `cat`, one after another
    want = hashlib.sha256(data).hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        for name, revoke_early, extra in (("refreshed ahead", 0.0, {}),
                                          ("revoked early: refused, refreshed, retried", 1.8,
                                           {"MODELFETCH_CREDENTIAL_REFRESH_AHEAD_S": "0"})):
            issuer = Issuer(life_s=3)
            s3 = TokenCheckingS3(issuer, data, delay_s=1.2, revoke_early_s=revoke_early)
            cont = container_fake(issuer)
            env = base_env(tmp, AWS_ENDPOINT_URL=s3.server.url, AWS_CONTAINER_CREDENTIALS_FULL_URI=cont.url,
                           **extra)
            p, secs = run(cli, ["--debug", "cat", "s3://models/big.bin"], env, timeout=120)
            got = hashlib.sha256(p.stdout).hexdigest()
            check(p.returncode == 0 and got == want,
                  "%s: a %.1f s load over 3 s credentials completes byte-exact (rc %d, %r)"
                  % (name, secs, p.returncode, p.stderr[-400:]))
            check(len(s3.tokens_used) >= 2, "%s: the load used %d successive tokens" % (name, len(s3.tokens_used)))
            if revoke_early:
                check(s3.refused >= 1 and b"refused for expired credentials" in p.stderr,
                      "%s: %d requests were refused and retried" % (name, s3.refused))
            else:
                check(s3.refused == 0, "%s: no request was refused (%d)" % (name, s3.refused))
            check(b"credentials: from container" in p.stderr, "%s: the --debug line names the provider" % name)
            check(no_secrets(p.stderr, [issuer]), "%s: no secret or token in the debug log" % name)
            s3.server.close()
            cont.close()

        # Anonymous: AWS_NO_SIGN_REQUEST=true / MODELFETCH_NO_SIGN=1 send no signature even with keys set.
        for var, val in (("AWS_NO_SIGN_REQUEST", "true"), ("MODELFETCH_NO_SIGN", "1")):
            plain = Server(lambda m, path, h, b: (200, b"", {"Content-Length": "5", "ETag": '"e"'}))
            p, _ = run(cli, ["stat", "s3://models/x"], base_env(tmp, AWS_ENDPOINT_URL=plain.url, AWS_ACCESS_KEY_ID="AK",
                                                                 AWS_SECRET_ACCESS_KEY="SK", **{var: val}))
            signed = [r for r in plain.requests if "Authorization" in r[2] or "x-amz-security-token" in r[2]]
            check(p.returncode == 0 and plain.requests and not signed, "%s=%s: requests go unsigned" % (var, val))
            plain.close()

        # IMDS that accepts connections and never answers: the chain gives up within 2 s, one line.
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(1)
        env = base_env(tmp, AWS_EC2_METADATA_DISABLED="false",
                       AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:%d" % hole.getsockname()[1])
        p, secs = run(cli, ["credentials"], env)
        hole.close()
        check(p.returncode == 1 and secs < 2.0 and p.stderr.count(b"\n") == 1 and b"imds:" in p.stderr
              and b"environment:" in p.stderr,
              "IMDS unreachable: `modelfetch credentials` gives up in %.2f s with one line: %r" % (secs, p.stderr))
        # A credential_process that fails: the reason, not its output.
        script = os.path.join(tmp, "bad.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\necho 'AKIA-leaked-by-helper'\nexit 4\n")
        os.chmod(script, 0o700)
        cfg = os.path.join(tmp, "config")
        with open(cfg, "w") as f:
            f.write("[default]\ncredential_process = %s\n" % script)
        p, _ = run(cli, ["stat", "s3://models/x"], base_env(tmp, AWS_CONFIG_FILE=cfg, AWS_ENDPOINT_URL="http://127.0.0.1:9"))
        check(p.returncode == 1 and b"credential_process exited with status 4" in p.stderr
              and b"AKIA-leaked" not in p.stderr, "failing credential_process: clear error (%r)" % p.stderr)


def main():
    mode, cli = sys.argv[1], sys.argv[2]
    if mode == "s3rver":
        s3rver_mode(cli)
    elif mode == "shim":
        shim_mode(cli, sys.argv[3])
    else:
        expiry_mode(cli)
    if failures:
        print("%d failure(s)" % len(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
