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

/// The largest step and data position a checkpoint holds. The update
/// counters are stored as doubles, exact to 2^53; no run comes near it
/// (2^53 steps, or samples).
constexpr int64_t kMaxCheckpointCount = int64_t(1) << 53;

/// The bound loadCheckpoint applies when the caller gives none (Session
/// passes the size its plan's tensors need): 1 TiB, 85 billion parameters
/// with their two moments.
constexpr uint64_t kDefaultMaxCheckpointBytes = uint64_t(1) << 40;

/// Writes `checkpoint` into `directory` (created if missing; its parent must
/// exist).
Status saveCheckpoint(const std::string &directory,
                      const Checkpoint &checkpoint);

/// Creates `directory` if missing and checks that saveCheckpoint can write
/// into it, leaving nothing else behind: a run calls it before its first
/// step, so an unwritable --save fails before the work, not after it.
Status checkCheckpointDirectory(const std::string &directory);

/// Reads the checkpoint in `directory`. Fails, naming the file, when it is
/// missing, not a regular file, over `maxBytes`, truncated, damaged (CRC
/// mismatch), of another format version, or holds a step or data position
/// outside [0, kMaxCheckpointCount] or a scalar twice. (What the scalars
/// mean, and their ranges, is the session's to check.)
Result<Checkpoint>
loadCheckpoint(const std::string &directory,
               uint64_t maxBytes = kDefaultMaxCheckpointBytes);

/// CRC-32 (IEEE 802.3, as zlib computes it).
uint32_t crc32(const uint8_t *data, size_t size, uint32_t crc = 0);

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CHECKPOINT_H
