// Quota-constrained greedy assignment (IDC grouping) as deferred acceptance, one block per instance.
//
// Every instance's patches repeatedly propose to their best group that has not rejected them; each
// group keeps its `quota` best proposers by (distance, patch index). That is the unique stable
// matching, i.e. exactly what the sequential greedy walk over globally sorted (distance, patch,
// group) pairs produces (see irkernels/ops/grouping.py). A round sorts the instance's proposals by
// one 64-bit key (group | distance bits | patch) with a bitonic sort in shared memory, so a
// patch's rank inside its group is its position minus the group's first position.
#include <cstdint>
#include <cuda_runtime.h>

namespace {

constexpr int kThreads = 1024;
constexpr int kMaxGroups = 256;  // group id in the top 8 key bits; `next` is a uint8 per patch

__device__ __forceinline__ uint64_t pack_key(uint32_t group, float dist, uint32_t row) {
  // dist >= 0 (negative zero mapped to +0), so its IEEE bits order like its value.
  const float d = dist > 0.f ? dist : 0.f;
  return (uint64_t(group) << 56) | (uint64_t(__float_as_uint(d)) << 24) | uint64_t(row);
}

__device__ void bitonic_sort(uint64_t* keys, int n) {
  for (int size = 2; size <= n; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const int j = i ^ stride;
        if (j > i) {
          const uint64_t a = keys[i], b = keys[j];
          const bool ascending = (i & size) == 0;
          if ((a > b) == ascending) {
            keys[i] = b;
            keys[j] = a;
          }
        }
      }
      __syncthreads();
    }
  }
}

__global__ void quota_match_kernel(const float* __restrict__ dist, const int32_t* __restrict__ pref,
                                   const int64_t* __restrict__ offsets, const int32_t* __restrict__ quotas,
                                   int64_t* __restrict__ out, int K, int capacity) {
  extern __shared__ unsigned char smem[];
  uint64_t* keys = reinterpret_cast<uint64_t*>(smem);
  uint8_t* next = reinterpret_cast<uint8_t*>(keys + capacity);
  __shared__ int group_start[kMaxGroups];
  __shared__ int changed;

  const int b = blockIdx.x;
  const int64_t row0 = offsets[b];
  const int m = int(offsets[b + 1] - row0);
  const float* d = dist + row0 * K;
  const int32_t* p = pref + row0 * K;
  const int32_t* q = quotas + int64_t(b) * K;
  if (m > capacity) {  // max_rows too small for this instance: refuse it rather than overflow smem
    for (int i = threadIdx.x; i < m; i += blockDim.x) out[row0 + i] = -1;
    return;
  }
  int n = 1;
  while (n < m) n <<= 1;

  for (int i = threadIdx.x; i < m; i += blockDim.x) next[i] = 0;
  __syncthreads();
  while (true) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
      if (i < m) {
        const int g = p[int64_t(i) * K + next[i]];
        keys[i] = pack_key(g, d[int64_t(i) * K + g], i);
      } else {
        keys[i] = ~0ull;  // padding sorts last
      }
    }
    if (threadIdx.x == 0) changed = 0;
    __syncthreads();
    bitonic_sort(keys, n);
    for (int i = threadIdx.x; i < m; i += blockDim.x) {
      const int g = int(keys[i] >> 56);
      if (i == 0 || int(keys[i - 1] >> 56) != g) group_start[g] = i;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < m; i += blockDim.x) {
      const uint64_t key = keys[i];
      const int g = int(key >> 56);
      if (i - group_start[g] >= q[g]) {  // over quota: rejected, propose to the next group
        next[key & 0xFFFFFFu] += 1;
        changed = 1;
      }
    }
    __syncthreads();
    const int again = changed;
    __syncthreads();  // all threads read `changed` before thread 0 resets it
    if (!again) break;
  }
  for (int i = threadIdx.x; i < m; i += blockDim.x) out[row0 + i] = p[int64_t(i) * K + next[i]];
}

}  // namespace

// Host launcher (called from quota_match.cpp). capacity = next power of two >= max_rows.
cudaError_t irk_launch_quota_match(const float* dist, const int32_t* pref, const int64_t* offsets,
                                   const int32_t* quotas, int64_t* out, int batch, int K, int max_rows,
                                   cudaStream_t stream) {
  if (K > kMaxGroups || max_rows > (1 << 24)) return cudaErrorInvalidValue;
  int capacity = 1;
  while (capacity < max_rows) capacity <<= 1;
  const size_t smem = size_t(capacity) * (sizeof(uint64_t) + sizeof(uint8_t));
  cudaError_t err = cudaFuncSetAttribute(quota_match_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  if (err != cudaSuccess) return err;
  if (batch > 0) {
    quota_match_kernel<<<batch, kThreads, smem, stream>>>(dist, pref, offsets, quotas, out, K, capacity);
  }
  return cudaGetLastError();
}
