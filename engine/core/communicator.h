// Communicator: the processes of a data-parallel run (one rank each) and the collectives the
// trainer and sync batch norm need — in-place sums and broadcasts of spans, a barrier. A thin
// interface over existing engines: MPI (OpenMPI) on host memory, NCCL on CUDA device memory
// (queued on the context's stream, bootstrapped over MPI), and a one-rank communicator whose
// collectives do nothing, for runs and tests in a single process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/core/context.h"

namespace activeip {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // The rank among the processes on this machine (a launch of one rank per GPU picks its
  // GPU by it).
  virtual int local_rank() const = 0;
  // "MPI, 2 ranks", "NCCL, 1 rank", …
  virtual std::string describe() const = 0;

  // Element-wise sums over the ranks, in place, of n values on ctx's device (host memory on
  // the CPU; device memory on CUDA, queued on ctx's stream). Every rank must call them in the
  // same order with the same n.
  virtual void all_reduce_sum(Context& ctx, float* data, int64_t n) = 0;
  virtual void all_reduce_sum(Context& ctx, double* data, int64_t n) = 0;
  // Rank `root`'s n values, on ctx's device, to every rank.
  virtual void broadcast(Context& ctx, double* data, int64_t n, int root) = 0;
  // The same on host memory whatever the device (the trainer's loss totals); these wait.
  virtual void all_reduce_sum_host(double* data, int64_t n) = 0;
  virtual void broadcast_host(void* data, size_t bytes, int root) = 0;
  virtual void barrier() = 0;
};

// One rank: every collective leaves its data as it is.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string describe() const override { return "one process"; }
  void all_reduce_sum(Context&, float*, int64_t) override {}
  void all_reduce_sum(Context&, double*, int64_t) override {}
  void broadcast(Context&, double*, int64_t, int) override {}
  void all_reduce_sum_host(double*, int64_t) override {}
  void broadcast_host(void*, size_t, int) override {}
  void barrier() override {}
};

// Whether this build has MPI (Debian's OpenMPI) and NCCL (from the CUDA toolkit).
bool built_with_mpi();
bool built_with_nccl();

// The processes of an MPI launch (mpirun, srun): initialises MPI (once per process) and
// finalises it when destroyed, unless an exception is unwinding (a failed rank then exits
// without waiting for the others, and the launcher ends the job). Run alone, one rank.
// Reduces host memory only. Throws Error in a build without MPI.
std::unique_ptr<Communicator> make_mpi_communicator();

// NCCL over the ranks of `host` (MPI for several processes, or a LocalCommunicator for one),
// on ctx's CUDA device: device collectives go through NCCL on ctx's stream, host ones through
// `host`. Throws Error in a build without NCCL or on a CPU context.
std::unique_ptr<Communicator> make_nccl_communicator(Context& ctx, std::unique_ptr<Communicator> host);

}  // namespace activeip
