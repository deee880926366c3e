//===- DeviceModel.h - a GPU's peaks, for predicting a step -----*- C++ -*-===//
//
// What `loomc --explain` needs to know of a device to predict a training
// step: peak dense FLOP/s at 16 bits (tensor cores) and at f32 (Loom's GEMMs
// never use TF32), memory capacity and bandwidth, and the bandwidth one GPU
// sends at inside a node (NVLink) and between nodes (the network). The named
// models' numbers and their sources are in docs/memory.md.
//
// Plain C++17 (std only).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_REPORT_DEVICEMODEL_H
#define LOOM_REPORT_DEVICEMODEL_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace loom {

struct DeviceModel {
  std::string name;
  double flops16 = 0;            ///< dense bf16/f16 peak, FLOP/s
  double flops32 = 0;            ///< dense f32 peak (no TF32), FLOP/s
  double memoryBytes = 0;        ///< device memory a process can allocate
  double memoryBandwidth = 0;    ///< bytes/s
  double intraNodeBandwidth = 0; ///< one GPU's NVLink, one direction, bytes/s
  double interNodeBandwidth = 0; ///< one GPU's network share, one direction
  int64_t gpusPerNode = 8;

  /// The peak for a plan computing in `bits16` (bf16/f16) or f32.
  double peakFlops(bool bits16) const { return bits16 ? flops16 : flops32; }
};

/// The named models ("a100", "h100", "h200"), in that order.
const std::vector<DeviceModel> &deviceModels();
/// The model called `name`, or std::nullopt.
std::optional<DeviceModel> findDeviceModel(const std::string &name);
/// "a100, h100, h200": for messages.
std::string deviceModelNames();

/// A positive quantity as a flag gives it: a number (312e12) with an
/// optional SI suffix (K, M, G, T, P: powers of 1000) or binary one (Ki,
/// Mi, Gi, Ti, Pi), then an optional unit ("B", "B/s", "FLOP/s" — ignored),
/// e.g. "80GiB", "900G", "2.039TB/s". std::nullopt when it is none.
std::optional<double> parseQuantity(const std::string &text);

} // namespace loom

#endif // LOOM_REPORT_DEVICEMODEL_H
