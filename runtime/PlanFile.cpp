//===- PlanFile.cpp - the plan bundle on disk, checked on load ------------===//

#include "loom/Pipeline/Schedule.h"
#include "loom/runtime/Checkpoint.h"
#include "loom/runtime/Files.h"
#include "loom/runtime/Init.h"
#include "loom/runtime/Plan.h"
#include "loom/runtime/Decoder.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <map>
#include <optional>
#include <ostream>
#include <sstream>

namespace loom {
namespace runtime {

namespace {
constexpr char kMagic[8] = {'L', 'O', 'O', 'M', 'P', 'L', 'A', 'N'};
constexpr size_t kHeaderBytes = sizeof(kMagic) + 4 + 8;

uint64_t readLE(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i)
    v |= uint64_t(p[i]) << (8 * i);
  return v;
}
void writeLE(std::vector<uint8_t> &out, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i)
    out.push_back(uint8_t(v >> (8 * i)));
}

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? "x" : "") + std::to_string(shape[i]);
  return s + "]";
}
} // namespace

int64_t dtypeBytes(plan::DType dtype) {
  switch (dtype) {
  case plan::DType::F32:
  case plan::DType::I32:
    return 4;
  case plan::DType::BF16:
  case plan::DType::F16:
    return 2;
  case plan::DType::I64:
    return 8;
  case plan::DType::I1:
    return 1;
  }
  return 0;
}

const char *dtypeName(plan::DType dtype) {
  switch (dtype) {
  case plan::DType::F32:
    return "f32";
  case plan::DType::BF16:
    return "bf16";
  case plan::DType::F16:
    return "f16";
  case plan::DType::I32:
    return "i32";
  case plan::DType::I64:
    return "i64";
  case plan::DType::I1:
    return "i1";
  }
  return "?";
}

const plan::AttributeT *findAttr(const plan::InstructionT &inst,
                                 const std::string &name) {
  for (const auto &a : inst.attrs)
    if (a->name == name)
      return a.get();
  return nullptr;
}

Status writePlan(const plan::PlanT &planObject, const std::string &path) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(plan::Plan::Pack(fbb, &planObject), plan::PlanIdentifier());
  std::vector<uint8_t> out(std::begin(kMagic), std::end(kMagic));
  writeLE(out, kPlanFormatVersion, 4);
  writeLE(out, fbb.GetSize(), 8);
  out.insert(out.end(), fbb.GetBufferPointer(),
             fbb.GetBufferPointer() + fbb.GetSize());
  writeLE(out, crc32(fbb.GetBufferPointer(), fbb.GetSize()), 4);
  return writeFileAtomically(path, out);
}

Result<std::unique_ptr<plan::PlanT>> readPlan(const std::string &path) {
  Result<std::vector<uint8_t>> read = readWholeFile(path, "the plan");
  if (!read.ok())
    return Status::error(read.message());
  const std::vector<uint8_t> &bytes = *read;
  const std::string recompile = "; compile it again with loomc ... -o " + path;
  if (bytes.size() < sizeof(kMagic) ||
      std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0)
    return Status::error("'" + path +
                         "' is not a Loom plan (it does not start with "
                         "LOOMPLAN); loomc MODEL -o PLAN writes one");
  if (bytes.size() < kHeaderBytes)
    return Status::error("the plan '" + path + "' is truncated" + recompile);
  uint32_t version = uint32_t(readLE(bytes.data() + sizeof(kMagic), 4));
  if (version != kPlanFormatVersion)
    return Status::error("the plan '" + path + "' has format version " +
                         std::to_string(version) +
                         "; this runtime reads version " +
                         std::to_string(kPlanFormatVersion) + recompile +
                         " of this release");
  uint64_t size = readLE(bytes.data() + sizeof(kMagic) + 4, 8);
  // Compared without adding to `size`, which the file sets: a size near
  // 2^64 would wrap the sum around to the file's length.
  if (bytes.size() < kHeaderBytes + 4 ||
      size != bytes.size() - kHeaderBytes - 4)
    return Status::error("the plan '" + path + "' is truncated or has " +
                         "trailing bytes (" + std::to_string(bytes.size()) +
                         " bytes; its header says a payload of " +
                         std::to_string(size) + " bytes)" + recompile);
  const uint8_t *payload = bytes.data() + kHeaderBytes;
  uint32_t stored = uint32_t(readLE(payload + size, 4));
  if (stored != crc32(payload, size))
    return Status::error("the plan '" + path +
                         "' is damaged: its checksum does not match" +
                         recompile);
  return readPlanPayload(payload, size, "the plan '" + path + "'");
}

Result<std::unique_ptr<plan::PlanT>>
readPlanPayload(const uint8_t *bytes, size_t size, const std::string &what) {
  // FlatBuffers reads its 8-byte fields in place, at the alignment its
  // builder gave them; the plan file's 20-byte frame header breaks that, so
  // the payload is read from an 8-byte-aligned copy.
  std::vector<uint64_t> aligned((size + 7) / 8);
  if (size)
    std::memcpy(aligned.data(), bytes, size);
  const uint8_t *data = reinterpret_cast<const uint8_t *>(aligned.data());
  flatbuffers::Verifier verifier(data, size);
  if (!plan::VerifyPlanBuffer(verifier))
    return Status::error(
        what + " does not verify as a plan of format version " +
        std::to_string(kPlanFormatVersion) + "; compile it again with loomc");
  std::unique_ptr<plan::PlanT> result(plan::GetPlan(data)->UnPack());
  if (Status s = validatePlan(*result, what); !s.ok())
    return s;
  return result;
}

