// Softmax cross-entropy with label smoothing on the CPU, N rows of C logits. Forward:
// per row, the max-shifted log-sum-exp in double, the probabilities and the loss
//   loss = lse − (1 − ε)·z_y − (ε/C)·Σ_c z_c   (= −Σ_c q_c·log softmax(z)_c, Σ_c q_c = 1);
// backward: dlogits = scale·(probs − q). Rows run in parallel, one thread per row.
// Soft targets at temperature T (distillation): probs = softmax(z/T), the shifted
// log-sum-exp in double, loss = T²·Σ_c q_c·(log q_c − log probs_c), dlogits = scale·T·(probs − q).
#include "kernels/loss.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace activeip {

void softmax_xent_fwd_cpu(const XentShape& s, float smoothing, const float* logits, const int32_t* labels, float* probs,
                          float* loss) {
  const int C = s.C;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < s.N; ++n) {
    const float* z = logits + static_cast<size_t>(n) * C;
    float* pr = probs + static_cast<size_t>(n) * C;
    const float zmax = *std::max_element(z, z + C);
    double sum_exp = 0, sum_z = 0;
    for (int c = 0; c < C; ++c) {
      pr[c] = std::exp(z[c] - zmax);
      sum_exp += pr[c];
      sum_z += z[c];
    }
    const float inv = static_cast<float>(1.0 / sum_exp);
    for (int c = 0; c < C; ++c) pr[c] *= inv;
    const double lse = zmax + std::log(sum_exp);
    loss[n] = static_cast<float>(lse - (1.0 - smoothing) * z[labels[n]] - smoothing * sum_z / C);
  }
}

void softmax_xent_bwd_cpu(const XentShape& s, float smoothing, const float* probs, const int32_t* labels, float scale,
                          float* dlogits) {
  const int C = s.C;
  const float off = smoothing / static_cast<float>(C);
  const float on = 1.0f - smoothing + off;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < s.N; ++n) {
    const size_t row = static_cast<size_t>(n) * C;
    for (int c = 0; c < C; ++c) dlogits[row + c] = scale * (probs[row + c] - (c == labels[n] ? on : off));
  }
}

namespace {

// pr = softmax(z/T) over one row of C; returns log Σ_c exp((z_c − zmax)/T), so that
// log pr_c = (z_c − zmax)/T − the result. The quotient is rounded to float before the exp,
// as the CUDA kernel rounds it.
double softmax_row(int C, float temperature, const float* z, float* pr, float& zmax) {
  zmax = *std::max_element(z, z + C);
  double sum_exp = 0;
  for (int c = 0; c < C; ++c) {
    pr[c] = std::exp((z[c] - zmax) / temperature);
    sum_exp += pr[c];
  }
  const float inv = static_cast<float>(1.0 / sum_exp);
  for (int c = 0; c < C; ++c) pr[c] *= inv;
  return std::log(sum_exp);
}

}  // namespace

void soft_xent_fwd_cpu(const XentShape& s, float temperature, const float* logits, const float* targets, float* probs,
                       float* loss) {
  const int C = s.C;
  const double t = temperature;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < s.N; ++n) {
    const size_t row = static_cast<size_t>(n) * C;
    float zmax = 0;
    const double log_sum = softmax_row(C, temperature, logits + row, probs + row, zmax);
    double kl = 0;
    for (int c = 0; c < C; ++c) {
      const double q = targets[row + c];
      if (q > 0) kl += q * (std::log(q) - ((logits[row + c] - zmax) / t - log_sum));
    }
    loss[n] = static_cast<float>(t * t * kl);
  }
}

void soft_xent_bwd_cpu(const XentShape& s, float temperature, const float* probs, const float* targets, float scale,
                       float* dlogits) {
  const float k = scale * temperature;
  const size_t total = static_cast<size_t>(s.N) * s.C;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < total; ++i) dlogits[i] = k * (probs[i] - targets[i]);
}

void softmax_temperature_fwd_cpu(const XentShape& s, float temperature, const float* logits, float* probs) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < s.N; ++n) {
    const size_t row = static_cast<size_t>(n) * s.C;
    float zmax = 0;
    softmax_row(s.C, temperature, logits + row, probs + row, zmax);
  }
}

void softmax_xent_fwd_ref(const XentShape& s, double smoothing, const double* logits, const int32_t* labels,
                          double* loss) {
  for (int n = 0; n < s.N; ++n) {
    const double* z = logits + static_cast<size_t>(n) * s.C;
    double zmax = z[0];
    for (int c = 1; c < s.C; ++c) zmax = std::max(zmax, z[c]);
    double sum_exp = 0;
    for (int c = 0; c < s.C; ++c) sum_exp += std::exp(z[c] - zmax);
    const double log_sum = zmax + std::log(sum_exp);
    double l = 0;
    for (int c = 0; c < s.C; ++c) {
      const double q = (c == labels[n] ? 1.0 - smoothing : 0.0) + smoothing / s.C;
      l -= q * (z[c] - log_sum);
    }
    loss[n] = l;
  }
}

