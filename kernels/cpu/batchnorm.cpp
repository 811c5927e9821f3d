// Batch normalisation on the CPU over an NHWC tensor viewed as M×C rows: per-channel
// mean and biased variance in double (two passes), the normalise-scale-shift fused into
// one pass, and PyTorch's running-stat update (unbiased variance, momentum). Backward
// reduces Σdy and Σdy·x̂ per channel in one pass, then writes dx in a second.
// The *_ref functions are the plain double-precision specification; batchnorm_row_splits and
// batchnorm_workspace_floats size the CUDA reductions' scratch, here so every build has them.
#include "kernels/batchnorm.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <vector>

namespace activeip {

namespace {

// Rows per reduction chunk. The partition depends only on M, never on the thread count,
// so every per-channel sum is added in the same order however many threads run.
constexpr int kRowChunk = 256;

// out[k][c] = Σ_r term(r, c)[k] for K sums per channel, accumulated in double. Each chunk
// of rows is summed by one thread into its own partials; the partials are then added in
// chunk order. Channels are the inner loop so the NHWC rows are read contiguously.
template <size_t K, class Term>
std::array<std::vector<double>, K> channel_sums(int M, int C, Term term) {
  const int chunks = (M + kRowChunk - 1) / kRowChunk;
  std::vector<std::array<double, K>> part(static_cast<size_t>(chunks) * C);
#pragma omp parallel for schedule(static)
  for (int k = 0; k < chunks; ++k) {
    std::array<double, K>* acc = part.data() + static_cast<size_t>(k) * C;
    std::fill(acc, acc + C, std::array<double, K>{});
    const int r1 = std::min(M, (k + 1) * kRowChunk);
    for (int r = k * kRowChunk; r < r1; ++r)
      for (int c = 0; c < C; ++c) {
        const std::array<double, K> t = term(r, c);
        for (size_t j = 0; j < K; ++j) acc[c][j] += t[j];
      }
  }
  std::array<std::vector<double>, K> out;
  for (auto& o : out) o.assign(C, 0.0);
  for (int k = 0; k < chunks; ++k)
    for (int c = 0; c < C; ++c)
      for (size_t j = 0; j < K; ++j) out[j][c] += part[static_cast<size_t>(k) * C + c][j];
  return out;
}

// y = (x − center[c])·scale[c] + beta[c] over all rows, the normalisation of both training
// (batch mean, γ·invstd) and eval (running mean, γ/sqrt(running var + eps)). Subtracting
// the mean first, rather than folding it into the shift, avoids cancellation when |mean| ≫ std.
void normalize_rows(const BatchNormShape& s, const float* x, const float* center, const float* scale, const float* beta,
                    float* y) {
  const int C = s.C;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < s.M; ++r) {
    const size_t base = static_cast<size_t>(r) * C;
    for (int c = 0; c < C; ++c) y[base + c] = (x[base + c] - center[c]) * scale[c] + beta[c];
  }
}

}  // namespace

void batchnorm_fwd_train_cpu(const BatchNormShape& s, const BatchNormParams& p, const BatchNormFwdArgs& a) {
  const int M = s.M, C = s.C;
  const auto [sum] =
      channel_sums<1>(M, C, [&](int r, int c) { return std::array<double, 1>{a.x[static_cast<size_t>(r) * C + c]}; });
  std::vector<double> mean(C);
  for (int c = 0; c < C; ++c) mean[c] = sum[c] / M;
  const auto [sq] = channel_sums<1>(M, C, [&](int r, int c) {
    const double d = a.x[static_cast<size_t>(r) * C + c] - mean[c];
    return std::array<double, 1>{d * d};
  });

  // The layer rejects M = 1 in training (as PyTorch does); the guard only keeps the
  // unbiased correction finite.
  const double unbias = M > 1 ? static_cast<double>(M) / (M - 1) : 1.0;
  const double m = p.momentum;
  std::vector<float> scale(C);
  for (int c = 0; c < C; ++c) {
    const double var = sq[c] / M;
    const double invstd = 1.0 / std::sqrt(var + p.eps);
    a.save_mean[c] = static_cast<float>(mean[c]);
    a.save_invstd[c] = static_cast<float>(invstd);
    a.running_mean[c] = static_cast<float>((1 - m) * a.running_mean[c] + m * mean[c]);
    a.running_var[c] = static_cast<float>((1 - m) * a.running_var[c] + m * var * unbias);
    scale[c] = static_cast<float>(a.gamma[c] * invstd);
  }
  normalize_rows(s, a.x, a.save_mean, scale.data(), a.beta, a.y);
}

void batchnorm_fwd_eval_cpu(const BatchNormShape& s, const BatchNormParams& p, const BatchNormFwdArgs& a) {
  std::vector<float> scale(s.C);
  for (int c = 0; c < s.C; ++c)
    scale[c] = static_cast<float>(a.gamma[c] / std::sqrt(static_cast<double>(a.running_var[c]) + p.eps));
  normalize_rows(s, a.x, a.running_mean, scale.data(), a.beta, a.y);
}

