// Attention with the influence reduction fused in, for the fused capture on CPUs (float32).
//
// Compiled on first use by captum_attn_shapley.capture.native (torch.utils.cpp_extension); the Python block
// loops of captum_attn_shapley.capture.fused are the reference and the fallback. One task is a tile of query
// rows of one example; it runs every head on that tile while the tile's scores stay in the core's cache, and
// adds the head-averaged attention of the tile, so the (heads x T x T) probabilities never reach memory.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

// BLAS's single-precision matrix product, from the math library torch is linked with (MKL on x86 wheels).
extern "C" void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                       const int*, const float*, const int*, const float*, float*, const int*);

namespace {

using Vec = at::vec::Vectorized<float>;

// Column-major C (m x n) = alpha op(A) op(B) + beta C, as BLAS defines it.
inline void gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  int M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
  int LA = static_cast<int>(lda), LB = static_cast<int>(ldb), LC = static_cast<int>(ldc);
  sgemm_(&ta, &tb, &M, &N, &K, &alpha, a, &LA, b, &LB, &beta, c, &LC);
}

// The strides of a (batch, heads, tokens, dim) tensor whose last stride is 1.
struct Strides4 {
  int64_t b, h, t;
  explicit Strides4(const torch::Tensor& x) : b(x.stride(0)), h(x.stride(1)), t(x.stride(2)) {}
  int64_t at(int64_t bi, int64_t hi, int64_t ti) const { return bi * b + hi * h + ti * t; }
};

// Scores of one row, masked as the Python reference masks them: an additive mask row, a boolean one (true =
// attend; the others set to the lowest float), or (causal) keys after the query set to the lowest float; then
// exp(x - max) in place. Returns 1 / the sum of the exponentials (the softmax's normalisation, applied by the
// caller where the row is read).
inline float exp_row(float* x, int64_t n, const float* mask, const bool* allowed, int64_t causal_limit) {
  const float lowest = std::numeric_limits<float>::lowest();
  const int64_t step = Vec::size();
  int64_t j = 0;
  if (mask) {
    for (j = 0; j + step <= n; j += step) (Vec::loadu(x + j) + Vec::loadu(mask + j)).store(x + j);
    for (; j < n; ++j) x[j] += mask[j];
  }
  if (allowed)
    for (j = 0; j < n; ++j) x[j] = allowed[j] ? x[j] : lowest;
  if (causal_limit >= 0) std::fill(x + std::min(causal_limit + 1, n), x + n, lowest);
  Vec vmax(lowest);
  for (j = 0; j + step <= n; j += step) vmax = at::vec::maximum(vmax, Vec::loadu(x + j));
  float mx = vmax.reduce_max();
  for (; j < n; ++j) mx = std::max(mx, x[j]);
  Vec vsum(0.f), vm(mx);
  for (j = 0; j + step <= n; j += step) {
    Vec e = (Vec::loadu(x + j) - vm).exp_u20();
    e.store(x + j);
    vsum = vsum + e;
  }
  float sum = vsum.reduce_add();
  for (; j < n; ++j) {
    x[j] = std::exp(x[j] - mx);
    sum += x[j];
  }
  return 1.f / sum;
}

// acc += alpha * x over n floats.
inline void axpy(float* acc, const float* x, int64_t n, float alpha) {
  const int64_t step = Vec::size();
  Vec va(alpha);
  int64_t j = 0;
  for (; j + step <= n; j += step) (Vec::loadu(acc + j) + Vec::loadu(x + j) * va).store(acc + j);
  for (; j < n; ++j) acc[j] += alpha * x[j];
}

// dst = alpha * src over n floats.
inline void scale_into(float* dst, const float* src, int64_t n, float alpha) {
  const int64_t step = Vec::size();
  Vec va(alpha);
  int64_t j = 0;
  for (; j + step <= n; j += step) (Vec::loadu(src + j) * va).store(dst + j);
  for (; j < n; ++j) dst[j] = alpha * src[j];
}

