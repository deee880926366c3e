//===- ModelBuilder.cpp - model language to the loom dialect --------------===//
//
// A compile-time interpreter over the syntax tree. Scalars (int, float, bool,
// string), lists and element types are evaluated here; tensors are SSA values
// of the function being built. Blocks are expanded at each call and `repeat`
// is unrolled, so every parameter and dropout site gets its own dotted name.
// Calls of builtins go through the table of Builtins.h, which binds their
// arguments and holds their handlers.
//
//===----------------------------------------------------------------------===//

#include "loom/Frontend/ModelBuilder.h"

#include "Builtins.h"
#include "Values.h"

#include "loom/dialects/Dist/IR/DistDialect.h"
#include "loom/dialects/Loom/IR/LoomOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"

#include <cmath>
#include <functional>
#include <map>
#include <optional>

using namespace mlir;

namespace loom {
namespace {

using namespace frontend;

//===----------------------------------------------------------------------===//
// The builder
//===----------------------------------------------------------------------===//

/// One `config` of the model: its declaration, an override, its value.
struct Config {
  const ast::Stmt *decl = nullptr;
  std::optional<std::string> overrideText;
  std::optional<Val> value;
  bool evaluating = false;
};

struct Scope {
  llvm::StringMap<Val> vars;
  /// Configs are visible in the model's own statements, not inside blocks.
  bool seesConfigs = false;
};

/// Bounds that no real model comes near (GPT-1T unrolls to 5,130 ops), so
/// that no input can make the compiler hang or exhaust memory.
constexpr int64_t kMaxRepeat = 100000;
constexpr int64_t kMaxSteps = 2000000;
constexpr int64_t kMaxListElements = 100000;
constexpr int64_t kMaxOps = 200000;
/// Expressions, statement bodies and block calls nest into each other in the
/// interpreter's recursion; the parser bounds each kind, this bounds them
/// together, so that no input overflows the stack: 512 levels take under
/// 1 MB of it (examples/gpt.loom and bert.loom need 12).
constexpr int kMaxNesting = 512;

/// Checks that `type` has at most kMaxTensorElements elements.
bool hasSaneSize(RankedTensorType type) {
  std::optional<int64_t> count = elementCount(type);
  return count && *count <= kMaxTensorElements;
}

/// The candidate nearest to `name` for a "did you mean", or "" when none is
/// within two edits.
std::string closestName(llvm::StringRef name,
                        llvm::ArrayRef<llvm::StringRef> candidates) {
  std::string best;
  unsigned bestDistance = 3;
  for (llvm::StringRef candidate : candidates) {
    unsigned d = candidate.edit_distance(name);
    if (d < bestDistance && candidate != name) {
      bestDistance = d;
      best = candidate.str();
    }
  }
  return best;
}

struct CallFrame {
  std::string block;
  Location loc;
};

class ModelBuilder : public BuiltinHost {
public:
  ModelBuilder(const ast::File &file, const ast::File &library,
               const ModelOptions &options, MLIRContext *context)
      : file(file), options(options), context(context), builder(context) {
    for (const ast::BlockDef &block : library.blocks)
      blocks[block.name] = &block;
  }

  FailureOr<OwningOpRef<ModuleOp>> build();

  /// The file's blocks replace the library's; within the file, each block,
  /// block parameter and model name is defined once.
  LogicalResult collectDefinitions();

private:
  /// An error at `loc`, with a note at each enclosing block call.
  InFlightDiagnostic error(Location loc) override {
    InFlightDiagnostic diag = emitError(loc);
    for (auto it = callStack.rbegin(); it != callStack.rend(); ++it)
      diag.attachNote(it->loc) << "in block '" << it->block << "' called here";
    return diag;
  }

  // Model setup.
  const ast::ModelDef *selectModel();
  LogicalResult collectConfigs(const ast::ModelDef &model);
  FailureOr<Val> configValue(const std::string &name, Location use);
  FailureOr<Val> parseOverride(Config &config, const std::string &name);

  // Statements and expressions.
  LogicalResult execute(const std::vector<ast::StmtPtr> &stmts, Scope &scope,
                        std::optional<std::vector<Val>> *returned);
  LogicalResult executeStmt(const ast::Stmt &stmt, Scope &scope,
                            std::optional<std::vector<Val>> *returned,
                            bool last);
  FailureOr<Val> eval(const ast::Expr &expr, Scope &scope);
  FailureOr<Val> evalExpr(const ast::Expr &expr, Scope &scope);
  /// Counts one more level of recursion at `loc`; fails past kMaxNesting.
  LogicalResult enter(Location loc);
  /// "; 'hidden' is 4611686018427387904, set by -D hidden=..." for each of
  /// `exprs` that names a config: where a value in a message came from.
  std::string configOrigins(llvm::ArrayRef<const ast::Expr *> exprs,
                            const Scope &scope);
  /// Checks what the model returns: its training loss first, a float scalar
  /// that depends on a parameter, and each tensor once.
  LogicalResult checkModelResults(const ast::Stmt &ret,
                                  const std::vector<Val> &values);
  /// "'linaer' is neither a block nor a builtin op; did you mean 'linear'?"
  InFlightDiagnostic unknownCallee(const ast::Expr &call);
  FailureOr<Val> evalName(const ast::Expr &expr, Scope &scope);
  FailureOr<Val> evalUnary(const ast::Expr &expr, Scope &scope);
  FailureOr<Val> evalBinary(const ast::Expr &expr, Scope &scope);
  FailureOr<Val> evalCall(const ast::Expr &expr, Scope &scope);
  FailureOr<Val> callBlock(const ast::BlockDef &block, const ast::Expr &call,
                           std::vector<Val> &args);
  FailureOr<Val> callBuiltin(const ast::Expr &call, std::vector<Val> &args);
  FailureOr<RankedTensorType> evalTensorType(const ast::Stmt &stmt,
                                             Scope &scope,
                                             llvm::StringRef defaultType);
  FailureOr<Attribute> evalInitializer(const ast::Expr &init, Scope &scope);

  // What builtins ask of the builder (BuiltinHost).
  /// Verifies a just-built op; on failure erases it and re-emits the
  /// verifier's message at `loc` with the call-stack notes.
  FailureOr<Value> checked(Operation *op, Location loc) override;
  /// The dotted name of `leaf` in the current scope; fails when it exists.
  FailureOr<std::string> claimName(llvm::StringRef leaf, Location loc,
                                   llvm::StringRef what) override;
  OpBuilder &getBuilder() override { return builder; }

