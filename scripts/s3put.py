#!/usr/bin/python3
"""Upload a local directory to an S3 bucket prefix with boto3 (an independent SigV4 client).

Usage: s3put.py DIR s3://BUCKET/PREFIX
Endpoint and credentials come from the standard AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
Used by scripts/demo and the tests to put fixtures on the local S3 test server.
"""
import os
import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config


def main() -> int:
    if len(sys.argv) != 3 or not sys.argv[2].startswith("s3://"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    src, url = sys.argv[1], sys.argv[2][len("s3://"):]
    bucket, _, prefix = url.partition("/")
    prefix = prefix.strip("/")
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}),
    )
    # Single-part uploads: s3rver's multipart support is not what we test, and ETags stay plain MD5s.
    transfer = TransferConfig(multipart_threshold=1 << 40, max_concurrency=4)
    total = 0
    for root, _dirs, files in os.walk(src):
        for name in sorted(files):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src)
            key = f"{prefix}/{rel}" if prefix else rel
            s3.upload_file(path, bucket, key, Config=transfer)
            total += os.path.getsize(path)
    print(f"uploaded {total} bytes to s3://{bucket}/{prefix}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
