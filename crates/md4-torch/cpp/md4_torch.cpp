// The few switches of libtorch's global context that tch 0.24 does not expose. Every function
// catches C++ exceptions and returns 0 on success or copies the message into `err` and returns 1,
// so that no exception crosses into Rust.
#include <ATen/Context.h>
#include <cstring>
#include <exception>
#include <string>

namespace {
int fail(const std::exception& e, char* err, size_t n) {
  if (n > 0) {
    std::strncpy(err, e.what(), n - 1);
    err[n - 1] = '\0';
  }
  return 1;
}
}  // namespace

extern "C" {

// torch.backends.cudnn.deterministic + torch.use_deterministic_algorithms(on) and no cuDNN
// benchmarking when on.
int md4_set_deterministic(int on, char* err, size_t n) {
  try {
    auto& ctx = at::globalContext();
    ctx.setDeterministicAlgorithms(on != 0, /*warn_only=*/false);
    ctx.setDeterministicCuDNN(on != 0);
    if (on != 0) ctx.setBenchmarkCuDNN(false);
    return 0;
  } catch (const std::exception& e) {
    return fail(e, err, n);
  }
}

int md4_deterministic(void) { return at::globalContext().deterministicAlgorithms() ? 1 : 0; }

// torch.set_float32_matmul_precision("highest" | "high" | "medium"); "high" lets f32 matmuls use
// TF32 on NVIDIA GPUs.
int md4_set_float32_matmul_precision(const char* p, char* err, size_t n) {
  try {
    at::globalContext().setFloat32MatmulPrecision(std::string(p));
    return 0;
  } catch (const std::exception& e) {
    return fail(e, err, n);
  }
}

// 0 = highest, 1 = high, 2 = medium.
int md4_float32_matmul_precision(void) {
  switch (at::globalContext().float32MatmulPrecision()) {
    case at::Float32MatmulPrecision::HIGHEST: return 0;
    case at::Float32MatmulPrecision::HIGH: return 1;
    default: return 2;
  }
}

}  // extern "C"
