// The tensor-level ops on one boundary: each op lists its tensor arguments once (name,
// dtype, element count; `check` verifies storage, device, dtype and size, in that order,
// and names the op and the argument in the Error), then hands `run` its bodies — CPU,
// CUDA, and the cuDNN / cuBLAS comparator where it has one — and `run` alone picks one for
// the context. Kernels trust their arguments because of this file.
#include "engine/nn/ops.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <initializer_list>
#include <type_traits>
#include <vector>

#include "kernels/elementwise.h"

#ifdef ACTIVEIP_CUDA
#include "kernels/cuda_check.h"
#include "kernels/vendor/vendor.h"
#endif

namespace activeip::ops {

namespace {

// One tensor argument as the op expects it. A null tensor is an optional argument left
// out (a bias, a mask). `multiple` > 0 asks for a whole number of rows of that many
// elements instead of an exact count (a dataset of any length).
struct Arg {
  const char* name;
  const Tensor* tensor;
  DType dtype;
  int64_t numel;
  int64_t multiple = 0;
};

Arg f32(const char* name, const Tensor& t, int64_t numel) {
  return {name, &t, DType::F32, numel};
}
Arg f32(const char* name, const Tensor* t, int64_t numel) {
  return {name, t, DType::F32, numel};
}
Arg i32(const char* name, const Tensor& t, int64_t numel) {
  return {name, &t, DType::I32, numel};
}

void check(const Context& ctx, const char* op, std::initializer_list<Arg> args) {
  for (const Arg& a : args) {
    if (!a.tensor) continue;
    const Tensor& t = *a.tensor;
    ENSURE(t.defined(), "%s: argument '%s' has no storage (shape %s)", op, a.name, shape_str(t.shape()).c_str());
    ENSURE(t.device() == ctx.device(), "%s: argument '%s' is on %s, expected %s", op, a.name, t.device().str().c_str(),
           ctx.device().str().c_str());
    ENSURE(t.dtype() == a.dtype, "%s: argument '%s' is %s, expected %s", op, a.name, dtype_name(t.dtype()),
           dtype_name(a.dtype));
    if (a.multiple > 0)
      ENSURE(t.numel() > 0 && t.numel() % a.multiple == 0,
             "%s: argument '%s' has %lld elements (shape %s), expected a positive multiple of %lld", op, a.name,
             static_cast<long long>(t.numel()), shape_str(t.shape()).c_str(), static_cast<long long>(a.multiple));
    else
      ENSURE(t.numel() == a.numel, "%s: argument '%s' has %lld elements (shape %s), expected %lld", op, a.name,
             static_cast<long long>(t.numel()), shape_str(t.shape()).c_str(), static_cast<long long>(a.numel));
  }
}

// A non-owning reference to a callable, so that an op's bodies are lambdas on its stack and
// a call allocates nothing. Valid while the lambda is: in `run(ctx, op, {…lambdas…})` the
// lambdas live until run returns.
template <class Sig>
class Body;
template <class... A>
class Body<void(A...)> {
 public:
  Body() = default;
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, Body>>>
  Body(F&& f)  // implicit, so that an op writes `.cpu = [&] {…}`
      : obj_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* o, A... a) { (*static_cast<std::remove_reference_t<F>*>(o))(a...); }) {}
  explicit operator bool() const { return call_ != nullptr; }
  void operator()(A... a) const { call_(obj_, a...); }

 private:
  void* obj_ = nullptr;
  void (*call_)(void*, A...) = nullptr;
};

// Which vendor library an op's vendor body uses, and so which context setting picks it.
enum class Vendor { None, Cudnn, Cublas };

// An op's implementations: cpu always, cuda in CUDA builds, and cpu_bf16 for the ops whose
// products kernels/bf16.h's rounding plan puts on bf16 operands (convolutions and linear
// layers); `run` picks it when the context asks for bf16. An op without one runs in fp32 at
// either precision.
struct Bodies {
  Body<void()> cpu;
  Body<void()> cpu_bf16 = {};  // optional: the initializer lets an op's designated list leave it out
#ifdef ACTIVEIP_CUDA
  Body<void(cudaStream_t)> cuda;
#endif
};

// The cuDNN / cuBLAS comparator of an op that has one, and which library it is.
struct VendorBody {
  Vendor lib = Vendor::None;
  Body<void(VendorHandles&)> body;
};

// The one dispatch: the vendor comparator when the context asks for that library and the
// op has it, else the op's CUDA kernel on a CUDA context, else the CPU — its bf16 body when
// the context asks for bf16 and the op has one. (A CUDA context never holds bf16:
// Context::set_precision refuses it.)
void run([[maybe_unused]] Context& ctx, [[maybe_unused]] const char* op, const Bodies& b,
         [[maybe_unused]] const VendorBody& v = {}) {
#ifdef ACTIVEIP_CUDA
  if (ctx.is_cuda()) {
    const bool want_vendor = (v.lib == Vendor::Cudnn && ctx.conv_impl() == ConvImpl::Cudnn) ||
                             (v.lib == Vendor::Cublas && ctx.gemm_impl() == GemmImpl::Cublas);
    if (want_vendor && v.body) return v.body(ctx.vendor());
    ENSURE(b.cuda, "%s has no CUDA implementation", op);
    return b.cuda(ctx.stream());
  }
#endif
  if (ctx.precision() == Precision::BF16 && b.cpu_bf16) return b.cpu_bf16();
  b.cpu();
}

#ifdef ACTIVEIP_CUDA
// Device scratch for kernels that combine partial results across blocks: the context's
// workspace, so the step loop allocates none.
Tensor scratch(Context& ctx, size_t floats) {
  return ctx.workspace(static_cast<int64_t>(floats));
}
#endif

int64_t i64(size_t n) {
  return static_cast<int64_t>(n);
}

}  // namespace

