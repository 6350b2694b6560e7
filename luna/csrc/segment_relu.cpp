// Fused CPU kernel for luna/piecewise.py: out = relu(slope * s + intercept), the segment of s found by
// binary search among sorted breakpoints, and its exact backward. One pass over the scalars instead of
// a search, a gather, an arithmetic pass and an index_add, each a round trip through memory.
//
// Shapes: s (P,); breakpoints (G, H), each row sorted; table (G, H + 1, 2 W), per segment W slopes then
// W intercepts; out (P, G W), group g's W channels at columns [g W, (g + 1) W).
#include <torch/extension.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

namespace {

constexpr int64_t kGrain = 4096;  // scalars per task of the forward's parallel loop
constexpr int64_t kMaxBlocks = 64;  // partial gradient tables of the backward
constexpr int64_t kMinBlockSize = 4096;

// Scalars searched together: their searches are independent chains of dependent loads, and
// interleaving them lets the CPU overlap the chains instead of waiting on each load in turn.
constexpr int64_t kLanes = 8;

// The number of breakpoints strictly below each x[l] (std::lower_bound), as torch.searchsorted
// counts them, for `lanes` <= kLanes scalars. Branch-free: the comparisons are data-dependent and a
// branch would mispredict half the time.
template <typename T>
inline void segments_of(const T* breakpoints, int64_t n, const T* x, int64_t lanes, int64_t* segment) {
  const T* base[kLanes];
  for (int64_t l = 0; l < lanes; ++l) base[l] = breakpoints;
  while (n > 1) {
    const int64_t half = n / 2;
    for (int64_t l = 0; l < lanes; ++l) base[l] = base[l][half] < x[l] ? base[l] + half : base[l];
    n -= half;
  }
  for (int64_t l = 0; l < lanes; ++l) segment[l] = (base[l] - breakpoints) + (*base[l] < x[l]);
}

// relu that propagates NaN, as torch.relu does.
template <typename T>
inline T relu(T v) {
  return v < T(0) ? T(0) : v;
}

void check_arguments(const torch::Tensor& s, const torch::Tensor& breakpoints, const torch::Tensor& table) {
  TORCH_CHECK(s.device().is_cpu() && breakpoints.device().is_cpu() && table.device().is_cpu(),
              "segment_relu: CPU tensors expected");
  TORCH_CHECK(s.dim() == 1 && breakpoints.dim() == 2 && table.dim() == 3,
              "segment_relu: expected s (P,), breakpoints (G, H), table (G, H + 1, 2 W)");
  TORCH_CHECK(breakpoints.size(1) >= 1 && table.size(0) == breakpoints.size(0) &&
                  table.size(1) == breakpoints.size(1) + 1 && table.size(2) % 2 == 0,
              "segment_relu: table must be (G, H + 1, 2 W) for breakpoints (G, H)");
  TORCH_CHECK(s.scalar_type() == breakpoints.scalar_type() && s.scalar_type() == table.scalar_type(),
              "segment_relu: s, breakpoints and table must share one dtype");
  TORCH_CHECK(s.is_contiguous() && breakpoints.is_contiguous() && table.is_contiguous(),
              "segment_relu: contiguous tensors expected");
}

torch::Tensor forward(const torch::Tensor& s, const torch::Tensor& breakpoints, const torch::Tensor& table) {
  check_arguments(s, breakpoints, table);
  const int64_t P = s.size(0), G = breakpoints.size(0), H = breakpoints.size(1);
  const int64_t S = H + 1, W = table.size(2) / 2;
  auto out = torch::empty({P, G * W}, s.options());
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "segment_relu_forward", [&] {
    const scalar_t* sp = s.data_ptr<scalar_t>();
    const scalar_t* bp = breakpoints.data_ptr<scalar_t>();
    const scalar_t* tp = table.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, P, kGrain, [&](int64_t begin, int64_t end) {
      int64_t segment[kLanes];
      for (int64_t p0 = begin; p0 < end; p0 += kLanes) {
        const int64_t lanes = std::min(kLanes, end - p0);
        for (int64_t g = 0; g < G; ++g) {
          segments_of(bp + g * H, H, sp + p0, lanes, segment);
          for (int64_t l = 0; l < lanes; ++l) {
            const scalar_t x = sp[p0 + l];
            const scalar_t* row = tp + (g * S + segment[l]) * 2 * W;
            scalar_t* o = op + (p0 + l) * G * W + g * W;
            for (int64_t w = 0; w < W; ++w) o[w] = relu(row[w] * x + row[W + w]);
          }
        }
      }
    });
  });
  return out;
}

