# shellcheck shell=bash
# Sourced by scripts/gpu-bundle.sh and scripts/gpu-check.sh (and through gpu-check.sh by
# bench/bench_gpu.sh): what the bundle leaves to the GPU machine, and where the CUDA toolkit is.

# gpu_lib_is_system NAME: true for the shared libraries a bundle does not carry: glibc's,
# libstdc++ and libgcc_s (every machine with a compiler, Python or the CUDA toolkit has newer
# ones), and the CUDA libraries (the GPU machine's toolkit and driver: same major version).
gpu_lib_is_system() {
  case $1 in
    linux-vdso.so*|ld-linux*|libc.so*|libm.so*|libmvec.so*|libdl.so*|libpthread.so*|librt.so*|libresolv.so*|libutil.so*) return 0 ;;
    libstdc++.so*|libgcc_s.so*) return 0 ;;
    libcuda.so*|libcudart.so*|libcublas.so*|libcublasLt.so*|libcufft.so*|libnvJitLink.so*|libnccl.so*|libnvrtc*) return 0 ;;
  esac
  return 1
}

# gpu_lib_is_cuda NAME: the CUDA toolkit's libraries among those (found through gpu_cuda_libdir).
gpu_lib_is_cuda() {
  case $1 in libcudart.so*|libcublas.so*|libcublasLt.so*|libcufft.so*|libnvJitLink.so*) return 0 ;; esac
  return 1
}

# gpu_glibc_needed FILE...: the newest GLIBC_x.y symbol version the files use (e.g. 2.34).
gpu_glibc_needed() {
  for f in "$@"; do objdump -T "$f" 2>/dev/null; done | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1
}

# gpu_cuda_home: the CUDA toolkit's root ($CUDA_HOME, $CUDA_PATH, nvcc's, /usr/local/cuda), or
# nothing.
gpu_cuda_home() {
  local d
  for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" "$(command -v nvcc 2>/dev/null | sed 's,/bin/nvcc$,,')" /usr/local/cuda; do
    [ -n "$d" ] && [ -d "$d" ] && { echo "$d"; return 0; }
  done
  return 1
}

# gpu_cuda_libdir: the directory holding libcublas.so.* of the toolkit, or nothing.
gpu_cuda_libdir() {
  local home d
  home=$(gpu_cuda_home) || return 1
  for d in "$home/lib64" "$home/lib" "$home/targets/x86_64-linux/lib"; do
    compgen -G "$d/libcublas.so.*" >/dev/null && { echo "$d"; return 0; }
  done
  return 1
}

# gpu_tool NAME: a CUDA toolkit program (compute-sanitizer, ncu, nvcc) from PATH or the toolkit.
gpu_tool() {
  local home p
  p=$(command -v "$1" 2>/dev/null) && { echo "$p"; return 0; }
  home=$(gpu_cuda_home) || return 1
  for p in "$home/bin/$1" "$home/$1/$1"; do
    [ -x "$p" ] && { echo "$p"; return 0; }
  done
  return 1
}
