// Tensor: a shape, a dtype, a device and either owned storage or a borrowed view.
// Tensors are dense and contiguous; activations are NHWC, conv weights K×R×S×C.
// Nothing moves between host and device implicitly: copy_from / to are explicit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace activeip {

class Context;

enum class DType : uint8_t { F32, BF16, U8, I32 };
size_t dtype_size(DType t);
const char* dtype_name(DType t);

struct Device {
  enum class Kind : uint8_t { CPU, CUDA };
  Kind kind = Kind::CPU;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {Kind::CUDA, i}; }
  // "cpu", "cuda", "cuda:N"; throws Error naming the text otherwise.
  static Device parse(std::string_view text);
  bool is_cuda() const { return kind == Kind::CUDA; }
  std::string str() const;
  bool operator==(const Device&) const = default;
};

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);  // "[32, 32, 3]"

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::F32;
}
template <>
constexpr DType dtype_of<uint8_t>() {
  return DType::U8;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::I32;
}
template <>
constexpr DType dtype_of<uint16_t>() {
  return DType::BF16;
}  // raw bf16 bits

class Tensor {
 public:
  Tensor() = default;

  // Owned storage on ctx's device (from its allocator); contents uninitialised.
  static Tensor empty(const Shape& shape, DType dtype, Context& ctx);
  // Owned host storage (64-byte aligned), whatever the context.
  static Tensor host(const Shape& shape, DType dtype = DType::F32);
  // A view of memory owned elsewhere (flat parameter buffers, dataset slices).
  static Tensor borrow(void* data, const Shape& shape, DType dtype, Device device);

  bool defined() const { return data_ != nullptr || numel() == 0; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const;  // negative i counts from the end
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  template <class T>
  T* data() const {
    ENSURE(dtype_ == dtype_of<T>(), "tensor of dtype %s accessed as %s", dtype_name(dtype_), dtype_name(dtype_of<T>()));
    return static_cast<T*>(data_);
  }
  void* raw() const { return data_; }

  // Same storage, new shape with the same number of elements.
  Tensor reshape(const Shape& shape) const;
  // Rows [begin, end) along dimension 0, sharing storage.
  Tensor slice(int64_t begin, int64_t end) const;
  // `shape` elements of `dtype` from byte `offset` of this tensor's storage, sharing it (an
  // arena's buffers are carved this way). Error unless they fit.
  Tensor view(size_t offset, const Shape& shape, DType dtype) const;

  // Explicit copies (same shape and dtype; host↔device through ctx's stream).
  void copy_from(const Tensor& src, Context& ctx);
  // As torch.Tensor.to: this tensor itself when it is already on `device`, else a copy.
  Tensor to(Device device, Context& ctx) const;
  Tensor clone(Context& ctx) const;

  // Sets every element to zero (any dtype), on the tensor's device.
  void zero(Context& ctx);

 private:
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_;
  void* data_ = nullptr;
  size_t capacity_ = 0;          // bytes usable from data_ to the end of the storage
  std::shared_ptr<void> owner_;  // keeps owned storage alive; null for borrowed views

  friend Tensor& ensure_tensor(Tensor& t, const Shape& shape, DType dtype, Context& ctx);
  friend Tensor& ensure_host_tensor(Tensor& t, const Shape& shape, DType dtype);
};

// Keeps `t` with at least shape_numel(shape) elements of dtype on ctx's device, reusing its
// storage when it is large enough (activation buffers are planned for the largest batch and
// viewed for smaller ones), and returns it reshaped to `shape`.
Tensor& ensure_tensor(Tensor& t, const Shape& shape, DType dtype, Context& ctx);
// The same on the host, whatever the context (staging planned once).
Tensor& ensure_host_tensor(Tensor& t, const Shape& shape, DType dtype);

// Tensor storage this process has asked for so far, host and device (cached device blocks
// included): a training step that allocates nothing after warm-up leaves it unchanged.
int64_t tensor_allocations();

}  // namespace activeip