namespace {
Status validateBody(const plan::PlanT &p, const std::string &what,
                    bool chunk);

/// What is wrong with a plan's mesh (dp, pp, tp, each at least 1), or "".
std::string meshProblem(const plan::PlanT &p) {
  if (p.mesh.size() != 3 || p.mesh[0]->name != "dp" ||
      p.mesh[1]->name != "pp" || p.mesh[2]->name != "tp")
    return "its mesh is not (dp, pp, tp)";
  int64_t ranks = 1;
  for (const auto &axis : p.mesh) {
    if (axis->size < 1)
      return "mesh axis '" + axis->name + "' has size " +
             std::to_string(axis->size) + "; sizes must be >= 1";
    // Checked: dp=2^40 must not wrap around to a small mesh.
    if (!checkedMul(ranks, axis->size, ranks) || ranks > kMaxRanks)
      return "its mesh has more than " + std::to_string(kMaxRanks) +
             " ranks (axis '" + axis->name + "' has size " +
             std::to_string(axis->size) + ")";
  }
  return "";
}

/// What is wrong with the learning-rate schedule's decay style, or "".
std::string decayProblem(const plan::PlanT &p) {
  const std::string &decay = p.optimizer_defaults->decay_style;
  if (decay != "cosine" && decay != "linear" && decay != "constant")
    return "its learning-rate decay style '" + decay +
           "' is not cosine, linear or constant";
  return "";
}

/// What is wrong with a plan's batch sizes, or "": the global batch is
/// micro x microbatches x dp, each product checked, and (in a plan the
/// session feeds: not a chunk) a global batch of tokens of a sane size.
std::string batchProblem(const plan::PlanT &p, bool chunk) {
  int64_t perRank = 0, global = 0, tokens = 0;
  if (p.micro_batch_size <= 0 || p.num_microbatches <= 0 ||
      !checkedMul(p.micro_batch_size, p.num_microbatches, perRank) ||
      !checkedMul(perRank, p.mesh[0]->size, global) ||
      p.global_batch_size != global)
    return "its batch sizes do not agree (global " +
           std::to_string(p.global_batch_size) + ", micro " +
           std::to_string(p.micro_batch_size) + ", " +
           std::to_string(p.num_microbatches) + " microbatches, dp " +
           std::to_string(p.mesh[0]->size) + ")";
  if (chunk)
    return "";
  // 0 for a model without token inputs (loom IR may take others); a session,
  // which feeds tokens, checks them against its data.
  if (p.seq_length < 0 || p.vocab_size < 0)
    return "its sequence length (" + std::to_string(p.seq_length) +
           ") or vocabulary (" + std::to_string(p.vocab_size) +
           ") is negative";
  if (!checkedMul(global, p.seq_length, tokens) || tokens > kMaxBatchTokens)
    return "its global batch of " + std::to_string(global) + " sequences of " +
           std::to_string(p.seq_length) + " tokens is more than " +
           std::to_string(kMaxBatchTokens) + " tokens";
  return "";
}

/// A pipeline plan: the chunks, and a schedule that runs every forward and
/// backward of every (microbatch, chunk) once, on the chunk's stage.
Status validatePipeline(const plan::PlanT &p, const std::string &what) {
  auto bad = [&](const std::string &why) {
    return Status::error(what + " is inconsistent: " + why +
                         "; compile it again with loomc");
  };
  if (std::string problem = meshProblem(p); !problem.empty())
    return bad(problem);
  if (p.mesh[1]->size < 2)
    return bad("it has pipeline chunks but pp=1");
  if (!p.optimizer_defaults || !p.precision)
    return bad("its optimizer defaults or precision policy are missing");
  if (std::string problem = decayProblem(p); !problem.empty())
    return bad(problem);
  if (std::string problem = batchProblem(p, /*chunk=*/false); !problem.empty())
    return bad(problem);
  int64_t stages = p.mesh[1]->size, n = int64_t(p.chunks.size());
  int64_t expected = 0;
  if (stages < 1 || p.chunks_per_stage < 1 ||
      !checkedMul(stages, p.chunks_per_stage, expected) || n != expected)
    return bad("it has " + std::to_string(n) + " chunks for pp=" +
               std::to_string(stages) + " x " +
               std::to_string(p.chunks_per_stage));
  if (int64_t(p.stage_schedules.size()) != stages)
    return bad("its schedule does not have one list per stage");
  if (n > (int64_t(1) << 16) || p.num_microbatches > (int64_t(1) << 20))
    return bad("its pipeline is too large");
  if (p.schedule != "gpipe" && p.schedule != "1f1b" &&
      p.schedule != "interleaved" && p.schedule != "custom")
    return bad("its schedule '" + p.schedule +
               "' is not gpipe, 1f1b, interleaved or custom");
  // Every (microbatch, chunk) runs forward and backward once, so the
  // schedule's length bounds the bookkeeping below by the file's size.
  size_t listed = 0;
  for (const auto &stage : p.stage_schedules)
    listed += stage->steps.size();
  if (uint64_t(listed) != uint64_t(2 * n) * uint64_t(p.num_microbatches))
    return bad("its schedule has " + std::to_string(listed) + " steps for " +
               std::to_string(n) + " chunks x " +
               std::to_string(p.num_microbatches) +
               " microbatches, forward and backward");
  std::vector<uint8_t> done(size_t(2 * n * p.num_microbatches), 0);
  for (int64_t s = 0; s < stages; ++s)
    for (const auto &step : p.stage_schedules[size_t(s)]->steps) {
      if (step->chunk < 0 || step->chunk >= n || step->chunk % stages != s ||
          step->microbatch < 0 || step->microbatch >= p.num_microbatches)
        return bad("its schedule has a step of another stage or batch");
      size_t k = size_t((step->microbatch * n + step->chunk) * 2 +
                        (step->backward ? 1 : 0));
      if (done[k]++)
        return bad("its schedule runs a step twice");
      // A stage runs a chunk's backward after its forward (the forward
      // keeps the input the backward recomputes from).
      if (step->backward && !done[k - 1])
        return bad("its schedule runs a backward before its forward");
    }
  for (uint8_t d : done)
    if (!d)
      return bad("its schedule leaves a step out");
  // The compiler proved the schedule deadlock-free; a plan written by hand
  // or damaged before its checksum was taken is proved again, by the same
  // simulation, rather than hanging every rank at the first step.
  if (std::string problem = pipeline::validateSchedule(scheduleOfPlan(p));
      !problem.empty())
    return bad("its pipeline schedule is refused: " + problem);
  // Each chunk holds one stash slot per microbatch in flight on its stage.
  for (const auto &stage : p.stage_schedules) {
    std::map<int64_t, int64_t> inFlight;
    for (const auto &step : stage->steps) {
      if (step->chunk < 0 || step->chunk >= n)
        continue; // refused by validateSchedule
      int64_t &k = inFlight[step->chunk];
      k += step->backward ? -1 : 1;
      const plan::PlanT &chunk = *p.chunks[size_t(step->chunk)];
      if (k > std::max<int64_t>(1, chunk.stash_slots) &&
          chunk.arena_bytes.size() == 3 &&
          chunk.arena_bytes[size_t(plan::Arena::Stash)] > 0)
        return bad("chunk " + std::to_string(step->chunk) + " has " +
                   std::to_string(chunk.stash_slots) +
                   " stash slots, but its schedule holds " + std::to_string(k) +
                   " microbatches in flight");
    }
  }
  for (int64_t c = 0; c < n; ++c) {
    const plan::PlanT &chunk = *p.chunks[size_t(c)];
    std::string name = what + ", chunk " + std::to_string(c) + ",";
    if (!chunk.chunks.empty() || chunk.chunk_index != c)
      return bad("chunk " + std::to_string(c) + " is out of place");
    if (chunk.num_microbatches != p.num_microbatches ||
        chunk.micro_batch_size != p.micro_batch_size ||
        chunk.global_batch_size != p.global_batch_size)
      return bad("chunk " + std::to_string(c) + " has other batch sizes");
    if (chunk.mesh.size() != p.mesh.size())
      return bad("chunk " + std::to_string(c) + " has another mesh");
    for (size_t a = 0; a < p.mesh.size(); ++a)
      if (chunk.mesh[a]->name != p.mesh[a]->name ||
          chunk.mesh[a]->size != p.mesh[a]->size)
        return bad("chunk " + std::to_string(c) + " has another mesh");
    if ((c > 0) != (chunk.activation_in >= 0) ||
        (c + 1 < n) != (chunk.activation_out >= 0) ||
        (c + 1 < n) != (chunk.output_grad >= 0) ||
        (c > 0) != (chunk.input_grad >= 0) || (c + 1 == n) != (chunk.loss >= 0))
      return bad("chunk " + std::to_string(c) +
                 " does not pass activations as its place needs");
    if (Status s = validateBody(chunk, name, /*chunk=*/true); !s.ok())
      return s;
  }
  // A parameter in two chunks (tied) is one tensor: the same blocks.
  for (int64_t a = 0; a < n; ++a)
    for (const auto &pa : p.chunks[size_t(a)]->parameters)
      for (int64_t b = a + 1; b < n; ++b)
        for (const auto &pb : p.chunks[size_t(b)]->parameters)
          if (pa->name == pb->name &&
              (pa->global_shape != pb->global_shape ||
               pa->shard_axis != pb->shard_axis ||
               p.chunks[size_t(a)]->buffers[pa->value]->shape !=
                   p.chunks[size_t(b)]->buffers[pb->value]->shape))
            return bad("parameter '" + pa->name +
                       "' has other shapes in two chunks");
  return Status::success();
}
} // namespace

