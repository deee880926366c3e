//===- PlanFile.cpp - the plan bundle on disk, checked on load ------------===//

#include "loom/runtime/Checkpoint.h"
#include "loom/runtime/Files.h"
#include "loom/runtime/Plan.h"

#include <cstring>
#include <iomanip>
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
  if (bytes.size() != kHeaderBytes + size + 4)
    return Status::error("the plan '" + path + "' is truncated or has " +
                         "trailing bytes (" + std::to_string(bytes.size()) +
                         " bytes; its header says " +
                         std::to_string(kHeaderBytes + size + 4) + ")" +
                         recompile);
  const uint8_t *payload = bytes.data() + kHeaderBytes;
  uint32_t stored = uint32_t(readLE(payload + size, 4));
  if (stored != crc32(payload, size))
    return Status::error("the plan '" + path +
                         "' is damaged: its checksum does not match" +
                         recompile);
  // FlatBuffers reads its 8-byte fields in place, at the alignment its
  // builder gave them; the 20-byte frame header breaks that, so the payload
  // is read from an 8-byte-aligned copy.
  std::vector<uint64_t> aligned((size_t(size) + 7) / 8);
  std::memcpy(aligned.data(), payload, size_t(size));
  payload = reinterpret_cast<const uint8_t *>(aligned.data());
  flatbuffers::Verifier verifier(payload, size);
  if (!plan::VerifyPlanBuffer(verifier))
    return Status::error("the plan '" + path +
                         "' does not verify as a plan of format version " +
                         std::to_string(kPlanFormatVersion) + recompile);
  std::unique_ptr<plan::PlanT> result(plan::GetPlan(payload)->UnPack());
  if (Status s = validatePlan(*result, "the plan '" + path + "'"); !s.ok())
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
  for (const auto &axis : p.mesh)
    if (axis->size < 1 || axis->size > (int64_t(1) << 20))
      return "mesh axis '" + axis->name + "' has size " +
             std::to_string(axis->size);
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
  if (p.micro_batch_size <= 0 || p.num_microbatches <= 0 ||
      p.global_batch_size !=
          p.micro_batch_size * p.num_microbatches * p.mesh[0]->size)
    return bad("its batch sizes do not agree");
  int64_t stages = p.mesh[1]->size, n = int64_t(p.chunks.size());
  if (stages < 1 || p.chunks_per_stage < 1 ||
      n != stages * p.chunks_per_stage)
    return bad("it has " + std::to_string(n) + " chunks for pp=" +
               std::to_string(stages) + " x " +
               std::to_string(p.chunks_per_stage));
  if (int64_t(p.stage_schedules.size()) != stages)
    return bad("its schedule does not have one list per stage");
  if (p.num_microbatches < 1 || p.num_microbatches > (int64_t(1) << 30))
    return bad("its batch sizes do not agree");
  if (n > (int64_t(1) << 16) || p.num_microbatches > (int64_t(1) << 20))
    return bad("its pipeline is too large");
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

Status validatePlan(const plan::PlanT &p, const std::string &what) {
  if (!p.chunks.empty())
    return validatePipeline(p, what);
  return validateBody(p, what, /*chunk=*/false);
}