// A call's mask, as the kernels read it: additive float32 or boolean (true = attend), viewed as
// (batch, heads, queries, keys) with a contiguous last axis; or none (an empty tensor).
struct Mask {
  const float* additive = nullptr;
  const bool* allowed = nullptr;
  int64_t b = 0, h = 0, t = 0;
  bool causal;
  explicit Mask(const torch::Tensor& mask, bool causal_) : causal(causal_) {
    if (mask.numel() == 0) return;
    const bool boolean = mask.scalar_type() == torch::kBool;
    TORCH_CHECK(mask.dim() == 4 && mask.stride(3) == 1 && (boolean || mask.scalar_type() == torch::kFloat32),
                "mask must be float32 or bool, (batch, heads, queries, keys) with a contiguous last axis");
    if (boolean)
      allowed = mask.data_ptr<bool>();
    else
      additive = mask.data_ptr<float>();
    b = mask.stride(0), h = mask.stride(1), t = mask.stride(2);
  }
  // exp_row of query row i of head h of example bi (its masking), returning 1 / the sum.
  float exp_row_of(float* x, int64_t n, int64_t bi, int64_t hi, int64_t i) const {
    const int64_t at = bi * b + hi * h + i * t;
    return exp_row(x, n, additive ? additive + at : nullptr, allowed ? allowed + at : nullptr, causal ? i : -1);
  }
};

void check_operand(const torch::Tensor& x, const char* name) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.dim() == 4 && x.stride(3) == 1,
              name, " must be a float32 CPU tensor (batch, heads, tokens, dim) with a contiguous last axis");
}

}  // namespace

// Query rows [row_start, row_stop) of every example: the attention output, written into `out`
// (batch, queries, heads, dim), and the head mean of the probabilities, written into `mean`
// (batch, row_stop - row_start, keys). `mask`: an additive float mask or a boolean one (true = attend) viewed
// as (batch, heads, queries, keys) (expanded, last stride 1), or an empty tensor; `causal`: query i sees keys
// 0..i (without a mask).
void attend_rows(const torch::Tensor& query, const torch::Tensor& key, const torch::Tensor& value,
                 const torch::Tensor& mask, bool causal, double scale, int64_t row_start, int64_t row_stop,
                 torch::Tensor out, torch::Tensor mean, int64_t tile) {
  check_operand(query, "query");
  check_operand(key, "key");
  check_operand(value, "value");
  const Mask masking(mask, causal);
  const int64_t B = query.size(0), H = query.size(1), D = query.size(3), Tk = key.size(2);
  const int64_t Dv = value.size(3), rows = row_stop - row_start;
  TORCH_CHECK(out.is_contiguous() && out.size(0) == B && out.size(2) == H && out.size(3) == Dv, "out");
  TORCH_CHECK(mean.is_contiguous() && mean.size(0) == B && mean.size(1) == rows && mean.size(2) == Tk, "mean");
  const Strides4 sq(query), sk(key), sv(value);
  const float* Q = query.data_ptr<float>();
  const float* K = key.data_ptr<float>();
  const float* V = value.data_ptr<float>();
  float* O = out.data_ptr<float>();
  float* Mean = mean.data_ptr<float>();
  const int64_t Tq = out.size(1);
  const int64_t tiles = (rows + tile - 1) / tile;
  const float inv_heads = 1.f / static_cast<float>(H);
  at::parallel_for(0, B * tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(tile * Tk), sums(tile * Tk), inverse(tile);
    float* acc = sums.data();
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / tiles, r0 = row_start + (task % tiles) * tile;
      const int64_t r = std::min(tile, row_stop - r0);
      std::fill(acc, acc + r * Tk, 0.f);
      for (int64_t h = 0; h < H; ++h) {
        gemm('T', 'N', Tk, r, D, static_cast<float>(scale), K + sk.at(b, h, 0), sk.t, Q + sq.at(b, h, r0), sq.t,
             0.f, scores.data(), Tk);
        for (int64_t i = 0; i < r; ++i) {
          inverse[i] = masking.exp_row_of(scores.data() + i * Tk, Tk, b, h, r0 + i);
        }
        float* out_rows = O + ((b * Tq + r0) * H + h) * Dv;
        gemm('N', 'N', Dv, r, Tk, 1.f, V + sv.at(b, h, 0), sv.t, scores.data(), Tk, 0.f, out_rows, H * Dv);
        for (int64_t i = 0; i < r; ++i) {
          float* o = out_rows + i * H * Dv;
          for (int64_t d = 0; d < Dv; ++d) o[d] *= inverse[i];
          axpy(acc + i * Tk, scores.data() + i * Tk, Tk, inverse[i]);
        }
      }
      float* mean_rows = Mean + (b * rows + (r0 - row_start)) * Tk;
      scale_into(mean_rows, acc, r * Tk, inv_heads);
    }
  });
}

