//===- SavedTensors.h - what each layer keeps for its backward --*- C++ -*-===//
//
// loomc --explain=tensors: per plan (per pipeline chunk), the tensors the
// backward reads from the forward, grouped by model layer with their
// bytes, so a reader can check them against Korthikanti et al.'s
// accounting (docs/memory.md). In a pipeline chunk these are its Stash
// arena's buffers (per microbatch in flight); in a plan without a pipeline,
// the workspace buffers live from the forward into the backward.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_REPORT_SAVEDTENSORS_H
#define LOOM_REPORT_SAVEDTENSORS_H

#include "loom/runtime/Plan.h"

#include <cstdint>
#include <string>
#include <vector>

namespace loom {

struct SavedTensor {
  std::string name;
  std::vector<int64_t> shape;
  plan::DType dtype = plan::DType::F32;
  int64_t bytes = 0;
  int64_t layer = -1;
};

struct SavedTensors {
  int64_t chunk = -1, stage = 0;    // -1: a plan without a pipeline
  int64_t slots = 1;                // copies kept (microbatches in flight)
  std::vector<SavedTensor> tensors; // by layer, then program order
};

/// One entry per chunk (one for a plan without a pipeline).
std::vector<SavedTensors> savedTensors(const plan::PlanT &plan);

/// The table: per plan or chunk, per layer, each tensor and the layer's sum.
std::string savedTensorsText(const plan::PlanT &plan);

} // namespace loom

#endif // LOOM_REPORT_SAVEDTENSORS_H
