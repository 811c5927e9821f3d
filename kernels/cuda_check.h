// Checked CUDA calls and launches, for .cu files and the engine's CUDA plumbing only.
// CUDA_CHECK(expr) throws activeip::Error with the expression, the CUDA error string and
// file:line. CUDA_CHECK_LAUNCH() ends every launcher; with ACTIVEIP_SYNC_LAUNCHES it also
// synchronises so that an asynchronous fault is blamed on the op that caused it.
#pragma once

#include <cuda_runtime_api.h>

#include "base/error.h"

namespace activeip::detail {
[[noreturn]] inline void throw_cuda(cudaError_t err, const char* expr, const char* file, int line) {
  throw_ensure(expr, file, line, strfmt("CUDA error %s: %s", cudaGetErrorName(err), cudaGetErrorString(err)));
}
}  // namespace activeip::detail

#define CUDA_CHECK(expr)                                                                                        \
  do {                                                                                                          \
    cudaError_t activeip_err_ = (expr);                                                                         \
    if (activeip_err_ != cudaSuccess) ::activeip::detail::throw_cuda(activeip_err_, #expr, __FILE__, __LINE__); \
  } while (0)

#ifdef ACTIVEIP_SYNC_LAUNCHES
#define CUDA_CHECK_LAUNCH()              \
  do {                                   \
    CUDA_CHECK(cudaGetLastError());      \
    CUDA_CHECK(cudaDeviceSynchronize()); \
  } while (0)
#else
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
#endif
