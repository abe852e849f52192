"""Cross-check: the same byte ranges read by boto3 (an independent SigV4 client) and by `modelfetch cat`,
and a whole-object `modelfetch get`, must be identical."""
import hashlib
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mfs3  # noqa: E402


def main():
    mfs3.require_server()
    cli = sys.argv[1]
    s3 = mfs3.boto3_client()
    key = mfs3.run_prefix() + "cross.bin"
    size = 20 * 1024 * 1024 + 12345  # more than two 8 MiB parts, not a multiple of them
    data = os.urandom(size)
    s3.put_object(Bucket=mfs3.BUCKET, Key=key, Body=data)
    env = mfs3.cli_env()
    url = "s3://%s/%s" % (mfs3.BUCKET, key)
    # Not (0, 1): s3rver answers "bytes=0-0" with the whole object (the client refuses that; unit-tested).
    ranges = [(0, 2), (1, 1), (size - 1, 1), (0, size), (8 * 1024 * 1024 - 3, 7), (12345, 9 * 1024 * 1024), (size - 100, 100)]
    failures = 0
    for off, length in ranges:
        ref = s3.get_object(Bucket=mfs3.BUCKET, Key=key, Range="bytes=%d-%d" % (off, off + length - 1))["Body"].read()
        p = mfs3.run(cli, ["cat", url, "--offset", str(off), "--length", str(length)], env)
        if p.returncode != 0 or p.stdout != ref or ref != data[off:off + length]:
            print("MISMATCH at [%d+%d): rc=%d %s" % (off, length, p.returncode, p.stderr.decode()))
            failures += 1
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out.bin")
        p = mfs3.run(cli, ["get", url, out], mfs3.cli_env(MODELFETCH_MAX_CONNECTIONS="4"))
        if p.returncode != 0:
            print("get failed: rc=%d %s" % (p.returncode, p.stderr.decode()))
            failures += 1
        else:
            with open(out, "rb") as f:
                got = f.read()
            if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
                print("get: content differs (%d bytes vs %d)" % (len(got), size))
                failures += 1
            if b"GB/s" not in p.stderr:
                print("get: no throughput line on stderr")
                failures += 1
    print("%d ranges and one get checked, %d failures" % (len(ranges), failures))
    sys.exit(1 if failures else 0)


main()
