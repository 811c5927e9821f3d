// Tensor storage, views and explicit copies. Host storage is 64-byte aligned (one cache
// line, one AVX-512 vector); CUDA storage comes from the context's caching allocator.
#include "engine/core/tensor.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "engine/core/context.h"
#ifdef ACTIVEIP_CUDA
#include "engine/core/cuda_memory.h"
#endif

namespace activeip {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
      return 4;
    case DType::BF16:
      return 2;
    case DType::U8:
      return 1;
    case DType::I32:
      return 4;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "f32";
    case DType::BF16:
      return "bf16";
    case DType::U8:
      return "u8";
    case DType::I32:
      return "i32";
  }
  return "?";
}

Device Device::parse(std::string_view text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.substr(0, 5) == "cuda:" && text.size() > 5) {
    int idx = 0;
    for (char ch : text.substr(5)) {
      ENSURE(ch >= '0' && ch <= '9' && idx < 1000, "bad device '%.*s' (expected cpu, cuda or cuda:N)",
             static_cast<int>(text.size()), text.data());
      idx = idx * 10 + (ch - '0');
    }
    return cuda(idx);
  }
  ENSURE(false, "bad device '%.*s' (expected cpu, cuda or cuda:N)", static_cast<int>(text.size()), text.data());
  return {};
}

