#!/bin/sh
# Builds the libFuzzer target with clang (ASan + UBSan) and runs it for N seconds (default 60) on a corpus
# seeded with small valid headers. pointer-overflow is off: RapidJSON 1.1's internal::Stack::Reserve computes
# null + n before its first allocation (stack.h:117): UB in a header we do not own, harmless in practice.
# Usage: tests/fuzz/run.sh [seconds] [build-dir]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
out=${2:-$root/build-fuzz}
mkdir -p "$out/corpus"
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -fno-sanitize=pointer-overflow -I"$root" \
  "$root/tests/fuzz/fuzz_safetensors.cpp" "$root/core/safetensors/header.cpp" "$root/core/safetensors/index.cpp" \
  "$root/core/safetensors/plan.cpp" -o "$out/fuzz_safetensors"
seed() {  # name json data_len
  python3 - "$out/corpus/$1" "$2" "$3" <<'PY'
import struct, sys
j = sys.argv[2].encode(); j += b" " * (-len(j) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(j)) + j + b"\0" * int(sys.argv[3]))
PY
}
seed one '{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}' 8
seed two '{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}' 8
printf '{"metadata":{"total_size":8},"weight_map":{"a":"model-00001-of-00002.safetensors"}}' > "$out/corpus/index"
"$out/fuzz_safetensors" -max_total_time="$secs" -max_len=4096 "$out/corpus"