// dx = γ·invstd·(dy − Σdy/M − x̂·Σ(dy·x̂)/M), dγ += Σ dy·x̂, dβ += Σ dy.
void batchnorm_bwd_cpu(const BatchNormShape& s, const BatchNormBwdArgs& a) {
  const int M = s.M, C = s.C;
  const auto [sum_dy, sum_dy_xhat] = channel_sums<2>(M, C, [&](int r, int c) {
    const size_t i = static_cast<size_t>(r) * C + c;
    const double xhat = (static_cast<double>(a.x[i]) - a.save_mean[c]) * a.save_invstd[c];
    return std::array<double, 2>{a.dy[i], a.dy[i] * xhat};
  });

  // Per channel: k = γ·invstd, u = invstd·Σ(dy·x̂)/M, mean_dy = Σdy/M, so that
  // dx = k·(dy − mean_dy − (x − mean)·u); x − mean is kept explicit to avoid cancellation.
  std::vector<float> k(C), u(C), mean_dy(C);
  for (int c = 0; c < C; ++c) {
    k[c] = static_cast<float>(static_cast<double>(a.gamma[c]) * a.save_invstd[c]);
    u[c] = static_cast<float>(a.save_invstd[c] * sum_dy_xhat[c] / M);
    mean_dy[c] = static_cast<float>(sum_dy[c] / M);
    a.dgamma[c] += static_cast<float>(sum_dy_xhat[c]);
    a.dbeta[c] += static_cast<float>(sum_dy[c]);
  }
#pragma omp parallel for schedule(static)
  for (int r = 0; r < M; ++r) {
    const size_t base = static_cast<size_t>(r) * C;
    for (int c = 0; c < C; ++c)
      a.dx[base + c] = k[c] * (a.dy[base + c] - mean_dy[c] - (a.x[base + c] - a.save_mean[c]) * u[c]);
  }
}

// The row splits of the CUDA reductions: enough blocks to fill the GPU (about 1024 blocks
// of 256 threads, 8 resident on each of 132 SMs, over ⌈C/32⌉ channel tiles) but at least 64
// rows per split, so a split's partials cost less than its rows. Correctness does not depend
// on the choice: the CUDA code reads it from here and sizes nothing else by it.
int batchnorm_row_splits(const BatchNormShape& s) {
  constexpr int kTargetBlocks = 1024, kChannelTile = 32, kMinRowsPerSplit = 64;
  const int tiles = std::max(1, (s.C + kChannelTile - 1) / kChannelTile);
  const int for_blocks = std::max(1, kTargetBlocks / tiles);
  const int for_rows = std::max(1, (s.M + kMinRowsPerSplit - 1) / kMinRowsPerSplit);
  return std::min(for_blocks, for_rows);
}

size_t batchnorm_workspace_floats(const BatchNormShape& s) {
  return 3 * (static_cast<size_t>(batchnorm_row_splits(s)) + 1) * static_cast<size_t>(std::max(s.C, 0));
}

void batchnorm_fwd_train_ref(const BatchNormShape& s, float eps, const double* x, const double* gamma,
                             const double* beta, double* y) {
  for (int c = 0; c < s.C; ++c) {
    double mean = 0, var = 0;
    for (int r = 0; r < s.M; ++r) mean += x[static_cast<size_t>(r) * s.C + c];
    mean /= s.M;
    for (int r = 0; r < s.M; ++r) {
      const double d = x[static_cast<size_t>(r) * s.C + c] - mean;
      var += d * d;
    }
    var /= s.M;
    const double invstd = 1.0 / std::sqrt(var + eps);
    for (int r = 0; r < s.M; ++r) {
      const size_t i = static_cast<size_t>(r) * s.C + c;
      y[i] = gamma[c] * (x[i] - mean) * invstd + beta[c];
    }
  }
}

void batchnorm_bwd_ref(const BatchNormShape& s, float eps, const double* x, const double* dy, const double* gamma,
                       double* dx, double* dgamma, double* dbeta) {
  for (int c = 0; c < s.C; ++c) {
    double mean = 0, var = 0;
    for (int r = 0; r < s.M; ++r) mean += x[static_cast<size_t>(r) * s.C + c];
    mean /= s.M;
    for (int r = 0; r < s.M; ++r) {
      const double d = x[static_cast<size_t>(r) * s.C + c] - mean;
      var += d * d;
    }
    var /= s.M;
    const double invstd = 1.0 / std::sqrt(var + eps);
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int r = 0; r < s.M; ++r) {
      const size_t i = static_cast<size_t>(r) * s.C + c;
      sum_dy += dy[i];
      sum_dy_xhat += dy[i] * (x[i] - mean) * invstd;
    }
    for (int r = 0; r < s.M; ++r) {
      const size_t i = static_cast<size_t>(r) * s.C + c;
      const double xhat = (x[i] - mean) * invstd;
      dx[i] = gamma[c] * invstd * (dy[i] - sum_dy / s.M - xhat * sum_dy_xhat / s.M);
    }
    dgamma[c] += sum_dy_xhat;
    dbeta[c] += sum_dy;
  }
}

}  // namespace activeip
