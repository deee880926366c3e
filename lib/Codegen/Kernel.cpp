//===- Kernel.cpp - checks on a kernel description ------------------------===//
//
// A description the emitters print must be well formed: every operand an
// earlier node of a stage that can see it, types that agree, loads and
// stores inside the iteration space. The builders (lib/Codegen/
// FusedKernel.cpp, and lib/Plan for the optimizer's kernel) run the check on
// every kernel, so a malformed description is a compiler error, never bad
// code.
//
//===----------------------------------------------------------------------===//

#include "loom/Codegen/Kernel.h"

#include <cctype>
#include <set>
#include <string>

namespace loom {
namespace codegen {

int KernelDesc::intParams() const {
  int n = 0;
  for (const Param &p : params)
    n += !isRealParam(p.kind);
  return n;
}

int KernelDesc::realParams() const {
  int n = 0;
  for (const Param &p : params)
    n += isRealParam(p.kind);
  return n;
}

namespace {

bool isIdentifier(const std::string &s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0])))
    return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
      return false;
  return true;
}

/// Nodes a scalar stage (once per row) may not use: they name an element.
bool perElement(NodeOp op) {
  return op == NodeOp::Load || op == NodeOp::Index || op == NodeOp::Col ||
         op == NodeOp::DropoutKeep;
}

} // namespace

std::optional<BroadcastIndex>
broadcastIndex(const std::vector<int64_t> &operand,
               const std::vector<int64_t> &result) {
  if (operand.size() > result.size())
    return std::nullopt;
  size_t lead = result.size() - operand.size();
  // Kept dimensions: where the operand has the result's size (not 1).
  int64_t first = -1, last = -1;
  for (size_t d = 0; d < result.size(); ++d) {
    int64_t o = d < lead ? 1 : operand[d - lead];
    if (o == result[d] && o != 1) {
      if (first < 0)
        first = int64_t(d);
      else if (last != int64_t(d) - 1)
        return std::nullopt; // two runs of kept dimensions
      last = int64_t(d);
    } else if (o != 1) {
      return std::nullopt; // not a broadcast of the result
    }
  }
  BroadcastIndex b;
  if (first < 0) {
    b.mod = 1; // every element reads element 0
    return b;
  }
  int64_t inner = 1, kept = 1, all = 1;
  for (size_t d = 0; d < result.size(); ++d) {
    all *= result[d];
    if (int64_t(d) > last)
      inner *= result[d];
    else if (int64_t(d) >= first)
      kept *= result[d];
  }
  b.div = inner;
  b.mod = kept * inner == all ? 0 : kept;
  return b;
}

