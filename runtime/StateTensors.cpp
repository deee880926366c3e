//===- StateTensors.cpp - the training state as whole tensors -------------===//
//
// A session's parameters and AdamW moments as whole (global) tensors,
// whatever the mesh: drawn by global element index at initialisation,
// gathered from the ranks' blocks for checkpoints and parameter(), and
// scattered back (into every copy of a parameter tied across pipeline
// chunks) when a checkpoint is loaded. Buffers move through the executors'
// upload and download only. With the distributed optimizer a rank holds its
// dp shard of each parameter's moments (a flat element range of its block,
// inside the bucket's shard buffer): the dp ranks' ranges make the block.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Checkpoint.h"
#include "loom/runtime/Executor.h"
#include "loom/runtime/Init.h"
#include "loom/runtime/Session.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <system_error>

namespace loom {
namespace runtime {

std::vector<int64_t> Session::blockOffset(const plan::ParameterT &p,
                                          const plan::PlanT &owner,
                                          const Rank &rank) const {
  const plan::BufferT &b = *owner.buffers[p.value];
  std::vector<int64_t> offset(b.shape.size(), 0);
  for (size_t d = 0; d < p.shard_axis.size() && d < offset.size(); ++d)
    if (p.shard_axis[d] >= 0)
      offset[d] = rank.coords[size_t(p.shard_axis[d])] * b.shape[d];
  return offset;
}

Status Session::initializeParameters() {
  std::vector<float> values;
  for (Rank &rank : ranks_)
    for (Part &part : rank.parts)
      for (const auto &param : part.plan->parameters) {
        const plan::BufferT &b = *part.plan->buffers[param->value];
        int64_t n = b.bytes / 4;
        values.assign(size_t(n), 0.0f);
        float *data = values.data();
        if (param->init == "normal") {
          // Keyed by the global element index: every mesh draws one model
          // (and a parameter tied across pipeline chunks one value).
          TensorBlock block{param->global_shape,
                            blockOffset(*param, *part.plan, rank), b.shape};
          initNormal(data, block, param->std,
                     parameterKey(options_.seed, param->name));
        } else {
          float value = param->init == "zeros"  ? 0.0f
                        : param->init == "ones" ? 1.0f
                                                : float(param->constant);
          std::fill(data, data + n, value);
        }
        if (Status s = part.executor->upload(param->value, data,
                                             size_t(b.bytes));
            !s.ok())
          return s;
        for (int32_t id : {param->grad, param->moment1, param->moment2})
          if (Status s = part.executor->zero(id); !s.ok())
            return s;
      }
  step_ = optimizerSteps_ = dataPosition_ = goodSteps_ = 0;
  lossScale_ = plan_->precision->dynamic_loss_scaling
                   ? plan_->precision->initial_loss_scale
                   : 1.0;
  return Status::success();
}

Status Session::zeroGradients() {
  for (Rank &rank : ranks_)
    for (Part &part : rank.parts)
      for (const auto &param : part.plan->parameters)
        if (Status s = part.executor->zero(param->grad); !s.ok())
          return s;
  return Status::success();
}

std::vector<Session::StateTensor> Session::stateTensors(bool moments) const {
  // Every parameter once, in chunk order (a tied one where it first
  // appears).
  std::vector<StateTensor> tensors;
  std::vector<const plan::PlanT *> pieces;
  if (plan_->chunks.empty())
    pieces.push_back(plan_.get());
  for (const auto &chunk : plan_->chunks)
    pieces.push_back(chunk.get());
  std::vector<std::string> seen;
  for (const plan::PlanT *piece : pieces)
    for (const auto &param : piece->parameters) {
      if (std::find(seen.begin(), seen.end(), param->name) != seen.end())
        continue;
      seen.push_back(param->name);
      tensors.push_back({param->name, param.get(), 0});
      if (moments) {
        tensors.push_back({"adam_m." + param->name, param.get(), 1});
        tensors.push_back({"adam_v." + param->name, param.get(), 2});
      }
    }
  return tensors;
}

namespace {
/// Copies a block (`local`, at `offset` in a tensor of shape `global`)
/// into the whole tensor, or out of it: the block's flat elements
/// [lo, hi) (all of them by default).
void copyBlock(float *local, const std::vector<int64_t> &shape, float *whole,
               const std::vector<int64_t> &global,
               const std::vector<int64_t> &offset, bool toWhole, int64_t lo = 0,
               int64_t hi = INT64_MAX) {
  size_t rank = shape.size();
  if (rank == 0) {
    if (lo < 1 && hi > 0)
      toWhole ? *whole = *local : *local = *whole;
    return;
  }
  int64_t inner = shape.back(), rows = 1;
  for (size_t d = 0; d + 1 < rank; ++d)
    rows *= shape[d];
  std::vector<int64_t> index(rank, 0);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t g = 0;
    for (size_t d = 0; d < rank; ++d)
      g = g * global[d] + offset[d] + index[d];
    int64_t from = std::max(lo - r * inner, int64_t(0)),
            to = std::min(hi - r * inner, inner);
    float *src = local + r * inner + from, *dst = whole + g + from;
    if (from >= to)
      ; // outside the range
    else if (toWhole)
      std::copy_n(src, to - from, dst);
    else
      std::copy_n(dst, to - from, src);
    for (size_t d = rank - 1; d-- > 0;) {
      if (++index[d] < shape[d])
        break;
      index[d] = 0;
    }
  }
}

int64_t elements(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

/// A number as a message shows it: the shortest text that reads back as
/// the same double (1e+300, not 1.0000000000000001e+300).
std::string numberText(double v) {
  char text[32];
  auto [end, error] = std::to_chars(text, text + sizeof(text), v);
  return error == std::errc() ? std::string(text, end) : std::to_string(v);
}
} // namespace

namespace {
/// A rank's copy of a parameter (by name) in one of its parts, if any.
template <typename PartT>
const plan::ParameterT *findParameter(PartT &part, const std::string &name) {
  for (const auto &param : part.plan->parameters)
    if (param->name == name)
      return param.get();
  return nullptr;
}
int32_t roleBuffer(const plan::ParameterT &p, int role) {
  return role == 0 ? p.value : role == 1 ? p.moment1 : p.moment2;
}

/// What a rank holds of one of a parameter's tensors: its block's flat
/// elements [lo, lo + n), at element `at` of the buffer.
struct Held {
  int64_t lo = 0, n = 0, at = 0;
  bool sharded = false;
};
Held held(const plan::PlanT &owner, const plan::ParameterT &p, int role,
          const std::vector<int64_t> &coords) {
  int64_t size = owner.buffers[size_t(p.value)]->bytes / 4;
  if (role == 0 || !owner.distributed_optimizer)
    return {0, size, 0, false};
  // The distributed optimizer: the rank's dp shard of the bucket.
  int64_t dp = 0;
  for (size_t a = 0; a < owner.mesh.size(); ++a)
    if (owner.mesh[a]->name == "dp")
      dp = coords[a];
  int64_t shard = owner.buffers[size_t(roleBuffer(p, role))]->bytes / 4;
  int64_t lo = std::clamp(dp * shard - p.shard_offset, int64_t(0), size),
          hi = std::clamp((dp + 1) * shard - p.shard_offset, int64_t(0), size);
  return {lo, hi - lo, p.shard_offset + lo - dp * shard, true};
}
} // namespace

namespace {
/// A rank holds the block of `info` that checkpoints take: coordinate 0 on
/// every axis the tensor is not split over (the others hold copies); a
/// pipeline stage holds its chunks' parameters.
bool representative(const plan::ParameterT &info,
                    const std::vector<int64_t> &coords, int ppAxis,
                    int shardAxis = -1) {
  for (size_t a = 0; a < coords.size(); ++a)
    if (coords[a] != 0 && int(a) != ppAxis && int(a) != shardAxis &&
        std::find(info.shard_axis.begin(), info.shard_axis.end(), int32_t(a)) ==
            info.shard_axis.end())
      return false;
  return true;
}

/// A block as it travels to rank 0: u32 rank, i64 shape[rank],
/// i64 offset[rank], i64 lo, i64 n, f32 data[n] (the block's flat elements
/// [lo, lo + n): a dp shard of moments, or all of it).
void appendBlock(std::vector<uint8_t> &out, const std::vector<int64_t> &shape,
                 const std::vector<int64_t> &offset, int64_t lo, int64_t n,
                 const float *data) {
  auto put = [&](const void *p, size_t bytes) {
    const auto *b = static_cast<const uint8_t *>(p);
    out.insert(out.end(), b, b + bytes);
  };
  uint32_t rank = uint32_t(shape.size());
  put(&rank, 4);
  put(shape.data(), 8 * shape.size());
  put(offset.data(), 8 * offset.size());
  put(&lo, 8);
  put(&n, 8);
  put(data, 4 * size_t(n));
}

/// The mesh axis a plan's moments are sharded over (-1: none).
int shardAxisOf(const plan::PlanT &owner, int role) {
  if (role == 0 || !owner.distributed_optimizer)
    return -1;
  for (size_t a = 0; a < owner.mesh.size(); ++a)
    if (owner.mesh[a]->name == "dp")
      return int(a);
  return -1;
}
} // namespace

Result<std::vector<float>> Session::gather(const StateTensor &t) const {
  if (processComm())
    return gatherToRoot(t);
  const plan::ParameterT &info = *t.param;
  std::vector<float> whole(size_t(elements(info.global_shape)), 0.0f), block;
  int ppAxis = mesh_.axisIndex("pp");
  std::vector<float> local;
  for (const Rank &rank : ranks_)
    for (const Part &part : rank.parts)
      if (const plan::ParameterT *p = findParameter(part, info.name)) {
        if (!representative(info, rank.coords, ppAxis,
                            shardAxisOf(*part.plan, t.role)))
          break;
        int32_t buffer = roleBuffer(*p, t.role);
        const plan::BufferT &b = *part.plan->buffers[size_t(buffer)];
        const plan::BufferT &value = *part.plan->buffers[size_t(p->value)];
        block.resize(size_t(b.bytes / 4));
        if (Status s = part.executor->download(buffer, block.data(),
                                               size_t(b.bytes));
            !s.ok())
          return s;
        Held h = held(*part.plan, *p, t.role, rank.coords);
        local.assign(size_t(value.bytes / 4), 0.0f);
        std::copy_n(block.data() + h.at, h.n, local.data() + h.lo);
        copyBlock(local.data(), value.shape, whole.data(), info.global_shape,
                  blockOffset(*p, *part.plan, rank), true, h.lo, h.lo + h.n);
        break; // a tied copy holds the same values
      }
  return whole;
}

Result<std::vector<float>> Session::gatherToRoot(const StateTensor &t) const {
  const plan::ParameterT &info = *t.param;
  const Rank &rank = ranks_.front();
  std::vector<uint8_t> mine;
  std::vector<float> block;
  for (const Part &part : rank.parts)
    if (const plan::ParameterT *p = findParameter(part, info.name)) {
      if (!representative(info, rank.coords, mesh_.axisIndex("pp"),
                          shardAxisOf(*part.plan, t.role)))
        break;
      int32_t buffer = roleBuffer(*p, t.role);
      const plan::BufferT &b = *part.plan->buffers[size_t(buffer)];
      block.resize(size_t(b.bytes / 4));
      if (Status s =
              part.executor->download(buffer, block.data(), size_t(b.bytes));
          !s.ok())
        return s;
      Held h = held(*part.plan, *p, t.role, rank.coords);
      appendBlock(mine, part.plan->buffers[size_t(p->value)]->shape,
                  blockOffset(*p, *part.plan, rank), h.lo, h.n,
                  block.data() + h.at);
      break; // a tied copy holds the same values
    }
  std::vector<std::vector<uint8_t>> all;
  if (Status s =
          processComm()->gatherToRoot(mine, &all, "the blocks of " + t.name);
      !s.ok())
    return s;
  if (rank.id != 0)
    return std::vector<float>();
  std::vector<float> whole(size_t(elements(info.global_shape)), 0.0f);
  for (size_t r = 0; r < all.size(); ++r) {
    const std::vector<uint8_t> &bytes = all[r];
    if (bytes.empty())
      continue;
    // Written by appendBlock on a rank of this job (the same plan).
    auto bad = [&] {
      return Status::error(mesh_.describe(int64_t(r)) +
                           " sent a malformed "
                           "block of " +
                           t.name);
    };
    uint32_t dims = 0;
    if (bytes.size() < 4)
      return bad();
    std::memcpy(&dims, bytes.data(), 4);
    size_t header = 4 + 16 * size_t(dims) + 16;
    if (dims != info.global_shape.size() || bytes.size() < header)
      return bad();
    std::vector<int64_t> shape(dims), offset(dims);
    int64_t lo = 0, count = 0;
    std::memcpy(shape.data(), bytes.data() + 4, 8 * dims);
    std::memcpy(offset.data(), bytes.data() + 4 + 8 * dims, 8 * dims);
    std::memcpy(&lo, bytes.data() + 4 + 16 * dims, 8);
    std::memcpy(&count, bytes.data() + 12 + 16 * dims, 8);
    int64_t n = elements(shape);
    for (uint32_t d = 0; d < dims; ++d)
      if (shape[d] < 0 || offset[d] < 0 ||
          offset[d] + shape[d] > info.global_shape[d])
        return bad();
    if (lo < 0 || count < 0 || lo > n || count > n - lo ||
        bytes.size() != header + 4 * size_t(count))
      return bad();
    block.assign(size_t(n), 0.0f);
    std::memcpy(block.data() + lo, bytes.data() + header, 4 * size_t(count));
    copyBlock(block.data(), shape, whole.data(), info.global_shape, offset,
              true, lo, lo + count);
  }
  return whole;
}

Status Session::scatter(const StateTensor &t, const std::vector<float> &whole) {
  std::vector<float> block, local;
  for (Rank &rank : ranks_)
    for (Part &part : rank.parts)
      if (const plan::ParameterT *p = findParameter(part, t.param->name)) {
        int32_t buffer = roleBuffer(*p, t.role);
        const plan::BufferT &b = *part.plan->buffers[size_t(buffer)];
        const plan::BufferT &value = *part.plan->buffers[size_t(p->value)];
        block.resize(size_t(b.bytes / 4));
        Held h = held(*part.plan, *p, t.role, rank.coords);
        if (h.sharded) {
          // The rank's range of the block into the bucket's shard buffer,
          // which holds other parameters' ranges too.
          if (Status s = part.executor->download(buffer, block.data(),
                                                 size_t(b.bytes));
              !s.ok())
            return s;
          local.resize(size_t(value.bytes / 4));
          copyBlock(local.data(), value.shape,
                    const_cast<float *>(whole.data()), p->global_shape,
                    blockOffset(*p, *part.plan, rank), false);
          std::copy_n(local.data() + h.lo, h.n, block.data() + h.at);
        } else {
          copyBlock(block.data(), b.shape, const_cast<float *>(whole.data()),
                    p->global_shape, blockOffset(*p, *part.plan, rank), false);
        }
        if (Status s =
                part.executor->upload(buffer, block.data(), size_t(b.bytes));
            !s.ok())
          return s;
      }
  return Status::success();
}

Status Session::save(const std::string &directory) const {
  if (!broken_.empty())
    return Status::error("not saving: a step failed and left the ranks out "
                         "of step (" + broken_ + ")");
  Checkpoint c;
  c.step = step_;
  c.dataPosition = dataPosition_;
  c.seed = options_.seed;
  c.scalars = {{"optimizer_steps", double(optimizerSteps_)},
               {"loss_scale", lossScale_},
               {"good_steps", double(goodSteps_)}};
  // Whole tensors: a checkpoint does not depend on the mesh. In a job of
  // processes rank 0 assembles them and writes.
  for (const StateTensor &t : stateTensors(true)) {
    Result<std::vector<float>> whole = gather(t);
    if (!whole.ok())
      return Status::error(whole.message());
    c.tensors.push_back({t.name, t.param->global_shape, std::move(*whole)});
  }
  if (!processComm())
    return saveCheckpoint(directory, c);
  // Every rank returns what rank 0's write gave.
  std::string written;
  if (processRank() == 0)
    if (Status s = saveCheckpoint(directory, c); !s.ok())
      written =
          s.message().empty() ? "the checkpoint write failed" : s.message();
  std::vector<uint8_t> result(written.begin(), written.end());
  if (Status s = processComm()->broadcastFromRoot(result, "the checkpoint's "
                                                          "write");
      !s.ok())
    return s;
  if (!result.empty())
    return Status::error(processRank() == 0
                             ? std::string(result.begin(), result.end())
                             : "rank 0 could not write the checkpoint: " +
                                   std::string(result.begin(), result.end()));
  return Status::success();
}

Status Session::load(const std::string &directory) {
  std::vector<StateTensor> wanted = stateTensors(true);
  // The most this plan's checkpoint can hold: its tensors (name, rank,
  // dims, data each) and room for the header and scalars.
  uint64_t maxBytes = uint64_t(1) << 16;
  for (const StateTensor &w : wanted)
    maxBytes += 8 + w.name.size() + 8 * w.param->global_shape.size() +
                4 * uint64_t(elements(w.param->global_shape));
  Result<Checkpoint> read = loadCheckpoint(directory, maxBytes);
  if (!read.ok())
    return Status::error(read.message());
  const Checkpoint &c = *read;
  std::string where = "the checkpoint in '" + directory + "'";
  if (c.tensors.size() != wanted.size())
    return Status::error(where + " has " + std::to_string(c.tensors.size()) +
                         " tensors; the plan '" + planPath_ + "' needs " +
                         std::to_string(wanted.size()) +
                         " (parameters and AdamW moments): was it saved "
                         "from another model?");
  // Check everything before changing anything. Tensors match by name: a
  // pipeline's chunks list their parameters in another order.
  std::vector<const CheckpointTensor *> found;
  for (const StateTensor &w : wanted) {
    const CheckpointTensor *t = nullptr;
    for (const CheckpointTensor &candidate : c.tensors)
      if (candidate.name == w.name)
        t = &candidate;
    if (!t)
      return Status::error(where + " has no '" + w.name + "', which the plan '" +
                           planPath_ + "' needs: was it saved from another "
                           "model?");
    if (t->shape != w.param->global_shape)
      return Status::error(where + " has '" + t->name +
                           "' with another shape than the plan's");
    // A non-finite value (or a negative second moment, whose square root
    // is NaN) would turn every parameter into NaN at the first update.
    bool second = wanted[found.size()].role == 2;
    for (size_t e = 0; e < t->data.size(); ++e)
      if (!std::isfinite(t->data[e]) || (second && t->data[e] < 0))
        return Status::error(where + " holds an impossible value: '" + t->name +
                             "' element " + std::to_string(e) + " is " +
                             numberText(t->data[e]) +
                             (second ? " (second moments are finite and >= 0)"
                                     : " (values are finite)") +
                             "; load another checkpoint");
    found.push_back(t);
  }
  // The training-state scalars: each known one exactly once, in its range.
  // The checksum matched, so a value out of range was written that way (or
  // edited) and would make the run go wrong later instead of failing here.
  std::optional<double> optimizerSteps, lossScale, goodSteps;
  for (const auto &[name, value] : c.scalars) {
    std::optional<double> *slot = name == "optimizer_steps" ? &optimizerSteps
                                  : name == "loss_scale"    ? &lossScale
                                  : name == "good_steps"    ? &goodSteps
                                                            : nullptr;
    if (!slot)
      return Status::error(where + " holds the scalar '" + name +
                           "', which this build does not know: was it "
                           "saved by another version of Loom?");
    *slot = value;
  }
  for (auto [name, slot] : {std::pair{"optimizer_steps", &optimizerSteps},
                            std::pair{"loss_scale", &lossScale},
                            std::pair{"good_steps", &goodSteps}})
    if (!*slot)
      return Status::error(where + " lacks the scalar '" + name +
                           "': was it saved by another version of Loom?");
  auto isCount = [](double v, double most) {
    return v >= 0 && v <= most && v == std::floor(v); // false for NaN
  };
  auto impossible = [&](const std::string &what) {
    return Status::error(where + " holds an impossible value: " + what +
                         "; load another checkpoint");
  };
  if (!isCount(*optimizerSteps, double(c.step)))
    return impossible("optimizer_steps " + numberText(*optimizerSteps) +
                      " (a whole number of updates, at most the step " +
                      std::to_string(c.step) + ")");
  if (!isCount(*goodSteps, *optimizerSteps))
    return impossible("good_steps " + numberText(*goodSteps) +
                      " (a whole number, at most optimizer_steps)");
  if (!(std::isfinite(*lossScale) && *lossScale > 0))
    return impossible("loss_scale " + numberText(*lossScale) +
                      " (a finite number > 0)");

  for (size_t i = 0; i < wanted.size(); ++i)
    if (Status s = scatter(wanted[i], found[i]->data); !s.ok())
      return s;
  if (Status s = zeroGradients(); !s.ok())
    return s;
  step_ = c.step;
  dataPosition_ = c.dataPosition;
  options_.seed = c.seed;
  optimizerSteps_ = int64_t(*optimizerSteps);
  lossScale_ = plan_->precision->dynamic_loss_scaling ? *lossScale : 1.0;
  goodSteps_ = int64_t(*goodSteps);
  return Status::success();
}

Result<std::vector<float>> Session::parameter(const std::string &name) {
  if (!broken_.empty())
    return Status::error("a step failed and left the ranks out of step (" +
                         broken_ + ")");
  for (const StateTensor &t : stateTensors(false))
    if (t.name == name) {
      Result<std::vector<float>> whole = gather(t);
      if (!whole.ok() || !processComm())
        return whole;
      // Every rank of the job gets rank 0's whole tensor.
      std::vector<uint8_t> bytes(whole->size() * 4);
      if (!whole->empty())
        std::memcpy(bytes.data(), whole->data(), bytes.size());
      if (Status s =
              processComm()->broadcastFromRoot(bytes, "parameter " + name);
          !s.ok())
        return s;
      std::vector<float> values(bytes.size() / 4);
      if (!values.empty())
        std::memcpy(values.data(), bytes.data(), bytes.size());
      return values;
    }
  return Status::error("the plan has no parameter '" + name + "'");
}

} // namespace runtime
} // namespace loom
