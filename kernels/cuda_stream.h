// The stream type the CUDA halves of the op headers take. Without CUDA the CUDA
// declarations are compiled out, so CPU-only code never sees cudaStream_t.
#pragma once

#ifdef ACTIVEIP_CUDA
#include <cuda_runtime_api.h>
#endif