namespace {
Status validateBody(const plan::PlanT &p, const std::string &what,
                    bool chunk) {
  auto bad = [&](const std::string &why) {
    return Status::error(what + " is inconsistent: " + why +
                         "; compile it again with loomc");
  };
  int64_t nbuf = int64_t(p.buffers.size());
  if (p.arena_bytes.size() != 2)
    return bad("it has " + std::to_string(p.arena_bytes.size()) +
               " arena sizes, not 2");
  for (int64_t i = 0; i < nbuf; ++i) {
    const plan::BufferT &b = *p.buffers[i];
    int64_t elements = 1;
    for (int64_t d : b.shape) {
      if (d < 0 || (d && elements > (int64_t(1) << 50) / d))
        return bad("buffer '" + b.name + "' has a bad shape");
      elements *= d;
    }
    if (dtypeBytes(b.dtype) == 0)
      return bad("buffer '" + b.name + "' has an unknown type");
    if (b.bytes != elements * dtypeBytes(b.dtype))
      return bad("buffer '" + b.name + "' has " + std::to_string(b.bytes) +
                 " bytes for " + shapeText(b.shape) + " " +
                 dtypeName(b.dtype));
    size_t arena = size_t(b.arena);
    if (arena > 1 || b.offset < 0 || b.bytes > p.arena_bytes[arena] ||
        b.offset > p.arena_bytes[arena] - b.bytes)
      return bad("buffer '" + b.name + "' lies outside its arena");
    if (int(b.kind) < 0 || int(b.kind) > int(plan::BufferKind::MAX))
      return bad("buffer '" + b.name + "' has an unknown kind");
  }
  auto inRange = [&](int32_t id) { return id >= 0 && id < nbuf; };
  for (const auto *program : {p.microbatch.get(), p.optimizer.get()}) {
    if (!program)
      return bad("a program is missing");
    for (const auto &inst : program->instructions) {
      for (int32_t id : inst->inputs)
        if (!inRange(id))
          return bad("'" + inst->op + "' in " + program->name +
                     " reads buffer " + std::to_string(id));
      for (int32_t id : inst->outputs)
        if (!inRange(id))
          return bad("'" + inst->op + "' in " + program->name +
                     " writes buffer " + std::to_string(id));
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
      if (b.dtype != plan::DType::F32 || b.arena != plan::Arena::Persistent ||
          b.shape != p.buffers[param->value]->shape)
        return bad("parameter '" + param->name +
                   "' needs persistent f32 buffers of one shape");
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
  }
  if (p.loss_normalizer != "tokens" && p.loss_normalizer != "microbatches")
    return bad("its loss normaliser '" + p.loss_normalizer + "' is unknown");
  if (p.loss_normalizer == "tokens" &&
      (p.labels_input < 0 || p.labels_input >= int32_t(p.inputs.size())))
    return bad("its labels input does not exist");
  // The mesh: dp, pp and tp, each at least 1.
  int64_t dp = 0;
  if (std::string problem = meshProblem(p); !problem.empty())
    return bad(problem);
  dp = p.mesh[0]->size;
  if (p.micro_batch_size <= 0 || p.num_microbatches <= 0 ||
      p.global_batch_size != p.micro_batch_size * p.num_microbatches * dp)
    return bad("its batch sizes do not agree");
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
  const plan::PrecisionPolicyT &precision = *p.precision;
  if (precision.dynamic_loss_scaling &&
      !(precision.loss_scale_window > 0 && precision.min_loss_scale > 0 &&
        precision.initial_loss_scale >= precision.min_loss_scale))
    return bad("its loss-scaling settings are out of range");
  return Status::success();
}
} // namespace

void printPlanText(const plan::PlanT &p, std::ostream &os) {
  if (!p.chunks.empty()) {
    os << "plan " << p.model << " (format " << kPlanFormatVersion << ", "
       << p.compiler << ")\n  mesh";
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
  os << "  mesh";
  for (const auto &axis : p.mesh)
    os << " " << axis->name << "=" << axis->size;
  if (p.sequence_parallel)
    os << ", sequence parallel";
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
     << " GFLOP per global batch\n";
  os << "  arenas: persistent " << p.arena_bytes[0] << " bytes, workspace "
     << p.arena_bytes[1] << " bytes\n\n";
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
    os << (param->weight_decay ? "" : " no-decay") << "\n";
  }
  os << "\nbuffers (" << p.buffers.size() << "):\n";
  static const char *kinds[] = {"parameter", "gradient", "optimizer-state",
                                "input",     "output",   "temporary"};
  for (const auto &b : p.buffers)
    os << "  %" << b->name << ": " << shapeText(b->shape) << " "
       << dtypeName(b->dtype) << " " << kinds[int(b->kind)] << " @"
       << (b->arena == plan::Arena::Persistent ? "persistent" : "workspace")
       << "+" << b->offset << "\n";
  for (const auto *program : {p.microbatch.get(), p.optimizer.get()}) {
    os << "\nprogram " << program->name << " ("
       << program->instructions.size() << " instructions):\n";
    for (const auto &inst : program->instructions) {
      os << "  ";
      for (size_t i = 0; i < inst->outputs.size(); ++i)
        os << (i ? ", " : "") << bufferName(inst->outputs[i]);
      os << (inst->outputs.empty() ? "" : " = ") << inst->op;
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

} // namespace runtime
} // namespace loom
