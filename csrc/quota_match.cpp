// Dispatcher registration and argument checks for torch.ops.irkernels.quota_match_.
#include <algorithm>

#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

cudaError_t irk_launch_quota_match(const float* dist, const int32_t* pref, const int64_t* offsets,
                                   const int32_t* quotas, int64_t* out, int batch, int K, int max_rows,
                                   cudaStream_t stream);

namespace {

void check(const at::Tensor& t, const char* name, at::ScalarType dtype, int64_t dim) {
  TORCH_CHECK(t.is_cuda(), "quota_match_: ", name, " must be a CUDA tensor");
  TORCH_CHECK(t.scalar_type() == dtype, "quota_match_: ", name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.dim() == dim && t.is_contiguous(), "quota_match_: ", name, " must be a contiguous ", dim, "-D tensor");
}

// dist (P, K) float32 >= 0, pref (P, K) int32 (each row: groups by ascending distance), offsets (B+1,)
// int64, quotas (B, K) int32 summing to each instance's size; out (P,) int64 receives the groups.
// max_rows sizes the shared memory of a block and must cover every instance: check_sizes verifies
// it here (reads the offsets: one device sync); without it the kernel itself refuses an instance
// larger than its capacity (its rows get -1) instead of writing past shared memory.
void quota_match_(const at::Tensor& dist, const at::Tensor& pref, const at::Tensor& offsets,
                  const at::Tensor& quotas, const at::Tensor& out, int64_t max_rows, bool check_sizes) {
  check(dist, "dist", at::kFloat, 2);
  check(pref, "pref", at::kInt, 2);
  check(offsets, "offsets", at::kLong, 1);
  check(quotas, "quotas", at::kInt, 2);
  check(out, "out", at::kLong, 1);
  const int64_t batch = offsets.size(0) - 1, K = dist.size(1);
  TORCH_CHECK(pref.sizes() == dist.sizes(), "quota_match_: pref must have dist's shape");
  TORCH_CHECK(quotas.size(0) == batch && quotas.size(1) == K, "quota_match_: quotas must be (B, K)");
  TORCH_CHECK(out.size(0) == dist.size(0), "quota_match_: out must be (P,)");
  TORCH_CHECK(K >= 1 && K <= 256, "quota_match_: supports 1..256 groups, got ", K);
  TORCH_CHECK(max_rows >= 1 && max_rows <= (int64_t(1) << 24), "quota_match_: max_rows must lie in [1, 2^24], got ",
              max_rows);
  if (check_sizes && batch > 0) {
    const at::Tensor host = offsets.cpu();  // the one sync of the check
    const int64_t* o = host.data_ptr<int64_t>();
    int64_t largest = 0;
    for (int64_t b = 0; b < batch; ++b) largest = std::max(largest, o[b + 1] - o[b]);
    TORCH_CHECK(largest <= max_rows, "quota_match_: max_rows (", max_rows,
                ") must be >= the largest instance (", largest, " rows): a smaller value would overflow shared memory");
  }
  const c10::cuda::CUDAGuard guard(dist.device());
  const cudaError_t err = irk_launch_quota_match(
      dist.data_ptr<float>(), pref.data_ptr<int32_t>(), offsets.data_ptr<int64_t>(), quotas.data_ptr<int32_t>(),
      out.data_ptr<int64_t>(), int(batch), int(K), int(max_rows), c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "quota_match_ launch failed: ", cudaGetErrorString(err));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(irkernels, m) {
  m.def("quota_match_(Tensor dist, Tensor pref, Tensor offsets, Tensor quotas, Tensor(a!) out, int max_rows, "
        "bool check_sizes=True) -> ()");
}

TORCH_LIBRARY_IMPL(irkernels, CUDA, m) { m.impl("quota_match_", &quota_match_); }