std::string Device::str() const {
  return is_cuda() ? strfmt("cuda:%d", index) : std::string("cpu");
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

static void check_shape(const Shape& shape) {
  for (int64_t d : shape) ENSURE(d >= 0, "negative dimension in shape %s", shape_str(shape).c_str());
}

namespace {
std::atomic<int64_t> allocations{0};
}  // namespace

int64_t tensor_allocations() { return allocations.load(std::memory_order_relaxed); }

Tensor Tensor::host(const Shape& shape, DType dtype) {
  check_shape(shape);
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = Device::cpu();
  const size_t bytes = (t.bytes() + 63) / 64 * 64;
  if (bytes) allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = bytes ? std::aligned_alloc(64, bytes) : nullptr;
  ENSURE(bytes == 0 || p != nullptr, "out of host memory allocating %zu bytes for %s", bytes, shape_str(shape).c_str());
  t.data_ = p;
  t.capacity_ = t.bytes();
  t.owner_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  return t;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Context& ctx) {
  if (!ctx.is_cuda()) return host(shape, dtype);
  check_shape(shape);
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = ctx.device();
  const size_t bytes = t.bytes();
  Allocator* alloc = &ctx.allocator();
  if (bytes) allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = bytes ? alloc->allocate(bytes) : nullptr;
  t.data_ = p;
  t.capacity_ = bytes;
  // The allocator must outlive every tensor allocated from it (the Context owns it).
  t.owner_ = std::shared_ptr<void>(p, [alloc, bytes](void* q) {
    if (q) alloc->deallocate(q, bytes);
  });
  return t;
}

Tensor Tensor::borrow(void* data, const Shape& shape, DType dtype, Device device) {
  check_shape(shape);
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  t.data_ = data;
  t.capacity_ = t.bytes();
  return t;
}

int64_t Tensor::dim(int i) const {
  const int r = rank();
  const int j = i < 0 ? i + r : i;
  ENSURE(j >= 0 && j < r, "dimension %d out of range for shape %s", i, shape_str(shape_).c_str());
  return shape_[static_cast<size_t>(j)];
}

Tensor Tensor::reshape(const Shape& shape) const {
  ENSURE(shape_numel(shape) == numel(), "cannot reshape %s to %s", shape_str(shape_).c_str(), shape_str(shape).c_str());
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  ENSURE(rank() >= 1 && 0 <= begin && begin <= end && end <= shape_[0], "slice [%lld, %lld) out of range for %s",
         static_cast<long long>(begin), static_cast<long long>(end), shape_str(shape_).c_str());
  Tensor t = *this;
  const int64_t row = shape_[0] ? numel() / shape_[0] : 0;
  t.shape_[0] = end - begin;
  const size_t offset = static_cast<size_t>(begin * row) * dtype_size(dtype_);
  t.data_ = static_cast<char*>(data_) + offset;
  t.capacity_ = capacity_ - offset;
  return t;
}

Tensor Tensor::view(size_t offset, const Shape& shape, DType dtype) const {
  check_shape(shape);
  const size_t need = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  ENSURE(offset <= capacity_ && need <= capacity_ - offset, "view of %zu bytes at %zu is past the %zu of its storage",
         need, offset, capacity_);
  Tensor t = *this;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.data_ = static_cast<char*>(data_) + offset;
  t.capacity_ = capacity_ - offset;
  return t;
}

void Tensor::copy_from(const Tensor& src, Context& ctx) {
  ENSURE(src.numel() == numel() && src.dtype() == dtype_, "copy of %s %s into %s %s", dtype_name(src.dtype()),
         shape_str(src.shape()).c_str(), dtype_name(dtype_), shape_str(shape_).c_str());
  const size_t n = bytes();
  if (n == 0 || src.raw() == data_) return;
  if (!device_.is_cuda() && !src.device().is_cuda()) {
    std::memcpy(data_, src.raw(), n);
    return;
  }
#ifdef ACTIVEIP_CUDA
  ENSURE(ctx.is_cuda(), "copy between %s and %s needs a CUDA context", src.device().str().c_str(),
         device_.str().c_str());
  if (device_.is_cuda() && src.device().is_cuda())
    cuda::copy_d2d(data_, src.raw(), n, ctx.stream());
  else if (device_.is_cuda())
    cuda::copy_h2d(data_, src.raw(), n, ctx.stream());
  else {
    ctx.note_host_sync();
    cuda::copy_d2h(data_, src.raw(), n, ctx.stream());
  }
#else
  (void)ctx;
  ENSURE(false, "copy between %s and %s: built without CUDA", src.device().str().c_str(), device_.str().c_str());
#endif
}

Tensor Tensor::to(Device device, Context& ctx) const {
  if (device == device_) return *this;
  Tensor out;
  if (device.is_cuda()) {
    ENSURE(ctx.device() == device, "copy to %s with a context on %s", device.str().c_str(), ctx.device().str().c_str());
    out = empty(shape_, dtype_, ctx);
  } else {
    out = host(shape_, dtype_);
  }
  out.copy_from(*this, ctx);
  return out;
}

Tensor Tensor::clone(Context& ctx) const {
  Tensor out = device_.is_cuda() ? empty(shape_, dtype_, ctx) : host(shape_, dtype_);
  out.copy_from(*this, ctx);
  return out;
}

void Tensor::zero(Context& ctx) {
  if (bytes() == 0) return;
  if (!device_.is_cuda()) {
    std::memset(data_, 0, bytes());
    return;
  }
#ifdef ACTIVEIP_CUDA
  cuda::memset_zero(data_, bytes(), ctx.stream());
#else
  (void)ctx;
#endif
}

Tensor& ensure_tensor(Tensor& t, const Shape& shape, DType dtype, Context& ctx) {
  check_shape(shape);
  const size_t need = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  if ((need > 0 && !t.data_) || t.device_ != ctx.device() || t.capacity_ < need) {
    t = Tensor::empty(shape, dtype, ctx);
    return t;
  }
  t.shape_ = shape;  // a view of the first `need` bytes; the capacity stays for larger batches
  t.dtype_ = dtype;
  return t;
}

Tensor& ensure_host_tensor(Tensor& t, const Shape& shape, DType dtype) {
  check_shape(shape);
  const size_t need = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  if ((need > 0 && !t.data_) || t.device_.is_cuda() || t.capacity_ < need) {
    t = Tensor::host(shape, dtype);
    return t;
  }
  t.shape_ = shape;
  t.dtype_ = dtype;
  return t;
}

}  // namespace activeip
