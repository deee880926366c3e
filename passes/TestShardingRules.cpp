//===- TestShardingRules.cpp - --loom-test-sharding-rules -----------------===//
//
// Reports each op's ShardingRuleOpInterface rule as a remark so lit can check
// the rules directly, apart from the propagation that reads them.
//
//===----------------------------------------------------------------------===//

#include "loom/passes/Passes.h"

#include "llvm/Support/raw_ostream.h"

#define DEBUG_TYPE "loom-test-sharding-rules"

namespace loom {
#define GEN_PASS_DEF_LOOMTESTSHARDINGRULES
#include "passes/Passes.h.inc"
} // namespace loom

using namespace mlir;

namespace loom {
namespace {

/// Factors are named i, j, k, ... as in Shardy's notation; past z they are
/// numbered (z_1, z_2, ...), which no loom op needs.
std::string factorName(int64_t factor) {
  constexpr int64_t kLetters = 'z' - 'i' + 1;
  if (factor < kLetters)
    return std::string(1, char('i' + factor));
  return "z_" + std::to_string(factor - kLetters + 1);
}

/// `([i, k], [k, j]) -> ([i, j]) {i=8, j=16, k=32} reduction={k}`; `_` marks
/// a dimension that carries no factor (it stays whole).
std::string printRule(const ShardingRule &rule) {
  std::string text;
  llvm::raw_string_ostream os(text);
  auto tensors = [&](ArrayRef<SmallVector<int64_t>> all) {
    os << '(';
    llvm::interleaveComma(all, os, [&](ArrayRef<int64_t> dims) {
      os << '[';
      llvm::interleaveComma(dims, os, [&](int64_t f) {
        os << (f == ShardingRule::kNoFactor ? "_" : factorName(f));
      });
      os << ']';
    });
    os << ')';
  };
  auto factors = [&](StringRef label, ArrayRef<int64_t> list) {
    if (list.empty())
      return;
    os << ' ' << label << "={";
    llvm::interleaveComma(list, os, [&](int64_t f) { os << factorName(f); });
    os << '}';
  };
  tensors(rule.operandFactors);
  os << " -> ";
  tensors(rule.resultFactors);
  os << " {";
  llvm::interleaveComma(
      llvm::seq<int64_t>(0, rule.factorSizes.size()), os,
      [&](int64_t f) { os << factorName(f) << '=' << rule.factorSizes[f]; });
  os << '}';
  SmallVector<int64_t> reductions;
  for (int64_t f = 0; f < int64_t(rule.factorSizes.size()); ++f)
    if (rule.isReductionFactor(f))
      reductions.push_back(f);
  factors("reduction", reductions);
  factors("whole", rule.wholeFactors);
  return text;
}

struct LoomTestShardingRulesPass
    : impl::LoomTestShardingRulesBase<LoomTestShardingRulesPass> {
  void runOnOperation() override {
    getOperation().walk([](Operation *op) {
      if (isa<func::FuncOp, func::ReturnOp>(op))
        return;
      if (auto ruleOp = dyn_cast<ShardingRuleOpInterface>(op))
        op->emitRemark() << op->getName() << ": "
                         << printRule(ruleOp.getShardingRule());
      else
        op->emitRemark() << op->getName()
                         << ": no sharding rule (runs on whole values)";
    });
  }
};

} // namespace
} // namespace loom
