#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz build: install sledfuzz, then for every fuzz/fuzz_*.py target build
# the libFuzzer binary (compile_python_fuzzer, from the base-builder-python image), its seed
# corpus zip (corpus/seeds/<target>/*) and its dictionary (corpus/<target>.dict), all in $OUT.
# The target reads its configuration from the environment (SLEDFUZZ_IMPL, default v6.19).
ROOT="${SLEDFUZZ_ROOT:-$SRC/sledfuzz}"
cd "$ROOT"
pip3 install .

# What PyInstaller cannot see from the imports: unicorn's and capstone's native libraries, the
# C sources the engine and the kernel adapter compile at run time, the plugin entry points.
bundle=(--collect-all unicorn --collect-all capstone
        --collect-submodules sledfuzz --collect-data sledfuzz.emu --copy-metadata sledfuzz)

found=0
while IFS= read -r -d '' fuzzer; do
  name=$(basename -s .py "$fuzzer")
  compile_python_fuzzer "$fuzzer" "${bundle[@]}"
  if [ -d "corpus/seeds/$name" ]; then
    python3 - "corpus/seeds/$name" "$OUT/${name}_seed_corpus.zip" <<'PY'
import pathlib, sys, zipfile
src, dest = pathlib.Path(sys.argv[1]), sys.argv[2]
with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
    for f in sorted(p for p in src.iterdir() if p.is_file()):
        z.write(f, f.name)
PY
  fi
  if [ -f "corpus/$name.dict" ]; then
    cp "corpus/$name.dict" "$OUT/$name.dict"
  fi
  found=$((found + 1))
done < <(find fuzz -name 'fuzz_*.py' -print0 | sort -z)

if [ "$found" -eq 0 ]; then
  echo "build.sh: no fuzz/fuzz_*.py target found under $ROOT" >&2
  exit 1
fi
echo "build.sh: built $found target(s) in $OUT"
