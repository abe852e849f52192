"""Fixture files for the shim tests: deterministic random bytes of sizes around chunk and page edges (one
larger than the default 8 MiB chunk, of an odd size), a nested folder, a JSON config, a small safetensors
file (8-byte little-endian header length, JSON header, data) with tensors whose name order differs from
their offset order, and a small torch.save file (written without importing torch, which takes seconds)."""
import io
import json
import os
import random
import struct
import zipfile

SIZES = {"empty.bin": 0, "one.bin": 1, "page.bin": 4096, "odd.bin": 1_000_003,
         "chunks.bin": 3 * (1 << 20) + 12345, "sub/dir/nested.bin": 70_000,
         # s3rver 5 omits "sub/" from a delimited listing of the root when every key below it is two levels
         # deep (S3 lists it): a file directly in sub/ keeps the S3 flavour of the tests meaningful.
         "sub/top.bin": 5000,
         "big.bin": 9 * (1 << 20) + 4099}  # several chunks at the default 8 MiB chunk size too


def _bytes(n, seed):
    rng = random.Random(seed)
    return bytes(rng.getrandbits(8) for _ in range(n)) if n < 4096 else rng.randbytes(n)


def safetensors_bytes():
    import numpy as np
    rng = np.random.default_rng(7)
    tensors = {}
    for i in (2, 10, 1, 11):  # name order layers.1, layers.10, layers.11, layers.2 != offset order
        tensors["layers.%d.weight" % i] = rng.standard_normal((64, 96 + i)).astype(np.float32)
    tensors["embed"] = rng.integers(-1000, 1000, size=(300, 70), dtype=np.int64)
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors.items():
        b = arr.tobytes()
        dtype = {"float32": "F32", "int64": "I64"}[str(arr.dtype)]
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


TENSOR_PT_VALUES = [i * 0.5 - 7.0 for i in range(48)]  # float32, shape (6, 8)


def tensor_pt_bytes():
    """torch.save(torch.tensor(TENSOR_PT_VALUES, dtype=torch.float32).reshape(6, 8)) in torch's zip format:
    archive/data.pkl is the pickle (protocol 2) of _rebuild_tensor_v2(storage, 0, (6, 8), (8, 1), False,
    OrderedDict()) whose storage is the persistent id ('storage', FloatStorage, '0', 'cpu', 48);
    archive/data/0 holds the 48 little-endian floats."""
    def s(text):  # BINUNICODE (protocol 1+: torch's weights_only unpickler knows no SHORT_BINUNICODE)
        b = text.encode()
        return b"X" + struct.pack("<I", len(b)) + b
    def i(n):  # BININT1
        return b"K" + bytes([n])
    pkl = (b"\x80\x02" + b"ctorch._utils\n_rebuild_tensor_v2\n" + b"(" +
           b"(" + s("storage") + b"ctorch\nFloatStorage\n" + s("0") + s("cpu") + i(48) + b"tQ" +
           i(0) + i(6) + i(8) + b"\x86" + i(8) + i(1) + b"\x86" + b"\x89" +
           b"ccollections\nOrderedDict\n" + b")R" + b"tR.")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, data in (("archive/data.pkl", pkl), ("archive/byteorder", b"little"),
                           ("archive/data/0", struct.pack("<48f", *TENSOR_PT_VALUES)), ("archive/version", b"3\n")):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, data)
    return out.getvalue()


def make(root):
    for i, (name, size) in enumerate(sorted(SIZES.items())):
        p = os.path.join(root, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(_bytes(size, i))
    with open(os.path.join(root, "config.json"), "w") as f:
        json.dump({"model_type": "test", "hidden_size": 64}, f)
    with open(os.path.join(root, "model.safetensors"), "wb") as f:
        f.write(safetensors_bytes())
    with open(os.path.join(root, "tensor.pt"), "wb") as f:
        f.write(tensor_pt_bytes())


def upload(root, endpoint, bucket, prefix, key, secret):
    import boto3
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                      region_name="us-east-1")
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            s3.upload_file(p, bucket, prefix + "/" + os.path.relpath(p, root))
