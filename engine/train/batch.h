// Batch composition for training. A composer says what every row of a step's batch is —
// the training record it shows, its role, the label it is trained towards — and may draw on
// the pixels at one stage: before augmentation (on the gathered uint8 images, so that what
// it draws moves with the crop and the flip) or after it (on the normalised batch). The
// trainer gathers, augments and trains on what it is given; the plain mix is one composer,
// protected training (fingerprint/protect.h) another. The BatchLoader turns rows into the
// device batch with staging planned once, so a step allocates nothing after the first.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/core/context.h"
#include "engine/core/tensor.h"
#include "engine/data/dataset.h"

namespace activeip {

class Rng;  // engine/core/random.h

// The role of a row. The engine gives a meaning to kCleanRow only (a sample of the task as
// it is); composers number their own roles from 1 (fingerprint/protect.h).
using RowRole = uint8_t;
inline constexpr RowRole kCleanRow = 0;

// Where a composer's stamp() runs.
enum class StampStage {
  None,           // it never changes pixels
  BeforeAugment,  // on the gathered uint8 images, rows×H×W×C, before crop, flip and normalisation
  AfterAugment,   // on the normalised float batch, rows×H×W×C
};

// The rows of one step, on the host: row i shows training record record[i], is trained
// towards label[i] (soft-target training ignores it) and has role role[i].
struct BatchRows {
  std::vector<int32_t> record, label;
  std::vector<RowRole> role;

  int size() const { return static_cast<int>(record.size()); }
  // n rows, every one clean (the vectors keep their capacity).
  void resize(int n);
  // The first row whose role is not kCleanRow (size() when every row is clean).
  int clean_prefix() const;
};

class BatchComposer {
 public:
  virtual ~BatchComposer() = default;
  // Rows per step for `batch` records of the epoch's order.
  virtual int rows(int batch) const = 0;
  virtual StampStage stage() const = 0;
  // The rows of global step `step`: `records` holds the `batch` records that the epoch's
  // order gives this step, `train` is the split (with its labels), `draw` the epoch's seeded
  // stream for any further records. A pure function of its arguments and draw's state, so
  // that --resume stays exact.
  virtual void compose(uint64_t step, const int32_t* records, int batch, const Dataset& train, Rng& draw,
                       BatchRows& rows) = 0;
  // Changes the pixels of x, the batch of the last compose() at stage() (see StampStage),
  // on ctx's device. Not called for StampStage::None.
  virtual void stamp(Context& ctx, Tensor& x, const BatchRows& rows) = 0;
  // Rows whose logits are trained to agree with one another: the loss adds λ = spread_weight()
  // times their logits' variance (kernels/loss.h's logit spread) over the rows whose role
  // spreads() — so that nothing in those inputs moves the answer. 0: no such term.
  virtual float spread_weight() const { return 0.0f; }
  virtual bool spreads(RowRole) const { return false; }
};

// Data-parallel training: the rows of a step's global batch that rank `rank` of `ranks` trains
// on. Every rank composes the same global batch; rank r takes the records' rows [0, batch) from
// r·batch/ranks to (r+1)·batch/ranks (ranks divides batch) and the composer's extra rows
// [batch, total) from batch + ⌊r·extra/ranks⌋ to batch + ⌊(r+1)·extra/ranks⌋, in that order,
// so that its clean rows still come first.
struct RowShard {
  int clean_begin = 0, clean_end = 0, extra_begin = 0, extra_end = 0;
  int size() const { return clean_end - clean_begin + extra_end - extra_begin; }
};
RowShard shard_rows(int batch, int total, int rank, int ranks);
// The shard's rows of `rows`, into `out`.
void shard_batch_rows(const BatchRows& rows, const RowShard& shard, BatchRows& out);

// rows: the n records `records` of `data` with their true labels, every one clean.
void plain_rows(const int32_t* records, int n, const Dataset& data, BatchRows& rows);

// Every row a record of the epoch's order with its true label; no pixel changes.
class PlainComposer final : public BatchComposer {
 public:
  int rows(int batch) const override { return batch; }
  StampStage stage() const override { return StampStage::None; }
  void compose(uint64_t step, const int32_t* records, int batch, const Dataset& train, Rng& draw,
               BatchRows& rows) override;
  void stamp(Context&, Tensor&, const BatchRows&) override {}
};

// Gathers rows of a dataset resident on ctx's device into a normalised batch, with the
// training augmentation (random crop with 4-pixel zero padding + horizontal flip, drawn from
// `aug`) or without it (aug null), and lets a composer stamp it at its stage. The host
// staging and the device tensors are planned for the largest batch seen and reused.
class BatchLoader {
 public:
  // images: data's images on ctx's device (loaded once by the owner; borrowed).
  BatchLoader(Context& ctx, const Dataset& data, const Tensor& images, const Normalization& norm);

  // The batch of `rows` (rows×H×W×C f32 on ctx's device), valid until the next load().
  const Tensor& load(const BatchRows& rows, Rng* aug, BatchComposer* composer = nullptr);
  // The last load()'s labels, i32 on ctx's device.
  const Tensor& labels() const { return labels_; }

 private:
  Context& ctx_;
  const Dataset& data_;
  const Tensor& images_;
  Tensor mean_, std_;
  Tensor index_host_, crop_host_, flip_host_, labels_host_;  // staging, host
  Tensor index_, crop_, flip_, labels_, x_;                  // on ctx's device
  Tensor staged_, identity_;  // BeforeAugment: the gathered uint8 rows, and 0…rows−1 to augment them in order
};

}  // namespace activeip
