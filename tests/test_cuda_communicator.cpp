// GPU suite: the NCCL communicator of data-parallel training with one rank (a machine with one
// GPU): its sums and broadcasts on device memory, queued on the context's stream, leave the
// data as one rank's sum is; values poisoned around the span stay untouched. Several GPUs are
// exercised by mpirun runs of train --distributed, not here.
#if defined(ACTIVEIP_CUDA) && defined(ACTIVEIP_NCCL)

#include <memory>
#include <vector>

#include "engine/core/communicator.h"
#include "engine/core/context.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace activeip {
namespace {

TEST_CASE("NCCL communicator with one rank: sums and broadcasts on the device") {
  Context ctx(Device::cuda());
  std::unique_ptr<Communicator> comm = make_nccl_communicator(ctx, std::make_unique<LocalCommunicator>());
  CHECK(comm->rank() == 0);
  CHECK(comm->size() == 1);
  CHECK(comm->describe() == "NCCL, 1 rank");

  const std::vector<float> f = test::random_floats(4099, 3);
  auto fd = test::to_device(f, ctx);
  comm->all_reduce_sum(ctx, fd.data() + 1, 4097);
  CHECK(test::to_host(fd, ctx) == f);

  std::vector<double> d(1000);
  for (size_t i = 0; i < d.size(); ++i) d[i] = 0.5 + static_cast<double>(i);
  auto dd = test::to_device(d, ctx);
  comm->all_reduce_sum(ctx, dd.data(), 1000);
  comm->broadcast(ctx, dd.data(), 1000, 0);
  CHECK(test::to_host(dd, ctx) == d);

  double host[2] = {1.0, 2.0};
  comm->all_reduce_sum_host(host, 2);
  comm->barrier();
  CHECK(host[1] == 2.0);
}

}  // namespace
}  // namespace activeip

#endif
