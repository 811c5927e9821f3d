// Host ↔ device copies for the GPU suites (test_cuda_*.cpp): a device copy of a host
// vector, and a host copy of a device buffer (waits for the stream).
#pragma once

#ifdef ACTIVEIP_CUDA

#include <vector>

#include "engine/core/context.h"
#include "engine/core/cuda_memory.h"

namespace activeip::test {

template <class T>
cuda::DeviceBuffer<T> to_device(const std::vector<T>& host, Context& ctx) {
  cuda::DeviceBuffer<T> buf(host.size());
  cuda::copy_h2d(buf.data(), host.data(), host.size() * sizeof(T), ctx.stream());
  return buf;
}

template <class T>
std::vector<T> to_host(const cuda::DeviceBuffer<T>& buf, Context& ctx) {
  std::vector<T> host(buf.size());
  cuda::copy_d2h(host.data(), buf.data(), host.size() * sizeof(T), ctx.stream());
  return host;
}

}  // namespace activeip::test

#endif  // ACTIVEIP_CUDA
