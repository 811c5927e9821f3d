// GPU suite: the option-A shortcut against the CPU on awkward shapes (N=1, odd H/W so the
// stride leaves a ragged edge, stride 1 and 2, padding before and after); outputs poisoned
// with NaN first, so both directions must write every element.
#ifdef ACTIVEIP_CUDA

#include <string>
#include <vector>

#include "engine/core/context.h"
#include "kernels/shortcut.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace activeip {

TEST_CASE("pad_shortcut_fwd_cuda and pad_shortcut_bwd_cuda match the CPU") {
  const PadShortcutShape shapes[] = {{1, 8, 8, 16, 2, 8, 8},
                                     {3, 7, 9, 5, 2, 3, 2},
                                     {2, 32, 32, 16, 2, 8, 8},
                                     {2, 5, 5, 3, 1, 0, 4},
                                     {4, 28, 28, 1, 2, 1, 0}};
  Context ctx(Device::cuda());
  for (const PadShortcutShape& s : shapes) {
    const std::string name = strfmt("N%d %dx%dx%d stride %d", s.N, s.H, s.W, s.C, s.stride);
    SUBCASE(name.c_str()) {
      const size_t nx = static_cast<size_t>(s.N) * s.H * s.W * s.C;
      const size_t ny = static_cast<size_t>(s.N) * s.P() * s.Q() * s.K();
      const auto x = test::random_floats(nx, 1 + nx), dy = test::random_floats(ny, 2 + ny);
      std::vector<float> y_ref(ny), dx_ref(nx);
      pad_shortcut_fwd_cpu(s, x.data(), y_ref.data());
      pad_shortcut_bwd_cpu(s, dy.data(), dx_ref.data());

      const auto d_x = test::to_device(x, ctx), d_dy = test::to_device(dy, ctx);
      auto d_y = test::to_device(test::poisoned(ny), ctx), d_dx = test::to_device(test::poisoned(nx), ctx);
      pad_shortcut_fwd_cuda(s, d_x.data(), d_y.data(), ctx.stream());
      pad_shortcut_bwd_cuda(s, d_dy.data(), d_dx.data(), ctx.stream());
      const std::vector<float> y = test::to_host(d_y, ctx), dx = test::to_host(d_dx, ctx);
      CHECK(y == y_ref);  // pure data movement: exact
      CHECK(dx == dx_ref);
    }
  }
}

}  // namespace activeip

#endif  // ACTIVEIP_CUDA