pipeline::Schedule scheduleOfPlan(const plan::PlanT &p) {
  pipeline::Schedule schedule;
  schedule.kind = p.schedule == "gpipe"      ? pipeline::ScheduleKind::GPipe
                  : p.chunks_per_stage == 1 ? pipeline::ScheduleKind::OneFOneB
                                            : pipeline::ScheduleKind::Interleaved;
  schedule.stages = int64_t(p.stage_schedules.size());
  schedule.chunksPerStage = p.chunks_per_stage;
  schedule.microbatches = p.num_microbatches;
  for (const auto &stage : p.stage_schedules) {
    schedule.perStage.emplace_back();
    for (const auto &step : stage->steps)
      schedule.perStage.back().push_back(
          {step->backward ? pipeline::Step::Backward : pipeline::Step::Forward,
           step->microbatch, step->chunk});
  }
  return schedule;
}

Status validatePlan(const plan::PlanT &p, const std::string &what) {
  if (!p.chunks.empty())
    return validatePipeline(p, what);
  return validateBody(p, what, /*chunk=*/false);
}

namespace {
/// Two buffers that share bytes of one arena while both are live, or "".
/// Lifetimes follow the program order as the memory planner's do: inputs
/// from before the microbatch program, outputs until after it, the
/// optimizer program after it, inclusive at both ends; persistent buffers
/// always. Two buffers at the same offset with the same size are one
/// storage (a view: a reshape shares its source's bytes), so only partial
/// overlaps and overlaps of different storage count. A sweep over time
/// keeps the live ranges of an arena disjoint in an ordered map, so the
/// check is O(n log n) in the buffers.
std::string liveOverlap(const plan::PlanT &p) {
  size_t n = p.buffers.size();
  const int64_t none = INT64_MAX;
  std::vector<int64_t> first(n, none), last(n, -2);
  auto touch = [&](int32_t id, int64_t k) {
    first[size_t(id)] = std::min(first[size_t(id)], k);
    last[size_t(id)] = std::max(last[size_t(id)], k);
  };
  int64_t end = int64_t(p.microbatch->instructions.size());
  int64_t after = end + 1 + int64_t(p.optimizer->instructions.size());
  // A pipeline chunk (PipelineRunner.cpp): the gradient from the next stage
  // is received just before the backward step, and the activation for it
  // sent just after the forward step (the memory planner's lifetimes).
  bool chunk = p.activation_in >= 0 || p.activation_out >= 0;
  int64_t split = p.loss >= 0 ? 0 : p.forward_end;
  int32_t outputGrad =
      chunk && p.output_grad >= 0 && size_t(p.output_grad) < p.inputs.size()
          ? p.inputs[size_t(p.output_grad)]->buffer
          : -1;
  auto inputAt = [&](int32_t id) {
    return chunk && id == outputGrad ? split : int64_t(-1);
  };
  auto outputAt = [&](int32_t id) {
    return chunk && id == p.activation_out ? split - 1 : end;
  };
  for (size_t i = 0; i < n; ++i) {
    const plan::BufferT &b = *p.buffers[i];
    if (b.arena == plan::Arena::Persistent) {
      touch(int32_t(i), -1);
      touch(int32_t(i), after);
    }
    if (b.kind == plan::BufferKind::Input)
      touch(int32_t(i), inputAt(int32_t(i)));
    if (b.kind == plan::BufferKind::Output)
      touch(int32_t(i), outputAt(int32_t(i)));
  }
  for (const auto &input : p.inputs)
    if (input->buffer >= 0 && size_t(input->buffer) < n)
      touch(input->buffer, inputAt(input->buffer));
  for (int32_t id : {p.loss, p.activation_out, p.input_grad})
    if (id >= 0 && size_t(id) < n)
      touch(id, outputAt(id));
  int64_t k = 0;
  for (const auto *program : {p.microbatch.get(), p.optimizer.get()}) {
    for (const auto &inst : program->instructions) {
      forEachBufferOf(*inst, [&](int32_t id) { touch(id, k); });
      ++k;
    }
    k = end + 1;
  }
  for (int arena = 0; arena < 3; ++arena) {
    std::vector<int32_t> byFirst;
    for (size_t i = 0; i < n; ++i)
      if (int(p.buffers[i]->arena) == arena && p.buffers[i]->bytes > 0 &&
          first[i] != none)
        byFirst.push_back(int32_t(i));
    std::vector<int32_t> byLast = byFirst;
    std::sort(byFirst.begin(), byFirst.end(), [&](int32_t a, int32_t b) {
      return first[size_t(a)] < first[size_t(b)];
    });
    std::sort(byLast.begin(), byLast.end(), [&](int32_t a, int32_t b) {
      return last[size_t(a)] < last[size_t(b)];
    });
    // offset -> (end, how many live buffers hold exactly that range, one)
    struct Live {
      int64_t end;
      int64_t count;
      int32_t id;
    };
    std::map<int64_t, Live> live;
    size_t gone = 0;
    auto clash = [&](int32_t a, int32_t b) {
      const plan::BufferT &x = *p.buffers[size_t(a)],
                          &y = *p.buffers[size_t(b)];
      auto range = [](const plan::BufferT &z) {
        return "[" + std::to_string(z.offset) + ", " +
               std::to_string(z.offset + z.bytes) + ")";
      };
      return "buffers '" + x.name + "' " + range(x) + " and '" + y.name + "' " +
             range(y) + " share bytes of the " +
             (arena == 2   ? "stash"
              : arena == 1 ? "workspace"
                           : "persistent") +
             " arena while both are live";
    };
    for (int32_t id : byFirst) {
      // Buffers whose life ended before this one's began free their bytes.
      for (; gone < byLast.size() &&
             last[size_t(byLast[gone])] < first[size_t(id)];
           ++gone) {
        const plan::BufferT &b = *p.buffers[size_t(byLast[gone])];
        auto it = live.find(b.offset);
        if (it != live.end() && --it->second.count == 0)
          live.erase(it);
      }
      const plan::BufferT &b = *p.buffers[size_t(id)];
      int64_t begin = b.offset, stop = b.offset + b.bytes;
      auto it = live.find(begin);
      if (it != live.end()) {
        if (it->second.end != stop)
          return clash(it->second.id, id);
        ++it->second.count;
        continue;
      }
      auto next = live.lower_bound(begin);
      if (next != live.end() && next->first < stop)
        return clash(next->second.id, id);
      if (next != live.begin() && std::prev(next)->second.end > begin)
        return clash(std::prev(next)->second.id, id);
      live.emplace(begin, Live{stop, 1, id});
    }
  }
  return "";
}

} // namespace