void conv2d_fprop(Context& ctx, const Conv2dShape& s, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  const char* op = "conv2d_fprop";
  check(ctx, op,
        {f32("x", x, i64(s.x_size())), f32("w", w, i64(s.w_size())), f32("bias", bias, s.K),
         f32("y", y, i64(s.y_size()))});
  const float* b = bias ? bias->data<float>() : nullptr;
  run(ctx, op,
      {
          .cpu = [&] { conv2d_fprop_cpu(s, x.data<float>(), w.data<float>(), b, y.data<float>()); },
          .cpu_bf16 = [&] { conv2d_fprop_bf16_cpu(s, x.data<float>(), w.data<float>(), b, y.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) { conv2d_fprop_cuda(s, x.data<float>(), w.data<float>(), b, y.data<float>(), st); },
#endif
      }
#ifdef ACTIVEIP_CUDNN
      ,
      {Vendor::Cudnn,
       [&](VendorHandles& h) { conv2d_fprop_cudnn(h, s, x.data<float>(), w.data<float>(), b, y.data<float>()); }}
#endif
  );
}

void conv2d_dgrad(Context& ctx, const Conv2dShape& s, const Tensor& dy, const Tensor& w, Tensor& dx) {
  conv2d_dgrad(ctx, s, dy, w, dx, nullptr);
}

void conv2d_dgrad(Context& ctx, const Conv2dShape& s, const Tensor& dy, const Tensor& w, Tensor& dx,
                  const Tensor* dx_add) {
  const char* op = "conv2d_dgrad";
  check(ctx, op,
        {f32("dy", dy, i64(s.y_size())), f32("w", w, i64(s.w_size())), f32("dx", dx, i64(s.x_size())),
         f32("dx_add", dx_add, i64(s.x_size()))});
  ENSURE(!dx_add || dx_add->data<float>() != dx.data<float>(), "%s: dx_add aliases dx", op);
  const float* add = dx_add ? dx_add->data<float>() : nullptr;
  run(ctx, op,
      {
          .cpu =
              [&] {
                if (add)
                  conv2d_dgrad_add_cpu(s, dy.data<float>(), w.data<float>(), add, dx.data<float>());
                else
                  conv2d_dgrad_cpu(s, dy.data<float>(), w.data<float>(), dx.data<float>());
              },
          .cpu_bf16 =
              [&] {
                conv2d_dgrad_bf16_cpu(s, dy.data<float>(), w.data<float>(), dx.data<float>());
                if (add) add_cpu(s.x_size(), dx.data<float>(), add, dx.data<float>());
              },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                conv2d_dgrad_cuda(s, dy.data<float>(), w.data<float>(), dx.data<float>(), st);
                if (add) add_cuda(s.x_size(), dx.data<float>(), add, dx.data<float>(), st);
              },
#endif
      }
#ifdef ACTIVEIP_CUDNN
      ,
      {Vendor::Cudnn,
       [&](VendorHandles& h) {
         conv2d_dgrad_cudnn(h, s, dy.data<float>(), w.data<float>(), dx.data<float>());
         if (add) add_cuda(s.x_size(), dx.data<float>(), add, dx.data<float>(), h.stream());
       }}
#endif
  );
}

void conv2d_wgrad(Context& ctx, const Conv2dShape& s, const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* dbias) {
  const char* op = "conv2d_wgrad";
  check(ctx, op,
        {f32("x", x, i64(s.x_size())), f32("dy", dy, i64(s.y_size())), f32("dw", dw, i64(s.w_size())),
         f32("dbias", dbias, s.K)});
  float* db = dbias ? dbias->data<float>() : nullptr;
  run(ctx, op,
      {
          .cpu = [&] { conv2d_wgrad_cpu(s, x.data<float>(), dy.data<float>(), dw.data<float>(), db); },
          .cpu_bf16 = [&] { conv2d_wgrad_bf16_cpu(s, x.data<float>(), dy.data<float>(), dw.data<float>(), db); },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                conv2d_wgrad_cuda(s, x.data<float>(), dy.data<float>(), dw.data<float>(), db, st);
              },
#endif
      }
#ifdef ACTIVEIP_CUDNN
      ,
      {Vendor::Cudnn,
       [&](VendorHandles& h) { conv2d_wgrad_cudnn(h, s, x.data<float>(), dy.data<float>(), dw.data<float>(), db); }}
#endif
  );
}

void batchnorm_fwd(Context& ctx, const BatchNormShape& s, const BatchNormParams& p, bool training,
                   const BatchNormFwdTensors& t) {
  batchnorm_fwd(ctx, s, p, training, t, {});
}

