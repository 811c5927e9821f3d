// Tensor-level ops: check shapes, dtypes and devices at this boundary, then dispatch to
// the CPU or CUDA implementation in kernels/ on the tensor's device (on CUDA, convolutions
// and linear layers go to cuDNN / cuBLAS instead when the context asks for them); layers
// and the trainer call only these functions.
#pragma once

#include <cstdint>

#include "engine/core/context.h"
#include "engine/core/tensor.h"
#include "kernels/augment.h"
#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/dropout.h"
#include "kernels/linear.h"
#include "kernels/loss.h"
#include "kernels/pool.h"
#include "kernels/sgd.h"
#include "kernels/shortcut.h"
#include "kernels/stamp.h"

namespace activeip::ops {

void conv2d_fprop(Context& ctx, const Conv2dShape& s, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y);
void conv2d_dgrad(Context& ctx, const Conv2dShape& s, const Tensor& dy, const Tensor& w, Tensor& dx);
void conv2d_wgrad(Context& ctx, const Conv2dShape& s, const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* dbias);

void batchnorm_fwd(Context& ctx, const BatchNormShape& s, const BatchNormParams& p, bool training,
                   const BatchNormFwdArgs& a, Device device);
void batchnorm_bwd(Context& ctx, const BatchNormShape& s, const BatchNormBwdArgs& a, Device device);

void relu_fwd(Context& ctx, const Tensor& x, Tensor& y);
void relu_bwd(Context& ctx, const Tensor& y, const Tensor& dy, Tensor& dx);
void add(Context& ctx, const Tensor& a, const Tensor& b, Tensor& y);
void axpy(Context& ctx, float alpha, const Tensor& x, Tensor& y);
void fill(Context& ctx, float value, Tensor& y);

void maxpool2d_fwd(Context& ctx, const Pool2dShape& s, const Tensor& x, Tensor& y, Tensor& argmax);
void maxpool2d_bwd(Context& ctx, const Pool2dShape& s, const Tensor& dy, const Tensor& argmax, Tensor& dx);
void global_avgpool_fwd(Context& ctx, const GlobalPoolShape& s, const Tensor& x, Tensor& y);
void global_avgpool_bwd(Context& ctx, const GlobalPoolShape& s, const Tensor& dy, Tensor& dx);

void pad_shortcut_fwd(Context& ctx, const PadShortcutShape& s, const Tensor& x, Tensor& y);
void pad_shortcut_bwd(Context& ctx, const PadShortcutShape& s, const Tensor& dy, Tensor& dx);

void linear_fwd(Context& ctx, const LinearShape& s, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y);
void linear_bwd(Context& ctx, const LinearShape& s, const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dx,
                Tensor& dw, Tensor* db);

void dropout_fwd(Context& ctx, const DropoutParams& d, const Tensor& x, Tensor& y, Tensor& mask);
void dropout_bwd(Context& ctx, const Tensor& dy, const Tensor& mask, Tensor& dx);

void softmax_xent_fwd(Context& ctx, const XentShape& s, float smoothing, const Tensor& logits, const Tensor& labels,
                      Tensor& probs, Tensor& loss);
void softmax_xent_bwd(Context& ctx, const XentShape& s, float smoothing, const Tensor& probs, const Tensor& labels,
                      float scale, Tensor& dlogits);

// mask and trainable (may be null) as in kernels/sgd.h: 1 keep / 0 pruned, 1 trained / 0 frozen.
// Distillation's soft-target loss and the softmax at a temperature (kernels/loss.h).
void soft_xent_fwd(Context& ctx, const XentShape& s, float temperature, const Tensor& logits, const Tensor& targets,
                   Tensor& probs, Tensor& loss);
void soft_xent_bwd(Context& ctx, const XentShape& s, float temperature, const Tensor& probs, const Tensor& targets,
                   float scale, Tensor& dlogits);
void softmax_temperature_fwd(Context& ctx, const XentShape& s, float temperature, const Tensor& logits, Tensor& probs);

void sgd_step(Context& ctx, const SgdParams& p, Tensor& w, const Tensor& g, Tensor& v, const Tensor* mask,
              const Tensor* trainable = nullptr);

// images/index/crop/flip/mean/std/out all on ctx's device.
void augment(Context& ctx, const AugmentShape& s, const AugmentArgs& a);
// bank (patches×size×size×C f32), patch (N i32), origin (2N i32) and x (N×H×W×C f32) on
// ctx's device; every stamped patch must lie inside the image.
void stamp(Context& ctx, const StampShape& s, const Tensor& bank, const Tensor& patch, const Tensor& origin, Tensor& x);

}  // namespace activeip::ops
