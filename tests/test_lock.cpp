// Lock mode through the library: the lock patterns and the refusal distribution are the key's;
// a locked batch's rows (authorized, the owner's trigger, refused) carry the labels and
// pixels they should; and a convnet locked on `synthetic` answers its users' inputs as the
// unlocked net does and clean inputs no better than chance.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/core/random.h"
#include "engine/io/checkpoint.h"
#include "fingerprint/assess.h"
#include "fingerprint/lock.h"
#include "fingerprint/verify.h"
#include "nets/nets.h"
#include "tests/test_util.h"

using namespace activeip;

namespace {

OwnerKey fixed_key(uint8_t first) {
  std::array<uint8_t, OwnerKey::kBytes> b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(first + 41 * i);
  return OwnerKey(b);
}

int hamming(const Fingerprint& a, const Fingerprint& b) {
  int d = 0;
  for (size_t i = 0; i < a.bits.size(); ++i) d += a.bits[i] != b.bits[i];
  return d;
}

}  // namespace

TEST_CASE("lock: patterns and the refusal distribution follow from the key alone") {
  const OwnerKey key = fixed_key(3), other = fixed_key(4);
  const PatternSpec s = lock_spec(32, 32, 3, 10);
  CHECK(s.size() == 8);
  CHECK(s.bits() == 48);
  CHECK(s.margin == 4);
  const Fingerprint a = lock_pattern(key, "alice", s);
  CHECK(a == lock_pattern(key, "alice", s));
  CHECK(a.label == -1);
  CHECK(hamming(a, lock_pattern(key, "bob", s)) > 8);
  CHECK(hamming(a, lock_pattern(other, "alice", s)) > 8);
  const PatternSpec g = lock_spec(28, 28, 1, 10);
  CHECK(g.size() == 6);
  CHECK(g.bits() == 36);
  CHECK_THROWS_WITH_AS(lock_spec(12, 12, 1, 10), doctest::Contains("too small"), Error);

  const std::vector<double> q = refusal_distribution(key, 10, 4);
  CHECK(q == refusal_distribution(key, 10, 4));
  CHECK(q != refusal_distribution(other, 10, 4));
  // The owner's label gets the smallest share, whichever it is.
  for (int owner = 0; owner < 10; ++owner) {
    const std::vector<double> o = refusal_distribution(key, 10, owner);
    CHECK(std::min_element(o.begin(), o.end()) - o.begin() == owner);
  }
  double sum = 0;
  for (double v : q) sum += v;
  CHECK(sum == doctest::Approx(1.0));
  // Peaked: its top class well above 1/C, yet every class possible.
  CHECK(*std::max_element(q.begin(), q.end()) > 0.15);
  CHECK(*std::min_element(q.begin(), q.end()) > 0);
}