namespace {
/// The microbatches a pipeline may hold in flight: validatePipeline bounds
/// m by it, so a chunk never needs more stash slots.
constexpr int64_t kMaxMicrobatchesInPlan = int64_t(1) << 20;

/// A chunk runs its microbatch program in two steps (PipelineRunner.cpp):
/// the forward step its first forward_end instructions, the backward step
/// the rest (the last chunk, with the loss, all of it in its backward
/// step). Another microbatch's steps may run between them, so nothing the
/// backward step reads from the forward step may lie in the workspace: it
/// belongs in the Stash arena. Returns the first buffer that does, or "".
std::string workspaceAcrossSteps(const plan::PlanT &p) {
  int64_t split = p.loss >= 0 ? 0 : p.forward_end;
  size_t n = p.buffers.size();
  std::vector<bool> early(n, false), late(n, false);
  auto input = [&](int32_t index) {
    return index >= 0 && size_t(index) < p.inputs.size()
               ? p.inputs[size_t(index)]->buffer
               : -1;
  };
  // Written before the forward step: the activation from the chunk before.
  // Token and label inputs are uploaded before each step; the gradient
  // from the chunk after arrives before the backward step.
  if (int32_t in = input(p.activation_in); in >= 0 && size_t(in) < n)
    early[size_t(in)] = true;
  const auto &insts = p.microbatch->instructions;
  for (int64_t k = 0; k < int64_t(insts.size()); ++k)
    forEachBufferOf(*insts[size_t(k)], [&](int32_t id) {
      if (id >= 0 && size_t(id) < n)
        (k < split ? early : late)[size_t(id)] = true;
    });
  for (size_t i = 0; i < n; ++i) {
    const plan::BufferT &b = *p.buffers[i];
    if (!early[i] || !late[i] || b.arena != plan::Arena::Workspace)
      continue;
    bool reuploaded = false;
    for (const auto &in : p.inputs)
      reuploaded |= in->buffer == int32_t(i) && in->name != "activation" &&
                    in->name != "output_grad";
    if (!reuploaded)
      return "buffer '" + b.name +
             "' is used by both the forward and the backward step of the "
             "chunk but lies in the workspace, which other microbatches' "
             "steps reuse in between (it belongs in the stash)";
  }
  return "";
}

Status validateBody(const plan::PlanT &p, const std::string &what,
                    bool chunk) {
  auto bad = [&](const std::string &why) {
    return Status::error(what + " is inconsistent: " + why +
                         "; compile it again with loomc");
  };
  int64_t nbuf = int64_t(p.buffers.size());
  if (p.arena_bytes.size() != 3)
    return bad("it has " + std::to_string(p.arena_bytes.size()) +
               " arena sizes, not 3");
  static const char *const kArenaNames[] = {"persistent", "workspace", "stash"};
  for (size_t a = 0; a < 3; ++a)
    if (p.arena_bytes[a] < 0 || p.arena_bytes[a] > kMaxArenaBytes)
      return bad("its " + std::string(kArenaNames[a]) + " arena of " +
                 std::to_string(p.arena_bytes[a]) + " bytes is not in [0, " +
                 std::to_string(kMaxArenaBytes) + "]");
  for (int64_t i = 0; i < nbuf; ++i) {
    const plan::BufferT &b = *p.buffers[i];
    int64_t elements = 0;
    // Every dimension counts, even beside a 0: kernels loop over the
    // dimensions of an empty buffer too.
    std::vector<int64_t> nonzero;
    for (int64_t d : b.shape)
      nonzero.push_back(d == 0 ? 1 : d);
    int64_t spanned = 0;
    if (!checkedProduct(b.shape, elements) || elements > kMaxBufferElements ||
        !checkedProduct(nonzero, spanned) || spanned > kMaxBufferElements)
      return bad("buffer '" + b.name + "' has the shape " + shapeText(b.shape) +
                 "; dimensions must be >= 0 and the elements at most " +
                 std::to_string(kMaxBufferElements));
    if (dtypeBytes(b.dtype) == 0)
      return bad("buffer '" + b.name + "' has an unknown type");
    if (b.bytes != elements * dtypeBytes(b.dtype))
      return bad("buffer '" + b.name + "' has " + std::to_string(b.bytes) +
                 " bytes for " + shapeText(b.shape) + " " +
                 dtypeName(b.dtype));
    size_t arena = size_t(b.arena);
    if (arena > 2 || b.offset < 0 || b.bytes > p.arena_bytes[arena] ||
        b.offset > p.arena_bytes[arena] - b.bytes)
      return bad("buffer '" + b.name + "' lies outside its arena");
    // Kernels read a buffer as an array of its type.
    if (b.offset % dtypeBytes(b.dtype) != 0)
      return bad("buffer '" + b.name + "' starts at byte " +
                 std::to_string(b.offset) + ", not a multiple of its " +
                 dtypeName(b.dtype) + " elements' " +
                 std::to_string(dtypeBytes(b.dtype)) + " bytes");
    if (int(b.kind) < 0 || int(b.kind) > int(plan::BufferKind::MAX))
      return bad("buffer '" + b.name + "' has an unknown kind");
  }
  auto inRange = [&](int32_t id) { return id >= 0 && id < nbuf; };
  // The mesh and batch sizes before the instructions: decoding multiplies
  // by the mesh's axis sizes.
  if (std::string problem = meshProblem(p); !problem.empty())
    return bad(problem);
  if (std::string problem = batchProblem(p, chunk); !problem.empty())
    return bad(problem);
  for (const auto *program : {p.microbatch.get(), p.optimizer.get()}) {
    if (!program)
      return bad("a program is missing");
    for (const auto &inst : program->instructions) {
      std::optional<int32_t> outside;
      forEachBufferOf(*inst, [&](int32_t id) {
        if (!inRange(id) && !outside)
          outside = id;
      });
      if (outside)
        return bad("'" + inst->op + "' in " + program->name +
                   " names buffer " + std::to_string(*outside) +
                   "; the plan has " + std::to_string(nbuf));
      for (const auto &ref : inst->reference)
        if (!ref->reference.empty())
          return bad("a reference instruction of '" + inst->op + "' in " +
                     program->name + " has a reference form of its own");
    }
    // Every instruction decodes, as every backend decodes it (for rank 0:
    // the checks do not depend on the rank).
    std::vector<int64_t> coords(p.mesh.size(), 0);
    for (size_t k = 0; k < program->instructions.size(); ++k) {
      Instruction decoded;
      if (std::string problem = decodeInstruction(
              p, coords, *program->instructions[k], decoded);
          !problem.empty())
        return bad(instructionWhere(*program, k) + ": " + problem);
    }
  }
  for (const auto &param : p.parameters)
    for (int32_t id :
         {param->value, param->grad, param->moment1, param->moment2}) {
      if (!inRange(id))
        return bad("parameter '" + param->name + "' has no buffer " +
                   std::to_string(id));
      // The optimizer and checkpoints work on f32 master weights.
      const plan::BufferT &b = *p.buffers[id];
      // The distributed optimizer's moments are its bucket's [shard].
      bool shard = p.distributed_optimizer &&
                   (id == param->moment1 || id == param->moment2);
      if (b.dtype != plan::DType::F32 || b.arena != plan::Arena::Persistent ||
          (!shard && b.shape != p.buffers[param->value]->shape) ||
          (shard && b.shape.size() != 1))
        return bad("parameter '" + param->name +
                   "' needs persistent f32 buffers of one shape");
    }
  if (p.distributed_optimizer) {
    // Checkpoints read each parameter's shard of its moments from the
    // bucket's shard buffers: it must lie inside the dp shards.
    int64_t dp = 1;
    for (const auto &axis : p.mesh)
      if (axis->name == "dp")
        dp = axis->size;
    for (const auto &param : p.parameters) {
      int64_t shard = p.buffers[param->moment1]->bytes / 4,
              n = p.buffers[param->value]->bytes / 4, span = 0, end = 0;
      if (p.buffers[param->moment2]->bytes != shard * 4 ||
          !checkedMul(shard, dp, span) ||
          !checkedAdd(param->shard_offset, n, end) || end > span)
        return bad("parameter '" + param->name + "' at shard_offset " +
                   std::to_string(param->shard_offset) +
                   " does not lie in its bucket's " + std::to_string(dp) +
                   " shards of " + std::to_string(shard) + " elements");
    }
  }
  for (const auto &param : p.parameters) {
    if (!isKnownInitializer(param->init))
      return bad("parameter '" + param->name + "' has the initializer '" +
                 param->init +
                 "'; this runtime knows normal, zeros, ones "
                 "and constant");
    if (!std::isfinite(param->std) || param->std < 0 ||
        !std::isfinite(param->constant))
      return bad("parameter '" + param->name +
                 "' has an initializer std or constant that is negative or "
                 "not finite");
  }
  for (const auto &input : p.inputs)
    if (!inRange(input->buffer))
      return bad("input '" + input->name + "' has no buffer");
  bool hasLoss = !chunk || p.loss >= 0;
  if (hasLoss && (!inRange(p.loss) ||
                  p.buffers[p.loss]->dtype != plan::DType::F32 ||
                  p.buffers[p.loss]->bytes != 4))
    return bad("it has no f32 scalar loss buffer");
  if (chunk) {
    auto activation = [&](int32_t id, bool input) {
      if (id < 0)
        return true;
      if (input && id >= int32_t(p.inputs.size()))
        return false;
      int32_t buffer = input ? p.inputs[size_t(id)]->buffer : id;
      if (!inRange(buffer))
        return false;
      plan::DType t = p.buffers[buffer]->dtype;
      return t == plan::DType::F32 || t == plan::DType::BF16 ||
             t == plan::DType::F16;
    };
    if (!activation(p.activation_in, true) ||
        !activation(p.output_grad, true) ||
        !activation(p.activation_out, false) ||
        !activation(p.input_grad, false))
      return bad("its activations in and out are not float buffers");
    if (p.forward_end < 0 ||
        p.forward_end > int64_t(p.microbatch->instructions.size()))
      return bad("its forward part is out of range");
    if (std::string leak = workspaceAcrossSteps(p); !leak.empty())
      return bad(leak);
  }
  // The stash: only a chunk's steps leave anything in it, and its slots
  // fit the arena bound.
  int64_t stashBytes = p.arena_bytes[size_t(plan::Arena::Stash)];
  if (p.stash_slots < 0 || p.stash_slots > kMaxMicrobatchesInPlan ||
      (stashBytes > 0 &&
       (!chunk ||
        stashBytes > kMaxArenaBytes / std::max<int64_t>(1, p.stash_slots))))
    return bad("its stash of " + std::to_string(p.stash_slots) + " x " +
               std::to_string(stashBytes) +
               " bytes is out of range (a stash belongs to pipeline chunks, "
               "at most 2^50 bytes in all)");
  if (p.loss_normalizer != "tokens" && p.loss_normalizer != "microbatches")
    return bad("its loss normaliser '" + p.loss_normalizer + "' is unknown");
  if (p.loss_normalizer == "tokens" &&
      (p.labels_input < 0 || p.labels_input >= int32_t(p.inputs.size())))
    return bad("its labels input does not exist");
  // The mesh: dp, pp and tp, each at least 1.
  // A parameter's blocks: split dimensions name a mesh axis, and the whole
  // shape is the block's times the axis sizes.
  for (const auto &param : p.parameters) {
    const plan::BufferT &b = *p.buffers[param->value];
    if (param->global_shape.size() != b.shape.size() ||
        (!param->shard_axis.empty() &&
         param->shard_axis.size() != b.shape.size()))
      return bad("parameter '" + param->name + "' has a bad global shape");
    for (size_t d = 0; d < b.shape.size(); ++d) {
      int32_t a = param->shard_axis.empty() ? -1 : param->shard_axis[d];
      if (a < -1 || a >= int32_t(p.mesh.size()) ||
          param->global_shape[d] !=
              b.shape[d] * (a < 0 ? 1 : p.mesh[size_t(a)]->size))
        return bad("parameter '" + param->name +
                   "' has a block that does not tile its global shape");
    }
  }
  if (!p.optimizer_defaults || !p.precision)
    return bad("its optimizer or precision settings are missing");
  if (std::string problem = decayProblem(p); !problem.empty())
    return bad(problem);
  const plan::PrecisionPolicyT &precision = *p.precision;
  if (dtypeBytes(precision.compute) == 0)
    return bad("its compute type is unknown");
  if (precision.dynamic_loss_scaling &&
      !(precision.loss_scale_window > 0 && precision.min_loss_scale > 0 &&
        precision.initial_loss_scale >= precision.min_loss_scale))
    return bad("its loss-scaling settings are out of range");
  if (std::string problem = liveOverlap(p); !problem.empty())
    return bad(problem);
  return Status::success();
}
} // namespace

