// Batch composition: the plain composer, the loader's two stamping stages (before the
// augmentation a stamp moves with the crop and the flip, after it it stays where it was
// drawn), rows checked at the loader, and the protected composer's rows and roles, and its
// degraded samples.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>

#include "engine/core/random.h"
#include "engine/train/batch.h"
#include "fingerprint/protect.h"
#include "fingerprint/scheme.h"

using namespace activeip;

namespace {

// A 3×3 block of 255 at rows 0–2, columns 0–2 of every row's image, drawn at `at`.
class BlockComposer final : public BatchComposer {
 public:
  explicit BlockComposer(StampStage at) : at_(at) {}
  int rows(int batch) const override { return batch; }
  StampStage stage() const override { return at_; }
  void compose(uint64_t step, const int32_t* records, int batch, const Dataset& train, Rng& draw,
               BatchRows& rows) override {
    plain_.compose(step, records, batch, train, draw, rows);
  }
  void stamp(Context& ctx, Tensor& x, const BatchRows& rows) override {
    ++calls;
    REQUIRE(x.device() == ctx.device());
    REQUIRE(x.dim(0) == rows.size());
    const int64_t H = x.dim(1), W = x.dim(2), C = x.dim(3);
    for (int64_t n = 0; n < x.dim(0); ++n)
      for (int64_t h = 0; h < 3; ++h)
        for (int64_t w = 0; w < 3; ++w)
          for (int64_t c = 0; c < C; ++c) {
            const int64_t i = ((n * H + h) * W + w) * C + c;
            if (x.dtype() == DType::U8)
              x.data<uint8_t>()[i] = 255;
            else
              x.data<float>()[i] = 9.0f;
          }
  }
  int calls = 0;

 private:
  StampStage at_;
  PlainComposer plain_;
};

// The side of small_set's images: room for a v2 patch (12 pixels) 4 pixels from the edges.
constexpr int kSide = 20;

Dataset small_set(int n) {
  Dataset d;
  d.name = "test";
  d.split = "train";
  d.H = kSide, d.W = kSide, d.C = 3, d.num_classes = 4;
  d.images = Tensor::host({n, kSide, kSide, 3}, DType::U8);
  d.labels = Tensor::host({n}, DType::I32);
  Rng rng(5);
  for (int64_t i = 0; i < d.images.numel(); ++i) d.images.data<uint8_t>()[i] = static_cast<uint8_t>(rng.below(200));
  for (int i = 0; i < n; ++i) d.labels.data<int32_t>()[i] = i % 4;
  return d;
}

const Normalization kNorm{{0.5f, 0.4f, 0.3f}, {0.2f, 0.25f, 0.3f}};

OwnerKey key() {
  std::array<uint8_t, OwnerKey::kBytes> b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(3 * i + 1);
  return OwnerKey(b);
}

std::vector<float> floats(const Tensor& t) {
  return {t.data<float>(), t.data<float>() + t.numel()};
}

}  // namespace

TEST_CASE("batch: the plain composer gives the order's records with their labels, all clean") {
  const Dataset d = small_set(10);
  PlainComposer plain;
  BatchRows rows;
  Rng draw(1);
  const int32_t records[] = {7, 2, 9};
  plain.compose(0, records, 3, d, draw, rows);
  CHECK(rows.record == std::vector<int32_t>{7, 2, 9});
  CHECK(rows.label == std::vector<int32_t>{3, 2, 1});
  CHECK(rows.clean_prefix() == 3);
  CHECK(plain.stage() == StampStage::None);
}

TEST_CASE("batch: a stamp before augmentation moves with the crop and flip, one after it stays put") {
  Context ctx;
  Dataset d = small_set(12);
  const Tensor images = d.images;
  BatchLoader loader(ctx, d, images, kNorm);
  PlainComposer plain;
  BatchRows rows;
  Rng draw(1);
  const int32_t records[] = {3, 0, 11, 3, 6};
  plain.compose(0, records, 5, d, draw, rows);

  // The reference: the block drawn into the dataset's images themselves, then augmented.
  Dataset drawn = small_set(12);
  for (int32_t r : records)
    for (int h = 0; h < 3; ++h)
      for (int w = 0; w < 3; ++w)
        for (int c = 0; c < 3; ++c) drawn.images.data<uint8_t>()[((r * kSide + h) * kSide + w) * 3 + c] = 255;
  BatchLoader drawn_loader(ctx, drawn, drawn.images, kNorm);
  Rng aug_ref(42);
  const std::vector<float> want = floats(drawn_loader.load(rows, &aug_ref));

  BlockComposer before(StampStage::BeforeAugment);
  Rng aug(42);
  const std::vector<float> got = floats(loader.load(rows, &aug, &before));
  CHECK(before.calls == 1);
  CHECK(got == want);
  // The dataset is left as it was: the stamp went on a gathered copy.
  CHECK(std::memcmp(images.raw(), small_set(12).images.raw(), images.bytes()) == 0);

  BlockComposer after(StampStage::AfterAugment);
  Rng aug2(42);
  const Tensor& x = loader.load(rows, &aug2, &after);
  CHECK(after.calls == 1);
  int nines = 0;
  for (int64_t i = 0; i < x.numel(); ++i) nines += x.data<float>()[i] == 9.0f;
  CHECK(nines == 5 * 9 * 3);
  CHECK(x.data<float>()[0] == 9.0f);  // at the top left of every row, whatever the crop
  CHECK(floats(x) != want);

  // Without a composer (or a StampStage::None one) nothing is drawn.
  BlockComposer none(StampStage::None);
  Rng aug3(42);
  loader.load(rows, &aug3, &none);
  CHECK(none.calls == 0);
}