void batchnorm_fwd(Context& ctx, const BatchNormShape& s, const BatchNormParams& p, bool training,
                   const BatchNormFwdTensors& t, const BatchNormFusion& f) {
  const char* op = "batchnorm_fwd";
  const int64_t mc = int64_t{s.M} * s.C;
  check(ctx, op,
        {f32("x", t.x, mc), f32("gamma", t.gamma, s.C), f32("beta", t.beta, s.C),
         f32("running_mean", t.running_mean, s.C), f32("running_var", t.running_var, s.C),
         f32("save_mean", t.save_mean, s.C), f32("save_invstd", t.save_invstd, s.C), f32("y", t.y, mc),
         f32("residual", f.residual, mc)});
  const BatchNormFwdArgs a{
      t.x.data<float>(),           t.gamma.data<float>(),     t.beta.data<float>(),        t.running_mean.data<float>(),
      t.running_var.data<float>(), t.save_mean.data<float>(), t.save_invstd.data<float>(), t.y.data<float>()};
  const BatchNormAct act{f.residual ? f.residual->data<float>() : nullptr, f.relu};
  Communicator* sync = training && f.sync && f.sync->size() > 1 ? f.sync : nullptr;
  ENSURE(!sync || !ctx.is_cuda(), "%s: sync batch norm over several processes runs on the CPU only, not on %s", op,
         ctx.device().str().c_str());
  run(ctx, op,
      {
          .cpu =
              [&] {
                if (sync) {
                  // The shift, then the statistics' sums and rows, added over the ranks.
                  // (kept per thread, so that a step allocates nothing once they have their size)
                  thread_local std::vector<double> shift, sums;
                  shift.resize(static_cast<size_t>(s.C));
                  sums.resize(2 * static_cast<size_t>(s.C) + 1);
                  batchnorm_shift_cpu(s, a.x, shift.data());
                  sync->broadcast(ctx, shift.data(), s.C, 0);
                  batchnorm_stat_sums_cpu(s, a.x, shift.data(), sums.data());
                  sums.back() = s.stats();
                  sync->all_reduce_sum(ctx, sums.data(), static_cast<int64_t>(sums.size()));
                  batchnorm_fwd_train_sums_act_cpu(s, p, a, act, shift.data(), sums.data(), std::llround(sums.back()));
                } else {
                  training ? batchnorm_fwd_train_act_cpu(s, p, a, act) : batchnorm_fwd_eval_act_cpu(s, p, a, act);
                }
              },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                if (!training) {
                  batchnorm_fwd_eval_cuda(s, p, a, st);
                } else {
                  Tensor work = scratch(ctx, batchnorm_workspace_floats(s));
                  batchnorm_fwd_train_cuda(s, p, a, work.data<float>(), st);
                }
                if (act.residual) add_cuda(static_cast<size_t>(mc), a.y, act.residual, a.y, st);
                if (act.relu) relu_fwd_cuda(static_cast<size_t>(mc), a.y, a.y, st);
              },
#endif
      });
}

#ifdef ACTIVEIP_CUDA
namespace {
// The CUDA path runs batch norm's backward fusions unfused: the gradient through the ReLU
// (into dg) or dy kept as dg, before the batch norm's own backward. Returns the dy it takes.
const float* fused_dy_cuda(const char* op, int64_t mc, const float* dy, const float* relu_y,
                           const BatchNormBwdFusion& f, cudaStream_t st) {
  if (relu_y) {
    ENSURE(f.dg, "%s: the CUDA path needs dg with relu_y", op);
    relu_bwd_cuda(static_cast<size_t>(mc), relu_y, dy, f.dg->data<float>(), st);
    return f.dg->data<float>();
  }
  if (f.keep_dg)
    CUDA_CHECK(cudaMemcpyAsync(f.dg->data<float>(), dy, sizeof(float) * static_cast<size_t>(mc),
                               cudaMemcpyDeviceToDevice, st));
  return dy;
}
}  // namespace
#endif

void batchnorm_bwd(Context& ctx, const BatchNormShape& s, const BatchNormBwdTensors& t) {
  batchnorm_bwd(ctx, s, t, {});
}

void batchnorm_bwd(Context& ctx, const BatchNormShape& s, const BatchNormBwdTensors& t, const BatchNormBwdFusion& f) {
  const char* op = "batchnorm_bwd";
  const int64_t mc = int64_t{s.M} * s.C;
  check(ctx, op,
        {f32("x", t.x, mc), f32("dy", t.dy, mc), f32("gamma", t.gamma, s.C), f32("save_mean", t.save_mean, s.C),
         f32("save_invstd", t.save_invstd, s.C), f32("dx", t.dx, mc), f32("dgamma", t.dgamma, s.C),
         f32("dbeta", t.dbeta, s.C), f32("relu_y", f.relu_y, mc), f32("dg", f.dg, mc)});
  ENSURE(!f.keep_dg || f.dg, "%s: keep_dg without a dg tensor", op);
  const BatchNormBwdArgs a{t.x.data<float>(),         t.dy.data<float>(),          t.gamma.data<float>(),
                           t.save_mean.data<float>(), t.save_invstd.data<float>(), t.dx.data<float>(),
                           t.dgamma.data<float>(),    t.dbeta.data<float>()};
  const float* relu_y = f.relu_y ? f.relu_y->data<float>() : nullptr;
  Communicator* sync = f.sync && f.sync->size() > 1 ? f.sync : nullptr;
  ENSURE(!sync || !ctx.is_cuda(), "%s: sync batch norm over several processes runs on the CPU only, not on %s", op,
         ctx.device().str().c_str());
  run(ctx, op,
      {
          .cpu =
              [&] {
                float* dg = f.keep_dg ? f.dg->data<float>() : nullptr;
                if (sync) {
                  // Σg and Σg·(x − mean) and the statistics' rows, added over the ranks.
                  // dgamma and dbeta take the rank's own sums: the gradient all-reduce adds them.
                  thread_local std::vector<double> local, sums;  // per thread, as in the forward
                  local.resize(2 * static_cast<size_t>(s.C) + 1);
                  batchnorm_bwd_sums_cpu(s, a, relu_y, local.data());
                  local.back() = s.stats();
                  sums.assign(local.begin(), local.end());
                  sync->all_reduce_sum(ctx, sums.data(), static_cast<int64_t>(sums.size()));
                  batchnorm_bwd_sums_act_cpu(s, a, relu_y, dg, local.data(), sums.data(), std::llround(sums.back()));
                } else {
                  batchnorm_bwd_act_cpu(s, a, relu_y, dg);
                }
              },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                BatchNormBwdArgs b = a;
                b.dy = fused_dy_cuda(op, mc, a.dy, relu_y, f, st);
                Tensor work = scratch(ctx, batchnorm_workspace_floats(s));
                batchnorm_bwd_cuda(s, b, work.data<float>(), st);
              },
#endif
      });
}

