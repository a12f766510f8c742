// Argument checks shared by the wavehax CPU kernels and the CUDA binding.
#pragma once
#include <ATen/ATen.h>

#include <cmath>

namespace pyops {
namespace wavehax_args {

inline void check_vector(const char* op, const char* name, const at::Tensor& t, int64_t n, at::ScalarType dtype) {
  TORCH_CHECK(t.dim() == 1 && t.size(0) == n, "pyops.", op, ": argument '", name, "' must have shape [", n, "], got ",
              t.sizes());
  TORCH_CHECK(t.scalar_type() == dtype, "pyops.", op, ": argument '", name, "' must have dtype ", dtype, ", got ",
              t.scalar_type());
}

// x [B, F, T, C] channels-last; dw [C, 1, KF, KT] (both odd, KF / 2 < F and KT / 2 < T: reflect padding);
// pw1 [H, C]; pw2 [C, H]; norm affine, PW biases and layer scale 1-D.
inline void check_block(const char* op, const at::Tensor& x, const at::Tensor& dw, const at::Tensor& norm_weight,
                        const at::Tensor& norm_bias, const at::Tensor& pw1, const at::Tensor& pw1_bias,
                        const at::Tensor& pw2, const at::Tensor& pw2_bias, const at::Tensor& layer_scale) {
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "pyops.", op,
              ": argument 'x' must have dtype float32 or float64, got ", x.scalar_type());
  TORCH_CHECK(x.dim() == 4, "pyops.", op, ": argument 'x' must have shape [batch, freq, frames, channels], got ",
              x.sizes());
  const int64_t c = x.size(3);
  TORCH_CHECK(dw.dim() == 4 && dw.size(0) == c && dw.size(1) == 1 && dw.size(2) % 2 == 1 && dw.size(3) % 2 == 1,
              "pyops.", op, ": argument 'dw_weight' must have shape [", c, ", 1, kf, kt] with kf and kt odd, got ",
              dw.sizes());
  const int64_t pad_f = dw.size(2) / 2, pad_t = dw.size(3) / 2;
  TORCH_CHECK(x.numel() == 0 || (pad_f < x.size(1) && pad_t < x.size(2)), "pyops.", op, ": argument 'x' needs freq > ",
              pad_f, " and frames > ", pad_t, " for reflect padding, got ", x.sizes());
  TORCH_CHECK(pw1.dim() == 2 && pw1.size(1) == c && pw1.size(0) > 0, "pyops.", op,
              ": argument 'pw1_weight' must have shape [hidden, ", c, "], got ", pw1.sizes());
  const int64_t h = pw1.size(0);
  TORCH_CHECK(pw2.dim() == 2 && pw2.size(0) == c && pw2.size(1) == h, "pyops.", op,
              ": argument 'pw2_weight' must have shape [", c, ", ", h, "], got ", pw2.sizes());
  const auto dt = x.scalar_type();
  const std::pair<const char*, const at::Tensor*> tensors[] = {{"dw_weight", &dw}, {"pw1_weight", &pw1},
                                                               {"pw2_weight", &pw2}};
  for (const auto& [name, t] : tensors)
    TORCH_CHECK(t->scalar_type() == dt, "pyops.", op, ": argument '", name, "' must have x's dtype ", dt, ", got ",
                t->scalar_type());
  check_vector(op, "norm_weight", norm_weight, c, dt);
  check_vector(op, "norm_bias", norm_bias, c, dt);
  check_vector(op, "pw1_bias", pw1_bias, h, dt);
  check_vector(op, "pw2_bias", pw2_bias, c, dt);
  check_vector(op, "layer_scale", layer_scale, c, dt);
}

// f0 [B, 1, N] float32; noise [B, 1, N hop] float32; phase0 [B] float64 (cycles).
inline void check_prior(const char* op, const at::Tensor& f0, const at::Tensor& noise, const at::Tensor& phase0,
                        int64_t hop, int64_t sample_rate, double power_factor) {
  TORCH_CHECK(hop > 0, "pyops.", op, ": argument 'hop_length' must be positive, got ", hop);
  TORCH_CHECK(sample_rate > 0 && sample_rate <= 2147483647, "pyops.", op,
              ": argument 'sample_rate' must be in [1, 2^31), got ", sample_rate);
  TORCH_CHECK(f0.dim() == 3 && f0.size(1) == 1 && f0.scalar_type() == at::kFloat, "pyops.", op,
              ": argument 'f0' must be float32 [batch, 1, frames], got ", f0.scalar_type(), " ", f0.sizes());
  const int64_t b = f0.size(0), n = f0.size(2) * hop;
  TORCH_CHECK(noise.dim() == 3 && noise.size(0) == b && noise.size(1) == 1 && noise.size(2) == n &&
                  noise.scalar_type() == at::kFloat,
              "pyops.", op, ": argument 'noise' must be float32 [", b, ", 1, ", n, "], got ", noise.scalar_type(), " ",
              noise.sizes());
  TORCH_CHECK(phase0.dim() == 1 && phase0.size(0) == b && phase0.scalar_type() == at::kDouble, "pyops.", op,
              ": argument 'phase0' must be float64 [", b, "], got ", phase0.scalar_type(), " ", phase0.sizes());
  // |power_factor| <= 1e6 keeps every sample finite in float32: |prior| <= |power_factor| sqrt(2 (K + 1)) < 5e16
  TORCH_CHECK(std::fabs(power_factor) <= 1e6, "pyops.", op, ": argument 'power_factor' must be in [-1e6, 1e6], got ",
              power_factor);
  // a NaN or inf F0 would poison the running phase of the rest of the utterance
  TORCH_CHECK(f0.numel() == 0 || at::logical_and(at::isfinite(f0), f0 >= 0).all().item<bool>(), "pyops.", op,
              ": argument 'f0' must be finite and >= 0 (0 = unvoiced)");
  TORCH_CHECK(phase0.numel() == 0 || at::isfinite(phase0).all().item<bool>(), "pyops.", op,
              ": argument 'phase0' must be finite");
}

}  // namespace wavehax_args
}  // namespace pyops
