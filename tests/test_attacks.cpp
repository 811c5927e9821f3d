// The attack runner as a library (attacks/runner.h), without the binary, on the suite's
// protected synthetic model: the target opens with its key and registry and measures the
// original; global pruning at 0.5 zeroes half the prunable weights and writes the copy with its
// mask beside it; the copy reads back with the mask held and is measured against the original;
// a wrong key, and a key without data, are refused.
#include <doctest/doctest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "attacks/runner.h"
#include "engine/train/mask.h"
#include "tests/cli_util.h"

using namespace activeip;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

AttackTargetSpec fixture_target(const TempDir& dir) {
  test::protected_model(dir);
  AttackTargetSpec spec;
  spec.model = dir / "m.safetensors";
  spec.key = dir / "owner.key";
  spec.registry = dir / "users.db";
  spec.data = {"synthetic", "", 256, 64};
  spec.needs_train = true;
  return spec;
}

}  // namespace

TEST_CASE("attacks: global pruning through the runner writes the copy and its mask, and measures both") {
  TempDir dir;
  Context ctx(Device::cpu(), 2);
  AttackTarget t = open_attack_target(ctx, fixture_target(dir));
  CHECK(t.measured);
  CHECK(t.key.has_value());
  CHECK(t.data.train.size() == 256);
  CHECK(t.data.test.size() == 64);
  CHECK(t.original_accuracy > 0.5);

  std::vector<std::string> log;
  const AttackLog to_log = [&](const std::string& line) { log.push_back(line); };
  nlohmann::json attack = {{"kind", "prune"}};
  const PruneSpec spec{PruneMethod::Global, 0.5, 0.1, 100, 64, 0};
  const Tensor mask = prune_target(t, ctx, spec, attack, to_log);
  REQUIRE(mask.defined());
  CHECK(attack["weight_sparsity"].get<double>() == doctest::Approx(0.5).epsilon(1e-3));
  REQUIRE(log.size() == 1);
  CHECK(log[0].find("global pruning") == 0);

  const std::string out = dir / "pruned.safetensors";
  write_attacked(out, *t.m.net, ctx, mask, t.m.meta, attack);
  CHECK(fs::is_regular_file(out));
  REQUIRE(fs::is_regular_file(mask_path(out)));

  // Read back: the mask beside the copy holds (no pruned weight is non-zero).
  LoadedModel back = load_model(out, ctx);
  const Tensor held = mask_beside(out, *back.net, ctx);
  REQUIRE(held.defined());
  CHECK(mask_stats(*back.net, ctx, held).pruned == attack["pruned_weights"].get<int64_t>());

  std::optional<Prober> prober;
  const Assessment a = assess_attacked(t, ctx, *back.net, {20, 0, 0.8, 64}, {20, 1}, prober);
  REQUIRE(a.reference_accuracy.has_value());
  CHECK(*a.reference_accuracy == t.original_accuracy);
  CHECK(a.clean_accuracy >= 0.0);
  CHECK(a.clean_accuracy <= 1.0);
  REQUIRE(a.owner.has_value());
  REQUIRE(a.users.has_value());
  CHECK(a.users->count == 2);
  REQUIRE(a.forged.has_value());
  CHECK(prober.has_value());
}

TEST_CASE("attacks: the runner refuses a key that is not the model's, and a key without data") {
  TempDir dir;
  Context ctx(Device::cpu(), 1);
  AttackTargetSpec spec = fixture_target(dir);
  const std::string other = dir / "other.key";
  test::ok(dir, {"key", "new", "--out", "other.key"});
  spec.key = other;
  CHECK_THROWS_WITH_AS(open_attack_target(ctx, spec), doctest::Contains("m.safetensors"), Error);

  spec.key = dir / "owner.key";
  spec.data = {};
  CHECK_THROWS_WITH_AS(open_attack_target(ctx, spec), doctest::Contains("--key needs --data"), Error);

  // Without a key and data the model is opened and nothing is measured.
  spec.key.clear();
  spec.registry.clear();
  const AttackTarget t = open_attack_target(ctx, spec);
  CHECK_FALSE(t.measured);
  CHECK(t.data.test.size() == 0);
}