void batchnorm_bwd_eval(Context& ctx, const BatchNormShape& s, const BatchNormParams& p,
                        const BatchNormBwdEvalTensors& t, const BatchNormBwdFusion& f) {
  const char* op = "batchnorm_bwd_eval";
  const int64_t mc = int64_t{s.M} * s.C;
  check(ctx, op,
        {f32("x", t.x, mc), f32("dy", t.dy, mc), f32("gamma", t.gamma, s.C), f32("running_mean", t.running_mean, s.C),
         f32("running_var", t.running_var, s.C), f32("dx", t.dx, mc), f32("dgamma", t.dgamma, s.C),
         f32("dbeta", t.dbeta, s.C), f32("relu_y", f.relu_y, mc), f32("dg", f.dg, mc)});
  ENSURE(!f.keep_dg || f.dg, "%s: keep_dg without a dg tensor", op);
  const BatchNormBwdEvalArgs a{t.x.data<float>(),           t.dy.data<float>(),          t.gamma.data<float>(),
                               t.running_mean.data<float>(), t.running_var.data<float>(), t.dx.data<float>(),
                               t.dgamma.data<float>(),       t.dbeta.data<float>()};
  const float* relu_y = f.relu_y ? f.relu_y->data<float>() : nullptr;
  run(ctx, op,
      {
          .cpu = [&] { batchnorm_bwd_eval_act_cpu(s, p, a, relu_y, f.keep_dg ? f.dg->data<float>() : nullptr); },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                BatchNormBwdEvalArgs b = a;
                b.dy = fused_dy_cuda(op, mc, a.dy, relu_y, f, st);
                Tensor work = scratch(ctx, batchnorm_workspace_floats(s));
                batchnorm_bwd_eval_cuda(s, p, b, work.data<float>(), st);
              },
#endif
      });
}

