// Batch normalisation over the rows of an NHWC tensor viewed as M×C (M = N·H·W).
// Training: mean and biased variance per channel from the batch (two-pass in double on
// the CPU), y = gamma·(x − mean)·invstd + beta, invstd = 1/sqrt(var + eps); the running
// stats move as PyTorch's: running = (1 − momentum)·running + momentum·batch, with the
// UNBIASED variance M/(M−1)·var. Eval: the running stats replace the batch stats.
// Backward (training mode) overwrites dx and ADDS into dgamma, dbeta. Backward of the eval
// forward: the running statistics are constants, so dx = γ·invstd·dy with invstd =
// 1/sqrt(running_var + eps), and dgamma += Σ dy·x̂ with x̂ = (x − running_mean)·invstd,
// dbeta += Σ dy — the input gradient of a frozen network (the token inversion, attacks/invert.h).
// Clean-statistics batch norm (c-BN): with stat_rows = S < M the statistics (and the running
// ones) come from the first S rows alone and normalise all M, so the gradient through the
// mean and variance reaches those S rows only: dx = γ·invstd·(dy − [r < S]·(Σdy + x̂·Σdy·x̂)/S),
// the sums over all M rows.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda_stream.h"
#include "kernels/hostdevice.h"

namespace activeip {

struct BatchNormShape {
  int M = 0;          // rows: N·H·W
  int C = 0;          // channels
  int stat_rows = 0;  // training: the rows whose statistics normalise all M (the first ones); 0: all
  ACTIVEIP_HD int stats() const { return stat_rows > 0 ? stat_rows : M; }
};

struct BatchNormParams {
  float eps = 1e-5f;
  float momentum = 0.1f;
};

struct BatchNormFwdArgs {
  const float* x;
  const float* gamma;
  const float* beta;
  float* running_mean;  // updated in training mode
  float* running_var;   // updated in training mode
  float* save_mean;     // C, written in training mode (for backward)
  float* save_invstd;   // C, written in training mode (for backward)
  float* y;
};

struct BatchNormBwdArgs {
  const float* x;
  const float* dy;
  const float* gamma;
  const float* save_mean;
  const float* save_invstd;
  float* dx;      // overwritten
  float* dgamma;  // accumulated
  float* dbeta;   // accumulated
};

// The eval backward's tensors: the running statistics in place of the saved ones.
struct BatchNormBwdEvalArgs {
  const float* x;
  const float* dy;
  const float* gamma;
  const float* running_mean;
  const float* running_var;
  float* dx;      // overwritten
  float* dgamma;  // accumulated
  float* dbeta;   // accumulated
};

void batchnorm_fwd_train_cpu(const BatchNormShape& s, const BatchNormParams& p, const BatchNormFwdArgs& a);
void batchnorm_fwd_eval_cpu(const BatchNormShape& s, const BatchNormParams& p, const BatchNormFwdArgs& a);
void batchnorm_bwd_cpu(const BatchNormShape& s, const BatchNormBwdArgs& a);
void batchnorm_bwd_eval_cpu(const BatchNormShape& s, const BatchNormParams& p, const BatchNormBwdEvalArgs& a);

// The CPU fusions of what follows a batch norm in the nets (on CUDA the engine runs the
// unfused ops in sequence). Forward: y = act(bn(x) + residual), act = ReLU or the identity,
// residual (M×C) optional: a ResNet block's bn2, shortcut add and ReLU in one pass over the
// rows. Backward: g = dy·[y > 0] through that fused output y (null y: no ReLU, g = dy),
// written to dg (M×C) when dg is not null — the gradient of the residual branch — and the
// batch-norm backward of g. act = {} is the plain batch norm.
struct BatchNormAct {
  const float* residual = nullptr;
  bool relu = false;
};
void batchnorm_fwd_train_act_cpu(const BatchNormShape& s, const BatchNormParams& p, const BatchNormFwdArgs& a,
                                 const BatchNormAct& act);
void batchnorm_fwd_eval_act_cpu(const BatchNormShape& s, const BatchNormParams& p, const BatchNormFwdArgs& a,
                                const BatchNormAct& act);
void batchnorm_bwd_act_cpu(const BatchNormShape& s, const BatchNormBwdArgs& a, const float* y, float* dg);
void batchnorm_bwd_eval_act_cpu(const BatchNormShape& s, const BatchNormParams& p, const BatchNormBwdEvalArgs& a,
                                const float* y, float* dg);

// Batch norm over rows held by several processes (sync batch norm): each training pass split
// at its reductions, which the caller adds over the processes in between. Forward:
// batchnorm_shift_cpu takes the first row as the shift (every process uses the first
// process's), batchnorm_stat_sums_cpu writes the first s.stats() rows' Σ(x − shift) and
// Σ(x − shift)² (2·C doubles, in that order), batchnorm_fwd_train_sums_act_cpu normalises with
// the statistics of `count` rows whose sums those are. Backward: batchnorm_bwd_sums_cpu writes
// Σg and Σg·(x − mean) over all M rows (2·C doubles), batchnorm_bwd_sums_act_cpu writes dx
// from the sums of all processes' rows with `count` statistics rows, and ADDS into dgamma,
// dbeta this process's own (`local`: the gradients of the processes are added afterwards,
// with the rest of the parameters'). The one-process training functions above are these with
// nothing added in between.
void batchnorm_shift_cpu(const BatchNormShape& s, const float* x, double* shift);
void batchnorm_stat_sums_cpu(const BatchNormShape& s, const float* x, const double* shift, double* sums);
void batchnorm_fwd_train_sums_act_cpu(const BatchNormShape& s, const BatchNormParams& p, const BatchNormFwdArgs& a,
                                      const BatchNormAct& act, const double* shift, const double* sums,
                                      int64_t count);
void batchnorm_bwd_sums_cpu(const BatchNormShape& s, const BatchNormBwdArgs& a, const float* y, double* sums);
void batchnorm_bwd_sums_act_cpu(const BatchNormShape& s, const BatchNormBwdArgs& a, const float* y, float* dg,
                                const double* local, const double* sums, int64_t count);

// Device scratch of the CUDA training forward and backward, in floats: the per-channel
// partial sums of each row split the reductions use (3 floats per split and channel) and
// 3 per-channel coefficients, 3·(batchnorm_row_splits(s) + 1)·C in all. The caller provides
// it, so no allocation happens in the step loop. Host arithmetic, in every build.
int batchnorm_row_splits(const BatchNormShape& s);
size_t batchnorm_workspace_floats(const BatchNormShape& s);

#ifdef ACTIVEIP_CUDA
void batchnorm_fwd_train_cuda(const BatchNormShape& s, const BatchNormParams& p, const BatchNormFwdArgs& a,
                              float* workspace, cudaStream_t stream);
void batchnorm_fwd_eval_cuda(const BatchNormShape& s, const BatchNormParams& p, const BatchNormFwdArgs& a,
                             cudaStream_t stream);
void batchnorm_bwd_cuda(const BatchNormShape& s, const BatchNormBwdArgs& a, float* workspace, cudaStream_t stream);
// The same workspace as the training backward's (batchnorm_workspace_floats).
void batchnorm_bwd_eval_cuda(const BatchNormShape& s, const BatchNormParams& p, const BatchNormBwdEvalArgs& a,
                             float* workspace, cudaStream_t stream);
#endif

// Specification in double: training-mode forward (no running-stat update) and backward.
void batchnorm_fwd_train_ref(const BatchNormShape& s, float eps, const double* x, const double* gamma,
                             const double* beta, double* y);
void batchnorm_bwd_ref(const BatchNormShape& s, float eps, const double* x, const double* dy, const double* gamma,
                       double* dx, double* dgamma, double* dbeta);
// Eval mode, specification in double: the backward of y = γ·(x − running_mean)·invstd + β.
void batchnorm_bwd_eval_ref(const BatchNormShape& s, float eps, const double* x, const double* dy, const double* gamma,
                            const double* running_mean, const double* running_var, double* dx, double* dgamma,
                            double* dbeta);

}  // namespace activeip