  FailureOr<Val> binaryTensorOp(const ast::Expr &expr, llvm::StringRef op,
                                const Val &lhs, const Val &rhs);

  const ast::File &file;
  const ModelOptions &options;
  MLIRContext *context;
  OpBuilder builder;
  llvm::StringMap<const ast::BlockDef *> blocks;
  std::map<std::string, Config> configs;
  std::vector<std::string> configOrder;
  std::vector<CallFrame> callStack;
  std::vector<std::string> path;
  llvm::StringMap<Location> claimedNames;
  int64_t layerCount = 0;
  int repeatDepth = 0;
  /// The interpreter's recursion depth (kMaxNesting).
  int nesting = 0;
  /// Where the model's `return` is: its results' location.
  std::optional<Location> returnLoc;
  int64_t opCount = 0;
  int64_t stepCount = 0;
  /// The next index of each repeat's name prefix, so that a second `repeat`
  /// with the same prefix continues the numbering.
  std::map<std::string, int64_t> nextRepeatIndex;
};

std::string joinNames(const std::vector<std::string> &names) {
  return llvm::join(names, ", ");
}

//===----------------------------------------------------------------------===//
// Model and configs
//===----------------------------------------------------------------------===//

const ast::ModelDef *ModelBuilder::selectModel() {
  Location fileLoc = file.models.empty() ? Location(UnknownLoc::get(context))
                                         : file.models.front().loc;
  if (!options.modelName.empty()) {
    for (const ast::ModelDef &model : file.models)
      if (model.name == options.modelName)
        return &model;
    std::vector<std::string> names;
    for (const ast::ModelDef &model : file.models)
      names.push_back(model.name);
    emitError(fileLoc) << "there is no model '" << options.modelName
                       << "' in this file; its models are: "
                       << joinNames(names);
    return nullptr;
  }
  if (file.models.size() == 1)
    return &file.models.front();
  if (file.models.empty())
    return nullptr; // reported by the caller, which knows the file
  std::vector<std::string> names;
  for (const ast::ModelDef &model : file.models)
    names.push_back(model.name);
  emitError(file.models[1].loc)
      << "this file has " << file.models.size()
      << " models; choose one with --model=NAME (" << joinNames(names) << ")";
  return nullptr;
}

LogicalResult ModelBuilder::collectConfigs(const ast::ModelDef &model) {
  for (const ast::StmtPtr &stmt : model.body) {
    if (stmt->kind != ast::StmtKind::Config)
      continue;
    const std::string &name = stmt->names.front();
    if (name == "batch" || name == "tp")
      return error(stmt->loc)
             << "'" << name << "' is set by the compiler ("
             << (name == "batch" ? "--micro-batch-size" : "the mesh's tp")
             << "); choose another config name";
    auto [it, inserted] = configs.try_emplace(name);
    if (!inserted) {
      InFlightDiagnostic diag = error(stmt->loc);
      diag << "config '" << name << "' is declared twice";
      diag.attachNote(it->second.decl->loc) << "first declared here";
      return failure();
    }
    it->second.decl = stmt.get();
    configOrder.push_back(name);
  }
  for (const auto &[name, text] : options.overrides) {
    auto it = configs.find(name);
    if (name == "batch" || name == "tp")
      return emitError(model.loc)
             << "-D " << name << "=" << text << ": '" << name
             << "' is set by the compiler"
             << (name == "batch" ? "; use --micro-batch-size"
                                 : " (the tensor-parallel size of the mesh; "
                                   "use --mesh tp=N)");
    if (it == configs.end()) {
      std::string best =
          closestName(name, SmallVector<llvm::StringRef>(configOrder.begin(),
                                                         configOrder.end()));
      InFlightDiagnostic diag = emitError(model.loc);
      diag << "-D " << name << "=" << text << ": model '" << model.name
           << "' has no config '" << name << "'";
      if (!best.empty())
        diag << "; did you mean '" << best << "'?";
      if (configOrder.empty())
        diag << "; it declares no configs";
      else
        diag << (best.empty() ? ". " : " ")
             << "Its configs are: " << joinNames(configOrder);
      return failure();
    }
    it->second.overrideText = text;
  }
  return success();
}

FailureOr<Val> ModelBuilder::parseOverride(Config &config,
                                           const std::string &name) {
  // The override replaces the default unevaluated (it may be an expression of
  // configs the command line also sets). Its type comes from its own text,
  // and must agree with the default when the default is a literal.
  const std::string &text = *config.overrideText;
  llvm::StringRef t = llvm::StringRef(text).trim();
  Val value;
  int64_t i;
  double f;
  llvm::StringRef digits = t.starts_with("-") ? t.drop_front() : t;
  bool integerText = !digits.empty() && llvm::all_of(digits, llvm::isDigit);
  if (integerText && t.getAsInteger(10, i))
    return error(config.decl->loc)
           << "-D " << name << "=" << text
           << " does not fit in 64 bits (from -9223372036854775808 to "
              "9223372036854775807)";
  if (!t.getAsInteger(10, i))
    value = Val::ofInt(i);
  else if (!t.getAsDouble(f) && std::isfinite(f))
    value = Val::ofFloat(f);
  else if (t == "true" || t == "false")
    value = Val::ofBool(t == "true");
  else
    value = Val::ofString(text);

  const ast::Expr *def = config.decl->value.get();
  if (def->kind == ast::ExprKind::Unary && def->text == "-")
    def = def->operands.front().get();
  auto bad = [&](llvm::StringRef expected, llvm::StringRef kind) {
    return error(config.decl->loc)
           << "-D " << name << "=" << text << " is not " << expected << "; '"
           << name << "' is declared here with " << kind << " default";
  };
  switch (def->kind) {
  case ast::ExprKind::Int:
    if (value.kind != Val::Kind::Int)
      return bad("an integer", "an integer");
    break;
  case ast::ExprKind::Float:
    if (!value.isNumber())
      return bad("a number", "a float");
    value = Val::ofFloat(value.number());
    break;
  case ast::ExprKind::Bool:
    if (value.kind != Val::Kind::Bool)
      return bad("true or false", "a bool");
    break;
  case ast::ExprKind::String:
    value = Val::ofString(text);
    break;
  case ast::ExprKind::List:
  case ast::ExprKind::None:
    return error(config.decl->loc)
           << "-D " << name << "=" << text << ": '" << name
           << "' has a list or none default, which a -D cannot set";
  default:
    break; // an expression: the override's own type stands
  }
  return value;
}

FailureOr<Val> ModelBuilder::configValue(const std::string &name,
                                         Location use) {
  Config &config = configs.at(name);
  if (config.value)
    return *config.value;
  if (config.evaluating) {
    InFlightDiagnostic diag = error(config.decl->loc);
    diag << "config '" << name << "' depends on itself";
    diag.attachNote(use) << "through this use";
    return failure();
  }
  config.evaluating = true;
  FailureOr<Val> value = failure();
  if (config.overrideText) {
    value = parseOverride(config, name);
  } else {
    Scope scope;
    scope.seesConfigs = true;
    value = eval(*config.decl->value, scope);
  }
  config.evaluating = false;
  if (failed(value))
    return failure();
  config.value = *value;
  return *value;
}

LogicalResult ModelBuilder::collectDefinitions() {
  llvm::StringMap<const ast::BlockDef *> own;
  for (const ast::BlockDef &block : file.blocks) {
    auto [it, inserted] = own.try_emplace(block.name, &block);
    if (!inserted) {
      InFlightDiagnostic diag = emitError(block.loc);
      diag << "block '" << block.name << "' is defined twice";
      diag.attachNote(it->second->loc) << "first defined here";
      return failure();
    }
    for (auto [i, param] : llvm::enumerate(block.parameters))
      for (size_t j = 0; j < i; ++j)
        if (block.parameters[j].name == param.name)
          return emitError(param.loc)
                 << "block '" << block.name << "' has two parameters named '"
                 << param.name << "'";
    blocks[block.name] = &block;
  }
  for (auto [i, model] : llvm::enumerate(file.models))
    for (size_t j = 0; j < i; ++j)
      if (file.models[j].name == model.name) {
        InFlightDiagnostic diag = emitError(model.loc);
        diag << "model '" << model.name << "' is defined twice";
        diag.attachNote(file.models[j].loc) << "first defined here";
        return failure();
      }
  return success();
}

FailureOr<OwningOpRef<ModuleOp>> ModelBuilder::build() {
  if (failed(collectDefinitions()))
    return failure();
  const ast::ModelDef *model = selectModel();
  if (!model)
    return failure();
  if (options.microBatchSize < 1)
    return emitError(model->loc)
           << "--micro-batch-size must be at least 1, got "
           << options.microBatchSize;
  int64_t global = options.globalBatchSize ? options.globalBatchSize
                                           : options.microBatchSize;
  if (global < 1 || global % options.microBatchSize != 0)
    return emitError(model->loc)
           << "--global-batch-size=" << global
           << " is not a positive multiple of --micro-batch-size="
           << options.microBatchSize;
  for (const auto &[name, block] : blocks)
    if (findBuiltin(name))
      return emitError(block->loc)
             << "block '" << name.str()
             << "' has the name of a builtin; give it another name";
  if (failed(collectConfigs(*model)))
    return failure();
  // Evaluate every config now, so an error in one is reported even when
  // nothing uses it.
  for (const std::string &name : configOrder)
    if (failed(configValue(name, configs.at(name).decl->loc)))
      return failure();

  OwningOpRef<ModuleOp> module = ModuleOp::create(model->loc);
  Builder b(context);
  LoomDialect::MicroBatchSizeAttrHelper(context).setAttr(
      *module, b.getI64IntegerAttr(options.microBatchSize));
  LoomDialect::GlobalBatchSizeAttrHelper(context).setAttr(
      *module, b.getI64IntegerAttr(global));
  // The resolved configs travel to the plan (Plan.model_config): a tool
  // that reads a plan (loom-convert) can check a checkpoint's model against
  // them. Lists and tensors are no configs a tool reads; they stay behind.
  SmallVector<NamedAttribute> configAttrs;
  for (const std::string &name : configOrder) {
    const Val &v = *configs.at(name).value;
    Attribute a;
    if (v.kind == Val::Kind::Int)
      a = b.getI64IntegerAttr(v.i);
    else if (v.kind == Val::Kind::Float)
      a = b.getF64FloatAttr(v.f);
    else if (v.kind == Val::Kind::Bool)
      a = b.getBoolAttr(v.b);
    else if (v.kind == Val::Kind::String || v.kind == Val::Kind::DType)
      a = b.getStringAttr(v.s);
    if (a)
      configAttrs.push_back(b.getNamedAttr(name, a));
  }
  LoomDialect::ConfigsAttrHelper(context).setAttr(
      *module, b.getDictionaryAttr(configAttrs));

  // Inputs become the function's arguments, in order.
  Scope scope;
  scope.seesConfigs = true;
  SmallVector<Type> inputTypes;
  SmallVector<const ast::Stmt *> inputs;
  for (const ast::StmtPtr &stmt : model->body) {
    if (stmt->kind != ast::StmtKind::Input)
      continue;
    FailureOr<RankedTensorType> type = evalTensorType(*stmt, scope, "");
    if (failed(type))
      return failure();
    inputTypes.push_back(*type);
    inputs.push_back(stmt.get());
  }
  builder.setInsertionPointToEnd(module->getBody());
  auto fn = builder.create<func::FuncOp>(
      model->loc, model->name, builder.getFunctionType(inputTypes, {}));
  Block *entry = fn.addEntryBlock();
  for (auto [i, input] : llvm::enumerate(inputs)) {
    const std::string &name = input->names.front();
    if (scope.vars.count(name))
      return error(input->loc) << "input '" << name << "' is declared twice";
    if (configs.count(name) || name == "batch" || name == "tp")
      return error(input->loc) << "input '" << name
                               << "' has the name of a config; give it "
                                  "another name";
    scope.vars[name] = Val::ofTensor(entry->getArgument(i));
    LoomDialect::kInputArgAttr.setAttr(fn, i, b.getStringAttr(name));
  }
  builder.setInsertionPointToStart(entry);

  std::optional<std::vector<Val>> returned;
  if (failed(execute(model->body, scope, &returned)))
    return failure();
  if (!returned)
    return error(model->loc) << "model '" << model->name
                             << "' returns nothing; end it with `return "
                                "loss` (the training loss)";
  SmallVector<Value> results;
  for (const Val &v : *returned)
    results.push_back(v.tensor);
  builder.create<func::ReturnOp>(returnLoc.value_or(model->loc), results);
  fn.setFunctionType(
      builder.getFunctionType(inputTypes, ValueRange(results).getTypes()));
  LoomDialect::LayersAttrHelper(context).setAttr(
      fn, b.getI64IntegerAttr(layerCount));
  return module;
}

//===----------------------------------------------------------------------===//
// Statements
//===----------------------------------------------------------------------===//

LogicalResult ModelBuilder::execute(const std::vector<ast::StmtPtr> &stmts,
                                    Scope &scope,
                                    std::optional<std::vector<Val>> *returned) {
  if (!stmts.empty() && failed(enter(stmts.front()->loc)))
    return failure();
  auto leave = llvm::make_scope_exit([&] {
    if (!stmts.empty())
      --nesting;
  });
  for (auto [i, stmt] : llvm::enumerate(stmts)) {
    if (++stepCount > kMaxSteps)
      return error(stmt->loc)
             << "building the model takes more than " << kMaxSteps
             << " steps; check the repeat counts";
    if (failed(executeStmt(*stmt, scope, returned, i + 1 == stmts.size())))
      return failure();
  }
  return success();
}

LogicalResult ModelBuilder::checkModelResults(const ast::Stmt &ret,
                                              const std::vector<Val> &values) {
  // loomc trains the first result, so it must be a loss that training can
  // lower; further results are kept for --emit, but the same tensor twice is
  // a slip (`return loss, loss`).
  RankedTensorType loss = values.front().tensorType();
  if (loss.getRank() != 0 || !isa<FloatType>(loss.getElementType()))
    return error(ret.values.front()->loc)
           << "a model returns its training loss first, a float scalar such "
              "as cross_entropy(logits, labels) (reduction \"mean\" or "
              "\"sum\"); this is "
           << loss << (loss.getRank() != 0 ? ": reduce it to a scalar" : "");
  for (auto [i, v] : llvm::enumerate(values))
    for (size_t j = 0; j < i; ++j)
      if (values[j].tensor == v.tensor)
        return error(ret.values[i]->loc)
               << "`return` gives the same tensor as its value " << j + 1
               << " again (value " << i + 1
               << "); return each value once, the loss first";
  // A loss that reaches no parameter trains nothing: walk its operands back.
  SmallVector<Value> work{values.front().tensor};
  llvm::DenseSet<Value> seen;
  while (!work.empty()) {
    Value value = work.pop_back_val();
    Operation *def = value.getDefiningOp();
    if (!def || !seen.insert(value).second)
      continue;
    if (isa<ParameterOp>(def))
      return success();
    llvm::append_range(work, def->getOperands());
  }
  return error(ret.values.front()->loc)
         << "the loss depends on no parameter, so training would change "
            "nothing; compute it from the model's parameters (`param`, or "
            "blocks such as linear)";
}

FailureOr<RankedTensorType>
ModelBuilder::evalTensorType(const ast::Stmt &stmt, Scope &scope,
                             llvm::StringRef defaultType) {
  llvm::StringRef typeName = stmt.elementType.empty()
                                 ? defaultType
                                 : llvm::StringRef(stmt.elementType);
  Type element = elementTypeNamed(context, typeName);
  SmallVector<int64_t> shape;
  for (auto [i, dimExpr] : llvm::enumerate(stmt.dims)) {
    FailureOr<Val> dim = eval(*dimExpr, scope);
    if (failed(dim))
      return failure();
    if (dim->kind == Val::Kind::Float && std::floor(dim->f) == dim->f &&
        !wholeNumber(dim->f))
      return error(dimExpr->loc)
             << "dimension " << i << " of '" << stmt.names.front() << "' is "
             << describe(*dim) << ", past any tensor's size"
             << configOrigins({dimExpr.get()}, scope);
    if (dim->kind == Val::Kind::Float && wholeNumber(dim->f))
      *dim = Val::ofInt(*wholeNumber(dim->f));
    if (dim->kind != Val::Kind::Int)
      return error(dimExpr->loc)
             << "dimension " << i << " of '" << stmt.names.front() << "' is "
             << describe(*dim) << "; a dimension must be a whole number"
             << (dim->kind == Val::Kind::Float
                     ? " (check the division that produced it)"
                     : "");
    if (dim->i < 1)
      return error(dimExpr->loc)
             << "dimension " << i << " of '" << stmt.names.front() << "' is "
             << dim->i << "; a dimension must be at least 1"
             << configOrigins({dimExpr.get()}, scope);
    shape.push_back(dim->i);
  }
  auto type = RankedTensorType::get(shape, element);
  if (!hasSaneSize(type)) {
    // Name where the large dimensions came from, not every dimension.
    SmallVector<const ast::Expr *> dims;
    for (auto [dim, size] : llvm::zip(stmt.dims, shape))
      if (size > 65536)
        dims.push_back(dim.get());
    return error(stmt.loc) << "'" << stmt.names.front() << "' of type " << type
                           << " has more than 2^48 elements"
                           << configOrigins(dims, scope);
  }
  return type;
}

FailureOr<Attribute> ModelBuilder::evalInitializer(const ast::Expr &init,
                                                   Scope &scope) {
  auto usage = [&]() {
    return error(init.loc)
           << "expected an initializer: normal(std = S), scaled_normal(std = "
              "S, layers = L), zeros or ones";
  };
  if (init.kind == ast::ExprKind::Name) {
    if (init.text == "zeros")
      return Attribute(ZerosInitAttr::get(context));
    if (init.text == "ones")
      return Attribute(OnesInitAttr::get(context));
    return usage();
  }
  if (init.kind != ast::ExprKind::Call ||
      (init.text != "normal" && init.text != "scaled_normal"))
    return usage();
  std::vector<Val> args;
  for (const ast::ExprPtr &arg : init.operands) {
    FailureOr<Val> v = eval(*arg, scope);
    if (failed(v))
      return failure();
    args.push_back(*v);
  }
  bool scaled = init.text == "scaled_normal";
  static const llvm::StringRef normalNames[] = {"std"};
  static const llvm::StringRef scaledNames[] = {"std", "layers"};
  llvm::ArrayRef<llvm::StringRef> names =
      scaled ? llvm::ArrayRef(scaledNames) : llvm::ArrayRef(normalNames);
  FailureOr<BoundArgs> bound =
      bindArguments(*this, init, args, names, names.size(), init.text);
  if (failed(bound))
    return failure();
  BuiltinCall call(*this, init, names, std::move(*bound));
  FailureOr<double> std = call.number("std");
  if (failed(std))
    return failure();
  auto emit = [&]() { return error(init.loc); };
  if (!scaled) {
    if (failed(NormalInitAttr::verify(emit, APFloat(*std))))
      return failure();
    return Attribute(NormalInitAttr::get(context, APFloat(*std)));
  }
  FailureOr<int64_t> layers = call.integer("layers");
  if (failed(layers) ||
      failed(ScaledNormalInitAttr::verify(emit, APFloat(*std), *layers)))
    return failure();
  return Attribute(ScaledNormalInitAttr::get(context, APFloat(*std), *layers));
}

FailureOr<std::string> ModelBuilder::claimName(llvm::StringRef leaf,
                                               Location loc,
                                               llvm::StringRef what) {
  std::vector<std::string> parts = path;
  parts.push_back(leaf.str());
  std::string name = llvm::join(parts, ".");
  auto [it, inserted] = claimedNames.try_emplace(name, loc);
  if (inserted)
    return name;
  InFlightDiagnostic diag = error(loc);
  diag << what << " '" << name
       << "' is created twice; name one of the calls that create it apart "
          "with `as NAME` (for example `layer_norm(x) as ln_2`)";
  diag.attachNote(it->second) << "first created here";
  return failure();
}

LogicalResult
ModelBuilder::executeStmt(const ast::Stmt &stmt, Scope &scope,
                          std::optional<std::vector<Val>> *returned,
                          bool last) {
  switch (stmt.kind) {
  case ast::StmtKind::Config:
  case ast::StmtKind::Input:
    return success(); // handled before the statements run
  case ast::StmtKind::Param: {
    FailureOr<RankedTensorType> type = evalTensorType(stmt, scope, "f32");
    if (failed(type))
      return failure();
    if (!isa<FloatType>(type->getElementType()))
      return error(stmt.loc) << "parameter '" << stmt.names.front()
                             << "' must have a float element type (f32, "
                                "bf16 or f16), not "
                             << type->getElementType();
    FailureOr<Attribute> init = evalInitializer(*stmt.init, scope);
    if (failed(init))
      return failure();
    FailureOr<std::string> name =
        claimName(stmt.names.front(), stmt.loc, "parameter");
    if (failed(name))
      return failure();
    FailureOr<Value> param =
        checked(builder.create<ParameterOp>(
                    stmt.loc, *type, builder.getStringAttr(*name),
                    cast<InitializerAttrInterface>(*init)),
                stmt.loc);
    if (failed(param))
      return failure();
    if (!stmt.shard.empty()) {
      // A pinned sharding (user annotations win over the sharding rules).
      if (stmt.shard.size() != size_t(type->getRank()))
        return error(stmt.loc)
               << "shard(...) of parameter '" << stmt.names.front()
               << "' names " << stmt.shard.size() << " dimensions; it has "
               << type->getRank();
      SmallVector<StringAttr> dims;
      for (const std::string &axis : stmt.shard) {
        if (axis != "none" && axis != "tp")
          return error(stmt.loc)
                 << "shard(...) of parameter '" << stmt.names.front()
                 << "': '" << axis
                 << "' cannot split a parameter; use tp (tensor "
                    "parallelism) or none (whole on every rank)";
        dims.push_back(builder.getStringAttr(axis == "none" ? "" : axis));
      }
      dist::DistDialect::ShardingAttrHelper(builder.getContext())
          .setAttr(param->getDefiningOp(),
                   dist::ShardingAttr::get(builder.getContext(), dims, {}));
    }
    scope.vars[stmt.names.front()] = Val::ofTensor(*param);
    return success();
  }
  case ast::StmtKind::Assign: {
    FailureOr<Val> value = eval(*stmt.value, scope);
    if (failed(value))
      return failure();
    for (const std::string &name : stmt.names)
      if (scope.seesConfigs && configs.count(name))
        return error(stmt.loc) << "'" << name
                               << "' is a config and cannot be assigned; "
                                  "use another name";
    if (stmt.names.empty())
      return success(); // a call made for its effect
    if (stmt.names.size() == 1) {
      scope.vars[stmt.names.front()] = *value;
      return success();
    }
    if (value->kind != Val::Kind::List ||
        value->list.size() != stmt.names.size())
      return error(stmt.loc)
             << stmt.names.size() << " names are assigned, but the right "
             << "side gives "
             << (value->kind == Val::Kind::List
                     ? std::to_string(value->list.size()) + " values"
                     : describe(*value));
    for (auto [name, v] : llvm::zip(stmt.names, value->list))
      scope.vars[name] = v;
    return success();
  }
  case ast::StmtKind::Repeat: {
    FailureOr<Val> count = eval(*stmt.value, scope);
    if (failed(count))
      return failure();
    if (count->kind != Val::Kind::Int || count->i < 0)
      return error(stmt.value->loc)
             << "repeat needs a count that is a whole number of at least 0, "
                "got "
             << describe(*count);
    if (count->i > kMaxRepeat)
      return error(stmt.value->loc)
             << "repeat " << count->i << " is more than " << kMaxRepeat
             << " layers" << configOrigins({stmt.value.get()}, scope);
    // Numbering continues across repeats with the same prefix in one scope.
    std::vector<std::string> prefixPath = path;
    prefixPath.push_back(stmt.prefix);
    int64_t &next = nextRepeatIndex[llvm::join(prefixPath, ".")];
    ++repeatDepth;
    for (int64_t i = 0; i < count->i; ++i) {
      // An iteration is a step even when its body is empty.
      if (++stepCount > kMaxSteps) {
        --repeatDepth;
        return error(stmt.loc) << "building the model takes more than "
                               << kMaxSteps
                               << " steps; check the repeat counts";
      }
      Block *block = builder.getInsertionBlock();
      Operation *before = block->empty() ? nullptr : &block->back();
      path.push_back(stmt.prefix);
      path.push_back(std::to_string(next));
      LogicalResult result = execute(stmt.body, scope, nullptr);
      path.pop_back();
      path.pop_back();
      if (failed(result)) {
        --repeatDepth;
        return failure();
      }
      // An iteration that builds no op is no layer, and takes no index.
      auto first = before ? std::next(before->getIterator()) : block->begin();
      if (first == block->end())
        continue;
      ++next;
      // Mark the outermost repeat's iterations: the unit pipelines cut.
      if (repeatDepth == 1) {
        LoomDialect::LayerAttrHelper layerAttr(builder.getContext());
        for (Operation &op : llvm::make_range(first, block->end()))
          layerAttr.setAttr(&op, builder.getI64IntegerAttr(layerCount));
        ++layerCount;
      }
    }
    --repeatDepth;
    return success();
  }
  case ast::StmtKind::If: {
    FailureOr<Val> cond = eval(*stmt.value, scope);
    if (failed(cond))
      return failure();
    if (cond->kind != Val::Kind::Bool)
      return error(stmt.value->loc)
             << "the condition of `if` must be a bool, got " << describe(*cond);
    // Returns inside a branch are not supported: values flow out by name.
    return execute(cond->b ? stmt.body : stmt.elseBody, scope, nullptr);
  }
  case ast::StmtKind::Return: {
    if (!returned || !last)
      return error(stmt.loc) << "`return` must be the last statement of a "
                                "block or model, outside `if` and `repeat`";
    std::vector<Val> values;
    for (const ast::ExprPtr &expr : stmt.values) {
      FailureOr<Val> v = eval(*expr, scope);
      if (failed(v))
        return failure();
      // The model's own return is its function's results: tensors only.
      if (callStack.empty() && v->kind != Val::Kind::Tensor)
        return error(expr->loc)
               << "a model returns tensors, not " << describe(*v);
      values.push_back(*v);
    }
    if (callStack.empty()) {
      if (failed(checkModelResults(stmt, values)))
        return failure();
      returnLoc = stmt.loc;
    }
    *returned = std::move(values);
    return success();
  }
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

LogicalResult ModelBuilder::enter(Location loc) {
  if (++nesting <= kMaxNesting)
    return success();
  --nesting;
  return error(loc) << "the model nests more than " << kMaxNesting
                    << " levels deep (block calls, the bodies of `if` and "
                       "`repeat`, and expressions, inside each other); "
                       "assign parts of long expressions to names, or call "
                       "blocks less deeply";
}

FailureOr<Val> ModelBuilder::eval(const ast::Expr &expr, Scope &scope) {
  if (failed(enter(expr.loc)))
    return failure();
  FailureOr<Val> value = evalExpr(expr, scope);
  --nesting;
  return value;
}

std::string ModelBuilder::configOrigins(llvm::ArrayRef<const ast::Expr *> exprs,
                                        const Scope &scope) {
  std::string out;
  for (const ast::Expr *expr : exprs) {
    if (expr->kind != ast::ExprKind::Name || !scope.seesConfigs ||
        scope.vars.count(expr->text))
      continue;
    auto it = configs.find(expr->text);
    if (it == configs.end() || !it->second.value)
      continue;
    out += "; '" + expr->text + "' is " + describe(*it->second.value);
    if (it->second.overrideText)
      out += ", set by -D " + expr->text + "=" + *it->second.overrideText;
    else
      out += ", its default";
  }
  return out;
}

FailureOr<Val> ModelBuilder::evalExpr(const ast::Expr &expr, Scope &scope) {
  switch (expr.kind) {
  case ast::ExprKind::Int:
    return Val::ofInt(expr.intValue);
  case ast::ExprKind::Float:
    return Val::ofFloat(expr.floatValue);
  case ast::ExprKind::String:
    return Val::ofString(expr.text);
  case ast::ExprKind::Bool:
    return Val::ofBool(expr.boolValue);
  case ast::ExprKind::None:
    return Val();
  case ast::ExprKind::Name:
    return evalName(expr, scope);
  case ast::ExprKind::List: {
    std::vector<Val> items;
    for (const ast::ExprPtr &e : expr.operands) {
      FailureOr<Val> v = eval(*e, scope);
      if (failed(v))
        return failure();
      items.push_back(*v);
    }
    Val list = Val::ofList(std::move(items));
    if (list.elements > kMaxListElements)
      return error(expr.loc) << "the list holds more than " << kMaxListElements
                             << " values, nested lists counted through";
    return list;
  }
  case ast::ExprKind::Unary:
    return evalUnary(expr, scope);
  case ast::ExprKind::Binary:
    return evalBinary(expr, scope);
  case ast::ExprKind::Call:
    return evalCall(expr, scope);
  }
  return failure();
}

FailureOr<Val> ModelBuilder::evalName(const ast::Expr &expr, Scope &scope) {
  auto it = scope.vars.find(expr.text);
  if (it != scope.vars.end())
    return it->second;
  if (scope.seesConfigs) {
    if (configs.count(expr.text))
      return configValue(expr.text, expr.loc);
    if (expr.text == "batch")
      return Val::ofInt(options.microBatchSize);
    if (expr.text == "tp")
      return Val::ofInt(options.tensorParallel);
  }
  if (elementTypeNamed(context, expr.text))
    return Val::ofString(expr.text, Val::Kind::DType);
  InFlightDiagnostic diag = error(expr.loc);
  diag << "'" << expr.text << "' is not defined here";
  if (blocks.count(expr.text))
    diag << "; '" << expr.text << "' is a block: call it as " << expr.text
         << "(...)";
  else if (!scope.seesConfigs && configs.count(expr.text))
    diag << "; configs are visible in the model, not inside blocks: pass '"
         << expr.text << "' to the block as an argument";
  else if (!builder.getInsertionBlock())
    diag << "; a config may use other configs, `batch` and `tp`";
  else {
    SmallVector<llvm::StringRef> visible;
    for (const auto &entry : scope.vars)
      visible.push_back(entry.getKey());
    if (scope.seesConfigs)
      for (const std::string &name : configOrder)
        visible.push_back(name);
    std::string best = closestName(expr.text, visible);
    if (!best.empty())
      diag << "; did you mean '" << best << "'?";
    else
      diag << "; assign it first (" << expr.text << " = ...)";
  }
  return failure();
}

FailureOr<Val> ModelBuilder::evalUnary(const ast::Expr &expr, Scope &scope) {
  FailureOr<Val> v = eval(*expr.operands.front(), scope);
  if (failed(v))
    return failure();
  if (expr.text == "not") {
    if (v->kind != Val::Kind::Bool)
      return error(expr.loc) << "`not` needs a bool, got " << describe(*v);
    return Val::ofBool(!v->b);
  }
  switch (v->kind) {
  case Val::Kind::Int:
    if (v->i == INT64_MIN)
      return error(expr.loc)
             << "-(" << v->i << ") does not fit in 64 bits"
             << configOrigins({expr.operands.front().get()}, scope);
    return Val::ofInt(-v->i);
  case Val::Kind::Float:
    return Val::ofFloat(-v->f);
  case Val::Kind::Tensor: {
    if (!isa<FloatType>(v->tensorType().getElementType()))
      return error(expr.loc)
             << "negation needs a float tensor, got " << v->tensorType();
    FailureOr<Value> neg =
        checked(builder.create<NegOp>(expr.loc, v->tensor), expr.loc);
    if (failed(neg))
      return failure();
    return Val::ofTensor(*neg);
  }
  default:
    return error(expr.loc) << "cannot negate " << describe(*v);
  }
}

FailureOr<Val> ModelBuilder::binaryTensorOp(const ast::Expr &expr,
                                            llvm::StringRef op, const Val &lhs,
                                            const Val &rhs) {
  Location loc = expr.loc;
  // tensor · scalar and tensor / scalar are loom.scale.
  if ((op == "*" || op == "/") &&
      ((lhs.kind == Val::Kind::Tensor && rhs.isNumber()) ||
       (op == "*" && lhs.isNumber() && rhs.kind == Val::Kind::Tensor))) {
    const Val &t = lhs.kind == Val::Kind::Tensor ? lhs : rhs;
    double factor = lhs.kind == Val::Kind::Tensor ? rhs.number() : lhs.number();
    if (op == "/") {
      if (factor == 0)
        return error(loc) << "division of a tensor by zero";
      factor = 1.0 / factor;
    }
    if (!isa<FloatType>(t.tensorType().getElementType()))
      return error(loc) << "scaling needs a float tensor, got "
                        << t.tensorType();
    FailureOr<Value> v = checked(
        builder.create<ScaleOp>(loc, t.tensor, builder.getF64FloatAttr(factor)),
        loc);
    if (failed(v))
      return failure();
    return Val::ofTensor(*v);
  }
  if (lhs.kind != Val::Kind::Tensor || rhs.kind != Val::Kind::Tensor)
    return error(loc) << "`" << op << "` between " << describe(lhs) << " and "
                      << describe(rhs)
                      << " is not defined; tensors combine with tensors "
                         "(+ - * /), and scale by numbers (* /)";
  if (op == "%")
    return error(loc) << "`%` is not defined on tensors";
  FailureOr<RankedTensorType> type = inferBroadcastType(
      lhs.tensorType(), rhs.tensorType(), [&] { return error(loc); });
  if (failed(type))
    return failure();
  Operation *created = nullptr;
  if (op == "+")
    created = builder.create<AddOp>(loc, *type, lhs.tensor, rhs.tensor);
  else if (op == "-")
    created = builder.create<SubOp>(loc, *type, lhs.tensor, rhs.tensor);
  else if (op == "*")
    created = builder.create<MulOp>(loc, *type, lhs.tensor, rhs.tensor);
  else
    created = builder.create<DivOp>(loc, *type, lhs.tensor, rhs.tensor);
  FailureOr<Value> v = checked(created, loc);
  if (failed(v))
    return failure();
  return Val::ofTensor(*v);
}

FailureOr<Val> ModelBuilder::evalBinary(const ast::Expr &expr, Scope &scope) {
  const std::string &op = expr.text;
  FailureOr<Val> lhs = eval(*expr.operands[0], scope);
  if (failed(lhs))
    return failure();
  // `and` and `or` short-circuit, so `x != none and dim(x, 0) > 1` works.
  if (op == "and" || op == "or") {
    if (lhs->kind != Val::Kind::Bool)
      return error(expr.loc)
             << "`" << op << "` needs bools, got " << describe(*lhs);
    if (lhs->b == (op == "or"))
      return *lhs;
    FailureOr<Val> rhs = eval(*expr.operands[1], scope);
    if (failed(rhs))
      return failure();
    if (rhs->kind != Val::Kind::Bool)
      return error(expr.loc)
             << "`" << op << "` needs bools, got " << describe(*rhs);
    return *rhs;
  }
  FailureOr<Val> rhs = eval(*expr.operands[1], scope);
  if (failed(rhs))
    return failure();
  const Val &a = *lhs, &b = *rhs;

  if (op == "==" || op == "!=") {
    bool equal;
    if (a.isNumber() && b.isNumber())
      equal = a.number() == b.number();
    else if (a.kind != b.kind)
      equal = false;
    else if (a.kind == Val::Kind::String || a.kind == Val::Kind::DType)
      equal = a.s == b.s;
    else if (a.kind == Val::Kind::Bool)
      equal = a.b == b.b;
    else if (a.kind == Val::Kind::None)
      equal = true;
    else if (a.kind == Val::Kind::Tensor)
      equal = a.tensor == b.tensor;
    else
      return error(expr.loc)
             << "cannot compare " << describe(a) << " and " << describe(b);
    return Val::ofBool(equal == (op == "=="));
  }
  if (op == "<" || op == "<=" || op == ">" || op == ">=") {
    if (!a.isNumber() || !b.isNumber())
      return error(expr.loc) << "`" << op << "` compares numbers, got "
                             << describe(a) << " and " << describe(b);
    double x = a.number(), y = b.number();
    bool r = op == "<"    ? x < y
             : op == "<=" ? x <= y
             : op == ">"  ? x > y
                          : x >= y;
    return Val::ofBool(r);
  }
  if (a.kind == Val::Kind::Tensor || b.kind == Val::Kind::Tensor)
    return binaryTensorOp(expr, op, a, b);
  if (!a.isNumber() || !b.isNumber())
    return error(expr.loc) << "`" << op << "` needs numbers or tensors, got "
                           << describe(a) << " and " << describe(b);
  if (a.kind == Val::Kind::Int && b.kind == Val::Kind::Int) {
    int64_t x = a.i, y = b.i, r = 0;
    bool overflow = false;
    if (op == "+")
      overflow = __builtin_add_overflow(x, y, &r);
    else if (op == "-")
      overflow = __builtin_sub_overflow(x, y, &r);
    else if (op == "*")
      overflow = __builtin_mul_overflow(x, y, &r);
    else if (op == "/" || op == "%") {
      if (y == 0)
        return error(expr.loc)
               << "division by zero (" << x << " " << op << " 0)";
      if (x == INT64_MIN && y == -1)
        overflow = true;
      else if (op == "%")
        r = x % y;
      else if (x % y == 0)
        r = x / y;
      else
        return Val::ofFloat(double(x) / double(y)); // 770 / 12 is not whole
    }
    if (overflow)
      return error(expr.loc)
             << x << " " << op << " " << y << " does not fit in 64 bits"
             << configOrigins({expr.operands[0].get(), expr.operands[1].get()},
                              scope);
    return Val::ofInt(r);
  }
  if (op == "%")
    return error(expr.loc) << "`%` needs integers, got " << describe(a)
                           << " and " << describe(b);
  double x = a.number(), y = b.number();
  if (op == "/" && y == 0)
    return error(expr.loc) << "division by zero";
  double r = op == "+" ? x + y : op == "-" ? x - y : op == "*" ? x * y : x / y;
  return Val::ofFloat(r);
}

FailureOr<Val> ModelBuilder::evalCall(const ast::Expr &call, Scope &scope) {
  std::vector<Val> args;
  for (const ast::ExprPtr &arg : call.operands) {
    FailureOr<Val> v = eval(*arg, scope);
    if (failed(v))
      return failure();
    args.push_back(*v);
  }
  auto it = blocks.find(call.text);
  if (it != blocks.end())
    return callBlock(*it->second, call, args);
  return callBuiltin(call, args);
}

FailureOr<Val> ModelBuilder::callBlock(const ast::BlockDef &block,
                                       const ast::Expr &call,
                                       std::vector<Val> &args) {
  if (!builder.getInsertionBlock())
    return error(call.loc) << "configs are computed from numbers, bools and "
                              "strings; call block '"
                           << block.name << "' in the model's statements";
  for (const CallFrame &frame : callStack)
    if (frame.block == block.name) {
      std::vector<std::string> chain;
      for (const CallFrame &f : callStack)
        chain.push_back(f.block);
      chain.push_back(block.name);
      return error(call.loc)
             << "block '" << block.name << "' calls itself ("
             << llvm::join(chain, " -> ") << "); blocks cannot be recursive";
    }
  if (callStack.size() >= 64)
    return error(call.loc) << "blocks nest more than 64 calls deep";

  SmallVector<llvm::StringRef> names;
  for (const ast::BlockParameter &p : block.parameters)
    names.push_back(p.name);
  std::string what = "block '" + block.name + "'";
  // A parameter without a default may follow one with a default, so the
  // required ones are checked below, in order, as the defaults are evaluated.
  FailureOr<BoundArgs> bound =
      bindArguments(*this, call, args, names, /*required=*/0, what);
  if (failed(bound))
    return failure();

  // The block's scope: its arguments, then defaults (which may use earlier
  // arguments), each checked against its declared type.
  Scope scope;
  callStack.push_back({block.name, call.loc});
  for (auto [i, param] : llvm::enumerate(block.parameters)) {
    Val value;
    if ((*bound)[i]) {
      value = *(*bound)[i];
    } else if (param.defaultValue) {
      FailureOr<Val> v = eval(*param.defaultValue, scope);
      if (failed(v)) {
        callStack.pop_back();
        return failure();
      }
      value = *v;
    } else {
      callStack.pop_back();
      return error(call.loc)
             << what << " needs argument '" << param.name
             << "' (its arguments are: " << llvm::join(names, ", ") << ")";
    }
    if (!param.type.empty()) {
      bool ok = param.type == kindName(value.kind) ||
                (param.type == "float" && value.kind == Val::Kind::Int);
      if (!ok) {
        callStack.pop_back();
        return error(call.loc)
               << "argument '" << param.name << "' of " << what << " must be "
               << param.type << ", got " << describe(value);
      }
      if (param.type == "float" && value.kind == Val::Kind::Int)
        value = Val::ofFloat(double(value.i));
    }
    scope.vars[param.name] = value;
  }

  bool named = call.instanceName != "_";
  if (named)
    path.push_back(call.instanceName.empty() ? block.name : call.instanceName);
  std::optional<std::vector<Val>> returned;
  LogicalResult result = execute(block.body, scope, &returned);
  if (named)
    path.pop_back();
  callStack.pop_back();
  if (failed(result))
    return failure();
  if (!returned || returned->empty()) {
    Val nothing;
    nothing.s = "the result of block '" + block.name +
                "', which returns nothing (end it with `return ...`)";
    return nothing;
  }
  if (returned->size() == 1)
    return returned->front();
  return Val::ofList(std::move(*returned));
}

//===----------------------------------------------------------------------===//
// Builtins
//===----------------------------------------------------------------------===//

FailureOr<Value> ModelBuilder::checked(Operation *op, Location loc) {
  if (!builder.getInsertionBlock()) {
    op->erase();
    return error(loc) << "configs are computed from numbers, bools and "
                         "strings; build tensors in the model's statements";
  }
  if (++opCount > kMaxOps) {
    op->erase();
    return error(loc) << "the model unrolls to more than " << kMaxOps
                      << " ops; check the repeat counts";
  }
  for (Type type : op->getResultTypes())
    if (!hasSaneSize(cast<RankedTensorType>(type))) {
      InFlightDiagnostic diag = error(loc);
      diag << "the result " << type << " has more than 2^48 elements";
      op->erase();
      return failure();
    }
  std::string message;
  LogicalResult verified = success();
  {
    ScopedDiagnosticHandler capture(context, [&](Diagnostic &diag) {
      if (message.empty())
        message = diag.str();
      return success();
    });
    verified = verify(op);
  }
  if (succeeded(verified))
    return op->getResult(0);
  op->erase();
  // "'loom.reshape' op from ..." reads better as "reshape: from ...".
  llvm::StringRef text(message);
  if (text.consume_front("'loom.")) {
    auto [opName, rest] = text.split("' op ");
    return error(loc) << opName << ": " << rest;
  }
  return error(loc) << message;
}

FailureOr<Val> ModelBuilder::callBuiltin(const ast::Expr &call,
                                         std::vector<Val> &args) {
  // A misspelled block is reported as such, with or without `as NAME`.
  const Builtin *builtin = findBuiltin(call.text);
  if (!builtin)
    return unknownCallee(call);
  return frontend::callBuiltin(*this, *builtin, call, args);
}

InFlightDiagnostic ModelBuilder::unknownCallee(const ast::Expr &call) {
  InFlightDiagnostic diag = error(call.loc);
  diag << "'" << call.text << "' is neither a block nor a builtin op";
  SmallVector<llvm::StringRef> candidates;
  for (const Builtin &builtin : builtins())
    candidates.push_back(builtin.name);
  for (const auto &entry : blocks)
    candidates.push_back(entry.getKey());
  std::string best = closestName(call.text, candidates);
  if (!best.empty())
    diag << "; did you mean '" << best << "'?";
  else
    diag << " (docs/language.md lists the builtins)";
  return diag;
}

} // namespace

FailureOr<OwningOpRef<ModuleOp>> buildModel(const ast::File &file,
                                            const ast::File &library,
                                            const ModelOptions &options,
                                            MLIRContext *context) {
  context->loadDialect<LoomDialect, dist::DistDialect, func::FuncDialect>();
  return ModelBuilder(file, library, options, context).build();
}

} // namespace loom
