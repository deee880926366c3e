//===- Checkpoint.h - training state on disk, written atomically -*- C++
//-*-===//
//
// A checkpoint is a directory holding `checkpoint.loomckpt`: the step, the
// data position (samples consumed), the seed, and named f32 tensors
// (parameters and optimizer state). The file is written to a temporary name,
// flushed and renamed, so a killed writer never leaves a broken checkpoint;
// it ends with a CRC-32 of its contents, so a damaged one is caught on load.
// (The sharded, resharding checkpoint format comes with the parallel plans.)
//
// Layout (little-endian): "LOOMCKPT", u32 version, i64 step, i64 data
// position, u64 seed, u32 scalar count; per scalar: u32 name length, name,
// f64 value; u32 tensor count; per tensor: u32 name length, name,
// u32 rank, i64 dims[rank], f32 data; then u32 CRC-32 of all before it.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CHECKPOINT_H
#define LOOM_RUNTIME_CHECKPOINT_H

#include "loom/runtime/Status.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace loom {
namespace runtime {

constexpr uint32_t kCheckpointVersion = 2;

struct CheckpointTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

struct Checkpoint {
  int64_t step = 0;
  int64_t dataPosition = 0;
  uint64_t seed = 0;
  /// Named training-state numbers (the optimizer's update count, the loss
  /// scale).
  std::vector<std::pair<std::string, double>> scalars;
  std::vector<CheckpointTensor> tensors;
};

/// Writes `checkpoint` into `directory` (created if missing; its parent must
/// exist).
Status saveCheckpoint(const std::string &directory,
                      const Checkpoint &checkpoint);

/// Reads the checkpoint in `directory`. Fails, naming the file, when it is
/// missing, truncated, damaged (CRC mismatch) or of another format version.
Result<Checkpoint> loadCheckpoint(const std::string &directory);

/// CRC-32 (IEEE 802.3, as zlib computes it).
uint32_t crc32(const uint8_t *data, size_t size, uint32_t crc = 0);

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CHECKPOINT_H
