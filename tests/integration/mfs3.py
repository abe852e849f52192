"""Shared by the Python integration tests: skip logic, a boto3 client for the test server, and the
environment the modelfetch CLI needs."""
import os
import random
import subprocess
import sys


def require_server():
    if not os.environ.get("MODELFETCH_TEST_ENDPOINT"):
        if os.environ.get("MODELFETCH_TEST_REQUIRE_S3") == "1":
            print("MODELFETCH_TEST_REQUIRE_S3=1 but MODELFETCH_TEST_ENDPOINT is not set", file=sys.stderr)
            sys.exit(1)
        print("skipped: MODELFETCH_TEST_ENDPOINT not set (run scripts/test)")
        sys.exit(77)


def boto3_client():
    import boto3
    from botocore.config import Config
    return boto3.client(
        "s3",
        endpoint_url=os.environ["MODELFETCH_TEST_ENDPOINT"],
        aws_access_key_id=os.environ["MODELFETCH_TEST_KEY"],
        aws_secret_access_key=os.environ["MODELFETCH_TEST_SECRET"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


BUCKET = os.environ.get("MODELFETCH_TEST_BUCKET", "")


def cli_env(**overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=os.environ["MODELFETCH_TEST_ENDPOINT"],
        AWS_ACCESS_KEY_ID=os.environ["MODELFETCH_TEST_KEY"],
        AWS_SECRET_ACCESS_KEY=os.environ["MODELFETCH_TEST_SECRET"],
        MODELFETCH_RETRY_BASE_MS="10",
    )
    env.update(overrides)
    return env


def run(cli, args, env, stdin=None):
    return subprocess.run([cli] + args, env=env, capture_output=True, timeout=60)


def run_prefix():
    return "py-%d/" % random.getrandbits(40)
