//===- DeviceModel.cpp - the named GPUs' peaks ----------------------------===//
//
// NVIDIA's datasheet numbers for the SXM parts (docs/memory.md lists the
// sources). Bandwidths are one direction per GPU: a ring collective sends
// and receives at once, so its time is bytes sent over one direction's rate.
//
//===----------------------------------------------------------------------===//

#include "loom/Report/DeviceModel.h"

#include <cmath>
#include <cstdlib>

namespace loom {

namespace {
constexpr double kTera = 1e12, kGiga = 1e9, kMiB = 1024.0 * 1024.0;
} // namespace

const std::vector<DeviceModel> &deviceModels() {
  static const std::vector<DeviceModel> models = {
      // A100 80GB SXM: 312 TFLOP/s bf16 dense, 19.5 f32; HBM2e 2,039 GB/s;
      // NVLink 3 600 GB/s both directions; DGX A100: one 200 Gb/s HDR port
      // per GPU (25 GB/s). 81,920 MiB as nvidia-smi reports it.
      {"a100", 312 * kTera, 19.5 * kTera, 81920 * kMiB, 2039 * kGiga,
       300 * kGiga, 25 * kGiga, 8},
      // H100 SXM5 80GB: 989 TFLOP/s bf16 dense, 67 f32; HBM3 3.35 TB/s;
      // NVLink 4 900 GB/s both directions; DGX H100: one 400 Gb/s NDR port
      // per GPU (50 GB/s). 81,559 MiB as nvidia-smi reports it.
      {"h100", 989 * kTera, 67 * kTera, 81559 * kMiB, 3350 * kGiga, 450 * kGiga,
       50 * kGiga, 8},
      // H200 SXM 141GB: H100's compute; HBM3e 4.8 TB/s; NVLink 4; DGX H200:
      // 400 Gb/s per GPU. 143,771 MiB as nvidia-smi reports it.
      {"h200", 989 * kTera, 67 * kTera, 143771 * kMiB, 4800 * kGiga,
       450 * kGiga, 50 * kGiga, 8},
  };
  return models;
}

std::optional<DeviceModel> findDeviceModel(const std::string &name) {
  for (const DeviceModel &m : deviceModels())
    if (m.name == name)
      return m;
  return std::nullopt;
}

std::string deviceModelNames() {
  std::string out;
  for (const DeviceModel &m : deviceModels())
    out += (out.empty() ? "" : ", ") + m.name;
  return out;
}

std::optional<double> parseQuantity(const std::string &text) {
  const char *begin = text.c_str();
  char *end = nullptr;
  double value = std::strtod(begin, &end);
  if (end == begin || !std::isfinite(value) || value <= 0)
    return std::nullopt;
  std::string rest(end);
  double scale = 1;
  const char *prefixes = "KMGTP";
  for (int i = 0; prefixes[i]; ++i)
    if (!rest.empty() && rest[0] == prefixes[i]) {
      bool binary = rest.size() > 1 && rest[1] == 'i';
      scale = std::pow(binary ? 1024.0 : 1000.0, i + 1);
      rest = rest.substr(binary ? 2 : 1);
      break;
    }
  if (!rest.empty() && rest != "B" && rest != "B/s" && rest != "FLOP/s" &&
      rest != "/s")
    return std::nullopt;
  return value * scale;
}

} // namespace loom
