#!/usr/bin/env bash
# Build llama.cpp once for modelyard: the `llama-server` engine-worker binary and the shared
# libraries that llama-cpp-python loads (scoring, perplexity, tune, quantize).
#
# The source is the llama.cpp that llama-cpp-python==$VERSION vendors: its sdist from PyPI,
# checked against a pinned SHA-256. The result is cached outside the clone, keyed by version,
# backend and CPU, so a second set-up takes seconds. Nothing here runs at serve time.
#
#   scripts/build-llama-cpp.sh                 build (or reuse) the cache, print nothing else on reuse
#   scripts/build-llama-cpp.sh --print-dir     print the cache directory (builds nothing)
#   scripts/build-llama-cpp.sh --link-libs PY  link the shared libraries into PY's llama_cpp/lib
#   scripts/build-llama-cpp.sh --wheel DIR     build llama-cpp-python's wheel without llama.cpp (LLAMA_BUILD=OFF) into DIR
set -euo pipefail

WORK=""
trap 'if [ -n "$WORK" ]; then rm -rf "$WORK"; fi' EXIT

VERSION=0.3.36
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
PYTHON=${PYTHON:-python3}
JOBS=${MODELYARD_BUILD_JOBS:-$(nproc)}

backend() {
  if command -v nvcc >/dev/null 2>&1 && command -v nvidia-smi >/dev/null 2>&1 \
     && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    echo cuda
  else
    echo cpu
  fi
}

cache_root() {
  if [ -n "${MODELYARD_LLAMA_CPP_CACHE:-}" ]; then echo "$MODELYARD_LLAMA_CPP_CACHE"
  elif [ "$(id -u)" = 0 ]; then echo /var/cache/modelyard
  else echo "$HOME/.cache/modelyard"; fi
}

# The build uses this CPU's instruction sets, so the CPU's flags are part of the key;
# RECIPE changes when the build options do.
RECIPE=r2
cpu_flags() { grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true; }
cpu_key() { cpu_flags | sha256sum | cut -c1-8; }

build_dir() { echo "$(cache_root)/llama.cpp-$VERSION-$RECIPE-$(backend)-$(cpu_key)"; }

# The x86 instruction sets the CPU reports, as ggml options. Not GGML_NATIVE: -march=native
# also turns on AMX, whose tile state virtual machines often do not grant (SIGILL at the
# first matrix multiply), so AMX stays off.
isa_flags() {
  local line; line=" $(cpu_flags) "
  local pair flag option
  for pair in sse4_2:SSE42 avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI \
              avx512f:AVX512 avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    flag=${pair%%:*}; option=${pair##*:}
    if [[ "$line" == *" $flag "* ]]; then echo "-DGGML_$option=ON"; else echo "-DGGML_$option=OFF"; fi
  done
  echo -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
}

fetch_sdist() {  # $1: work dir; prints the checked sdist path
  local work=$1 sdist="$1/llama_cpp_python-$VERSION.tar.gz"
  if [ ! -f "$sdist" ]; then
    "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: \
      "llama_cpp_python==$VERSION" -d "$work" >&2
  fi
  echo "$SHA256  $sdist" | sha256sum --check --quiet >&2 \
    || { echo "llama_cpp_python-$VERSION sdist: SHA-256 mismatch, refusing to build" >&2; exit 1; }
  echo "$sdist"
}

build() {
  local out; out=$(build_dir)
  if [ -x "$out/llama-server" ] && [ -f "$out/libllama.so" ] && [ -f "$out/BUILD_INFO" ]; then
    return 0
  fi
  local root; root=$(cache_root); mkdir -p "$root"
  # One build at a time (make serve and make test may start together): wait, then re-check.
  exec 9>"$root/.build.lock"; flock 9
  if [ -x "$out/llama-server" ] && [ -f "$out/libllama.so" ] && [ -f "$out/BUILD_INFO" ]; then
    return 0
  fi
  WORK=$(mktemp -d "$root/.build-XXXXXX"); local work=$WORK
  local be; be=$(backend)
  echo "Building llama.cpp $VERSION ($be) for modelyard into $out (first set-up only: ~6-10 min on 2 cores)" >&2
  local sdist; sdist=$(fetch_sdist "$work")
  tar -xzf "$sdist" -C "$work"
  local src="$work/llama_cpp_python-$VERSION/vendor/llama.cpp"
  local flags=(
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF
    -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON "-DCMAKE_INSTALL_RPATH=\$ORIGIN"
  )
  # shellcheck disable=SC2207 # one option per word
  flags+=($(isa_flags))
  if [ "$be" = cuda ]; then flags+=(-DGGML_CUDA=ON); fi
  cmake -S "$src" -B "$work/build" "${flags[@]}" >"$work/cmake.log" 2>&1 \
    || { tail -40 "$work/cmake.log" >&2; exit 1; }
  cmake --build "$work/build" --target llama-server -j "$JOBS" >"$work/build.log" 2>&1 \
    || { tail -60 "$work/build.log" >&2; exit 1; }
  local stage="$work/out"; mkdir -p "$stage"
  cp "$work/build/bin/llama-server" "$stage/"
  find "$work/build/bin" -maxdepth 1 -name 'lib*.so*' -exec cp -P {} "$stage/" \;
  {
    echo "llama_cpp_python=$VERSION"
    echo "sdist_sha256=$SHA256"
    echo "backend=$be"
    echo "recipe=$RECIPE"
    echo "server_version=$("$stage/llama-server" --version 2>&1 | grep -m1 -i version || true)"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } >"$stage/BUILD_INFO"
  rm -rf "$out"; mv "$stage" "$out"   # atomic on one filesystem: a half build is never used
  echo "llama.cpp built: $out" >&2
}

link_libs() {  # $1: a Python whose llama_cpp package should load our libraries
  local py=$1 out; out=$(build_dir)
  local pkg; pkg=$("$py" -c 'import importlib.util,os;print(os.path.dirname(importlib.util.find_spec("llama_cpp").origin))')
  mkdir -p "$pkg/lib"
  find "$out" -maxdepth 1 -name 'lib*.so*' -exec ln -sf {} "$pkg/lib/" \;
}

wheel() {  # $1: output dir for the llama-cpp-python wheel built without compiling llama.cpp
  local dest=$1; mkdir -p "$dest"
  if ls "$dest"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then return 0; fi
  WORK=$(mktemp -d); local work=$WORK
  local sdist; sdist=$(fetch_sdist "$work")
  # No build isolation: scikit-build-core comes from requirements.lock, not a fresh resolve.
  CMAKE_ARGS="-DLLAMA_BUILD=OFF" "$PYTHON" -m pip wheel --quiet --no-deps --no-build-isolation \
    "$sdist" -w "$dest" >&2
}

case "${1:-build}" in
  build) build ;;
  --print-dir) build_dir ;;
  --link-libs) build; link_libs "${2:?python path}" ;;
  --wheel) wheel "${2:?output dir}" ;;
  *) echo "usage: $0 [build|--print-dir|--link-libs PY|--wheel DIR]" >&2; exit 2 ;;
esac
