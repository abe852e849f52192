"""modelfetch CLI: exit codes (0 ok, 1 remote error, 2 bad usage), output formats, and that credentials
never appear in anything it prints."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mfs3  # noqa: E402

failures = []
outputs = []


def expect(cli, args, env, code, stdout=None, stderr_has=None, one_line=True):
    p = mfs3.run(cli, args, env)
    outputs.append(p.stdout + p.stderr)
    ok = p.returncode == code
    if stdout is not None and p.stdout != stdout:
        ok = False
    if stderr_has is not None and stderr_has.encode() not in p.stderr:
        ok = False
    if code != 0 and one_line and p.stderr.count(b"\n") != 1:  # errors are one line
        ok = False
    if not ok:
        failures.append("%s: rc=%d (want %d) stdout=%r stderr=%r" % (args, p.returncode, code, p.stdout[:200], p.stderr))
    return p


def main():
    mfs3.require_server()
    cli = sys.argv[1]
    s3 = mfs3.boto3_client()
    pre = mfs3.run_prefix()
    s3.put_object(Bucket=mfs3.BUCKET, Key=pre + "a.txt", Body=b"hello world")
    s3.put_object(Bucket=mfs3.BUCKET, Key=pre + "sub/b.bin", Body=b"x" * 300)
    b = mfs3.BUCKET
    env = mfs3.cli_env()
    secret = "S3CR3T-never-printed"
    token = "T0KEN-never-printed"
    bad = mfs3.cli_env(AWS_SECRET_ACCESS_KEY=secret, AWS_SESSION_TOKEN=token)

    # 0: success, with the documented formats
    expect(cli, ["ls", "s3://%s/%s" % (b, pre)], env, 0, stdout=("11\t%sa.txt\n300\t%ssub/b.bin\n" % (pre, pre)).encode())
    expect(cli, ["ls", "--delimited", "s3://%s/%s" % (b, pre)], env, 0,
           stdout=("-\t%ssub/\n11\t%sa.txt\n" % (pre, pre)).encode())
    p = expect(cli, ["stat", "s3://%s/%sa.txt" % (b, pre)], env, 0)
    if not p.stdout.startswith(b"size\t11\netag\t\""):
        failures.append("stat format: %r" % p.stdout)
    expect(cli, ["cat", "s3://%s/%sa.txt" % (b, pre)], env, 0, stdout=b"hello world")
    expect(cli, ["cat", "s3://%s/%sa.txt" % (b, pre), "--offset", "6"], env, 0, stdout=b"world")
    expect(cli, ["cat", "s3://%s/%sa.txt" % (b, pre), "--offset", "0", "--length", "5"], env, 0, stdout=b"hello")
    for cmd in ["ls", "stat", "cat", "get"]:
        expect(cli, [cmd, "--help"], env, 0)
    expect(cli, ["--help"], env, 0)

    # 1: remote errors
    expect(cli, ["stat", "s3://%s/%snothere" % (b, pre)], env, 1, stderr_has="modelfetch: ")
    expect(cli, ["cat", "s3://%s/%sa.txt" % (b, pre), "--offset", "11", "--length", "1"], env, 1, stderr_has="416")
    expect(cli, ["stat", "s3://%s/%sa.txt" % (b, pre)], bad, 1, stderr_has="403")
    expect(cli, ["cat", "s3://%s/%sa.txt" % (b, pre)], bad, 1)
    expect(cli, ["ls", "s3://%s/%s" % (b, pre)], bad, 1, stderr_has="SignatureDoesNotMatch")
    expect(cli, ["get", "s3://%s/%sa.txt" % (b, pre), "/dev/null"], bad, 1)
    expect(cli, ["ls", "http://127.0.0.1:1/x/"], env, 1)  # listing an http remote: ENOTSUP

    # 2: bad usage, malformed URLs and variables
    expect(cli, [], env, 2, stderr_has="usage:", one_line=False)  # no command: the usage text
    expect(cli, ["frobnicate"], env, 2)
    expect(cli, ["stat"], env, 2)
    expect(cli, ["cat", "s3://%s/x" % b, "--offset", "abc"], env, 2, stderr_has="--offset")
    expect(cli, ["stat", "s3:/nobucket"], env, 2, stderr_has="expected s3://BUCKET")
    expect(cli, ["stat", "s3://%s/x" % b], mfs3.cli_env(AWS_ENDPOINT_URL="localhost:9"), 2, stderr_has="AWS_ENDPOINT_URL")
    expect(cli, ["stat", "s3://%s/x" % b], mfs3.cli_env(MODELFETCH_MAX_CONNECTIONS="0"), 2,
           stderr_has="MODELFETCH_MAX_CONNECTIONS")
    expect(cli, ["stat", "s3://%s/x" % b], mfs3.cli_env(AWS_ACCESS_KEY_ID=""), 2, stderr_has="AWS_ACCESS_KEY_ID")
    expect(cli, ["stat", "https://h/x?X-Amz-Signature=" + secret, "extra"], env, 2)

    for out in outputs:
        for s in (secret, token, os.environ["MODELFETCH_TEST_SECRET"]):
            if s.encode() in out:
                failures.append("a credential appeared in the output: %r" % out[:300])
    for f in failures:
        print("FAIL", f)
    print("%d CLI runs, %d failures" % (len(outputs), len(failures)))
    sys.exit(1 if failures else 0)


main()
