// ACTIVEIP_HD marks an inline function that both the CPU and the CUDA kernels call: it is
// __host__ __device__ when nvcc compiles the including file and empty for a plain C++
// compiler, so one definition (e.g. the dropout hash) serves both and cannot drift apart.
#pragma once

#ifdef __CUDACC__
#define ACTIVEIP_HD __host__ __device__
#else
#define ACTIVEIP_HD
#endif