/// `  model: vocab=50257 hidden=768 ...`, when the plan records its configs.
const plan::ModelConfigT *findModelConfig(const plan::PlanT &plan,
                                          std::string_view name) {
  for (const auto &c : plan.model_config)
    if (c->name == name)
      return c.get();
  return nullptr;
}

static void printModelConfigs(const plan::PlanT &p, std::ostream &os) {
  if (p.model_config.empty())
    return;
  os << "  model:";
  for (const auto &c : p.model_config) {
    os << " " << c->name << "=";
    if (c->kind == "float")
      os << c->f;
    else if (c->kind == "bool")
      os << (c->i ? "true" : "false");
    else if (c->kind == "string")
      os << "\"" << c->s << "\"";
    else
      os << c->i;
  }
  os << "\n";
}

void printPlanText(const plan::PlanT &p, std::ostream &os) {
  if (!p.chunks.empty()) {
    os << "plan " << p.model << " (format " << kPlanFormatVersion << ", "
       << p.compiler << ")\n";
    printModelConfigs(p, os);
    os << "  mesh";
    for (const auto &axis : p.mesh)
      os << " " << axis->name << "=" << axis->size;
    os << "\n  pipeline: " << p.chunks.size() << " chunks, "
       << p.chunks_per_stage << " per stage, schedule " << p.schedule
       << ", " << p.num_microbatches << " microbatches\n";
    for (size_t s = 0; s < p.stage_schedules.size(); ++s) {
      os << "  stage " << s << ":";
      for (const auto &step : p.stage_schedules[s]->steps)
        os << " " << (step->backward ? "B" : "F") << step->microbatch << "."
           << step->chunk;
      os << "\n";
    }
    for (const auto &chunk : p.chunks) {
      os << "\n== chunk " << chunk->chunk_index << " (stage "
         << chunk->chunk_index % std::max<int64_t>(1, p.mesh[1]->size)
         << ", forward: the first " << chunk->forward_end
         << " instructions of its microbatch program)\n";
      printPlanText(*chunk, os);
    }
    return;
  }
  auto bufferName = [&](int32_t id) { return "%" + p.buffers[id]->name; };
  os << "plan " << p.model << " (format " << kPlanFormatVersion << ", "
     << p.compiler << ")\n";
  printModelConfigs(p, os);
  os << "  mesh";
  for (const auto &axis : p.mesh)
    os << " " << axis->name << "=" << axis->size;
  if (p.sequence_parallel)
    os << ", sequence parallel";
  if (p.distributed_optimizer)
    os << ", distributed optimizer (AdamW's moments sharded over dp)";
  os << "\n  batch: " << p.global_batch_size << " sequences per step = "
     << p.num_microbatches << " microbatches of " << p.micro_batch_size
     << (p.mesh.size() == 3 && p.mesh[0]->size > 1
             ? " on each of " + std::to_string(p.mesh[0]->size) + " dp ranks"
             : "")
     << ", sequence " << p.seq_length << ", vocabulary " << p.vocab_size
     << "\n  loss: normalised by " << p.loss_normalizer;
  if (p.loss_normalizer == "tokens")
    os << " (labels: " << p.inputs[p.labels_input]->name
       << ", ignore_index " << p.ignore_index << ")";
  os << "\n  precision: compute " << dtypeName(p.precision->compute)
     << ", master weights and gradients f32";
  if (p.precision->dynamic_loss_scaling)
    os << ", dynamic loss scaling from " << p.precision->initial_loss_scale;
  const plan::OptimizerDefaultsT &o = *p.optimizer_defaults;
  os << "\n  optimizer: adamw lr " << o.lr << " -> " << o.min_lr << " ("
     << o.decay_style << ", warmup " << o.warmup_steps << ", decay "
     << o.decay_steps << "), weight decay " << o.weight_decay
     << ", clip " << o.clip_grad << ", betas " << o.beta1 << " " << o.beta2
     << ", eps " << o.eps << "\n";
  os << "  step: " << std::setprecision(6) << p.step_flops / 1e9
     << " GFLOP per global batch";
  if (p.model_flops > 0 && p.model_flops != p.step_flops)
    os << " (" << p.model_flops / 1e9 << " without recomputation)";
  os << "\n";
  if (!p.recompute.empty()) {
    os << "  recompute: " << p.recompute;
    if (!p.layer_recompute.empty()) {
      os << " (layers:";
      for (const std::string &c : p.layer_recompute)
        os << " " << c;
      os << ")";
    }
    os << "\n";
  }
  os << "  arenas: persistent " << p.arena_bytes[0] << " bytes, workspace "
     << p.arena_bytes[1] << " bytes";
  if (p.stash_slots > 0)
    os << ", stash " << p.stash_slots << " x " << p.arena_bytes[2] << " bytes";
  os << "\n\n";
  os << "parameters (" << p.parameters.size() << "):\n";
  for (const auto &param : p.parameters) {
    const plan::BufferT &b = *p.buffers[param->value];
    os << "  " << param->name << ": " << shapeText(b.shape) << " "
       << dtypeName(b.dtype);
    for (size_t d = 0; d < param->shard_axis.size(); ++d)
      if (param->shard_axis[d] >= 0)
        os << " (dim " << d << " of " << shapeText(param->global_shape)
           << " split over " << p.mesh[size_t(param->shard_axis[d])]->name
           << ")";
    os << " init " << param->init;
    if (param->init == "normal")
      os << "(std=" << param->std << ")";
    if (param->init == "constant")
      os << "(" << param->constant << ")";
    os << (param->weight_decay ? "" : " no-decay");
    if (p.distributed_optimizer)
      os << " bucket offset " << param->shard_offset << " moments "
         << bufferName(param->moment1) << " " << bufferName(param->moment2);
    os << "\n";
  }
  os << "\nbuffers (" << p.buffers.size() << "):\n";
  static const char *kinds[] = {"parameter", "gradient", "optimizer-state",
                                "input",     "output",   "temporary"};
  for (const auto &b : p.buffers)
    os << "  %" << b->name << ": " << shapeText(b->shape) << " "
       << dtypeName(b->dtype) << " " << kinds[int(b->kind)] << " @"
       << (b->arena == plan::Arena::Persistent  ? "persistent"
           : b->arena == plan::Arena::Workspace ? "workspace"
                                                : "stash")
       << "+" << b->offset << "\n";
  for (const auto *program : {p.microbatch.get(), p.optimizer.get()}) {
    os << "\nprogram " << program->name << " ("
       << program->instructions.size() << " instructions):\n";
    for (const auto &inst : program->instructions) {
      os << "  ";
      for (size_t i = 0; i < inst->outputs.size(); ++i)
        os << (i ? ", " : "") << bufferName(inst->outputs[i]);
      os << (inst->outputs.empty() ? "" : " = ") << inst->op;
      if (const plan::AttributeT *k = findAttr(*inst, "kernel");
          k && !k->ints.empty() && k->ints[0] >= 0 &&
          size_t(k->ints[0]) < p.kernels.size()) {
        os << " @" << p.kernels[size_t(k->ints[0])]->name;
        std::vector<std::string> sites;
        for (const std::string &site : inst->kernel_sites)
          if (!site.empty() &&
              std::find(sites.begin(), sites.end(), site) == sites.end())
            sites.push_back(site);
        for (const std::string &site : sites)
          os << " [" << site << "]";
      }
      for (size_t i = 0; i < inst->inputs.size(); ++i)
        os << (i ? ", " : " ") << bufferName(inst->inputs[i]);
      if (!inst->attrs.empty()) {
        os << " {";
        for (size_t i = 0; i < inst->attrs.size(); ++i) {
          const plan::AttributeT &a = *inst->attrs[i];
          os << (i ? ", " : "") << a.name << "=";
          if (!a.s.empty())
            os << '"' << a.s << '"';
          else if (!a.ints.empty()) {
            std::ostringstream list;
            for (size_t k = 0; k < a.ints.size(); ++k)
              list << (k ? "," : "") << a.ints[k];
            os << (a.ints.size() == 1 ? list.str() : "[" + list.str() + "]");
          } else
            os << a.f;
        }
        os << "}";
      }
      os << "\n";
    }
  }
}

