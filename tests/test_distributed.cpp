// Data-parallel training's pieces that one process can check: the rows of a global batch each
// rank takes (every row once, the clean rows first, an indivisible batch refused); sync batch
// norm's split kernels, two ranks' shards with their sums added, against the float64
// specification of the whole batch (clean statistics too); the one-rank communicator; and the
// clear error of a build without MPI. The launch of several ranks is tests/mpi_train_test.sh's.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "engine/core/communicator.h"
#include "engine/train/batch.h"
#include "engine/train/trainer.h"
#include "kernels/batchnorm.h"
#include "tests/test_util.h"

using namespace activeip;
using namespace activeip::test;

TEST_CASE("distributed: the ranks' shards cover a global batch once, clean rows first") {
  for (const auto& [batch, total, ranks] : {std::tuple{32, 32, 2}, std::tuple{32, 37, 2}, std::tuple{30, 34, 3},
                                            std::tuple{8, 9, 4}, std::tuple{6, 6, 1}}) {
    CAPTURE(batch);
    CAPTURE(total);
    CAPTURE(ranks);
    std::vector<int> seen(static_cast<size_t>(total), 0);
    for (int r = 0; r < ranks; ++r) {
      const RowShard s = shard_rows(batch, total, r, ranks);
      CHECK(s.clean_end - s.clean_begin == batch / ranks);
      CHECK(s.clean_end <= batch);
      CHECK(s.extra_begin >= batch);
      for (int i = s.clean_begin; i < s.clean_end; ++i) ++seen[static_cast<size_t>(i)];
      for (int i = s.extra_begin; i < s.extra_end; ++i) ++seen[static_cast<size_t>(i)];
    }
    for (int n : seen) CHECK(n == 1);
  }
  CHECK_THROWS_WITH_AS(shard_rows(33, 33, 0, 2), doctest::Contains("does not divide into 2 ranks"), Error);

  BatchRows rows;
  rows.resize(5);
  for (int i = 0; i < 5; ++i) rows.record[static_cast<size_t>(i)] = 10 + i;
  rows.role[4] = 1;  // one extra row after 4 records
  BatchRows out;
  shard_batch_rows(rows, shard_rows(4, 5, 1, 2), out);
  CHECK(out.record == std::vector<int32_t>{12, 13, 14});
  CHECK(out.clean_prefix() == 2);
}

TEST_CASE("distributed: --batch must divide into the ranks") {
  TrainConfig c;
  c.batch = 30;
  c.ranks = 4;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("--batch 30 is the global batch and must divide into the 4 ranks"),
                       Error);
  c.ranks = 3;
  CHECK_NOTHROW(c.validate());
  c.sam_rho = 0.05;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("--sam is not supported in data-parallel training"), Error);
}

