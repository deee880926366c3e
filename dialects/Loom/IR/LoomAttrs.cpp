//===- LoomAttrs.cpp - loom attributes ------------------------------------===//

#include "loom/dialects/Loom/IR/LoomDialect.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace mlir;
using namespace loom;

#include "dialects/Loom/LoomAttrInterfaces.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/Loom/LoomAttrs.cpp.inc"

void LoomDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/Loom/LoomAttrs.cpp.inc"
      >();
}

static LogicalResult verifyStd(function_ref<InFlightDiagnostic()> emitError,
                               const APFloat &value) {
  double std = value.convertToDouble();
  if (!std::isfinite(std) || std <= 0.0)
    return emitError() << "std must be a positive finite number, got "
                       << llvm::formatv("{0}", std).str()
                       << " (GPT-2 and Megatron use 0.02)";
  return success();
}

LogicalResult
NormalInitAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                       APFloat std) {
  return verifyStd(emitError, std);
}

double NormalInitAttr::getEffectiveStd() const {
  return getStd().convertToDouble();
}
std::optional<double> NormalInitAttr::getConstantValue() const {
  return std::nullopt;
}

LogicalResult
ScaledNormalInitAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                             APFloat std, int64_t layers) {
  if (failed(verifyStd(emitError, std)))
    return failure();
  if (layers < 1)
    return emitError() << "layers must be at least 1 (the number of "
                          "transformer layers the std is scaled for), got "
                       << layers;
  return success();
}

double ScaledNormalInitAttr::getEffectiveStd() const {
  return getStd().convertToDouble() /
         std::sqrt(2.0 * static_cast<double>(getLayers()));
}
std::optional<double> ScaledNormalInitAttr::getConstantValue() const {
  return std::nullopt;
}

double ZerosInitAttr::getEffectiveStd() const { return 0.0; }
std::optional<double> ZerosInitAttr::getConstantValue() const { return 0.0; }

double OnesInitAttr::getEffectiveStd() const { return 0.0; }
std::optional<double> OnesInitAttr::getConstantValue() const { return 1.0; }