void relu_fwd(Context& ctx, const Tensor& x, Tensor& y) {
  const char* op = "relu_fwd";
  check(ctx, op, {f32("x", x, x.numel()), f32("y", y, x.numel())});
  const size_t n = static_cast<size_t>(x.numel());
  run(ctx, op,
      {
          .cpu = [&] { relu_fwd_cpu(n, x.data<float>(), y.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda = [&](cudaStream_t st) { relu_fwd_cuda(n, x.data<float>(), y.data<float>(), st); },
#endif
      });
}

void relu_bwd(Context& ctx, const Tensor& y, const Tensor& dy, Tensor& dx) {
  const char* op = "relu_bwd";
  check(ctx, op, {f32("y", y, y.numel()), f32("dy", dy, y.numel()), f32("dx", dx, y.numel())});
  const size_t n = static_cast<size_t>(y.numel());
  run(ctx, op,
      {
          .cpu = [&] { relu_bwd_cpu(n, y.data<float>(), dy.data<float>(), dx.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda = [&](cudaStream_t st) { relu_bwd_cuda(n, y.data<float>(), dy.data<float>(), dx.data<float>(), st); },
#endif
      });
}

void add(Context& ctx, const Tensor& a, const Tensor& b, Tensor& y) {
  const char* op = "add";
  check(ctx, op, {f32("a", a, a.numel()), f32("b", b, a.numel()), f32("y", y, a.numel())});
  const size_t n = static_cast<size_t>(a.numel());
  run(ctx, op,
      {
          .cpu = [&] { add_cpu(n, a.data<float>(), b.data<float>(), y.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda = [&](cudaStream_t st) { add_cuda(n, a.data<float>(), b.data<float>(), y.data<float>(), st); },
#endif
      });
}

void axpy(Context& ctx, float alpha, const Tensor& x, Tensor& y) {
  const char* op = "axpy";
  check(ctx, op, {f32("x", x, x.numel()), f32("y", y, x.numel())});
  const size_t n = static_cast<size_t>(x.numel());
  run(ctx, op,
      {
          .cpu = [&] { axpy_cpu(n, alpha, x.data<float>(), y.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda = [&](cudaStream_t st) { axpy_cuda(n, alpha, x.data<float>(), y.data<float>(), st); },
#endif
      });
}

void scale(Context& ctx, float alpha, Tensor& y) {
  const char* op = "scale";
  check(ctx, op, {f32("y", y, y.numel())});
  const size_t n = static_cast<size_t>(y.numel());
  run(ctx, op,
      {
          .cpu = [&] { scale_cpu(n, alpha, y.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda = [&](cudaStream_t st) { scale_cuda(n, alpha, y.data<float>(), st); },
#endif
      });
}

void fill(Context& ctx, float value, Tensor& y) {
  const char* op = "fill";
  check(ctx, op, {f32("y", y, y.numel())});
  const size_t n = static_cast<size_t>(y.numel());
  run(ctx, op,
      {
          .cpu = [&] { fill_cpu(n, value, y.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda = [&](cudaStream_t st) { fill_cuda(n, value, y.data<float>(), st); },
#endif
      });
}

void maxpool2d_fwd(Context& ctx, const Pool2dShape& s, const Tensor& x, Tensor& y, Tensor& argmax) {
  const char* op = "maxpool2d_fwd";
  const int64_t out = int64_t{s.N} * s.P() * s.Q() * s.C;
  check(ctx, op, {f32("x", x, int64_t{s.N} * s.H * s.W * s.C), f32("y", y, out), i32("argmax", argmax, out)});
  run(ctx, op,
      {
          .cpu = [&] { maxpool2d_fwd_cpu(s, x.data<float>(), y.data<float>(), argmax.data<int32_t>()); },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                maxpool2d_fwd_cuda(s, x.data<float>(), y.data<float>(), argmax.data<int32_t>(), st);
              },
#endif
      });
}

void maxpool2d_bwd(Context& ctx, const Pool2dShape& s, const Tensor& dy, const Tensor& argmax, Tensor& dx) {
  const char* op = "maxpool2d_bwd";
  const int64_t out = int64_t{s.N} * s.P() * s.Q() * s.C;
  check(ctx, op, {f32("dy", dy, out), i32("argmax", argmax, out), f32("dx", dx, int64_t{s.N} * s.H * s.W * s.C)});
  run(ctx, op,
      {
          .cpu = [&] { maxpool2d_bwd_cpu(s, dy.data<float>(), argmax.data<int32_t>(), dx.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                maxpool2d_bwd_cuda(s, dy.data<float>(), argmax.data<int32_t>(), dx.data<float>(), st);
              },
#endif
      });
}

void global_avgpool_fwd(Context& ctx, const GlobalPoolShape& s, const Tensor& x, Tensor& y) {
  const char* op = "global_avgpool_fwd";
  check(ctx, op, {f32("x", x, int64_t{s.N} * s.HW * s.C), f32("y", y, int64_t{s.N} * s.C)});
  run(ctx, op,
      {
          .cpu = [&] { global_avgpool_fwd_cpu(s, x.data<float>(), y.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda = [&](cudaStream_t st) { global_avgpool_fwd_cuda(s, x.data<float>(), y.data<float>(), st); },
#endif
      });
}

void global_avgpool_bwd(Context& ctx, const GlobalPoolShape& s, const Tensor& dy, Tensor& dx) {
  const char* op = "global_avgpool_bwd";
  check(ctx, op, {f32("dy", dy, int64_t{s.N} * s.C), f32("dx", dx, int64_t{s.N} * s.HW * s.C)});
  run(ctx, op,
      {
          .cpu = [&] { global_avgpool_bwd_cpu(s, dy.data<float>(), dx.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda = [&](cudaStream_t st) { global_avgpool_bwd_cuda(s, dy.data<float>(), dx.data<float>(), st); },
#endif
      });
}

void pad_shortcut_fwd(Context& ctx, const PadShortcutShape& s, const Tensor& x, Tensor& y) {
  const char* op = "pad_shortcut_fwd";
  check(ctx, op, {f32("x", x, int64_t{s.N} * s.H * s.W * s.C), f32("y", y, int64_t{s.N} * s.P() * s.Q() * s.K())});
  run(ctx, op,
      {
          .cpu = [&] { pad_shortcut_fwd_cpu(s, x.data<float>(), y.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda = [&](cudaStream_t st) { pad_shortcut_fwd_cuda(s, x.data<float>(), y.data<float>(), st); },
#endif
      });
}

void pad_shortcut_bwd(Context& ctx, const PadShortcutShape& s, const Tensor& dy, Tensor& dx) {
  const char* op = "pad_shortcut_bwd";
  check(ctx, op, {f32("dy", dy, int64_t{s.N} * s.P() * s.Q() * s.K()), f32("dx", dx, int64_t{s.N} * s.H * s.W * s.C)});
  run(ctx, op,
      {
          .cpu = [&] { pad_shortcut_bwd_cpu(s, dy.data<float>(), dx.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda = [&](cudaStream_t st) { pad_shortcut_bwd_cuda(s, dy.data<float>(), dx.data<float>(), st); },
#endif
      });
}

void linear_fwd(Context& ctx, const LinearShape& s, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) {
  const char* op = "linear_fwd";
  check(ctx, op,
        {f32("x", x, int64_t{s.N} * s.IN), f32("w", w, int64_t{s.OUT} * s.IN), f32("b", b, s.OUT),
         f32("y", y, int64_t{s.N} * s.OUT)});
  const float* bias = b ? b->data<float>() : nullptr;
  run(ctx, op,
      {
          .cpu = [&] { linear_fwd_cpu(s, x.data<float>(), w.data<float>(), bias, y.data<float>()); },
          .cpu_bf16 = [&] { linear_fwd_bf16_cpu(s, x.data<float>(), w.data<float>(), bias, y.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) { linear_fwd_cuda(s, x.data<float>(), w.data<float>(), bias, y.data<float>(), st); },
#endif
      }
#ifdef ACTIVEIP_CUDA
      ,
      {Vendor::Cublas,
       [&](VendorHandles& h) { linear_fwd_cublas(h, s, x.data<float>(), w.data<float>(), bias, y.data<float>()); }}
#endif
  );
}

void linear_bwd(Context& ctx, const LinearShape& s, const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dx,
                Tensor& dw, Tensor* db) {
  const char* op = "linear_bwd";
  check(ctx, op,
        {f32("x", x, int64_t{s.N} * s.IN), f32("w", w, int64_t{s.OUT} * s.IN), f32("dy", dy, int64_t{s.N} * s.OUT),
         f32("dx", dx, int64_t{s.N} * s.IN), f32("dw", dw, int64_t{s.OUT} * s.IN), f32("db", db, s.OUT)});
  float* dbias = db ? db->data<float>() : nullptr;
  run(ctx, op,
      {
          .cpu =
              [&] {
                linear_bwd_cpu(s, x.data<float>(), w.data<float>(), dy.data<float>(), dx.data<float>(),
                               dw.data<float>(), dbias);
              },
          .cpu_bf16 =
              [&] {
                linear_bwd_bf16_cpu(s, x.data<float>(), w.data<float>(), dy.data<float>(), dx.data<float>(),
                                    dw.data<float>(), dbias);
              },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                linear_bwd_cuda(s, x.data<float>(), w.data<float>(), dy.data<float>(), dx.data<float>(),
                                dw.data<float>(), dbias, st);
              },
#endif
      }
#ifdef ACTIVEIP_CUDA
      ,
      {Vendor::Cublas,
       [&](VendorHandles& h) {
         linear_bwd_cublas(h, s, x.data<float>(), w.data<float>(), dy.data<float>(), dx.data<float>(), dw.data<float>(),
                           dbias);
       }}
#endif
  );
}

void dropout_fwd(Context& ctx, const DropoutParams& d, const Tensor& x, Tensor& y, Tensor& mask) {
  const char* op = "dropout_fwd";
  ENSURE(d.p >= 0.0f && d.p < 1.0f, "%s: probability %g is outside [0, 1)", op, static_cast<double>(d.p));
  check(ctx, op, {f32("x", x, x.numel()), f32("y", y, x.numel()), f32("mask", mask, x.numel())});
  const size_t n = static_cast<size_t>(x.numel());
  run(ctx, op,
      {
          .cpu = [&] { dropout_fwd_cpu(n, d, x.data<float>(), y.data<float>(), mask.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                dropout_fwd_cuda(n, d, x.data<float>(), y.data<float>(), mask.data<float>(), st);
              },
#endif
      });
}

void dropout_bwd(Context& ctx, const Tensor& dy, const Tensor& mask, Tensor& dx) {
  const char* op = "dropout_bwd";
  check(ctx, op, {f32("dy", dy, dy.numel()), f32("mask", mask, dy.numel()), f32("dx", dx, dy.numel())});
  const size_t n = static_cast<size_t>(dy.numel());
  run(ctx, op,
      {
          .cpu = [&] { dropout_bwd_cpu(n, dy.data<float>(), mask.data<float>(), dx.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) { dropout_bwd_cuda(n, dy.data<float>(), mask.data<float>(), dx.data<float>(), st); },
#endif
      });
}

void softmax_xent_fwd(Context& ctx, const XentShape& s, float smoothing, const Tensor& logits, const Tensor& labels,
                      Tensor& probs, Tensor& loss) {
  const char* op = "softmax_xent_fwd";
  const int64_t nc = int64_t{s.N} * s.C;
  check(ctx, op,
        {f32("logits", logits, nc), i32("labels", labels, s.N), f32("probs", probs, nc), f32("loss", loss, s.N)});
  run(ctx, op,
      {
          .cpu =
              [&] {
                softmax_xent_fwd_cpu(s, smoothing, logits.data<float>(), labels.data<int32_t>(), probs.data<float>(),
                                     loss.data<float>());
              },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                softmax_xent_fwd_cuda(s, smoothing, logits.data<float>(), labels.data<int32_t>(), probs.data<float>(),
                                      loss.data<float>(), st);
              },
#endif
      });
}

void softmax_xent_bwd(Context& ctx, const XentShape& s, float smoothing, const Tensor& probs, const Tensor& labels,
                      float scale, Tensor& dlogits) {
  const char* op = "softmax_xent_bwd";
  const int64_t nc = int64_t{s.N} * s.C;
  check(ctx, op, {f32("probs", probs, nc), i32("labels", labels, s.N), f32("dlogits", dlogits, nc)});
  run(ctx, op,
      {
          .cpu =
              [&] {
                softmax_xent_bwd_cpu(s, smoothing, probs.data<float>(), labels.data<int32_t>(), scale,
                                     dlogits.data<float>());
              },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                softmax_xent_bwd_cuda(s, smoothing, probs.data<float>(), labels.data<int32_t>(), scale,
                                      dlogits.data<float>(), st);
              },
#endif
      });
}

void logit_spread_bwd(Context& ctx, const XentShape& s, float weight, const Tensor& logits, const Tensor& rows,
                      Tensor& dlogits) {
  const char* op = "logit_spread_bwd";
  const int64_t nc = int64_t{s.N} * s.C;
  check(ctx, op, {f32("logits", logits, nc), f32("rows", rows, s.N), f32("dlogits", dlogits, nc)});
  run(ctx, op,
      {
          .cpu =
              [&] { logit_spread_bwd_cpu(s, weight, logits.data<float>(), rows.data<float>(), dlogits.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                logit_spread_bwd_cuda(s, weight, logits.data<float>(), rows.data<float>(), dlogits.data<float>(), st);
              },
#endif
      });
}

void soft_xent_fwd(Context& ctx, const XentShape& s, float temperature, const Tensor& logits, const Tensor& targets,
                   Tensor& probs, Tensor& loss) {
  const char* op = "soft_xent_fwd";
  const int64_t nc = int64_t{s.N} * s.C;
  check(ctx, op,
        {f32("logits", logits, nc), f32("targets", targets, nc), f32("probs", probs, nc), f32("loss", loss, s.N)});
  run(ctx, op,
      {
          .cpu =
              [&] {
                soft_xent_fwd_cpu(s, temperature, logits.data<float>(), targets.data<float>(), probs.data<float>(),
                                  loss.data<float>());
              },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                soft_xent_fwd_cuda(s, temperature, logits.data<float>(), targets.data<float>(), probs.data<float>(),
                                   loss.data<float>(), st);
              },
#endif
      });
}

void soft_xent_bwd(Context& ctx, const XentShape& s, float temperature, const Tensor& probs, const Tensor& targets,
                   float scale, Tensor& dlogits) {
  const char* op = "soft_xent_bwd";
  const int64_t nc = int64_t{s.N} * s.C;
  check(ctx, op, {f32("probs", probs, nc), f32("targets", targets, nc), f32("dlogits", dlogits, nc)});
  run(ctx, op,
      {
          .cpu =
              [&] {
                soft_xent_bwd_cpu(s, temperature, probs.data<float>(), targets.data<float>(), scale,
                                  dlogits.data<float>());
              },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                soft_xent_bwd_cuda(s, temperature, probs.data<float>(), targets.data<float>(), scale,
                                   dlogits.data<float>(), st);
              },
#endif
      });
}

void softmax_temperature_fwd(Context& ctx, const XentShape& s, float temperature, const Tensor& logits, Tensor& probs) {
  const char* op = "softmax_temperature_fwd";
  const int64_t nc = int64_t{s.N} * s.C;
  check(ctx, op, {f32("logits", logits, nc), f32("probs", probs, nc)});
  run(ctx, op,
      {
          .cpu = [&] { softmax_temperature_fwd_cpu(s, temperature, logits.data<float>(), probs.data<float>()); },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                softmax_temperature_fwd_cuda(s, temperature, logits.data<float>(), probs.data<float>(), st);
              },
#endif
      });
}

void loss_accumulate(Context& ctx, const XentShape& s, const Tensor& loss, const Tensor& probs, const Tensor* labels,
                     const Tensor* targets, Tensor& acc) {
  const char* op = "loss_accumulate";
  ENSURE(s.N >= 0 && s.C >= 1, "%s: bad shape N=%d C=%d", op, s.N, s.C);
  ENSURE((labels != nullptr) != (targets != nullptr), "%s: give exactly one of labels and targets", op);
  const int64_t nc = int64_t{s.N} * s.C;
  check(ctx, op,
        {f32("loss", loss, s.N),
         f32("probs", probs, nc),
         {"labels", labels, DType::I32, s.N},
         f32("targets", targets, nc),
         {"acc", &acc, DType::U8, 2 * int64_t{sizeof(double)}}});
  const int32_t* y = labels ? labels->data<int32_t>() : nullptr;
  const float* q = targets ? targets->data<float>() : nullptr;
  auto* a = reinterpret_cast<double*>(acc.data<uint8_t>());
  run(ctx, op,
      {
          .cpu = [&] { loss_accumulate_cpu(s, loss.data<float>(), probs.data<float>(), y, q, a); },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) { loss_accumulate_cuda(s, loss.data<float>(), probs.data<float>(), y, q, a, st); },
#endif
      });
}

void sgd_step(Context& ctx, const SgdParams& p, Tensor& w, const Tensor& g, Tensor& v, const Tensor* mask,
              const Tensor* trainable) {
  const char* op = "sgd_step";
  const int64_t n = w.numel();
  check(ctx, op,
        {f32("w", w, n), f32("g", g, n), f32("v", v, n), f32("mask", mask, n), f32("trainable", trainable, n)});
  const SgdArgs a{w.data<float>(), g.data<float>(),
                  v.data<float>(), mask ? mask->data<float>() : nullptr,
                  nullptr,         trainable ? trainable->data<float>() : nullptr};
  run(ctx, op,
      {
          .cpu = [&] { sgd_step_cpu(static_cast<size_t>(n), p, a); },
#ifdef ACTIVEIP_CUDA
          .cuda = [&](cudaStream_t st) { sgd_step_cuda(static_cast<size_t>(n), p, a, st); },
#endif
      });
}

void sam_ascent(Context& ctx, const SamShape& s, double rho, const SamTensors& t) {
  const char* op = "sam_ascent";
  ENSURE(s.n >= 0 && s.n <= INT32_MAX && s.segments >= 0, "%s: bad shape n=%lld segments=%d", op,
         static_cast<long long>(s.n), s.segments);
  ENSURE(std::isfinite(rho) && rho >= 0, "%s: rho %g is not a non-negative number", op, rho);
  check(ctx, op,
        {f32("w", t.w, s.n),
         f32("g", t.g, s.n),
         i32("segments", t.segments, 2 * int64_t{s.segments}),
         f32("mask", t.mask, s.n),
         {"norms", &t.norms, DType::U8, 2 * int64_t{s.segments} * 8},
         f32("e", t.e, s.n)});
  const SamArgs a{t.w.data<float>(),
                  t.g.data<float>(),
                  t.segments.data<int32_t>(),
                  t.mask ? t.mask->data<float>() : nullptr,
                  reinterpret_cast<double*>(t.norms.data<uint8_t>()),
                  t.e.data<float>()};
  run(ctx, op,
      {
          .cpu =
              [&] {
                // The segments are checked here on the host; on CUDA by whoever made them (SamStep
                // builds them once from the network's slots, with parameter_segments).
                int64_t last = 0;
                for (int l = 0; l < s.segments; ++l) {
                  const int64_t begin = a.segments[2 * l], end = a.segments[2 * l + 1];
                  ENSURE(begin >= last && begin <= end && end <= s.n,
                         "%s: segment %d is [%lld, %lld), after %lld in a buffer of %lld", op, l,
                         static_cast<long long>(begin), static_cast<long long>(end), static_cast<long long>(last),
                         static_cast<long long>(s.n));
                  last = end;
                }
                sam_ascent_cpu(s, rho, a);
              },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                Tensor work = scratch(ctx, sam_ascent_workspace_floats(s));
                sam_ascent_cuda(s, rho, a, work.data<float>(), st);
              },
#endif
      });
}

void magnitude_keys(Context& ctx, uint32_t first, const Tensor& w, Tensor& keys) {
  const char* op = "magnitude_keys";
  const int64_t n = w.numel();
  check(ctx, op, {f32("w", w, n), {"keys", &keys, DType::U8, 8 * n}});
  auto* k = reinterpret_cast<uint64_t*>(keys.data<uint8_t>());
  run(ctx, op,
      {
          .cpu = [&] { magnitude_keys_cpu(static_cast<size_t>(n), w.data<float>(), first, k); },
#ifdef ACTIVEIP_CUDA
          .cuda = [&](cudaStream_t st) { magnitude_keys_cuda(static_cast<size_t>(n), w.data<float>(), first, k, st); },
#endif
      });
}

uint64_t kth_smallest_key(Context& ctx, const Tensor& keys, int64_t k) {
  const char* op = "kth_smallest_key";
  check(ctx, op, {{"keys", &keys, DType::U8, 0, 8}});
  const int64_t n = keys.numel() / 8;
  ENSURE(k >= 0 && k < n, "%s: k = %lld is outside [0, %lld)", op, static_cast<long long>(k),
         static_cast<long long>(n));
  const auto* keys64 = reinterpret_cast<const uint64_t*>(keys.data<uint8_t>());
  uint64_t key = 0;
  run(ctx, op,
      {
          .cpu = [&] { key = kth_smallest_key_cpu(static_cast<size_t>(n), keys64, static_cast<size_t>(k)); },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                const size_t bytes = kth_smallest_key_workspace_bytes(static_cast<size_t>(n));
                Tensor workspace = Tensor::empty({static_cast<int64_t>(bytes)}, DType::U8, ctx);
                key = kth_smallest_key_cuda(static_cast<size_t>(n), keys64, static_cast<size_t>(k), workspace.raw(),
                                            bytes, st);
              },
#endif
      });
  return key;
}

void threshold_mask(Context& ctx, uint32_t first, uint64_t threshold, const Tensor& w, Tensor& mask) {
  const char* op = "threshold_mask";
  const int64_t n = w.numel();
  check(ctx, op, {f32("w", w, n), f32("mask", mask, n)});
  run(ctx, op,
      {
          .cpu =
              [&] {
                threshold_mask_cpu(static_cast<size_t>(n), w.data<float>(), first, threshold, mask.data<float>());
              },
#ifdef ACTIVEIP_CUDA
          .cuda =
              [&](cudaStream_t st) {
                threshold_mask_cuda(static_cast<size_t>(n), w.data<float>(), first, threshold, mask.data<float>(), st);
              },
#endif
      });
}

void channel_sum(Context& ctx, int C, const Tensor& x, Tensor& sum) {
  const char* op = "channel_sum";
  ENSURE(C > 0, "%s: %d channels", op, C);
  check(ctx, op, {{"x", &x, DType::F32, 0, C}, {"sum", &sum, DType::U8, int64_t{8} * C}});
  const size_t rows = static_cast<size_t>(x.numel() / C);
  auto* s = reinterpret_cast<double*>(sum.data<uint8_t>());
  run(ctx, op,
      {
          .cpu = [&] { channel_sum_cpu(rows, C, x.data<float>(), s); },
#ifdef ACTIVEIP_CUDA
          .cuda = [&](cudaStream_t st) { channel_sum_cuda(rows, C, x.data<float>(), s, st); },
#endif
      });
}

void augment(Context& ctx, const AugmentShape& s, const AugmentTensors& t) {
  const char* op = "augment";
  ENSURE(s.N >= 0 && s.H > 0 && s.W > 0 && s.C > 0 && s.pad >= 0, "%s: bad shape N=%d H=%d W=%d C=%d pad=%d", op, s.N,
         s.H, s.W, s.C, s.pad);
  const int64_t image = int64_t{s.H} * s.W * s.C;
  check(ctx, op,
        {{"images", &t.images, DType::U8, 0, image},
         i32("index", t.index, s.N),
         {"crop", t.crop, DType::I32, int64_t{2} * s.N},
         {"flip", t.flip, DType::U8, s.N},
         f32("mean", t.mean, s.C),
         f32("std", t.std, s.C),
         f32("out", t.out, int64_t{s.N} * image)});
  const AugmentArgs a{t.images.data<uint8_t>(),
                      t.index.data<int32_t>(),
                      t.crop ? t.crop->data<int32_t>() : nullptr,
                      t.flip ? t.flip->data<uint8_t>() : nullptr,
                      t.mean.data<float>(),
                      t.std.data<float>(),
                      t.out.data<float>()};
  run(ctx, op,
      {
          .cpu =
              [&] {
                // As for stamp: the indices are checked here on the host; on CUDA by whoever made
                // them (the batch plan draws them from the dataset's records).
                const int64_t count = t.images.numel() / image;
                for (int n = 0; n < s.N; ++n)
                  ENSURE(a.index[n] >= 0 && a.index[n] < count, "%s: sample %d asks for image %d of %lld", op, n,
                         a.index[n], static_cast<long long>(count));
                augment_cpu(s, a);
              },
#ifdef ACTIVEIP_CUDA
          .cuda = [&](cudaStream_t st) { augment_cuda(s, a, st); },
#endif
      });
}

void stamp(Context& ctx, const StampShape& s, const Tensor& bank, const Tensor& patch, const Tensor& origin,
           Tensor& x) {
  const char* op = "stamp";
  ENSURE(s.size >= 1 && s.size <= s.H && s.size <= s.W, "%s: a %d-pixel patch does not fit a %dx%d image", op, s.size,
         s.H, s.W);
  // Normalised floats or uint8 pixels: the bank's element type is the batch's.
  const DType type = x.dtype() == DType::U8 ? DType::U8 : DType::F32;
  check(ctx, op,
        {{"bank", &bank, type, int64_t{s.patches} * s.size * s.size * s.C},
         i32("patch", patch, s.N),
         i32("origin", origin, int64_t{2} * s.N),
         {"x", &x, type, int64_t{s.N} * s.H * s.W * s.C}});
  const auto stamp_as = [&](auto args) {
    run(ctx, op,
        {
            .cpu =
                [&] {
                  // The indices and origins are checked here on the host; on CUDA they were checked by
                  // whoever filled them (the fingerprint module validates every origin it renders).
                  for (int n = 0; n < s.N; ++n) {
                    const int p = args.patch[n], top = args.origin[2 * n], left = args.origin[2 * n + 1];
                    if (p < 0) continue;
                    ENSURE(p < s.patches, "%s: sample %d asks for patch %d of %d", op, n, p, s.patches);
                    ENSURE(top >= 0 && left >= 0 && top + s.size <= s.H && left + s.size <= s.W,
                           "%s: sample %d's patch at (%d, %d) leaves the %dx%d image", op, n, top, left, s.H, s.W);
                  }
                  stamp_cpu(s, args);
                },
#ifdef ACTIVEIP_CUDA
            .cuda = [&](cudaStream_t st) { stamp_cuda(s, args, st); },
#endif
        });
  };
  if (type == DType::U8)
    stamp_as(StampArgsU8{bank.data<uint8_t>(), patch.data<int32_t>(), origin.data<int32_t>(), x.data<uint8_t>()});
  else
    stamp_as(StampArgs{bank.data<float>(), patch.data<int32_t>(), origin.data<int32_t>(), x.data<float>()});
}

}  // namespace activeip::ops
