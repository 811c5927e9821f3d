// The communicators: MPI on host memory (in chunks of at most INT_MAX values, MPI's count
// type), NCCL on device memory on the context's stream, its unique id sent from rank 0 over
// the host communicator. MPI's default error handler ends the job on a failed collective.
#include "engine/core/communicator.h"

#include <algorithm>
#include <climits>
#include <exception>

#include "base/error.h"

#ifdef ACTIVEIP_MPI
// The C API only: MPI's deprecated C++ bindings stay out.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif
#ifdef ACTIVEIP_NCCL
#include <nccl.h>

#include "kernels/cuda_check.h"
#endif

namespace activeip {

bool built_with_mpi() {
#ifdef ACTIVEIP_MPI
  return true;
#else
  return false;
#endif
}

bool built_with_nccl() {
#ifdef ACTIVEIP_NCCL
  return true;
#else
  return false;
#endif
}

#ifdef ACTIVEIP_MPI
namespace {

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    ENSURE(!finalized, "MPI was already finalised in this process: it starts once per process");
    int initialized = 0;
    MPI_Initialized(&initialized);
    ENSURE(!initialized, "MPI is already running in this process: one communicator per process");
    // Only the thread that made the communicator calls MPI; OpenMP threads never do.
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_free(&local);
    unwinding_ = std::uncaught_exceptions();
  }
  ~MpiCommunicator() override {
    // While an error unwinds, the other ranks may wait in a collective that this one will
    // never join: finalising could hang, so the process exits without it.
    if (std::uncaught_exceptions() > unwinding_) return;
    MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  std::string describe() const override {
    return "MPI, " + std::to_string(size_) + (size_ == 1 ? " rank" : " ranks");
  }

  void all_reduce_sum(Context& ctx, float* data, int64_t n) override {
    host_only(ctx);
    sum(data, n, MPI_FLOAT);
  }
  void all_reduce_sum(Context& ctx, double* data, int64_t n) override {
    host_only(ctx);
    sum(data, n, MPI_DOUBLE);
  }
  void broadcast(Context& ctx, double* data, int64_t n, int root) override {
    host_only(ctx);
    broadcast_host(data, static_cast<size_t>(n) * sizeof(double), root);
  }
  void all_reduce_sum_host(double* data, int64_t n) override { sum(data, n, MPI_DOUBLE); }
  void broadcast_host(void* data, size_t bytes, int root) override {
    char* p = static_cast<char*>(data);
    for (size_t done = 0; done < bytes;) {
      const int k = static_cast<int>(std::min<size_t>(bytes - done, INT_MAX));
      MPI_Bcast(p + done, k, MPI_BYTE, root, MPI_COMM_WORLD);
      done += static_cast<size_t>(k);
    }
  }
  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }

 private:
  static void host_only(const Context& ctx) {
    ENSURE(!ctx.is_cuda(), "MPI reduces host memory; tensors on %s go through NCCL", ctx.device().str().c_str());
  }
  template <class T>
  void sum(T* data, int64_t n, MPI_Datatype type) {
    for (int64_t done = 0; done < n;) {
      const int k = static_cast<int>(std::min<int64_t>(n - done, INT_MAX));
      MPI_Allreduce(MPI_IN_PLACE, data + done, k, type, MPI_SUM, MPI_COMM_WORLD);
      done += k;
    }
  }

  int rank_ = 0, size_ = 1, local_rank_ = 0;
  int unwinding_ = 0;
};

}  // namespace
#endif

std::unique_ptr<Communicator> make_mpi_communicator() {
#ifdef ACTIVEIP_MPI
  return std::make_unique<MpiCommunicator>();
#else
  ENSURE(false, "this build has no MPI support (install Debian's libopenmpi-dev and openmpi-bin, then reconfigure)");
  return nullptr;
#endif
}

#ifdef ACTIVEIP_NCCL
namespace {

#define NCCL_CHECK(expr)                                                                       \
  do {                                                                                         \
    const ncclResult_t nccl_result_ = (expr);                                                  \
    ENSURE(nccl_result_ == ncclSuccess, "%s failed: %s", #expr, ncclGetErrorString(nccl_result_)); \
  } while (0)

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Context& ctx, std::unique_ptr<Communicator> host) : host_(std::move(host)), device_(ctx.device()) {
    ENSURE(ctx.is_cuda(), "NCCL needs a CUDA device, not %s", ctx.device().str().c_str());
    ncclUniqueId id{};
    if (host_->rank() == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    host_->broadcast_host(&id, sizeof id, 0);
    CUDA_CHECK(cudaSetDevice(ctx.device().index));
    NCCL_CHECK(ncclCommInitRank(&comm_, host_->size(), id, host_->rank()));
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
  }

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  int local_rank() const override { return host_->local_rank(); }
  std::string describe() const override {
    return "NCCL, " + std::to_string(size()) + (size() == 1 ? " rank" : " ranks");
  }

  void all_reduce_sum(Context& ctx, float* data, int64_t n) override { sum(ctx, data, n, ncclFloat); }
  void all_reduce_sum(Context& ctx, double* data, int64_t n) override { sum(ctx, data, n, ncclDouble); }
  void broadcast(Context& ctx, double* data, int64_t n, int root) override {
    on_device(ctx);
    NCCL_CHECK(ncclBroadcast(data, data, static_cast<size_t>(n), ncclDouble, root, comm_, ctx.stream()));
  }
  void all_reduce_sum_host(double* data, int64_t n) override { host_->all_reduce_sum_host(data, n); }
  void broadcast_host(void* data, size_t bytes, int root) override { host_->broadcast_host(data, bytes, root); }
  void barrier() override { host_->barrier(); }

 private:
  void on_device(const Context& ctx) const {
    ENSURE(ctx.is_cuda() && ctx.device().index == device_.index, "NCCL communicator of %s used on %s",
           device_.str().c_str(), ctx.device().str().c_str());
  }
  void sum(Context& ctx, void* data, int64_t n, ncclDataType_t type) {
    on_device(ctx);
    NCCL_CHECK(ncclAllReduce(data, data, static_cast<size_t>(n), type, ncclSum, comm_, ctx.stream()));
  }

  std::unique_ptr<Communicator> host_;
  Device device_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace
#endif

std::unique_ptr<Communicator> make_nccl_communicator(Context& ctx, std::unique_ptr<Communicator> host) {
  ENSURE(host != nullptr, "make_nccl_communicator: no host communicator");
#ifdef ACTIVEIP_NCCL
  return std::make_unique<NcclCommunicator>(ctx, std::move(host));
#else
  (void)ctx;
  ENSURE(false, "this build has no NCCL support (a CUDA build finds NCCL in the CUDA toolkit)");
  return nullptr;
#endif
}

}  // namespace activeip
