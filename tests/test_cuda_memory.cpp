// GPU suite: device discovery, the caching allocator (rounding, best-fit reuse, no driver
// allocations in a steady-state loop, statistics), DeviceBuffer moves, and bit-exact
// host→device→host round trips of Tensor through a CUDA Context.
#ifdef ACTIVEIP_CUDA

#include <cstdint>
#include <cstring>
#include <iterator>
#include <random>
#include <type_traits>
#include <vector>

#include "engine/core/context.h"
#include "engine/core/cuda_memory.h"
#include "engine/core/tensor.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

// Random bit patterns, NaN payloads and subnormals included, so that any conversion on
// the way (rather than a byte copy) shows up.
void fill_random_bits(Tensor& t, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto* bytes = static_cast<unsigned char*>(t.raw());
  for (size_t i = 0; i < t.bytes(); ++i) bytes[i] = static_cast<unsigned char>(rng());
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.bytes() == b.bytes() && std::memcmp(a.raw(), b.raw(), a.bytes()) == 0;
}

}  // namespace

TEST_CASE("device_count sees the GPU without throwing") {
  static_assert(noexcept(cuda::device_count()));
  const int count = cuda::device_count();
  CHECK(count >= 1);
  CHECK(cuda_available());
  CHECK_THROWS_AS(Context(Device::cuda(count)), Error);
}

TEST_CASE("CachingAllocator rounds sizes, reuses freed blocks and keeps statistics") {
  Context ctx(Device::cuda());
  cuda::CachingAllocator alloc(ctx.device().index);

  void* a = alloc.allocate(1000);  // 512-byte granularity up to 1 MiB
  CHECK(alloc.bytes_in_use() == 1024);
  CHECK(alloc.driver_allocations() == 1);
  alloc.deallocate(a, 1000);
  CHECK(alloc.bytes_in_use() == 0);
  CHECK(alloc.bytes_cached() == 1024);

  void* b = alloc.allocate(600);  // same rounded size: the cached block comes back
  CHECK(b == a);
  CHECK(alloc.driver_allocations() == 1);
  CHECK(alloc.bytes_cached() == 0);

  void* c = alloc.allocate(kMiB + 1);  // 2 MiB granularity above 1 MiB
  CHECK(alloc.bytes_in_use() == 1024 + 2 * kMiB);
  CHECK(alloc.driver_allocations() == 2);
  alloc.deallocate(b, 600);
  alloc.deallocate(c, kMiB + 1);
  CHECK(alloc.bytes_in_use() == 0);
  CHECK(alloc.bytes_cached() == 1024 + 2 * kMiB);
  CHECK(alloc.peak_bytes() == 1024 + 2 * kMiB);

  alloc.release_cached();
  CHECK(alloc.bytes_cached() == 0);
  void* d = alloc.allocate(1000);  // the cache is empty: a new driver allocation
  CHECK(alloc.driver_allocations() == 3);
  alloc.deallocate(d, 1000);
  CHECK(alloc.allocate(0) == nullptr);
  CHECK_THROWS_AS(alloc.deallocate(&alloc, 8), Error);  // not a block of this allocator
}

TEST_CASE("CachingAllocator picks the best-fitting cached block") {
  Context ctx(Device::cuda());
  cuda::CachingAllocator alloc(ctx.device().index);
  void* two = alloc.allocate(2 * kMiB);
  void* four = alloc.allocate(4 * kMiB);
  void* six = alloc.allocate(6 * kMiB);
  alloc.deallocate(six, 6 * kMiB);
  alloc.deallocate(two, 2 * kMiB);
  alloc.deallocate(four, 4 * kMiB);
  REQUIRE(alloc.driver_allocations() == 3);

  void* p = alloc.allocate(3 * kMiB);  // rounds to 4 MiB: the exact block, not the 6 MiB one
  CHECK(p == four);
  void* q = alloc.allocate(3 * kMiB + 1);  // 4 MiB again: 6 MiB is the smallest that fits
  CHECK(q == six);
  CHECK(alloc.bytes_in_use() == 10 * kMiB);
  CHECK(alloc.bytes_cached() == 2 * kMiB);
  void* small = alloc.allocate(512);  // the cached 2 MiB block is too large to hand out
  CHECK(small != two);
  CHECK(alloc.driver_allocations() == 4);
  alloc.deallocate(p, 3 * kMiB);
  alloc.deallocate(q, 3 * kMiB + 1);
  alloc.deallocate(small, 512);
}