// Rows are samples here (H = W = 1): M rows of C channels, the first S the statistics' (c-BN
// when S < M), split over two ranks as shard_rows splits a batch of S records and M − S extra
// rows.
TEST_CASE("sync batch norm: two ranks' shards with their sums added match the whole batch") {
  struct Case {
    const char* name;
    int M, C, S;
  };
  const Case cases[] = {{"40 rows C17", 40, 17, 40}, {"600 rows C5 (several chunks)", 600, 5, 600},
                        {"10 rows C3 stats of 6", 10, 3, 6}, {"520 rows C16 stats of 512", 520, 16, 512}};
  for (const Case& k : cases) {
    SUBCASE(k.name) {
      const size_t n = static_cast<size_t>(k.M) * k.C;
      std::vector<float> x = random_floats(n, 7), dy = random_floats(n, 8);
      for (float& v : x) v = 3.0f + 2.0f * v;  // a mean away from zero
      const std::vector<float> gamma = random_floats(k.C, 9, 0.5f, 2.0f), beta = random_floats(k.C, 10);
      const BatchNormShape whole{k.M, k.C, k.S < k.M ? k.S : 0};
      const BatchNormParams p;
      const std::vector<double> xd = to_double(x), dyd = to_double(dy), gd = to_double(gamma), bd = to_double(beta);
      std::vector<double> y_ref(n), dx_ref(n), dgamma_ref(k.C, 0.0), dbeta_ref(k.C, 0.0);
      batchnorm_fwd_train_ref(whole, p.eps, xd.data(), gd.data(), bd.data(), y_ref.data());
      batchnorm_bwd_ref(whole, p.eps, xd.data(), dyd.data(), gd.data(), dx_ref.data(), dgamma_ref.data(),
                        dbeta_ref.data());

      struct Rank {
        std::vector<int> rows;  // global row of each local row
        BatchNormShape s;
        std::vector<float> x, dy, y, dx, rm, rv, mean, invstd, dgamma, dbeta;
        std::vector<double> sums, bwd;
      };
      std::vector<Rank> ranks(2);
      for (int r = 0; r < 2; ++r) {
        Rank& q = ranks[static_cast<size_t>(r)];
        const RowShard sh = shard_rows(k.S, k.M, r, 2);
        for (int i = sh.clean_begin; i < sh.clean_end; ++i) q.rows.push_back(i);
        for (int i = sh.extra_begin; i < sh.extra_end; ++i) q.rows.push_back(i);
        const int m = static_cast<int>(q.rows.size()), clean = sh.clean_end - sh.clean_begin;
        q.s = {m, k.C, clean < m ? clean : 0};
        for (int i : q.rows)
          for (int c = 0; c < k.C; ++c) {
            q.x.push_back(x[static_cast<size_t>(i) * k.C + c]);
            q.dy.push_back(dy[static_cast<size_t>(i) * k.C + c]);
          }
        q.y = poisoned(q.x.size());
        q.dx = poisoned(q.x.size());
        q.rm.assign(k.C, 0.0f);
        q.rv.assign(k.C, 1.0f);
        q.mean.resize(k.C);
        q.invstd.resize(k.C);
        q.dgamma.assign(k.C, 0.0f);
        q.dbeta.assign(k.C, 0.0f);
        q.sums.resize(2 * static_cast<size_t>(k.C));
        q.bwd.resize(2 * static_cast<size_t>(k.C));
      }
      // Forward: rank 0's first row is the shift; the sums added over the ranks.
      std::vector<double> shift(k.C), total(2 * static_cast<size_t>(k.C), 0.0);
      batchnorm_shift_cpu(ranks[0].s, ranks[0].x.data(), shift.data());
      for (Rank& q : ranks) {
        batchnorm_stat_sums_cpu(q.s, q.x.data(), shift.data(), q.sums.data());
        for (size_t i = 0; i < total.size(); ++i) total[i] += q.sums[i];
      }
      for (Rank& q : ranks)
        batchnorm_fwd_train_sums_act_cpu(q.s, p,
                                         {q.x.data(), gamma.data(), beta.data(), q.rm.data(), q.rv.data(),
                                          q.mean.data(), q.invstd.data(), q.y.data()},
                                         {}, shift.data(), total.data(), k.S);
      CHECK(ranks[0].mean == ranks[1].mean);
      CHECK(ranks[0].rv == ranks[1].rv);
      // Backward: Σg and Σg·(x − mean) added; dgamma and dbeta each rank's own share.
      std::vector<double> bwd_total(2 * static_cast<size_t>(k.C), 0.0);
      for (Rank& q : ranks) {
        const BatchNormBwdArgs a{q.x.data(),  q.dy.data(), gamma.data(),    q.mean.data(),
                                 q.invstd.data(), q.dx.data(), q.dgamma.data(), q.dbeta.data()};
        batchnorm_bwd_sums_cpu(q.s, a, nullptr, q.bwd.data());
        for (size_t i = 0; i < bwd_total.size(); ++i) bwd_total[i] += q.bwd[i];
      }
      for (Rank& q : ranks)
        batchnorm_bwd_sums_act_cpu(q.s,
                                   {q.x.data(), q.dy.data(), gamma.data(), q.mean.data(), q.invstd.data(),
                                    q.dx.data(), q.dgamma.data(), q.dbeta.data()},
                                   nullptr, nullptr, q.bwd.data(), bwd_total.data(), k.S);
      // Back to global row order.
      std::vector<float> y(n), dx(n), dgamma(k.C, 0.0f), dbeta(k.C, 0.0f);
      for (const Rank& q : ranks) {
        for (size_t j = 0; j < q.rows.size(); ++j)
          for (int c = 0; c < k.C; ++c) {
            y[static_cast<size_t>(q.rows[j]) * k.C + c] = q.y[j * k.C + c];
            dx[static_cast<size_t>(q.rows[j]) * k.C + c] = q.dx[j * k.C + c];
          }
        for (int c = 0; c < k.C; ++c) dgamma[c] += q.dgamma[c], dbeta[c] += q.dbeta[c];
      }
      expect_close(y, y_ref);
      expect_close(dx, dx_ref);
      expect_close(dgamma, dgamma_ref);
      expect_close(dbeta, dbeta_ref);
    }
  }
}

TEST_CASE("distributed: the one-rank communicator leaves data as it is") {
  Context ctx;
  LocalCommunicator one;
  CHECK(one.rank() == 0);
  CHECK(one.size() == 1);
  std::vector<float> f{1.5f, -2.0f};
  std::vector<double> d{3.0, 4.0};
  one.all_reduce_sum(ctx, f.data(), 2);
  one.all_reduce_sum(ctx, d.data(), 2);
  one.broadcast(ctx, d.data(), 2, 0);
  one.all_reduce_sum_host(d.data(), 2);
  one.barrier();
  CHECK(f == std::vector<float>{1.5f, -2.0f});
  CHECK(d == std::vector<double>{3.0, 4.0});
}

TEST_CASE("distributed: a build without MPI or NCCL says which support is missing") {
  Context ctx;
  if (!built_with_mpi())
    CHECK_THROWS_WITH_AS(make_mpi_communicator(), doctest::Contains("this build has no MPI support"), Error);
  if (!built_with_nccl())
    CHECK_THROWS_WITH_AS(make_nccl_communicator(ctx, std::make_unique<LocalCommunicator>()),
                         doctest::Contains("no NCCL support"), Error);
  else
    CHECK_THROWS_WITH_AS(make_nccl_communicator(ctx, std::make_unique<LocalCommunicator>()),
                         doctest::Contains("NCCL needs a CUDA device"), Error);
}