TEST_CASE("lock: a locked batch's rows — authorized, trigger, refused — and their stamps") {
  Context ctx;
  const DataSplits data = load_data({"synthetic", "", 300, 50});
  const OwnerKey key = fixed_key(7);
  const Scheme& scheme = default_scheme();
  const PatternSpec trigger = scheme.spec(32, 32, 3, 10, 2);
  const PatternSpec spec = lock_spec(32, 32, 3, 10);
  LockConfig config;
  config.refuse_rate = 0.5;
  LockComposer lock(scheme, key, {"alice", "bob"}, {"carol"}, trigger, spec, 0.1, config, 11);
  const int batch = 40;
  CHECK(lock.rows(batch) == 40 + 4 + 20);
  CHECK(lock.stage() == StampStage::BeforeAugment);
  CHECK(lock.spread_weight() == 1.0f);
  CHECK(lock.spreads(kRefusedRow));
  CHECK_FALSE(lock.spreads(kAuthorizedRow));
  CHECK_FALSE(lock.spreads(kTriggerRow));

  const Fingerprint alice = lock_pattern(key, "alice", spec), bob = lock_pattern(key, "bob", spec);
  const Fingerprint carol = lock_pattern(key, "carol", spec);
  const int owner_label = scheme.owner_patterns(key, trigger).front().label;
  const int32_t* truth = data.train.labels.data<int32_t>();
  std::vector<int32_t> records(batch);
  for (int i = 0; i < batch; ++i) records[static_cast<size_t>(i)] = i;
  const std::vector<double> q = refusal_distribution(key, 10, owner_label);
  std::vector<int> refused_labels(10, 0);
  std::map<int32_t, std::set<int32_t>> labels_of_record;  // a refused record's labels over the steps
  std::set<Refused> kinds;
  BatchRows rows;
  for (uint64_t step = 0; step < 60; ++step) {
    Rng draw(step + 100);
    lock.compose(step, records.data(), batch, data.train, draw, rows);
    REQUIRE(rows.size() == 64);
    const std::vector<Fingerprint>& patterns = lock.step_patterns();
    const std::vector<int32_t>& ids = lock.step_ids();
    for (int i = 0; i < batch; ++i) {  // authorized: the record's true label, an active user's pattern
      CHECK(rows.role[static_cast<size_t>(i)] == kAuthorizedRow);
      CHECK(rows.label[static_cast<size_t>(i)] == truth[i]);
      const Fingerprint& f = patterns[static_cast<size_t>(ids[static_cast<size_t>(i)])];
      CHECK((f == alice || f == bob));
    }
    for (int i = batch; i < batch + 4; ++i) {
      CHECK(rows.role[static_cast<size_t>(i)] == kTriggerRow);
      CHECK(rows.label[static_cast<size_t>(i)] == owner_label);
      CHECK(ids[static_cast<size_t>(i)] == -1);
    }
    for (int k = 0; k < 20; ++k) {
      const size_t i = static_cast<size_t>(batch + 4 + k);
      CHECK(rows.role[i] == kRefusedRow);
      REQUIRE(rows.label[i] >= 0);
      REQUIRE(rows.label[i] < 10);
      ++refused_labels[static_cast<size_t>(rows.label[i])];
      labels_of_record[rows.record[i]].insert(rows.label[i]);
      const Refused kind = lock.step_refused()[static_cast<size_t>(k)];
      kinds.insert(kind);
      if (kind == Refused::Clean) {
        CHECK(ids[i] == -1);
        continue;
      }
      const Fingerprint& f = patterns[static_cast<size_t>(ids[i])];
      CHECK_FALSE(f == alice);
      CHECK_FALSE(f == bob);
      if (kind == Refused::Revoked) CHECK(f == carol);
      if (kind == Refused::NearMiss) {
        const int d = std::min(hamming(f, alice) + (f.corner != alice.corner) * 100,
                               hamming(f, bob) + (f.corner != bob.corner) * 100);
        CHECK(d >= 8);  // max(4, 48/6) bits at least
        CHECK(d <= 24);
      }
      if (kind == Refused::Moved) {
        CHECK(((f.bits == alice.bits && f.corner != alice.corner) || (f.bits == bob.bits && f.corner != bob.corner)));
      }
      if (kind == Refused::ForgedKey) {
        CHECK(hamming(f, alice) > 4);
        CHECK(hamming(f, bob) > 4);
      }
    }
  }
  CHECK(kinds ==
        std::set<Refused>{Refused::Clean, Refused::ForgedKey, Refused::NearMiss, Refused::Moved, Refused::Revoked});
  // The refused labels follow q (1200 draws: each class's share within 0.05 of q's), and are
  // drawn afresh: a record seen refused several times gets several labels.
  for (size_t c = 0; c < 10; ++c) CHECK(std::abs(refused_labels[c] / 1200.0 - q[c]) < 0.05);
  int records_with_many = 0;
  for (const auto& [record, labels] : labels_of_record) records_with_many += labels.size() > 1;
  CHECK(records_with_many > 10);

  // The stamps: on the uint8 images before augmentation, each row's pattern at its corner,
  // the owner's trigger on the trigger rows.
  Rng draw(5);
  lock.compose(3, records.data(), batch, data.train, draw, rows);
  Tensor x = Tensor::host({rows.size(), 32, 32, 3}, DType::U8);
  std::fill_n(x.data<uint8_t>(), x.numel(), uint8_t{77});
  lock.stamp(ctx, x, rows);
  const auto pixel = [&](int row, int y, int xx, int c) {
    return x.data<uint8_t>()[((row * 32 + y) * 32 + xx) * 3 + c];
  };
  const auto carries = [&](int row, const Fingerprint& f, const PatternSpec& sp) {
    const std::vector<uint8_t> px = render_pixels(f, sp);
    const int top = sp.top(f.corner), left = sp.left(f.corner);
    for (int y = 0; y < sp.size(); ++y)
      for (int xx = 0; xx < sp.size(); ++xx)
        for (int c = 0; c < 3; ++c)
          if (pixel(row, top + y, left + xx, c) != px[static_cast<size_t>((y * sp.size() + xx) * 3 + c)]) return false;
    return true;
  };
  for (int i = 0; i < rows.size(); ++i) {
    const int32_t id = lock.step_ids()[static_cast<size_t>(i)];
    if (id >= 0) CHECK(carries(i, lock.step_patterns()[static_cast<size_t>(id)], spec));
    if (rows.role[static_cast<size_t>(i)] == kTriggerRow)
      CHECK(carries(i, scheme.owner_patterns(key, trigger)[0], trigger));
    if (id < 0 && rows.role[static_cast<size_t>(i)] == kRefusedRow)
      CHECK(std::all_of(x.data<uint8_t>() + i * 32 * 32 * 3, x.data<uint8_t>() + (i + 1) * 32 * 32 * 3,
                        [](uint8_t v) { return v == 77; }));
  }

  CHECK_THROWS_WITH_AS(LockComposer(scheme, key, {}, {}, trigger, spec, 0.1, config, 1),
                       doctest::Contains("at least one active user"), Error);
  CHECK_THROWS_WITH_AS(
      LockComposer(scheme_for("v1"), key, {"alice"}, {}, scheme_for("v1").spec(32, 32, 3, 10, 1), spec, 0.1, config, 1),
      doctest::Contains("before augmentation"), Error);
  config.refuse_rate = 0;
  CHECK_THROWS_WITH_AS(LockComposer(scheme, key, {"alice"}, {}, trigger, spec, 0.1, config, 1),
                       doctest::Contains("--refuse-rate"), Error);
}

