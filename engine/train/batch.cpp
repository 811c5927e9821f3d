// The plain composer and the batch loader: host staging of indices, crops, flips and labels
// (drawn per row in row order, so the streams match whatever the composer put in the rows),
// one copy of each to the device, then the augmentation kernel.
#include "engine/train/batch.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "engine/core/random.h"
#include "engine/nn/ops.h"

namespace activeip {

namespace {

constexpr int kPad = 4;  // the training crop's zero padding, as torchvision's RandomCrop(32, padding=4)

Tensor host_floats(const std::vector<float>& v) {
  Tensor t = Tensor::host({static_cast<int64_t>(v.size())});
  std::memcpy(t.data<float>(), v.data(), v.size() * sizeof(float));
  return t;
}

}  // namespace

void BatchRows::resize(int n) {
  record.resize(static_cast<size_t>(n));
  label.resize(static_cast<size_t>(n));
  role.assign(static_cast<size_t>(n), kCleanRow);
}

int BatchRows::clean_prefix() const {
  const auto it = std::find_if(role.begin(), role.end(), [](RowRole r) { return r != kCleanRow; });
  return static_cast<int>(it - role.begin());
}

RowShard shard_rows(int batch, int total, int rank, int ranks) {
  ENSURE(ranks >= 1 && rank >= 0 && rank < ranks, "rank %d of %d ranks", rank, ranks);
  ENSURE(batch % ranks == 0, "the global batch of %d records does not divide into %d ranks", batch, ranks);
  ENSURE(total >= batch, "a batch of %d rows has fewer than its %d records", total, batch);
  const int64_t extra = total - batch;
  RowShard s;
  s.clean_begin = batch / ranks * rank;
  s.clean_end = s.clean_begin + batch / ranks;
  s.extra_begin = batch + static_cast<int>(extra * rank / ranks);
  s.extra_end = batch + static_cast<int>(extra * (rank + 1) / ranks);
  return s;
}

void shard_batch_rows(const BatchRows& rows, const RowShard& shard, BatchRows& out) {
  ENSURE(shard.extra_end <= rows.size(), "a shard up to row %d of a batch of %d rows", shard.extra_end, rows.size());
  out.resize(shard.size());
  int k = 0;
  for (const auto& [begin, end] : {std::pair{shard.clean_begin, shard.clean_end}, std::pair{shard.extra_begin, shard.extra_end}})
    for (int i = begin; i < end; ++i, ++k) {
      out.record[static_cast<size_t>(k)] = rows.record[static_cast<size_t>(i)];
      out.label[static_cast<size_t>(k)] = rows.label[static_cast<size_t>(i)];
      out.role[static_cast<size_t>(k)] = rows.role[static_cast<size_t>(i)];
    }
}

void plain_rows(const int32_t* records, int n, const Dataset& data, BatchRows& rows) {
  rows.resize(n);
  const int32_t* labels = data.labels.data<int32_t>();
  for (int i = 0; i < n; ++i) {
    rows.record[static_cast<size_t>(i)] = records[i];
    rows.label[static_cast<size_t>(i)] = labels[records[i]];
  }
}

void PlainComposer::compose(uint64_t, const int32_t* records, int batch, const Dataset& train, Rng&, BatchRows& rows) {
  plain_rows(records, batch, train, rows);
}

BatchLoader::BatchLoader(Context& ctx, const Dataset& data, const Tensor& images, const Normalization& norm)
    : ctx_(ctx),
      data_(data),
      images_(images),
      mean_(host_floats(norm.mean).to(ctx.device(), ctx)),
      std_(host_floats(norm.std).to(ctx.device(), ctx)) {}

const Tensor& BatchLoader::load(const BatchRows& rows, Rng* aug, BatchComposer* composer) {
  const int n = rows.size();
  ENSURE(n >= 1 && rows.label.size() == rows.record.size() && rows.role.size() == rows.record.size(),
         "batch of %d rows with %zu labels and %zu roles", n, rows.label.size(), rows.role.size());
  const int32_t* record = rows.record.data();
  for (int i = 0; i < n; ++i)
    ENSURE(record[i] >= 0 && record[i] < data_.size(), "row %d shows record %d; the %s %s split has %lld", i, record[i],
           data_.name.c_str(), data_.split.c_str(), static_cast<long long>(data_.size()));
  const StampStage stage = composer ? composer->stage() : StampStage::None;

  ensure_host_tensor(labels_host_, {n}, DType::I32);
  std::copy_n(rows.label.data(), n, labels_host_.data<int32_t>());
  ensure_tensor(labels_, {n}, DType::I32, ctx_).copy_from(labels_host_, ctx_);
  ensure_host_tensor(index_host_, {n}, DType::I32);
  std::copy_n(record, n, index_host_.data<int32_t>());
  ensure_tensor(index_, {n}, DType::I32, ctx_).copy_from(index_host_, ctx_);
  if (aug) {
    ensure_host_tensor(crop_host_, {2 * n}, DType::I32);
    ensure_host_tensor(flip_host_, {n}, DType::U8);
    int32_t* crop = crop_host_.data<int32_t>();
    uint8_t* flip = flip_host_.data<uint8_t>();
    for (int i = 0; i < n; ++i) {
      crop[2 * i] = static_cast<int32_t>(aug->below(2 * kPad + 1));
      crop[2 * i + 1] = static_cast<int32_t>(aug->below(2 * kPad + 1));
      flip[i] = static_cast<uint8_t>(aug->below(2));
    }
    ensure_tensor(crop_, {2 * n}, DType::I32, ctx_).copy_from(crop_host_, ctx_);
    ensure_tensor(flip_, {n}, DType::U8, ctx_).copy_from(flip_host_, ctx_);
  }

  // Before augmentation the composer draws on the rows' own uint8 images, which the
  // augmentation then reads in order.
  const bool before = stage == StampStage::BeforeAugment;
  if (before) {
    ensure_tensor(staged_, {n, data_.H, data_.W, data_.C}, DType::U8, ctx_);
    for (int i = 0; i < n; ++i) staged_.slice(i, i + 1).copy_from(images_.slice(record[i], record[i] + 1), ctx_);
    composer->stamp(ctx_, staged_, rows);
    if (identity_.numel() < n) {
      Tensor ids = Tensor::host({n}, DType::I32);
      for (int i = 0; i < n; ++i) ids.data<int32_t>()[i] = i;
      identity_ = ids.to(ctx_.device(), ctx_);
    }
  }
  ensure_tensor(x_, {n, data_.H, data_.W, data_.C}, DType::F32, ctx_);
  const Tensor in_order = before ? identity_.slice(0, n) : Tensor();
  ops::augment(ctx_, {n, data_.H, data_.W, data_.C, kPad},
               {.images = before ? staged_ : images_,
                .index = before ? in_order : index_,
                .crop = aug ? &crop_ : nullptr,
                .flip = aug ? &flip_ : nullptr,
                .mean = mean_,
                .std = std_,
                .out = x_});
  if (stage == StampStage::AfterAugment) composer->stamp(ctx_, x_, rows);
  return x_;
}

}  // namespace activeip
