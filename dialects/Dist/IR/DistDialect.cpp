//===- DistDialect.cpp - the dist dialect and its attributes --------------===//

#include "loom/dialects/Dist/IR/DistDialect.h"
#include "loom/dialects/Dist/IR/DistOps.h"
#include "loom/dialects/Loom/IR/LoomOps.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Transforms/InliningUtils.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace loom;
using namespace loom::dist;

#include "dialects/Dist/DistDialect.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/Dist/DistAttrs.cpp.inc"

namespace {
struct DistInlinerInterface : DialectInlinerInterface {
  using DialectInlinerInterface::DialectInlinerInterface;
  bool isLegalToInline(Operation *, Region *, bool, IRMapping &) const final {
    return true;
  }
};
} // namespace

void DistDialect::initialize() {
  addInterfaces<DistInlinerInterface>();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/Dist/DistAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialects/Dist/DistOps.cpp.inc"
      >();
}

MeshAttr loom::dist::getMesh(Operation *op) {
  DistDialect::MeshAttrHelper meshAttr(op->getContext());
  for (Operation *p = op; p; p = p->getParentOp())
    if (auto module = dyn_cast<ModuleOp>(p))
      if (MeshAttr mesh = meshAttr.getAttr(module))
        return mesh;
  return {};
}

//===----------------------------------------------------------------------===//
// #dist.mesh<dp = 2, pp = 1, tp = 4>
//===----------------------------------------------------------------------===//

Attribute MeshAttr::parse(AsmParser &parser, Type) {
  SmallVector<StringAttr> names;
  SmallVector<int64_t> sizes;
  if (parser.parseLess())
    return {};
  auto parseAxis = [&]() -> ParseResult {
    std::string name;
    int64_t size = 0;
    if (parser.parseKeywordOrString(&name) || parser.parseEqual() ||
        parser.parseInteger(size))
      return failure();
    names.push_back(StringAttr::get(parser.getContext(), name));
    sizes.push_back(size);
    return success();
  };
  if (parser.parseCommaSeparatedList(parseAxis) || parser.parseGreater())
    return {};
  return getChecked([&] { return parser.emitError(parser.getNameLoc()); },
                    parser.getContext(), names, sizes);
}

void MeshAttr::print(AsmPrinter &printer) const {
  printer << '<';
  llvm::interleaveComma(llvm::zip(getNames(), getSizes()), printer,
                        [&](auto axis) {
                          printer << std::get<0>(axis).getValue() << " = "
                                  << std::get<1>(axis);
                        });
  printer << '>';
}

LogicalResult MeshAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               ArrayRef<StringAttr> names,
                               ArrayRef<int64_t> sizes) {
  if (names.empty())
    return emitError() << "a mesh needs at least one axis";
  if (names.size() != sizes.size())
    return emitError() << "a mesh needs one size per axis";
  for (auto [i, name] : llvm::enumerate(names)) {
    if (name.getValue().empty())
      return emitError() << "mesh axis " << i << " has no name";
    if (sizes[i] < 1)
      return emitError() << "mesh axis '" << name.getValue()
                         << "' has size " << sizes[i] << "; sizes are >= 1";
    for (size_t j = 0; j < i; ++j)
      if (names[j] == name)
        return emitError() << "mesh axis '" << name.getValue()
                           << "' appears twice";
  }
  return success();
}

std::optional<int64_t> MeshAttr::getAxisSize(StringRef axis) const {
  for (auto [name, size] : llvm::zip(getNames(), getSizes()))
    if (name.getValue() == axis)
      return size;
  return std::nullopt;
}

int64_t MeshAttr::getNumRanks() const {
  int64_t n = 1;
  for (int64_t s : getSizes())
    n *= s;
  return n;
}

//===----------------------------------------------------------------------===//
// #dist.sharding<[{}, {"tp"}], partial = ["tp"]>
//===----------------------------------------------------------------------===//

Attribute ShardingAttr::parse(AsmParser &parser, Type) {
  MLIRContext *ctx = parser.getContext();
  SmallVector<StringAttr> dims, partial;
  auto parseDim = [&]() -> ParseResult {
    if (parser.parseLBrace())
      return failure();
    std::string axis;
    if (succeeded(parser.parseOptionalRBrace())) {
      dims.push_back(StringAttr::get(ctx, ""));
      return success();
    }
    if (parser.parseString(&axis) || parser.parseRBrace())
      return failure();
    dims.push_back(StringAttr::get(ctx, axis));
    return success();
  };
  if (parser.parseLess() ||
      parser.parseCommaSeparatedList(AsmParser::Delimiter::Square, parseDim))
    return {};
  if (succeeded(parser.parseOptionalComma())) {
    if (parser.parseKeyword("partial") || parser.parseEqual() ||
        parser.parseCommaSeparatedList(AsmParser::Delimiter::Square, [&] {
          std::string axis;
          if (parser.parseString(&axis))
            return failure();
          partial.push_back(StringAttr::get(ctx, axis));
          return success();
        }))
      return {};
  }
  if (parser.parseGreater())
    return {};
  return get(ctx, dims, partial);
}

void ShardingAttr::print(AsmPrinter &printer) const {
  printer << "<[";
  llvm::interleaveComma(getDims(), printer, [&](StringAttr axis) {
    printer << '{';
    if (!axis.getValue().empty())
      printer << '"' << axis.getValue() << '"';
    printer << '}';
  });
  printer << ']';
  if (!getPartial().empty()) {
    printer << ", partial = [";
    llvm::interleaveComma(getPartial(), printer, [&](StringAttr axis) {
      printer << '"' << axis.getValue() << '"';
    });
    printer << ']';
  }
  printer << '>';
}

ShardingAttr ShardingAttr::getReplicated(MLIRContext *ctx, int64_t rank) {
  SmallVector<StringAttr> dims(rank, StringAttr::get(ctx, ""));
  return get(ctx, dims, {});
}

bool ShardingAttr::isReplicated() const {
  return getPartial().empty() &&
         llvm::all_of(getDims(), [](StringAttr a) { return a.empty(); });
}

StringRef ShardingAttr::getDimAxis(int64_t dim) const {
  if (dim < 0 || dim >= int64_t(getDims().size()))
    return {};
  return getDims()[dim].getValue();
}

FailureOr<SmallVector<int64_t>>
ShardingAttr::localShape(ArrayRef<int64_t> global, MeshAttr mesh) const {
  if (global.size() != getDims().size() || !mesh)
    return failure();
  SmallVector<int64_t> local(global);
  for (auto [d, axis] : llvm::enumerate(getDims())) {
    if (axis.empty())
      continue;
    std::optional<int64_t> n = mesh.getAxisSize(axis.getValue());
    if (!n || global[d] % *n != 0)
      return failure();
    local[d] = global[d] / *n;
  }
  return local;
}