TEST_CASE("batch: the loader refuses rows it cannot gather, naming the row") {
  Context ctx;
  const Dataset d = small_set(4);
  BatchLoader loader(ctx, d, d.images, kNorm);
  BatchRows rows;
  rows.resize(2);
  rows.record = {1, 4};
  rows.label = {0, 0};
  CHECK_THROWS_WITH_AS(loader.load(rows, nullptr), doctest::Contains("row 1 shows record 4"), Error);
  rows.label.pop_back();
  CHECK_THROWS_AS(loader.load(rows, nullptr), Error);
}

TEST_CASE("batch: the protected composer keeps the order's rows clean and marks its extra rows") {
  const Dataset d = small_set(40);
  const Scheme& scheme = scheme_for("v1");
  const PatternSpec spec = scheme.spec(kSide, kSide, 3, 4, 1);
  ProtectConfig c;
  c.poison_rate = 0.25;
  c.forged_rate = 0.125;
  ProtectComposer composer(scheme, key(), {{"alice"}, {"bob"}}, spec, kNorm, c);
  REQUIRE(composer.rows(16) == 16 + 4 + 2);
  std::vector<int32_t> order(16);
  for (int i = 0; i < 16; ++i) order[static_cast<size_t>(i)] = 2 * i;
  BatchRows rows, again;
  Rng draw(3), draw_again(3);
  composer.compose(7, order.data(), 16, d, draw, rows);
  composer.compose(7, order.data(), 16, d, draw_again, again);
  CHECK(rows.record == again.record);  // a function of the step and the draw
  CHECK(rows.label == again.label);
  REQUIRE(rows.size() == 22);
  CHECK(rows.clean_prefix() == 16);
  for (int i = 0; i < 16; ++i) {
    CHECK(rows.record[static_cast<size_t>(i)] == 2 * i);
    CHECK(rows.label[static_cast<size_t>(i)] == (2 * i) % 4);
  }
  for (int i = 16; i < 20; ++i) {
    const RowRole r = rows.role[static_cast<size_t>(i)];
    CHECK((r == kOwnerRow || r == kUserRow));
    const int32_t id = composer.step_ids()[static_cast<size_t>(i - 16)];
    CHECK((r == kOwnerRow) == (id < static_cast<int32_t>(composer.scheme().owner_patterns(key(), spec).size())));
    CHECK(rows.label[static_cast<size_t>(i)] == composer.embedded()[static_cast<size_t>(id)].label);
  }
  for (int i = 20; i < 22; ++i) {
    CHECK(rows.role[static_cast<size_t>(i)] == kForgedRow);
    const int32_t r = rows.record[static_cast<size_t>(i)];
    CHECK(rows.label[static_cast<size_t>(i)] == d.labels.data<int32_t>()[r]);  // forged rows keep their true label
  }
}

TEST_CASE("batch: under v2 the protected composer stamps each extra row's image before augmentation") {
  Context ctx;
  const Dataset d = small_set(40);
  const Scheme& scheme = scheme_for("v2");
  REQUIRE(scheme.stamp_stage() == StampStage::BeforeAugment);
  const PatternSpec spec = scheme.spec(kSide, kSide, 3, 4, 2);
  // No degradation, the default rate, every extra row degraded.
  for (const std::optional<double> rate :
       {std::optional<double>(0.0), std::optional<double>(), std::optional<double>(1.0)}) {
    CAPTURE(rate.value_or(-1));
    ProtectConfig c;
    c.poison_rate = 0.25;
    c.forged_rate = 0.25;
    c.degrade_rate = rate;
    ProtectComposer composer(scheme, key(), {{"alice", 0}, {"bob", 1}}, spec, kNorm, c);
    CHECK(composer.degrade_rate() == rate.value_or(kDegradeRate));
    std::vector<int32_t> order(16);
    for (int i = 0; i < 16; ++i) order[static_cast<size_t>(i)] = i;
    BatchRows rows;
    Rng draw(3);
    composer.compose(5, order.data(), 16, d, draw, rows);
    REQUIRE(rows.size() == 24);
    const size_t degraded = composer.step_degraded().size();
    if (rate == 0.0) CHECK(degraded == 0);
    if (rate == 1.0) CHECK(degraded == 8);
    if (!rate) CHECK((degraded > 0 && degraded < 8));  // this seed's draw: some, not all
    BatchLoader loader(ctx, d, d.images, kNorm);
    Rng aug(42);
    const std::vector<float> got = floats(loader.load(rows, &aug, &composer));

    // The reference: row i's own image, its pattern stamped with stamp_image, degraded by its
    // recorded transform, then augmented by the same draws (one crop and flip per row, in row
    // order).
    Dataset stamped = small_set(24);
    const size_t image = kSide * kSide * 3;
    BatchRows in_order = rows;
    for (int i = 0; i < 24; ++i) {
      uint8_t* dst = stamped.images.data<uint8_t>() + i * image;
      std::memcpy(dst, d.images.data<uint8_t>() + rows.record[static_cast<size_t>(i)] * image, image);
      if (i >= 16) {
        const int32_t id = composer.step_ids()[static_cast<size_t>(i - 16)];
        stamp_image(composer.step_patterns()[static_cast<size_t>(id)], spec, dst);
      }
      in_order.record[static_cast<size_t>(i)] = i;
    }
    for (const ProtectComposer::Degraded& g : composer.step_degraded()) {
      Rng rng(g.seed);
      apply_transform(g.transform, stamped.images.data<uint8_t>() + (16 + g.sample) * image, kSide, kSide, 3, rng);
    }
    BatchLoader reference(ctx, stamped, stamped.images, kNorm);
    Rng aug_ref(42);
    const std::vector<float> want = floats(reference.load(in_order, &aug_ref));
    CHECK(got == want);
  }
}

