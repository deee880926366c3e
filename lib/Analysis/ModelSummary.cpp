//===- ModelSummary.cpp - parameters, FLOPs and bytes of a model ----------===//

#include "loom/Analysis/ModelSummary.h"
#include "loom/dialects/Loom/IR/LoomOps.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

using namespace mlir;

namespace loom {

FailureOr<ModelSummary> summarizeModel(ModuleOp module) {
  ModelSummary summary;
  llvm::StringMap<ParameterOp> seen;
  bool ok = true;
  module.walk([&](Operation *op) {
    if (op->getDialect() && isa<LoomDialect>(op->getDialect()))
      ++summary.opCounts[op->getName().getStringRef().str()];
    if (auto cost = dyn_cast<CostOpInterface>(op)) {
      int64_t flops = cost.getFlops();
      summary.flops += flops;
      if (isa<MatmulOp>(op))
        summary.matmulFlops += flops;
      summary.bytesRead += cost.getBytesRead();
      summary.bytesWritten += cost.getBytesWritten();
    }
    auto param = dyn_cast<ParameterOp>(op);
    if (!param)
      return;
    auto [it, inserted] = seen.try_emplace(param.getName(), param);
    if (!inserted) {
      // The same name twice is one shared (tied) parameter; it must agree.
      ParameterOp first = it->second;
      if (first.getType() != param.getType() ||
          first.getInit() != param.getInit()) {
        InFlightDiagnostic diag = param.emitError();
        diag << "parameter '" << param.getName()
             << "' is declared again with type " << param.getType()
             << " and init " << param.getInit()
             << "; a shared parameter must repeat its first declaration "
                "exactly";
        diag.attachNote(first.getLoc())
            << "first declared here with type " << first.getType()
            << " and init " << first.getInit();
        ok = false;
      }
      return;
    }
    RankedTensorType type = param.getType();
    ParameterSummary p;
    p.name = param.getName().str();
    p.shape.assign(type.getShape().begin(), type.getShape().end());
    llvm::raw_string_ostream(p.elementType) << type.getElementType();
    p.elements = type.getNumElements();
    p.bytes = tensorBytes(type);
    summary.totalParameters += p.elements;
    summary.parameterBytes += p.bytes;
    summary.parametersByGroup[StringRef(p.name).rsplit('.').first.str()] +=
        p.elements;
    summary.parameters.push_back(std::move(p));
  });
  if (!ok)
    return failure();
  return summary;
}

static std::string shapeString(ArrayRef<int64_t> shape) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "[";
  llvm::interleaveComma(shape, os);
  os << "]";
  return s;
}

void printModelSummary(const ModelSummary &summary, llvm::raw_ostream &os) {
  os << "parameters: " << summary.totalParameters << " ("
     << summary.parameterBytes << " bytes)\n";
  for (const auto &[group, count] : summary.parametersByGroup)
    os << "  " << llvm::left_justify(group, 24) << " " << count << "\n";
  os << "flops per execution: " << summary.flops << " (matmul "
     << summary.matmulFlops << ")\n";
  os << "bytes read: " << summary.bytesRead
     << ", bytes written: " << summary.bytesWritten << "\n";
  os << "ops:\n";
  for (const auto &[name, count] : summary.opCounts)
    os << "  " << llvm::left_justify(name, 24) << " " << count << "\n";
  os << "parameter tensors:\n";
  for (const ParameterSummary &p : summary.parameters)
    os << "  " << llvm::left_justify(p.name, 40) << " "
       << llvm::left_justify(shapeString(p.shape), 16) << " " << p.elementType
       << "\n";
}

void printModelSummaryJson(const ModelSummary &summary, llvm::raw_ostream &os) {
  llvm::json::Array params;
  for (const ParameterSummary &p : summary.parameters)
    params.push_back(llvm::json::Object{{"name", p.name},
                                        {"shape", llvm::json::Array(p.shape)},
                                        {"dtype", p.elementType},
                                        {"elements", p.elements}});
  llvm::json::Object groups;
  for (const auto &[group, count] : summary.parametersByGroup)
    groups[group] = count;
  llvm::json::Object ops;
  for (const auto &[name, count] : summary.opCounts)
    ops[name] = count;
  llvm::json::Object root{{"parameters", summary.totalParameters},
                          {"parameter_bytes", summary.parameterBytes},
                          {"flops", summary.flops},
                          {"matmul_flops", summary.matmulFlops},
                          {"bytes_read", summary.bytesRead},
                          {"bytes_written", summary.bytesWritten},
                          {"parameter_groups", std::move(groups)},
                          {"ops", std::move(ops)},
                          {"parameter_tensors", std::move(params)}};
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(root))) << "\n";
}

} // namespace loom
