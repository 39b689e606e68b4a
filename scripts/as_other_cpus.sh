#!/usr/bin/env bash
# Run the model tests as other CPUs would compute them, on this one.
#
# CTranslate2 (whisper) picks its int8 kernels by instruction set and vendor, OpenBLAS (numpy,
# OpenCV) its GEMM kernel by core type: what whisper says about half a second of audio, or the
# last digits of a score, can differ between an AVX-512 box, an AVX2 one (AMD Zen 2) and an
# Intel one (MKL). A test that passes here and fails there leans on this machine; this script
# forces the other kernels one after another, so such a test shows up before CI's next box.
#
#   scripts/as_other_cpus.sh                       # the model tests under each CPU profile
#   scripts/as_other_cpus.sh tests/stages -k final # any pytest arguments
#
# A profile this CPU cannot run (AVX-512 on an AVX2 box) is skipped, saying so. ONNX Runtime
# (VAD, image encoder) has no such switch: its kernels stay this CPU's.
set -uo pipefail
cd "$(dirname "$0")/.."
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(tests/stages tests/models tests/sources tests/test_end_to_end.py
                              tests/replay)
profiles=(
  "CT2_FORCE_CPU_ISA=AVX512"
  "CT2_FORCE_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Zen"
  "CT2_FORCE_CPU_ISA=AVX2 CT2_USE_MKL=1 OPENBLAS_CORETYPE=Haswell"
  "CT2_FORCE_CPU_ISA=AVX OPENBLAS_CORETYPE=Sandybridge"
)
failed=0
for profile in "${profiles[@]}"; do
  if ! env $profile python3 -c "import ctranslate2; ctranslate2.get_supported_compute_types('cpu')" \
      >/dev/null 2>&1; then
    echo "== $profile: not possible on this CPU, skipped"
    continue
  fi
  echo "== $profile"
  env $profile python3 -m pytest -q -p no:cacheprovider "${args[@]}" || failed=1
done
exit $failed