// Returns {grad_s, grad_table}; either is undefined when not asked for. The table's gradient is summed
// in double over fixed blocks of scalars, then over blocks in order: the same bits whatever the
// number of threads.
std::vector<torch::Tensor> backward(const torch::Tensor& grad, const torch::Tensor& s,
                                    const torch::Tensor& breakpoints, const torch::Tensor& table,
                                    const torch::Tensor& out, bool need_s, bool need_table) {
  check_arguments(s, breakpoints, table);
  const int64_t P = s.size(0), G = breakpoints.size(0), H = breakpoints.size(1);
  const int64_t S = H + 1, W = table.size(2) / 2;
  TORCH_CHECK(grad.sizes() == out.sizes() && out.size(0) == P && out.size(1) == G * W,
              "segment_relu: grad and out must be (P, G W)");
  TORCH_CHECK(grad.is_contiguous() && out.is_contiguous() && grad.scalar_type() == s.scalar_type() &&
                  out.scalar_type() == s.scalar_type(),
              "segment_relu: grad and out must be contiguous, in the dtype of s");
  const int64_t blocks = std::max<int64_t>(1, std::min(kMaxBlocks, P / kMinBlockSize));
  torch::Tensor grad_s = need_s ? torch::empty_like(s) : torch::Tensor();
  torch::Tensor partial =
      torch::zeros({need_table ? blocks : 0, G * S * 2 * W}, s.options().dtype(torch::kDouble));
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "segment_relu_backward", [&] {
    const scalar_t* gp = grad.data_ptr<scalar_t>();
    const scalar_t* sp = s.data_ptr<scalar_t>();
    const scalar_t* bp = breakpoints.data_ptr<scalar_t>();
    const scalar_t* tp = table.data_ptr<scalar_t>();
    const scalar_t* op = out.data_ptr<scalar_t>();
    scalar_t* gsp = need_s ? grad_s.data_ptr<scalar_t>() : nullptr;
    double* pp = need_table ? partial.data_ptr<double>() : nullptr;
    at::parallel_for(0, blocks, 1, [&](int64_t first_block, int64_t last_block) {
      int64_t segment[kLanes];
      for (int64_t b = first_block; b < last_block; ++b) {
        double* acc_table = need_table ? pp + b * G * S * 2 * W : nullptr;
        const int64_t end = P * (b + 1) / blocks;
        for (int64_t p0 = P * b / blocks; p0 < end; p0 += kLanes) {
          const int64_t lanes = std::min(kLanes, end - p0);
          scalar_t acc_s[kLanes] = {};
          for (int64_t g = 0; g < G; ++g) {
            segments_of(bp + g * H, H, sp + p0, lanes, segment);
            for (int64_t l = 0; l < lanes; ++l) {
              const int64_t p = p0 + l, row = g * S + segment[l];
              const scalar_t x = sp[p];
              const scalar_t* slopes = tp + row * 2 * W;
              for (int64_t w = 0; w < W; ++w) {
                // relu's gradient is 0 at and below 0. Both loads first, so that this compiles to a
                // select rather than a branch around the load, which would mispredict half the time.
                const scalar_t upstream = gp[p * G * W + g * W + w];
                const scalar_t gw = op[p * G * W + g * W + w] > scalar_t(0) ? upstream : scalar_t(0);
                acc_s[l] += gw * slopes[w];
                if (acc_table != nullptr) {
                  acc_table[row * 2 * W + w] += static_cast<double>(gw) * x;
                  acc_table[row * 2 * W + W + w] += gw;
                }
              }
            }
          }
          if (gsp != nullptr) {
            for (int64_t l = 0; l < lanes; ++l) gsp[p0 + l] = acc_s[l];
          }
        }
      }
    });
  });
  torch::Tensor grad_table =
      need_table ? partial.sum(0).to(table.scalar_type()).view(table.sizes()) : torch::Tensor();
  return {grad_s, grad_table};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "relu(slope * s + intercept) per segment (CPU)");
  m.def("backward", &backward, "gradients of forward with respect to s and the table (CPU)");
}
