"""s3fs-fuse and rclone mount over modelfetch-s3emu: the mount lists the bucket (V1 and V2 listings with '/'
delimiters) and reads a file byte for byte. Exit 77 (skipped) without /dev/fuse, root, or either tool.
Usage: test_s3emu_mounts.py EMULATOR"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

SKIP = 77


def wait_mounted(path, proc=None, seconds=20):
    for _ in range(int(seconds * 10)):
        if os.path.ismount(path):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def unmount(path):
    for cmd in (["fusermount", "-u", path], ["umount", path], ["umount", "-l", path]):
        if shutil.which(cmd[0]) and subprocess.call(cmd, stderr=subprocess.DEVNULL) == 0:
            return


def check_tree(mnt, want, name):
    bad = []
    top = sorted(os.listdir(mnt))
    if top != ["a.txt", "sub"]:
        bad.append("%s: top-level listing %s" % (name, top))
    if sorted(os.listdir(os.path.join(mnt, "sub"))) != ["blob.bin"]:
        bad.append("%s: sub listing" % name)
    with open(os.path.join(mnt, "sub", "blob.bin"), "rb") as f:
        got = f.read()
    if got != want:
        bad.append("%s: content differs (%d bytes, want %d)" % (name, len(got), len(want)))
    if os.stat(os.path.join(mnt, "a.txt")).st_size != 5:
        bad.append("%s: size of a.txt" % name)
    return bad


def main():
    exe = sys.argv[1]
    tools = [t for t in ("s3fs", "rclone") if shutil.which(t)]
    if not os.path.exists("/dev/fuse") or os.geteuid() != 0 or not tools:
        print("skipped: needs root, /dev/fuse and s3fs or rclone")
        return SKIP
    failures = []
    with tempfile.TemporaryDirectory(prefix="mf-s3emu-mnt-") as root:
        data = os.path.join(root, "data")
        os.makedirs(os.path.join(data, "sub"))
        blob = os.urandom(3_000_000)
        with open(os.path.join(data, "sub", "blob.bin"), "wb") as f:
            f.write(blob)
        with open(os.path.join(data, "a.txt"), "w") as f:
            f.write("hello")
        port_file = os.path.join(root, "port")
        emu = subprocess.Popen([exe, "--dir", data, "--bucket", "mnt-test", "--port-file", port_file,
                                "--quiet", "--latency-ms", "1", "--conn-rate", "0"])
        try:
            for _ in range(100):
                if os.path.exists(port_file):
                    break
                time.sleep(0.05)
            url = "http://127.0.0.1:%d" % int(open(port_file).read())
            env = dict(os.environ, AWSACCESSKEYID="emu", AWSSECRETACCESSKEY="emu-secret")
            env.pop("AWS_CA_BUNDLE", None)  # rclone fails with LoadCustomCABundleError when it is set (FACTS.md)
            for tool in tools:
                mnt = os.path.join(root, "mnt-" + tool)
                os.makedirs(mnt)
                if tool == "s3fs":
                    cmd = ["s3fs", "mnt-test", mnt, "-f", "-o", "url=" + url, "-o", "use_path_request_style",
                           "-o", "ro", "-o", "nonempty"]
                else:
                    cmd = ["rclone", "mount", ":s3:mnt-test", mnt, "--read-only", "--s3-provider", "Other",
                           "--s3-endpoint", url, "--s3-access-key-id", "emu", "--s3-secret-access-key", "emu-secret"]
                proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                try:
                    if not wait_mounted(mnt, proc):
                        failures.append("%s did not mount: %s" % (tool, proc.stderr.read(2000) if proc.poll() is not None else "timeout"))
                        continue
                    failures += check_tree(mnt, blob, tool)
                finally:
                    unmount(mnt)
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                print("%s: mounted and read" % tool)
        finally:
            emu.terminate()
            emu.wait()
    for f in failures:
        print("FAIL:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
