// Tensor-level ops, the one boundary between tensors and kernels/: every tensor argument is
// checked once here (storage, device = the context's, dtype, element count), and a bad call
// fails with an Error naming the op and the argument; then the op runs on the context's
// device (on CUDA, convolutions and linear layers go to cuDNN / cuBLAS instead when the
// context asks for them). Layers, losses, the trainer and the attacks call only these.
#pragma once

#include <cstdint>

#include "engine/core/communicator.h"
#include "engine/core/context.h"
#include "engine/core/tensor.h"
#include "kernels/augment.h"
#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/dropout.h"
#include "kernels/linear.h"
#include "kernels/loss.h"
#include "kernels/pool.h"
#include "kernels/prune.h"
#include "kernels/sam.h"
#include "kernels/sgd.h"
#include "kernels/shortcut.h"
#include "kernels/stamp.h"

namespace activeip::ops {

void conv2d_fprop(Context& ctx, const Conv2dShape& s, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y);
void conv2d_dgrad(Context& ctx, const Conv2dShape& s, const Tensor& dy, const Tensor& w, Tensor& dx);
// dx = dgrad(dy) + dx_add (x's shape, not dx itself; null: plain dgrad): a residual block's
// shortcut gradient, added in the same pass on the CPU.
void conv2d_dgrad(Context& ctx, const Conv2dShape& s, const Tensor& dy, const Tensor& w, Tensor& dx,
                  const Tensor* dx_add);
void conv2d_wgrad(Context& ctx, const Conv2dShape& s, const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* dbias);

// The batch-norm tensors, as kernels/batchnorm.h's BatchNormFwdArgs / BatchNormBwdArgs: x, y,
// dy, dx are M×C; the rest C. Eval mode reads the running stats and leaves save_* alone.
struct BatchNormFwdTensors {
  const Tensor& x;
  const Tensor& gamma;
  const Tensor& beta;
  Tensor& running_mean;
  Tensor& running_var;
  Tensor& save_mean;
  Tensor& save_invstd;
  Tensor& y;
};
struct BatchNormBwdTensors {
  const Tensor& x;
  const Tensor& dy;
  const Tensor& gamma;
  const Tensor& save_mean;
  const Tensor& save_invstd;
  Tensor& dx;      // overwritten
  Tensor& dgamma;  // accumulated
  Tensor& dbeta;   // accumulated
};
void batchnorm_fwd(Context& ctx, const BatchNormShape& s, const BatchNormParams& p, bool training,
                   const BatchNormFwdTensors& t);
void batchnorm_bwd(Context& ctx, const BatchNormShape& s, const BatchNormBwdTensors& t);

// The batch norm with what follows it in the nets fused in (kernels/batchnorm.h's
// BatchNormAct): forward y = act(bn(x) + residual), residual M×C or null, act ReLU or the
// identity; backward through the ReLU of that fused output y (relu_y, M×C, or null), the
// masked gradient g = dy·[y > 0] written to dg (M×C) when keep_dg (a residual branch needs it).
// One pass over the rows on the CPU; on CUDA the unfused kernels in sequence, which then need
// dg whenever relu_y is given (it holds g).
// sync (training mode; null or one rank: none): sync batch norm, the statistics (and in
// backward the two per-channel sums) added over the ranks of the communicator, so that every
// rank normalises with the statistics of all ranks' rows, as one process would with all of
// them; rank 0's first row is the shift of the sums (kernels/batchnorm.h). The CPU only.
struct BatchNormFusion {
  const Tensor* residual = nullptr;
  bool relu = false;
  Communicator* sync = nullptr;
};
struct BatchNormBwdFusion {
  const Tensor* relu_y = nullptr;
  Tensor* dg = nullptr;
  bool keep_dg = false;
  Communicator* sync = nullptr;
};
void batchnorm_fwd(Context& ctx, const BatchNormShape& s, const BatchNormParams& p, bool training,
                   const BatchNormFwdTensors& t, const BatchNormFusion& f);
void batchnorm_bwd(Context& ctx, const BatchNormShape& s, const BatchNormBwdTensors& t, const BatchNormBwdFusion& f);
// The backward of the eval forward (kernels/batchnorm.h): the running statistics in place of
// the saved ones, the same fusion (no sync: eval mode has no statistics to share).
struct BatchNormBwdEvalTensors {
  const Tensor& x;
  const Tensor& dy;
  const Tensor& gamma;
  const Tensor& running_mean;
  const Tensor& running_var;
  Tensor& dx;      // overwritten
  Tensor& dgamma;  // accumulated
  Tensor& dbeta;   // accumulated
};
void batchnorm_bwd_eval(Context& ctx, const BatchNormShape& s, const BatchNormParams& p,
                        const BatchNormBwdEvalTensors& t, const BatchNormBwdFusion& f);

void relu_fwd(Context& ctx, const Tensor& x, Tensor& y);
void relu_bwd(Context& ctx, const Tensor& y, const Tensor& dy, Tensor& dx);
void add(Context& ctx, const Tensor& a, const Tensor& b, Tensor& y);
void axpy(Context& ctx, float alpha, const Tensor& x, Tensor& y);
void fill(Context& ctx, float value, Tensor& y);
void scale(Context& ctx, float alpha, Tensor& y);  // y = alpha·y

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

// Distillation's soft-target loss and the softmax at a temperature (kernels/loss.h).
void soft_xent_fwd(Context& ctx, const XentShape& s, float temperature, const Tensor& logits, const Tensor& targets,
                   Tensor& probs, Tensor& loss);
void soft_xent_bwd(Context& ctx, const XentShape& s, float temperature, const Tensor& probs, const Tensor& targets,
                   float scale, Tensor& dlogits);
void softmax_temperature_fwd(Context& ctx, const XentShape& s, float temperature, const Tensor& logits, Tensor& probs);

// Adds the gradient of λ·(the logits' variance over the rows marked in `rows`, N f32 of 0/1)
// to dlogits (kernels/loss.h's logit_spread). Waits for nothing.
void logit_spread_bwd(Context& ctx, const XentShape& s, float weight, const Tensor& logits, const Tensor& rows,
                      Tensor& dlogits);

// Adds a batch's loss sum and top-1 hits into acc (kernels/loss.h's loss_accumulate): loss N
// and probs N×C f32, exactly one of labels (N i32) and targets (N×C f32), acc 2 doubles held
// as 16 bytes in a U8 tensor (Tensor has no 64-bit dtype). Waits for nothing.
void loss_accumulate(Context& ctx, const XentShape& s, const Tensor& loss, const Tensor& probs, const Tensor* labels,
                     const Tensor* targets, Tensor& acc);

// mask and trainable (may be null) as in kernels/sgd.h: 1 keep / 0 pruned, 1 trained / 0 frozen.
void sgd_step(Context& ctx, const SgdParams& p, Tensor& w, const Tensor& g, Tensor& v, const Tensor* mask,
              const Tensor* trainable = nullptr);

// SAM's ascent over the flat parameters (kernels/sam.h), all on ctx's device: w, g, mask (may
// be null) and e s.n f32; segments 2·s.segments i32 (begin, end) pairs in increasing,
// non-overlapping order within [0, s.n); norms receives (Σw², Σg²) per segment, 2·s.segments
// doubles held as 8 bytes each in a U8 tensor.
struct SamTensors {
  const Tensor& w;
  const Tensor& g;
  const Tensor& segments;
  const Tensor* mask;
  Tensor& norms;
  Tensor& e;
};
void sam_ascent(Context& ctx, const SamShape& s, double rho, const SamTensors& t);

// Magnitude pruning and fine-pruning's statistics (kernels/prune.h). Keys are uint64, held
// as 8 bytes each in a U8 tensor (Tensor has no 64-bit dtype), as are the C double sums of
// channel_sum. w and mask are one run of the flat parameter and mask buffers, starting at
// element `first` of them (the keys' tie-break).
void magnitude_keys(Context& ctx, uint32_t first, const Tensor& w, Tensor& keys);
// The k-th smallest (0-based) of the keys, k < their count; waits for the device.
uint64_t kth_smallest_key(Context& ctx, const Tensor& keys, int64_t k);
void threshold_mask(Context& ctx, uint32_t first, uint64_t threshold, const Tensor& w, Tensor& mask);
// sum[c] += Σ_r x[r, c] over the rows of x (rows×C f32), in double.
void channel_sum(Context& ctx, int C, const Tensor& x, Tensor& sum);

// The data path's tensors, as kernels/augment.h's AugmentArgs, all on ctx's device: images
// (count×H×W×C u8), index (N i32), crop (2N i32) and flip (N u8) or both null for the plain
// evaluation transform, mean and std (C f32), out (N×H×W×C f32).
struct AugmentTensors {
  const Tensor& images;
  const Tensor& index;
  const Tensor* crop;
  const Tensor* flip;
  const Tensor& mean;
  const Tensor& std;
  Tensor& out;
};
void augment(Context& ctx, const AugmentShape& s, const AugmentTensors& t);
// bank (patches×size×size×C), patch (N i32), origin (2N i32) and x (N×H×W×C) on ctx's
// device, bank and x both f32 (normalised) or both u8 (pixels); every stamped patch must lie
// inside the image.
void stamp(Context& ctx, const StampShape& s, const Tensor& bank, const Tensor& patch, const Tensor& origin, Tensor& x);

}  // namespace activeip::ops
