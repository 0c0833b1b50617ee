#!/usr/bin/env bash
# Run HERE (the CPU machine) once, before scripts/gpu_check.sh: packs the wheels in .whl/ that the GPU image lacks
# into two carry folders, each under the device tool's 64 MiB per call.
#
# warp-lang's wheel is 149 MB (its warp.so is 299 MB: NVRTC, libmathdx and CUDA fatbins), more than one call can
# carry. The pack drops what a CUDA run does not load (warp-clang.so, the CPU-device compiler; examples; tests),
# compresses warp.so with xz -9 (78 MB) and splits it:
#   .whl/stage1/  first part of warp.so.xz                       -> device call 1: bash scripts/gpu_check.sh stage1
#   .whl/stage2/  the rest of warp.so.xz and every other wheel   -> device call 2: bash scripts/gpu_check.sh
# Call 2 must follow call 1 on the same warm machine (it is given back 30 s after a call).
set -euo pipefail
cd "$(dirname "$0")/.."
WHL=.whl
PART1_BYTES=$((50 * 1024 * 1024))  # leaves room for the checkout in each call
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$WHL/stage1" "$WHL/stage2"
mkdir -p "$WHL/stage1" "$WHL/stage2"

warp_wheel=$(ls "$WHL"/warp_lang-*.whl)
(cd "$work" && python3 -m zipfile -e "$OLDPWD/$warp_wheel" unpacked)
if [ -n "${WARP_SO_XZ:-}" ]; then  # an xz of this wheel's warp.so made earlier (xz -9 takes minutes)
  cp "$WARP_SO_XZ" "$work/warp.so.xz"
  xz -d -c "$work/warp.so.xz" | cmp - "$work/unpacked/warp/bin/warp.so"
else
  xz -9 -T0 -c "$work/unpacked/warp/bin/warp.so" > "$work/warp.so.xz"
fi
rm -rf "$work/unpacked/warp/bin/warp.so" "$work/unpacked/warp/bin/warp-clang.so" \
       "$work/unpacked/warp/examples" "$work/unpacked/warp/tests"
# Repack the rest as a wheel (a zip with the same metadata; pip does not check RECORD hashes of files it skips).
(cd "$work/unpacked" && python3 -m zipfile -c "$work/$(basename "$warp_wheel")" warp warp_lang-*.dist-info)
split -b "$PART1_BYTES" -d -a 1 "$work/warp.so.xz" "$work/warp.so.xz.part"
mv "$work/warp.so.xz.part0" "$WHL/stage1/"
mv "$work"/warp.so.xz.part* "$WHL/stage2/"
mv "$work/$(basename "$warp_wheel")" "$WHL/stage2/"
sha256sum "$work/warp.so.xz" | cut -d' ' -f1 > "$WHL/stage2/warp.so.xz.sha256"
for wheel in "$WHL"/*.whl; do
  case "$(basename "$wheel")" in warp_lang-*) ;; *) cp "$wheel" "$WHL/stage2/" ;; esac
done
du -sh "$WHL/stage1" "$WHL/stage2"