// The backward pass of query rows [row_start, row_stop): with P = A * dA (dA = dO V^T) and
// dS = P - A * delta (delta = rowsum(dO * O)), adds dQ = scale dS K to `d_query` (batch, heads, queries, dim),
// scale dS^T Q to `d_key` and A^T dO to `d_value` (batch, heads, keys, dim) where wanted (`want_*`), and
// writes the head mean of relu(P) (of P when `signed_weights`) into `weighted` (batch, rows, keys).
// `d_out` is (batch, heads, queries, dim_v) and `delta` (batch, heads, queries); masks as in attend_rows.
void reducing_backward_rows(const torch::Tensor& query, const torch::Tensor& key, const torch::Tensor& value,
                            const torch::Tensor& mask, bool causal, double scale, const torch::Tensor& d_out,
                            const torch::Tensor& delta, int64_t row_start, int64_t row_stop, bool signed_weights,
                            bool want_query, bool want_key, bool want_value, torch::Tensor d_query,
                            torch::Tensor d_key, torch::Tensor d_value, torch::Tensor weighted, int64_t tile) {
  check_operand(query, "query");
  check_operand(key, "key");
  check_operand(value, "value");
  const Mask masking(mask, causal);
  check_operand(d_out, "d_out");
  const int64_t B = query.size(0), H = query.size(1), D = query.size(3), Tk = key.size(2);
  const int64_t Dv = value.size(3), rows = row_stop - row_start;
  TORCH_CHECK(weighted.is_contiguous() && weighted.size(1) == rows && weighted.size(2) == Tk, "weighted");
  TORCH_CHECK(delta.is_contiguous() && delta.scalar_type() == torch::kFloat32, "delta");
  TORCH_CHECK(!want_query || d_query.is_contiguous(), "d_query");
  TORCH_CHECK(!want_key || d_key.is_contiguous(), "d_key");
  TORCH_CHECK(!want_value || d_value.is_contiguous(), "d_value");
  const Strides4 sq(query), sk(key), sv(value), sg(d_out);
  const float* Q = query.data_ptr<float>();
  const float* K = key.data_ptr<float>();
  const float* V = value.data_ptr<float>();
  const float* G = d_out.data_ptr<float>();
  const float* Delta = delta.data_ptr<float>();
  const int64_t Tq = query.size(2);
  float* dQ = want_query ? d_query.data_ptr<float>() : nullptr;
  float* W = weighted.data_ptr<float>();
  const int64_t tiles = (rows + tile - 1) / tile;
  const float inv_heads = 1.f / static_cast<float>(H);
  const float fscale = static_cast<float>(scale);
  // d_key and d_value gather every row tile of a head: each thread adds into its own copy, summed at the end
  const int64_t threads = at::get_num_threads();
  const int64_t kv_size = B * H * Tk * D, v_size = B * H * Tk * Dv;
  std::vector<float> key_parts(want_key ? threads * kv_size : 0), value_parts(want_value ? threads * v_size : 0);
  at::parallel_for(0, B * tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> probs(tile * Tk), grads(tile * Tk), sums(tile * Tk);
    const int64_t thread = at::get_thread_num();
    float* dK = want_key ? key_parts.data() + thread * kv_size : nullptr;
    float* dV = want_value ? value_parts.data() + thread * v_size : nullptr;
    float* acc = sums.data();
    float* A = probs.data();
    float* P = grads.data();
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / tiles, r0 = row_start + (task % tiles) * tile;
      const int64_t r = std::min(tile, row_stop - r0);
      std::fill(acc, acc + r * Tk, 0.f);
      // Rows whose output gradient is zero in every head (in a classifier's last layer, every row but the
      // pooled one) add exactly nothing: P = 0, delta = 0, so dS = 0 and A^T dO = 0. A tile of them is skipped.
      bool zero_tile = true;
      for (int64_t h = 0; h < H && zero_tile; ++h)
        for (int64_t i = 0; i < r && zero_tile; ++i) {
          const float* g = G + sg.at(b, h, r0 + i);
          zero_tile = std::all_of(g, g + Dv, [](float x) { return x == 0.f; });
        }
      for (int64_t h = 0; h < H && !zero_tile; ++h) {
        const float* Kh = K + sk.at(b, h, 0);
        const float* Qt = Q + sq.at(b, h, r0);
        const float* Gt = G + sg.at(b, h, r0);
        gemm('T', 'N', Tk, r, D, fscale, Kh, sk.t, Qt, sq.t, 0.f, A, Tk);
        for (int64_t i = 0; i < r; ++i) {
          float* row = A + i * Tk;
          const float inv = masking.exp_row_of(row, Tk, b, h, r0 + i);
          scale_into(row, row, Tk, inv);
        }
        // dA = dO V^T, then P = A * dA
        gemm('T', 'N', Tk, r, Dv, 1.f, V + sv.at(b, h, 0), sv.t, Gt, sg.t, 0.f, P, Tk);
        const int64_t n = r * Tk, step = Vec::size();
        int64_t j = 0;
        for (; j + step <= n; j += step) (Vec::loadu(P + j) * Vec::loadu(A + j)).store(P + j);
        for (; j < n; ++j) P[j] *= A[j];
        if (signed_weights) {
          axpy(acc, P, n, 1.f);
        } else {
          const Vec zero(0.f);
          for (j = 0; j + step <= n; j += step)
            (Vec::loadu(acc + j) + at::vec::maximum(Vec::loadu(P + j), zero)).store(acc + j);
          for (; j < n; ++j) acc[j] += std::max(P[j], 0.f);
        }
        if (dV)  // dV (Tk x Dv) += A^T (Tk x r) dO (r x Dv)
          gemm('N', 'T', Dv, Tk, r, 1.f, Gt, sg.t, A, Tk, 1.f, dV + ((b * H + h) * Tk) * Dv, Dv);
        if (!dQ && !dK) continue;
        for (int64_t i = 0; i < r; ++i) axpy(P + i * Tk, A + i * Tk, Tk, -Delta[(b * H + h) * Tq + r0 + i]);
        if (dQ)  // dQ (r x D) = scale dS (r x Tk) K (Tk x D)
          gemm('N', 'N', D, r, Tk, fscale, Kh, sk.t, P, Tk, 0.f, dQ + ((b * H + h) * Tq + r0) * D, D);
        if (dK)  // dK (Tk x D) += scale dS^T (Tk x r) Q (r x D)
          gemm('N', 'T', D, Tk, r, fscale, Qt, sq.t, P, Tk, 1.f, dK + ((b * H + h) * Tk) * D, D);
      }
      scale_into(W + (b * rows + (r0 - row_start)) * Tk, acc, r * Tk, inv_heads);
    }
  });
  auto gather = [&](std::vector<float>& parts, torch::Tensor total, int64_t size) {
    float* out = total.data_ptr<float>();
    at::parallel_for(0, size, 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t t = 0; t < threads; ++t) axpy(out + begin, parts.data() + t * size + begin, end - begin, 1.f);
    });
  };
  if (want_key) gather(key_parts, d_key, kv_size);
  if (want_value) gather(value_parts, d_value, v_size);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("attend_rows", &attend_rows, "Attention output and head-mean probabilities of a range of query rows");
  m.def("reducing_backward_rows", &reducing_backward_rows,
        "Input gradients of a range of query rows and the head mean of their weighted attention");
}