std::string verifyKernel(const KernelDesc &k) {
  auto where = [&](const std::string &what) {
    return "kernel '" + k.name + "': " + what;
  };
  if (!isIdentifier(k.name))
    return where("the name is not a C identifier");
  if (k.space == Space::Elementwise) {
    if (k.stages.size() != 1 || !k.stages[0].loop)
      return where("an elementwise kernel has one loop stage");
    if (!k.runtimeExtent && k.extent <= 0)
      return where("no elements");
    if (k.runtimeExtent && k.extent < 0)
      return where("a negative extent");
  } else if (k.rows <= 0 || k.cols <= 0) {
    return where("rows and cols must be positive");
  }
  // Which nodes each point of the kernel sees: a loop stage's own nodes,
  // and every earlier scalar-stage node and row value.
  std::vector<int> stageOf(k.nodes.size(), -1);
  std::set<int> rowVisible;
  for (size_t s = 0; s < k.stages.size(); ++s) {
    const Stage &stage = k.stages[s];
    std::set<int> local;
    auto visible = [&](int id) {
      return id >= 0 && size_t(id) < k.nodes.size() &&
             (local.count(id) || rowVisible.count(id));
    };
    for (int id : stage.nodes) {
      if (id < 0 || size_t(id) >= k.nodes.size())
        return where("stage " + std::to_string(s) + " names node " +
                     std::to_string(id) + ", which does not exist");
      if (stageOf[id] >= 0)
        return where("node " + std::to_string(id) + " is in two stages");
      stageOf[id] = int(s);
      const Node &n = k.nodes[id];
      if (n.op == NodeOp::RowValue)
        return where("row value " + std::to_string(id) +
                     " is set by a reduction, not listed in a stage");
      for (int o : n.operands)
        if (!visible(o))
          return where("node " + std::to_string(id) + " uses node " +
                       std::to_string(o) + " before it is computed");
      if (!stage.loop && perElement(n.op) &&
          !(n.op == NodeOp::Load && n.mod == 1))
        return where("node " + std::to_string(id) +
                     " reads an element in a once-per-row stage");
      if (k.space == Space::Elementwise &&
          (n.op == NodeOp::LoadAt || n.op == NodeOp::LoadRow ||
           n.op == NodeOp::Row || n.op == NodeOp::Col))
        return where("node " + std::to_string(id) +
                     " names a row in an elementwise kernel");
      if (n.op == NodeOp::Load || n.op == NodeOp::LoadAt ||
          n.op == NodeOp::LoadRow) {
        if (n.arg < 0 || size_t(n.arg) >= k.args.size())
          return where("node " + std::to_string(id) + " loads argument " +
                       std::to_string(n.arg) + ", which does not exist");
        bool isInt = k.args[n.arg].type != ElemType::F32;
        if (isInt != (n.type == ValueType::Int))
          return where("node " + std::to_string(id) +
                       " loads with the wrong type");
        if (n.div <= 0 || n.mod < 0)
          return where("node " + std::to_string(id) + " has a bad index");
      }
      if (n.op == NodeOp::ParamInt || n.op == NodeOp::ParamReal ||
          n.op == NodeOp::DropoutKeep) {
        auto bad = [&](int p, bool wantInt) {
          return p < 0 || size_t(p) >= k.params.size() ||
                 !isRealParam(k.params[p].kind) != wantInt;
        };
        if (bad(n.param, n.op != NodeOp::ParamReal) ||
            (n.op == NodeOp::DropoutKeep && bad(n.param2, true)))
          return where("node " + std::to_string(id) +
                       " reads a runtime scalar that does not exist");
      }
      local.insert(id);
    }
    for (const Reduce &r : stage.reduces) {
      if (!stage.loop)
        return where("a reduction in a once-per-row stage");
      if (k.space != Space::Rows)
        return where("a row reduction in an elementwise kernel");
      if (!local.count(r.node) || r.result < 0 ||
          size_t(r.result) >= k.nodes.size() ||
          k.nodes[r.result].op != NodeOp::RowValue)
        return where("a reduction of stage " + std::to_string(s) +
                     " is malformed");
    }
    auto checkOutput = [&](int arg, int node, const char *what) -> std::string {
      if (arg < 0 || size_t(arg) >= k.args.size() || !k.args[arg].output)
        return where(std::string(what) + " to argument " + std::to_string(arg) +
                     ", which is not an output");
      if (!visible(node))
        return where(std::string(what) + " of node " + std::to_string(node) +
                     ", which this stage does not see");
      return "";
    };
    for (const Store &st : stage.stores)
      if (std::string e = checkOutput(st.arg, st.node, "a store"); !e.empty())
        return e;
    for (const Accum &a : stage.accums) {
      if (std::string e = checkOutput(a.arg, a.node, "a sum"); !e.empty())
        return e;
      if (a.perCol && (k.space != Space::Rows || !stage.loop))
        return where("a column sum outside a row loop");
    }
    if (stage.loop && k.space == Space::Rows && !stage.checks.empty())
      return where("a check in a row's loop (checks go in a once-per-row "
                   "stage)");
    for (const Check &c : stage.checks) {
      if (!visible(c.node) || k.nodes[c.node].type != ValueType::Bool)
        return where("a check of a node that is not a visible condition");
    }
    if (!stage.loop)
      rowVisible.insert(local.begin(), local.end());
    for (const Reduce &r : stage.reduces)
      rowVisible.insert(r.result);
  }
  return "";
}

} // namespace codegen
} // namespace loom
