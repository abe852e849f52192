# Shared by scripts/test, scripts/demo and the benchmarks: install what is missing, build, and run a local
# S3-compatible server. Source it; functions are prefixed mf_. Works as root on a fresh Debian 12 machine
# (apt + npm only) and, when everything is already installed, as any user.

MF_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MF_BUILD=${MF_BUILD:-$MF_ROOT/build}
MF_PY=/usr/bin/python3
# Every script here talks to local servers only: the credential chain must never reach for the EC2 instance
# metadata service (a link-local address) from a test, the demo or a benchmark. Tests that exercise IMDS
# point AWS_EC2_METADATA_SERVICE_ENDPOINT at a loopback fake and set this to false themselves.
export AWS_EC2_METADATA_DISABLED=${AWS_EC2_METADATA_DISABLED:-true}  # Debian's python: numpy, torch and boto3 come from apt (the pyenv python has none)

# Debian packages the build, the tests and the demo need.
MF_APT_PACKAGES=(
  g++ pkg-config meson ninja-build
  libcurl4-openssl-dev libxxhash-dev rapidjson-dev doctest-dev libpugixml-dev
  python3 python3-numpy python3-boto3 python3-torch
  nginx util-linux procps time s3fs rclone python3-matplotlib openssl hyperfine binutils
  rsync  # tests/shim/ways.py reads the mount with it (cp, cat, dd, tar, sha256sum come with the base system)
  clang libclang-rt-dev  # scripts/fuzz (libFuzzer); the GCC sanitizer runtimes come with g++
)

mf_log() { printf '==> %s\n' "$*" >&2; }
# mf_timed WHAT CMD...: runs CMD and logs how long it took.
mf_timed() {
  local what=$1 t0=$SECONDS
  shift
  mf_log "$what"
  "$@"
  mf_log "$what: done in $((SECONDS - t0)) s"
}
mf_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

mf_install_deps() {
  local missing=() p
  for p in "${MF_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if ((${#missing[@]})); then
    [ "$(id -u)" = 0 ] || mf_die "missing packages (${missing[*]}); run as root or install them"
    mf_log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || mf_die "apt-get update failed"
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || mf_die "apt-get install failed"
  fi
  # The S3 test server, pinned by scripts/s3rver/package-lock.json.
  local s3dir=$MF_ROOT/scripts/s3rver
  if [ ! -f "$s3dir/node_modules/.package-lock.json" ] ||
     [ "$s3dir/package-lock.json" -nt "$s3dir/node_modules/.package-lock.json" ]; then
    mf_log "installing the S3 test server (npm ci)"
    (cd "$s3dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || mf_die "npm ci failed in $s3dir"
  fi
}

# mf_build [meson options...]: configure once, then build. CI builds with warnings as errors.
mf_build() {
  local opts=("$@")
  [ "${CI:-}" = true ] && opts+=(-Dwerror=true)
  if [ ! -f "$MF_BUILD/build.ninja" ]; then
    meson setup "$MF_BUILD" "$MF_ROOT" "${opts[@]}" >/dev/null || mf_die "meson setup failed"
  fi
  mf_log "building in $MF_BUILD"
  ninja -C "$MF_BUILD" >/dev/null || { ninja -C "$MF_BUILD"; mf_die "build failed"; }
}

# mf_start_s3 WORKDIR: starts s3rver on a free loopback port with its data in WORKDIR/s3data, waits until it
# listens, and exports the variables tests and the demo use. The server is stopped by PID on exit.
MF_S3_BUCKET=modelfetch-test
MF_S3_KEY=mf-test-key
MF_S3_SECRET=mf-test-secret-0123456789
mf_start_s3() {
  local work=$1
  mkdir -p "$work/s3data"
  rm -f "$work/s3.port"
  # --openssl-legacy-provider: s3rver makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only
  # offers through its legacy provider (without it, a listing's second page answers HTTP 500).
  node --openssl-legacy-provider "$MF_ROOT/scripts/s3rver/serve.js" --dir "$work/s3data" --port-file "$work/s3.port" \
    --bucket "$MF_S3_BUCKET" --key "$MF_S3_KEY" --secret "$MF_S3_SECRET" 2>"$work/s3rver.log" &
  MF_S3_PID=$!
  trap 'mf_stop_s3' EXIT
  local i
  for i in $(seq 1 300); do
    [ -s "$work/s3.port" ] && break
    kill -0 "$MF_S3_PID" 2>/dev/null || { cat "$work/s3rver.log" >&2; mf_die "s3rver exited"; }
    sleep 0.1
  done
  [ -s "$work/s3.port" ] || mf_die "s3rver did not start within 30 s"
  MF_S3_PORT=$(cat "$work/s3.port")
  export MODELFETCH_TEST_ENDPOINT="http://127.0.0.1:$MF_S3_PORT"
  export MODELFETCH_TEST_BUCKET=$MF_S3_BUCKET
  export MODELFETCH_TEST_KEY=$MF_S3_KEY
  export MODELFETCH_TEST_SECRET=$MF_S3_SECRET
  mf_log "s3rver listening on $MODELFETCH_TEST_ENDPOINT (pid $MF_S3_PID)"
}

mf_stop_s3() {
  if [ -n "${MF_S3_PID:-}" ] && kill -0 "$MF_S3_PID" 2>/dev/null; then
    kill "$MF_S3_PID" 2>/dev/null
    wait "$MF_S3_PID" 2>/dev/null
  fi
  MF_S3_PID=
}