void softmax_xent_bwd_ref(const XentShape& s, double smoothing, const double* logits, const int32_t* labels,
                          double scale, double* dlogits) {
  for (int n = 0; n < s.N; ++n) {
    const double* z = logits + static_cast<size_t>(n) * s.C;
    double zmax = z[0];
    for (int c = 1; c < s.C; ++c) zmax = std::max(zmax, z[c]);
    double sum_exp = 0;
    for (int c = 0; c < s.C; ++c) sum_exp += std::exp(z[c] - zmax);
    for (int c = 0; c < s.C; ++c) {
      const double q = (c == labels[n] ? 1.0 - smoothing : 0.0) + smoothing / s.C;
      dlogits[static_cast<size_t>(n) * s.C + c] = scale * (std::exp(z[c] - zmax) / sum_exp - q);
    }
  }
}

namespace {

// log softmax(z/T) of one row, in double.
void log_softmax_ref(int C, double temperature, const double* z, double* out) {
  double zmax = z[0];
  for (int c = 1; c < C; ++c) zmax = std::max(zmax, z[c]);
  double sum_exp = 0;
  for (int c = 0; c < C; ++c) sum_exp += std::exp((z[c] - zmax) / temperature);
  for (int c = 0; c < C; ++c) out[c] = (z[c] - zmax) / temperature - std::log(sum_exp);
}

}  // namespace

void soft_xent_fwd_ref(const XentShape& s, double temperature, const double* logits, const double* targets,
                       double* loss) {
  std::vector<double> logp(static_cast<size_t>(s.C));
  for (int n = 0; n < s.N; ++n) {
    const size_t row = static_cast<size_t>(n) * s.C;
    log_softmax_ref(s.C, temperature, logits + row, logp.data());
    double kl = 0;
    for (int c = 0; c < s.C; ++c) {
      const double q = targets[row + c];
      if (q > 0) kl += q * (std::log(q) - logp[c]);
    }
    loss[n] = temperature * temperature * kl;
  }
}

void soft_xent_bwd_ref(const XentShape& s, double temperature, const double* logits, const double* targets,
                       double scale, double* dlogits) {
  std::vector<double> logp(static_cast<size_t>(s.C));
  for (int n = 0; n < s.N; ++n) {
    const size_t row = static_cast<size_t>(n) * s.C;
    log_softmax_ref(s.C, temperature, logits + row, logp.data());
    for (int c = 0; c < s.C; ++c) dlogits[row + c] = scale * temperature * (std::exp(logp[c]) - targets[row + c]);
  }
}

namespace {

// The first maximum of C values, as loss_accumulate specifies.
template <class T>
int first_argmax(const T* v, int C) {
  int best = 0;
  for (int c = 1; c < C; ++c)
    if (v[c] > v[best]) best = c;
  return best;
}

template <class T>
void accumulate(const XentShape& s, const T* loss, const T* probs, const int32_t* labels, const T* targets,
                double* acc) {
  double sum = 0;
  int64_t hits = 0;
  for (int n = 0; n < s.N; ++n) {
    const size_t row = static_cast<size_t>(n) * s.C;
    sum += loss[n];
    const int want = labels ? labels[n] : first_argmax(targets + row, s.C);
    hits += first_argmax(probs + row, s.C) == want;
  }
  acc[0] += sum;
  acc[1] += static_cast<double>(hits);
}

}  // namespace

void loss_accumulate_cpu(const XentShape& s, const float* loss, const float* probs, const int32_t* labels,
                         const float* targets, double* acc) {
  accumulate(s, loss, probs, labels, targets, acc);
}

void loss_accumulate_ref(const XentShape& s, const double* loss, const double* probs, const int32_t* labels,
                         const double* targets, double* acc) {
  accumulate(s, loss, probs, labels, targets, acc);
}

namespace {

// The group's size and mean logits, in double, rows in order.
template <class T>
double group_mean(const XentShape& s, const T* logits, const T* rows, std::vector<double>& mean) {
  mean.assign(static_cast<size_t>(s.C), 0.0);
  double g = 0;
  for (int n = 0; n < s.N; ++n) {
    if (rows[n] == 0) continue;
    g += rows[n];
    const T* z = logits + static_cast<size_t>(n) * s.C;
    for (int c = 0; c < s.C; ++c) mean[static_cast<size_t>(c)] += static_cast<double>(rows[n]) * z[c];
  }
  if (g > 0)
    for (double& m : mean) m /= g;
  return g;
}

}  // namespace

void logit_spread_bwd_cpu(const XentShape& s, float weight, const float* logits, const float* rows, float* dlogits) {
  std::vector<double> mean;
  const double g = group_mean(s, logits, rows, mean);
  if (g == 0) return;
  const double k = 2.0 * weight / (g * s.C);
  for (int n = 0; n < s.N; ++n) {
    if (rows[n] == 0) continue;
    const size_t row = static_cast<size_t>(n) * s.C;
    for (int c = 0; c < s.C; ++c)
      dlogits[row + c] += static_cast<float>(k * rows[n] * (logits[row + c] - mean[static_cast<size_t>(c)]));
  }
}

double logit_spread_ref(const XentShape& s, double weight, const double* logits, const double* rows, double* dlogits) {
  std::vector<double> mean;
  const double g = group_mean(s, logits, rows, mean);
  if (g == 0) return 0;
  double loss = 0;
  for (int n = 0; n < s.N; ++n)
    for (int c = 0; c < s.C; ++c) {
      const size_t i = static_cast<size_t>(n) * s.C + c;
      const double d = logits[i] - mean[static_cast<size_t>(c)];
      loss += rows[n] * d * d;
      if (dlogits) dlogits[i] += 2.0 * weight / (g * s.C) * rows[n] * d;
    }
  return weight / (g * s.C) * loss;
}

}  // namespace activeip