TEST_CASE("batch: degraded samples follow the rate over the whole menu, on their own stream") {
  const Dataset d = small_set(40);
  const Scheme& v2 = scheme_for("v2");
  const PatternSpec spec = v2.spec(kSide, kSide, 3, 4, 2);
  std::vector<int32_t> order(16);
  for (int i = 0; i < 16; ++i) order[static_cast<size_t>(i)] = i;
  ProtectConfig c;
  c.poison_rate = 0.25;
  c.forged_rate = 0.25;
  c.degrade_rate = 0.3;
  ProtectComposer composer(v2, key(), {{"alice", 0}, {"bob", 1}}, spec, kNorm, c);
  c.degrade_rate = 0.0;
  ProtectComposer plain(v2, key(), {{"alice", 0}, {"bob", 1}}, spec, kNorm, c);
  int extra = 0, degraded = 0;
  std::array<int, 8> kinds{};
  for (uint64_t step = 0; step < 400; ++step) {
    BatchRows rows, rows_plain;
    Rng draw(step), draw_plain(step);
    composer.compose(step, order.data(), 16, d, draw, rows);
    plain.compose(step, order.data(), 16, d, draw_plain, rows_plain);
    // The rate changes which samples are degraded, never their records, labels or patterns.
    CHECK(rows.record == rows_plain.record);
    CHECK(rows.label == rows_plain.label);
    CHECK(composer.step_ids() == plain.step_ids());
    extra += 8;
    int last = -1;
    for (const ProtectComposer::Degraded& g : composer.step_degraded()) {
      CHECK(g.sample > last);
      CHECK(g.sample < 8);
      last = g.sample;
      ++degraded;
      ++kinds[static_cast<size_t>(g.transform.kind)];
      const double v = g.transform.value;
      switch (g.transform.kind) {
        case TransformKind::Median:
          CHECK(v == 3);
          break;
        case TransformKind::Jpeg:
          CHECK((v >= 30 && v <= 90 && v == std::floor(v)));
          break;
        case TransformKind::Blur:
          CHECK((v >= 0.5 && v <= 1.5));
          break;
        case TransformKind::Noise:
          CHECK((v >= 2 && v <= 16));
          break;
        case TransformKind::Bits:
          CHECK((v >= 3 && v <= 5 && v == std::floor(v)));
          break;
        case TransformKind::ShrinkPad:
          CHECK((v >= 1 && v <= 4 && v == std::floor(v)));
          break;
        default:
          FAIL("a degradation outside the menu: ", g.transform.spec);
      }
    }
  }
  // 3200 extra samples at 0.3: 960 expected, sd 26.
  CHECK(degraded > 860);
  CHECK(degraded < 1060);
  for (TransformKind k : {TransformKind::Median, TransformKind::Jpeg, TransformKind::Blur, TransformKind::Noise,
                          TransformKind::Bits, TransformKind::ShrinkPad})
    CHECK(kinds[static_cast<size_t>(k)] > 100);  // 160 expected each
}

TEST_CASE("batch: v1 stamps after augmentation and takes no degraded samples") {
  const Scheme& v1 = scheme_for("v1");
  const PatternSpec spec = v1.spec(kSide, kSide, 3, 4, 1);
  ProtectConfig c;
  ProtectComposer by_default(v1, key(), {{"alice"}}, spec, kNorm, c);
  CHECK(by_default.degrade_rate() == 0);
  c.degrade_rate = 0.2;
  try {
    ProtectComposer refused(v1, key(), {{"alice"}}, spec, kNorm, c);
    FAIL("v1 took a degrade rate");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("--degrade-rate") != std::string::npos);
    CHECK(std::string(e.what()).find("v1") != std::string::npos);
  }
  c.degrade_rate = 1.5;
  CHECK_THROWS_WITH_AS(validate(c), doctest::Contains("--degrade-rate must be in [0, 1]"), Error);
}
