//===- SavedTensors.cpp - what each layer keeps for its backward ----------===//
//
// Reads a built plan (loom/Report/SavedTensors.h). A buffer is kept for the
// backward when the backward reads what the forward wrote: in a pipeline
// chunk exactly the Stash arena; otherwise the root buffers whose lifetime
// (inputs from before the program) spans the start of the backward, the
// loss gradient's seed. Views are their source's storage and are not
// counted again.
//
//===----------------------------------------------------------------------===//

#include "loom/Report/SavedTensors.h"
#include "loom/runtime/Decoder.h"
#include "loom/runtime/InstructionSet.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <sstream>

namespace loom {

namespace {

std::string bytesText(int64_t bytes) {
  char buf[64];
  if (bytes >= (int64_t(1) << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / (1 << 30));
  else if (bytes >= (int64_t(1) << 20))
    std::snprintf(buf, sizeof buf, "%.2f MiB", double(bytes) / (1 << 20));
  else if (bytes >= 1024)
    std::snprintf(buf, sizeof buf, "%.2f KiB", double(bytes) / 1024);
  else
    std::snprintf(buf, sizeof buf, "%lld B", (long long)bytes);
  return buf;
}

SavedTensors savedOf(const plan::PlanT &p, int64_t stages) {
  SavedTensors out;
  bool chunk = p.activation_in >= 0 || p.activation_out >= 0;
  out.chunk = chunk ? p.chunk_index : -1;
  out.stage = chunk ? p.chunk_index % std::max<int64_t>(1, stages) : 0;
  out.slots = chunk ? std::max<int64_t>(1, p.stash_slots) : 1;
  size_t n = p.buffers.size();
  // A view shares its source's offset and size exactly only when it is the
  // whole storage; count each (arena, offset) once, the first buffer there.
  std::vector<bool> keep(n, false);
  if (chunk) {
    for (size_t i = 0; i < n; ++i)
      keep[i] = p.buffers[i]->arena == plan::Arena::Stash;
  } else {
    // Lifetimes per storage. A view (named "view.N": a reshape, a fan_out)
    // lies at its source's offset and the backward often reads the view, so
    // a view's uses count for its source: the buffer at the same offset
    // written last before the view is first read (the planner reuses an
    // offset only after everything reading it, views included, is done).
    const int64_t none = std::numeric_limits<int64_t>::max();
    std::vector<int64_t> first(n, none), last(n, -1);
    auto touch = [&](int32_t id, int64_t k) {
      if (id < 0 || size_t(id) >= n)
        return;
      first[size_t(id)] = std::min(first[size_t(id)], k);
      last[size_t(id)] = std::max(last[size_t(id)], k);
    };
    for (const auto &in : p.inputs)
      touch(in->buffer, -1);
    const auto &insts = p.microbatch->instructions;
    for (int64_t k = 0; k < int64_t(insts.size()); ++k)
      runtime::forEachBufferOf(*insts[size_t(k)],
                               [&](int32_t id) { touch(id, k); });
    auto isView = [&](size_t i) {
      return p.buffers[i]->name.rfind("view.", 0) == 0;
    };
    std::vector<bool> folded(n, false);
    for (size_t v = 0; v < n; ++v) {
      if (!isView(v) || first[v] == none)
        continue;
      const plan::BufferT &view = *p.buffers[v];
      size_t source = n;
      for (size_t i = 0; i < n; ++i) {
        const plan::BufferT &b = *p.buffers[i];
        if (isView(i) || b.arena != view.arena || b.offset != view.offset ||
            first[i] > first[v])
          continue;
        if (source == n || first[i] > first[source])
          source = i;
      }
      if (source < n) {
        last[source] = std::max(last[source], last[v]);
        folded[v] = true;
      }
    }
    // Where the backward starts: the loss gradient's seed. (A plan without
    // a pipeline fuses across its forward/backward boundary, so its
    // forward_end does not mark it.)
    int64_t split = p.forward_end;
    for (int64_t k = 0; k < int64_t(insts.size()); ++k)
      if (insts[size_t(k)]->op == runtime::opName(runtime::Op::LossGradSeed)) {
        split = k;
        break;
      }
    for (size_t i = 0; i < n; ++i)
      keep[i] = !folded[i] && p.buffers[i]->arena == plan::Arena::Workspace &&
                first[i] < split && last[i] >= split;
  }
  std::map<std::pair<int, int64_t>, bool> seen; // (arena, offset)
  for (size_t i = 0; i < n; ++i) {
    const plan::BufferT &b = *p.buffers[i];
    if (!keep[i] || b.bytes == 0)
      continue;
    if (!seen.emplace(std::make_pair(int(b.arena), b.offset), true).second)
      continue; // a view of a buffer already counted
    out.tensors.push_back({b.name, b.shape, b.dtype, b.bytes, b.layer});
  }
  std::stable_sort(out.tensors.begin(), out.tensors.end(),
                   [](const SavedTensor &a, const SavedTensor &b) {
                     return a.layer < b.layer;
                   });
  return out;
}

} // namespace

std::vector<SavedTensors> savedTensors(const plan::PlanT &plan) {
  if (plan.chunks.empty())
    return {savedOf(plan, 1)};
  int64_t stages = plan.mesh.size() > 1 ? plan.mesh[1]->size : 1;
  std::vector<SavedTensors> out;
  for (const auto &chunk : plan.chunks)
    out.push_back(savedOf(*chunk, stages));
  return out;
}

std::string savedTensorsText(const plan::PlanT &plan) {
  std::ostringstream os;
  os << "kept for the backward, per microbatch (what the backward reads "
        "from the forward; dropout masks are redrawn, never kept)\n";
  for (const SavedTensors &s : savedTensors(plan)) {
    int64_t total = 0;
    for (const SavedTensor &t : s.tensors)
      total += t.bytes;
    os << "\n"
       << (s.chunk < 0 ? std::string("the plan")
                       : "chunk " + std::to_string(s.chunk) + " (stage " +
                             std::to_string(s.stage) + ", " +
                             std::to_string(s.slots) + " in flight)")
       << ": " << s.tensors.size() << " tensors, " << bytesText(total)
       << " per microbatch\n";
    for (size_t i = 0; i < s.tensors.size();) {
      int64_t layer = s.tensors[i].layer, sum = 0;
      size_t j = i;
      for (; j < s.tensors.size() && s.tensors[j].layer == layer; ++j)
        sum += s.tensors[j].bytes;
      os << "  "
         << (layer < 0 ? std::string("outside the layers")
                       : "layer " + std::to_string(layer))
         << ": " << (j - i) << " tensors, " << bytesText(sum) << "\n";
      for (; i < j; ++i) {
        const SavedTensor &t = s.tensors[i];
        std::string shape = "[";
        for (size_t d = 0; d < t.shape.size(); ++d)
          shape += (d ? "x" : "") + std::to_string(t.shape[d]);
        shape += "]";
        char line[256];
        std::snprintf(line, sizeof line, "    %-24s %-20s %-5s %12lld B\n",
                      t.name.c_str(), shape.c_str(),
                      runtime::dtypeName(t.dtype), (long long)t.bytes);
        os << line;
      }
    }
  }
  return os.str();
}

} // namespace loom