TEST_CASE("CachingAllocator makes no driver allocations in a steady-state loop") {
  Context ctx(Device::cuda());
  cuda::CachingAllocator alloc(ctx.device().index);
  const size_t sizes[] = {1000, 3 * kMiB, 40000, 5 * kMiB + 7, 256, kMiB, 40000};
  const size_t rounded_total = 1024 + 4 * kMiB + 40448 + 6 * kMiB + 512 + kMiB + 40448;
  size_t after_first = 0;
  for (int step = 0; step < 20; ++step) {
    CAPTURE(step);
    std::vector<void*> blocks;
    for (size_t s : sizes) blocks.push_back(alloc.allocate(s));
    CHECK(alloc.bytes_in_use() == rounded_total);
    for (size_t i = blocks.size(); i-- > 0;) alloc.deallocate(blocks[i], sizes[i]);
    if (step == 0) after_first = alloc.driver_allocations();
  }
  CHECK(after_first == std::size(sizes));
  CHECK(alloc.driver_allocations() == after_first);
  CHECK(alloc.bytes_in_use() == 0);
  CHECK(alloc.bytes_cached() == rounded_total);
  CHECK(alloc.peak_bytes() == rounded_total);
}

TEST_CASE("DeviceBuffer is move-only and moves its allocation") {
  using Buffer = cuda::DeviceBuffer<float>;
  static_assert(!std::is_copy_constructible_v<Buffer> && !std::is_copy_assignable_v<Buffer>);
  static_assert(std::is_nothrow_move_constructible_v<Buffer> && std::is_nothrow_move_assignable_v<Buffer>);
  Context ctx(Device::cuda());

  CHECK(Buffer().data() == nullptr);
  CHECK(Buffer(0).data() == nullptr);

  const auto host = test::random_floats(1000, 7);
  Buffer a(host.size());
  float* p = a.data();
  REQUIRE(p != nullptr);
  cuda::copy_h2d(p, host.data(), host.size() * sizeof(float), ctx.stream());

  Buffer b(std::move(a));
  CHECK(a.data() == nullptr);
  CHECK(a.size() == 0);
  CHECK(b.data() == p);
  CHECK(b.size() == host.size());

  Buffer c(10);
  c = std::move(b);  // frees c's own 10 floats, takes b's
  CHECK(b.data() == nullptr);
  CHECK(c.data() == p);
  CHECK(c.size() == host.size());

  std::vector<float> back(host.size());
  cuda::copy_d2h(back.data(), c.data(), back.size() * sizeof(float), ctx.stream());
  CHECK(std::memcmp(back.data(), host.data(), back.size() * sizeof(float)) == 0);
}

TEST_CASE("Tensor copies host to device and back bit-exactly") {
  Context ctx(Device::cuda());
  auto& alloc = dynamic_cast<cuda::CachingAllocator&>(ctx.allocator());
  const Shape shape{3, 5, 7, 11};

  for (DType dtype : {DType::F32, DType::I32, DType::U8, DType::BF16}) {
    CAPTURE(dtype_name(dtype));
    Tensor h = Tensor::host(shape, dtype);
    fill_random_bits(h, 100 + static_cast<uint64_t>(dtype));

    Tensor d = h.to(Device::cuda(), ctx);
    CHECK(d.device() == ctx.device());
    CHECK(d.shape() == shape);
    CHECK(d.dtype() == dtype);
    CHECK(alloc.bytes_in_use() >= d.bytes());
    CHECK(same_bytes(d.to(Device::cpu(), ctx), h));

    // copy_from: device→device, then device→host into a poisoned host tensor.
    Tensor d2 = Tensor::empty(shape, dtype, ctx);
    d2.copy_from(d, ctx);
    Tensor back = Tensor::host(shape, dtype);
    std::memset(back.raw(), 0xFF, back.bytes());
    back.copy_from(d2, ctx);
    CHECK(same_bytes(back, h));

    // A slice of device storage copies the same rows as the host slice.
    Tensor rows = Tensor::host({2, 5, 7, 11}, dtype);
    rows.copy_from(d.slice(1, 3), ctx);
    CHECK(std::memcmp(rows.raw(), h.slice(1, 3).raw(), rows.bytes()) == 0);

    d2.zero(ctx);
    back.copy_from(d2, ctx);
    const auto* bytes = static_cast<const unsigned char*>(back.raw());
    size_t nonzero = 0;
    for (size_t i = 0; i < back.bytes(); ++i) nonzero += bytes[i] != 0;
    CHECK(nonzero == 0);
  }
}

TEST_CASE("Tensor storage on CUDA is recycled by the context's allocator") {
  Context ctx(Device::cuda());
  auto& alloc = dynamic_cast<cuda::CachingAllocator&>(ctx.allocator());
  const Shape shapes[] = {{128, 32, 32, 16}, {128, 10}, {64, 3, 3, 64}};
  size_t after_first = 0;
  for (int step = 0; step < 10; ++step) {
    std::vector<Tensor> live;
    for (const Shape& s : shapes) live.push_back(Tensor::empty(s, DType::F32, ctx));
    CHECK(alloc.bytes_in_use() > 0);
    live.clear();
    CHECK(alloc.bytes_in_use() == 0);
    if (step == 0) after_first = alloc.driver_allocations();
  }
  CHECK(after_first == std::size(shapes));
  CHECK(alloc.driver_allocations() == after_first);
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
