#!/usr/bin/python3
"""Runs one shim test program under LD_PRELOAD against fixture files served through modelfetch.

usage: harness.py --lib LIB --mode local|s3 -- PROGRAM ARGS...

Creates the fixtures (tests/shim/fixtures.py) in a fresh directory, serves them either from a local
directory (mode local: the test build of the shim, MODELFETCH_TEST_LOCAL_ROOT) or from the S3 server that
scripts/test starts (mode s3: uploaded with boto3; skipped with exit 77 when MODELFETCH_TEST_ENDPOINT is
unset, unless MODELFETCH_TEST_REQUIRE_S3=1). The program gets MF_LOCAL_DIR (the same files on local disk)
and MF_MOUNT_DIR (the mount) and compares the two byte for byte.
"""
import os
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402
import sanitizer  # noqa: E402


def main():
    args = sys.argv[1:]
    lib = args[args.index("--lib") + 1]
    mode = args[args.index("--mode") + 1]
    cmd = args[args.index("--") + 1:]
    prog = cmd[0] if cmd[0] != "env" else next(a for a in cmd[1:] if "=" not in a)
    why = sanitizer.blocked(lib, prog)
    if why:
        print("skipped:", why)
        return 77
    work = tempfile.mkdtemp(prefix="mf-shim-")
    os.chmod(work, 0o755)  # the unprivileged-user test reads the local copy too
    env = dict(os.environ)
    prefix = "fixtures-" + uuid.uuid4().hex[:8]
    local = os.path.join(work, "root", "bucket", prefix)
    fixtures.make(local)
    if mode == "local":
        env["MODELFETCH_TEST_LOCAL_ROOT"] = os.path.join(work, "root")
        env["MODELFETCH_REMOTE"] = "s3://bucket/" + prefix
    else:
        endpoint = os.environ.get("MODELFETCH_TEST_ENDPOINT")
        if not endpoint:
            if os.environ.get("MODELFETCH_TEST_REQUIRE_S3") == "1":
                print("MODELFETCH_TEST_ENDPOINT is not set but MODELFETCH_TEST_REQUIRE_S3=1")
                return 1
            print("skipped: no S3 server (MODELFETCH_TEST_ENDPOINT unset)")
            return 77
        bucket = os.environ["MODELFETCH_TEST_BUCKET"]
        fixtures.upload(local, endpoint, bucket, prefix, os.environ["MODELFETCH_TEST_KEY"],
                        os.environ["MODELFETCH_TEST_SECRET"])
        env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=os.environ["MODELFETCH_TEST_KEY"],
                   AWS_SECRET_ACCESS_KEY=os.environ["MODELFETCH_TEST_SECRET"], AWS_REGION="us-east-1")
        env["MODELFETCH_REMOTE"] = "s3://%s/%s" % (bucket, prefix)
    mount = os.path.join(work, "mnt", "models")
    env["MODELFETCH_MOUNT"] = mount
    env["MF_LOCAL_DIR"] = local
    env["MF_MOUNT_DIR"] = mount
    sanitizer.preload_env(lib, env)  # the sanitizer runtime first in a sanitized build
    env.setdefault("MODELFETCH_CACHE_SIZE", "64M")
    env.setdefault("MODELFETCH_CHUNK_SIZE", "1M")  # several chunks per fixture: exercises chunk edges
    rc = subprocess.call(cmd, env=env)
    subprocess.call(["rm", "-rf", work])
    return rc


if __name__ == "__main__":
    sys.exit(main())