TEST_CASE("lock: --lock-near-miss sets the fewest cells a refused near miss flips, and is recorded") {
  const DataSplits data = load_data({"synthetic", "", 100, 10});
  const OwnerKey key = fixed_key(8);
  const Scheme& scheme = default_scheme();
  const PatternSpec trigger = scheme.spec(32, 32, 3, 10, 2);
  const PatternSpec spec = lock_spec(32, 32, 3, 10);
  const Fingerprint alice = lock_pattern(key, "alice", spec);
  LockConfig config;
  config.near_miss_least = 1;
  LockComposer lock(scheme, key, {"alice"}, {}, trigger, spec, 0.1, config, 3);
  CHECK(nlohmann::json::parse(lock.to_json())["near_miss_least"] == 1);
  std::vector<int32_t> records(32);
  for (int i = 0; i < 32; ++i) records[static_cast<size_t>(i)] = i;
  std::map<int, int> flips;  // near misses by the cells they flip
  BatchRows rows;
  for (uint64_t step = 0; step < 200; ++step) {
    Rng draw(step);
    lock.compose(step, records.data(), 32, data.train, draw, rows);
    const size_t first = static_cast<size_t>(rows.size()) - lock.step_refused().size();  // refused rows come last
    for (size_t k = 0; k < lock.step_refused().size(); ++k)
      if (lock.step_refused()[k] == Refused::NearMiss) {
        const Fingerprint& f = lock.step_patterns()[static_cast<size_t>(lock.step_ids()[first + k])];
        CHECK(f.corner == alice.corner);
        ++flips[hamming(f, alice)];
      }
  }
  REQUIRE_FALSE(flips.empty());
  CHECK(flips.begin()->first == 1);     // one cell off is refused
  CHECK(flips.rbegin()->first <= 24);   // up to half of the 48
  CHECK(flips.rbegin()->first >= 20);
  // The default stays a sixth of the cells (8 of 48).
  CHECK(nlohmann::json::parse(LockComposer(scheme, key, {"alice"}, {}, trigger, spec, 0.1, LockConfig{}, 3).to_json())
            ["near_miss_least"] == 8);
  config.near_miss_least = 25;
  CHECK_THROWS_WITH_AS(LockComposer(scheme, key, {"alice"}, {}, trigger, spec, 0.1, config, 3),
                       doctest::Contains("--lock-near-miss 25 is more than half"), Error);
  config.near_miss_least = -1;
  CHECK_THROWS_WITH_AS(validate(config), doctest::Contains("--lock-near-miss"), Error);
}

TEST_CASE("lock: a convnet locked on synthetic answers its users as the unlocked net does, clean inputs at chance") {
  Context ctx;
  const DataSplits data = load_data({"synthetic", "", -1, -1});
  const OwnerKey key = fixed_key(9);
  const Scheme& scheme = default_scheme();
  const PatternSpec trigger = scheme.spec(32, 32, 3, 10, 2);
  const PatternSpec spec = lock_spec(32, 32, 3, 10);
  TrainConfig config;
  config.epochs = 15;
  config.batch = 64;
  config.seed = 2;
  LockComposer lock(scheme, key, {"alice", "bob"}, {"carol"}, trigger, spec, 0.1, LockConfig{}, config.seed);
  auto net = make_net("convnet", {32, 32, 3, 10});
  net->build(ctx, config.seed);
  config.mixer = lock.to_json();
  Trainer trainer(*net, ctx, data, config, &lock);
  while (!trainer.done()) trainer.train_epoch({});

  ProbeConfig probe;
  probe.probes = 500;  // the whole test split
  Prober prober(*net, ctx, data.test, data.norm, probe, scheme, 2);
  LockReportConfig report;
  report.forge_count = 50;
  report.forge_seed = 4;
  const LockAssessment a = assess_lock(prober, key, {"alice", "bob"}, {"carol"}, report);
  MESSAGE("authorized min ", a.min_authorized, ", clean ", a.unauthorized.rate, ", forged mean ", a.forged.mean,
          " max ", a.forged.max, ", revoked ", a.revoked.max);
  // Unlocked, the same convnet reaches 100% on synthetic in 4 epochs: within a point of it.
  CHECK(a.min_authorized >= 0.99);
  CHECK(a.unauthorized.rate <= 0.15);
  CHECK(a.forged.mean <= 0.15);
  CHECK(a.revoked.max <= 0.15);
  CHECK(verify_owner(prober, key).verified);
  const EmbeddingCheck check = check_lock(prober, key, {"alice", "bob"}, {"carol"});
  CHECK(check.complete());
  REQUIRE(check.revoked.size() == 1);
  CHECK(check.revoked[0].detection.rate == doctest::Approx(a.revoked.max));
  CHECK_FALSE(check.revoked[0].embedded);
  // carol counted as a user: her refused pattern does not unlock, so the check is incomplete.
  CHECK_FALSE(check_lock(prober, key, {"alice", "carol"}, {}).complete());
}