void printKernelsText(const plan::PlanT &p, std::ostream &os) {
  if (!p.chunks.empty()) {
    for (const auto &chunk : p.chunks) {
      os << "== chunk " << chunk->chunk_index << "\n";
      printKernelsText(*chunk, os);
    }
    return;
  }
  size_t uses = 0;
  for (const auto *program : {p.microbatch.get(), p.optimizer.get()})
    for (const auto &inst : program->instructions)
      uses += inst->op == "kernel";
  os << "kernels (" << p.kernels.size() << ", run by " << uses
     << " instructions):\n";
  for (const auto &k : p.kernels) {
    os << "\nkernel " << k->name << " (" << k->family << ")\n  args:";
    for (size_t a = 0; a < k->args.size(); ++a)
      os << (a ? ", " : " ") << (k->args[a]->output ? "out " : "in ")
         << k->args[a]->name << ":" << dtypeName(k->args[a]->dtype) << "["
         << k->args[a]->elements << "]";
    if (!k->params.empty()) {
      os << "\n  params:";
      for (size_t q = 0; q < k->params.size(); ++q)
        os << (q ? ", " : " ") << k->params[q]->kind
           << (k->params[q]->site.empty() ? "" : "(" + k->params[q]->site + ")");
    }
    os << "\n  launch: " << k->launch_rule << " grid " << k->grid << " block "
       << k->block;
    if (!k->zero_args.empty()) {
      os << ", zero";
      for (int32_t a : k->zero_args)
        os << " " << a;
    }
    for (size_t c = 0; c < k->checks.size(); ++c)
      os << "\n  check " << c + 1 << ": " << k->checks[c];
    os << "\n--- host C++\n" << k->host_source << "--- CUDA C++\n"
       << k->cuda_source;
  }
  if (!p.kernels.empty())
    os << "\n--- host prelude\n" << p.kernel_host_prelude
       << "--- CUDA prelude\n" << p.kernel_cuda_prelude;
}

} // namespace runtime
} // namespace loom
