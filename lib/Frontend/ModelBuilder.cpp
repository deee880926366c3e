//===- ModelBuilder.cpp - model language to the loom dialect --------------===//
//
// A compile-time interpreter over the syntax tree. Scalars (int, float, bool,
// string), lists and element types are evaluated here; tensors are SSA values
// of the function being built. Blocks are expanded at each call and `repeat`
// is unrolled, so every parameter and dropout site gets its own dotted name.
//
//===----------------------------------------------------------------------===//

#include "loom/Frontend/ModelBuilder.h"
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
#include <cstdio>
#include <functional>
#include <map>
#include <optional>

using namespace mlir;

namespace loom {
namespace {

//===----------------------------------------------------------------------===//
// Values
//===----------------------------------------------------------------------===//

struct Val {
  enum class Kind { None, Int, Float, Bool, String, List, Tensor, DType };
  Kind kind = Kind::None;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s; // string, or element type name
  std::vector<Val> list;
  /// For lists: the values they hold, nested lists counted through.
  int64_t elements = 0;
  Value tensor;

  static Val ofInt(int64_t v) {
    Val x;
    x.kind = Kind::Int;
    x.i = v;
    return x;
  }
  static Val ofFloat(double v) {
    Val x;
    x.kind = Kind::Float;
    x.f = v;
    return x;
  }
  static Val ofBool(bool v) {
    Val x;
    x.kind = Kind::Bool;
    x.b = v;
    return x;
  }
  static Val ofString(std::string v, Kind kind = Kind::String) {
    Val x;
    x.kind = kind;
    x.s = std::move(v);
    return x;
  }
  static Val ofTensor(Value v) {
    Val x;
    x.kind = Kind::Tensor;
    x.tensor = v;
    return x;
  }
  static Val ofList(std::vector<Val> v) {
    Val x;
    x.kind = Kind::List;
    x.list = std::move(v);
    for (const Val &item : x.list)
      x.elements += item.kind == Kind::List ? item.elements : 1;
    return x;
  }

  bool isNumber() const { return kind == Kind::Int || kind == Kind::Float; }
  double number() const { return kind == Kind::Int ? double(i) : f; }
  RankedTensorType tensorType() const {
    return cast<RankedTensorType>(tensor.getType());
  }
};

const char *kindName(Val::Kind kind) {
  switch (kind) {
  case Val::Kind::None:
    return "none";
  case Val::Kind::Int:
    return "int";
  case Val::Kind::Float:
    return "float";
  case Val::Kind::Bool:
    return "bool";
  case Val::Kind::String:
    return "string";
  case Val::Kind::List:
    return "list";
  case Val::Kind::Tensor:
    return "tensor";
  case Val::Kind::DType:
    return "element type";
  }
  return "value";
}

/// A float as people write it: 0.02, 1.5, 1e-05.
std::string formatFloat(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", value);
  return buffer;
}

/// `int 768`, `tensor<4x64xf32>`, `string "gelu"`: for messages.
std::string describe(const Val &v) {
  std::string out;
  llvm::raw_string_ostream os(out);
  switch (v.kind) {
  case Val::Kind::None:
    os << (v.s.empty() ? "none" : v.s);
    break;
  case Val::Kind::Int:
    os << "int " << v.i;
    break;
  case Val::Kind::Float:
    os << "float " << formatFloat(v.f);
    break;
  case Val::Kind::Bool:
    os << "bool " << (v.b ? "true" : "false");
    break;
  case Val::Kind::String:
    os << "string \"" << v.s << "\"";
    break;
  case Val::Kind::List:
    os << "a list of " << v.list.size();
    break;
  case Val::Kind::Tensor:
    os << v.tensor.getType();
    break;
  case Val::Kind::DType:
    os << "element type " << v.s;
    break;
  }
  return out;
}

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
constexpr int64_t kMaxSplitPieces = 4096;
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

/// A float that is a whole number in int64's range, as an int64.
std::optional<int64_t> wholeNumber(double f) {
  // 2^63 is exact in double; every double at or past 2^53 is whole.
  if (std::floor(f) != f || !(f >= -0x1p63 && f < 0x1p63))
    return std::nullopt;
  return static_cast<int64_t>(f);
}

/// The builtin ops and functions of the language (docs/language.md).
llvm::ArrayRef<const char *> builtinNames() {
  static const char *names[] = {
      "matmul",     "gelu",          "relu",    "silu",       "softmax",
      "layernorm",  "rmsnorm",       "dropout", "embedding",  "reshape",
      "transpose",  "split",         "concat",  "reduce_sum", "reduce_mean",
      "reduce_max", "cross_entropy", "cast",    "dim",        "rank",
      "sqrt",       "round_up",      "min",     "max",        "int",
      "float",      "check"};
  return names;
}

bool isBuiltin(llvm::StringRef name) {
  return llvm::is_contained(builtinNames(), name);
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

/// Arguments of a call bound to a signature's names, in signature order.
using BoundArgs = std::vector<std::optional<Val>>;

struct CallFrame {
  std::string block;
  Location loc;
};

class ModelBuilder {
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
  InFlightDiagnostic error(Location loc) {
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

  // Helpers for builtins.
  FailureOr<BoundArgs> bind(const ast::Expr &call, std::vector<Val> &args,
                            llvm::ArrayRef<const char *> names, size_t required,
                            llvm::StringRef what);
  FailureOr<Value> tensorArg(const ast::Expr &call, const BoundArgs &args,
                             size_t index, llvm::ArrayRef<const char *> names);
  template <typename T>
  FailureOr<T> scalarArg(const ast::Expr &call, const std::optional<Val> &v,
                         llvm::StringRef name, llvm::StringRef expected,
                         std::optional<T> (*get)(const Val &));
  FailureOr<int64_t> intArg(const ast::Expr &call, const std::optional<Val> &v,
                            llvm::StringRef name);
  FailureOr<double> floatArg(const ast::Expr &call, const std::optional<Val> &v,
                             llvm::StringRef name);
  FailureOr<bool> boolArg(const ast::Expr &call, const std::optional<Val> &v,
                          llvm::StringRef name);
  FailureOr<std::string> stringArg(const ast::Expr &call,
                                   const std::optional<Val> &v,
                                   llvm::StringRef name);
  FailureOr<SmallVector<int64_t>> intListArg(const ast::Expr &call,
                                             const std::optional<Val> &v,
                                             llvm::StringRef name);
  /// Verifies a just-built op; on failure erases it and re-emits the
  /// verifier's message at `loc` with the call-stack notes.
  FailureOr<Value> checked(Operation *op, Location loc);
  FailureOr<Val> binaryTensorOp(const ast::Expr &expr, llvm::StringRef op,
                                const Val &lhs, const Val &rhs);

  /// The dotted name of `leaf` in the current scope; fails when it exists.
  FailureOr<std::string> claimName(llvm::StringRef leaf, Location loc,
                                   llvm::StringRef what);

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

Type elementTypeNamed(MLIRContext *context, llvm::StringRef name) {
  Builder b(context);
  return llvm::StringSwitch<Type>(name)
      .Case("f32", b.getF32Type())
      .Case("bf16", b.getBF16Type())
      .Case("f16", b.getF16Type())
      .Case("i32", b.getI32Type())
      .Case("i64", b.getI64Type())
      .Case("i1", b.getI1Type())
      .Default(Type());
}

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
    if (isBuiltin(name))
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
  static const char *normalNames[] = {"std"};
  static const char *scaledNames[] = {"std", "layers"};
  FailureOr<BoundArgs> bound =
      scaled ? bind(init, args, scaledNames, 2, "scaled_normal")
             : bind(init, args, normalNames, 1, "normal");
  if (failed(bound))
    return failure();
  FailureOr<double> std = floatArg(init, (*bound)[0], "std");
  if (failed(std))
    return failure();
  auto emit = [&]() { return error(init.loc); };
  if (!scaled) {
    if (failed(NormalInitAttr::verify(emit, APFloat(*std))))
      return failure();
    return Attribute(NormalInitAttr::get(context, APFloat(*std)));
  }
  FailureOr<int64_t> layers = intArg(init, (*bound)[1], "layers");
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

FailureOr<BoundArgs> ModelBuilder::bind(const ast::Expr &call,
                                        std::vector<Val> &args,
                                        llvm::ArrayRef<const char *> names,
                                        size_t required, llvm::StringRef what) {
  BoundArgs bound(names.size());
  std::vector<std::string> all(names.begin(), names.end());
  size_t positional = 0;
  for (auto [i, keyword] : llvm::enumerate(call.keywords)) {
    size_t index;
    if (keyword.empty()) {
      index = positional++;
      if (index >= names.size())
        return error(call.operands[i]->loc)
               << what << " takes " << names.size() << " argument"
               << (names.size() == 1 ? "" : "s") << " (" << joinNames(all)
               << "), but more were given";
    } else {
      auto found = llvm::find(names, keyword);
      if (found == names.end())
        return error(call.operands[i]->loc)
               << what << " has no argument '" << keyword
               << "'; its arguments are: " << joinNames(all);
      index = found - names.begin();
      if (bound[index])
        return error(call.operands[i]->loc)
               << "argument '" << keyword << "' of " << what
               << " is given twice";
    }
    bound[index] = args[i];
  }
  for (size_t i = 0; i < required; ++i)
    if (!bound[i])
      return error(call.loc)
             << what << " needs argument '" << names[i]
             << "' (its arguments are: " << joinNames(all) << ")";
  return bound;
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

  std::vector<const char *> names;
  for (const ast::BlockParameter &p : block.parameters)
    names.push_back(p.name.c_str());
  size_t required = 0;
  while (required < block.parameters.size() &&
         !block.parameters[required].defaultValue)
    ++required;
  std::string what = "block '" + block.name + "'";
  FailureOr<BoundArgs> bound = bind(call, args, names, 0, what);
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
             << "' (its arguments are: "
             << joinNames(std::vector<std::string>(names.begin(), names.end()))
             << ")";
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

FailureOr<Value> ModelBuilder::tensorArg(const ast::Expr &call,
                                         const BoundArgs &args, size_t index,
                                         llvm::ArrayRef<const char *> names) {
  const std::optional<Val> &v = args[index];
  if (v && v->kind == Val::Kind::Tensor)
    return v->tensor;
  return error(call.loc) << "argument '" << names[index] << "' of '"
                         << call.text << "' must be a tensor, got "
                         << (v ? describe(*v) : std::string("nothing"));
}

template <typename T>
FailureOr<T>
ModelBuilder::scalarArg(const ast::Expr &call, const std::optional<Val> &v,
                        llvm::StringRef name, llvm::StringRef expected,
                        std::optional<T> (*get)(const Val &)) {
  if (v)
    if (std::optional<T> value = get(*v))
      return *value;
  return error(call.loc) << "argument '" << name << "' of '" << call.text
                         << "' must be " << expected << ", got "
                         << (v ? describe(*v) : std::string("nothing"));
}

FailureOr<int64_t> ModelBuilder::intArg(const ast::Expr &call,
                                        const std::optional<Val> &v,
                                        llvm::StringRef name) {
  return scalarArg<int64_t>(call, v, name, "an int",
                            [](const Val &x) -> std::optional<int64_t> {
                              if (x.kind == Val::Kind::Int)
                                return x.i;
                              return std::nullopt;
                            });
}

FailureOr<double> ModelBuilder::floatArg(const ast::Expr &call,
                                         const std::optional<Val> &v,
                                         llvm::StringRef name) {
  return scalarArg<double>(call, v, name, "a number",
                           [](const Val &x) -> std::optional<double> {
                             if (x.isNumber())
                               return x.number();
                             return std::nullopt;
                           });
}

FailureOr<bool> ModelBuilder::boolArg(const ast::Expr &call,
                                      const std::optional<Val> &v,
                                      llvm::StringRef name) {
  return scalarArg<bool>(call, v, name, "true or false",
                         [](const Val &x) -> std::optional<bool> {
                           if (x.kind == Val::Kind::Bool)
                             return x.b;
                           return std::nullopt;
                         });
}

FailureOr<std::string> ModelBuilder::stringArg(const ast::Expr &call,
                                               const std::optional<Val> &v,
                                               llvm::StringRef name) {
  return scalarArg<std::string>(call, v, name, "a string",
                                [](const Val &x) -> std::optional<std::string> {
                                  if (x.kind == Val::Kind::String)
                                    return x.s;
                                  return std::nullopt;
                                });
}

FailureOr<SmallVector<int64_t>>
ModelBuilder::intListArg(const ast::Expr &call, const std::optional<Val> &v,
                         llvm::StringRef name) {
  SmallVector<int64_t> out;
  if (v && v->kind == Val::Kind::List &&
      llvm::all_of(v->list, [](const Val &x) {
        return x.kind == Val::Kind::Int ||
               (x.kind == Val::Kind::Float && wholeNumber(x.f));
      })) {
    for (const Val &x : v->list)
      out.push_back(x.kind == Val::Kind::Int ? x.i : *wholeNumber(x.f));
    return out;
  }
  return error(call.loc)
         << "argument '" << name << "' of '" << call.text
         << "' must be a list of whole numbers, got "
         << (v ? (v->kind == Val::Kind::List
                      ? std::string("a list holding ") +
                            (v->list.empty()
                                 ? std::string("nothing")
                                 : describe(*llvm::find_if(
                                       v->list,
                                       [](const Val &x) {
                                         return x.kind != Val::Kind::Int &&
                                                !(x.kind == Val::Kind::Float &&
                                                  wholeNumber(x.f));
                                       })))
                      : describe(*v))
               : std::string("nothing"));
}

FailureOr<Val> ModelBuilder::callBuiltin(const ast::Expr &call,
                                         std::vector<Val> &args) {
  const std::string &name = call.text;
  Location loc = call.loc;
  // A misspelled block is reported as such, with or without `as NAME`.
  if (!isBuiltin(name))
    return unknownCallee(call);
  if (!call.instanceName.empty() && name != "dropout")
    return error(loc) << "`as " << call.instanceName
                      << "` names block calls and dropout sites; '" << name
                      << "' creates nothing to name";
  auto tensorResult = [&](FailureOr<Value> v) -> FailureOr<Val> {
    if (failed(v))
      return failure();
    return Val::ofTensor(*v);
  };
#define BIND(...)                                                              \
  static const char *names[] = {__VA_ARGS__};                                  \
  FailureOr<BoundArgs> boundOr =                                               \
      bind(call, args, names, required, "'" + name + "'");                     \
  if (failed(boundOr))                                                         \
    return failure();                                                          \
  BoundArgs &a = *boundOr;
#define TENSOR(var, index)                                                     \
  FailureOr<Value> var##Or = tensorArg(call, a, index, names);                 \
  if (failed(var##Or))                                                         \
    return failure();                                                          \
  Value var = *var##Or;
#define ARG(var, fn, index)                                                    \
  auto var##Or = fn(call, a[index], names[index]);                             \
  if (failed(var##Or))                                                         \
    return failure();                                                          \
  auto var = *var##Or;
#define OPTIONAL_ARG(var, fn, index, fallback)                                 \
  auto var = fallback;                                                         \
  if (a[index] && a[index]->kind != Val::Kind::None) {                         \
    auto var##Or = fn(call, a[index], names[index]);                           \
    if (failed(var##Or))                                                       \
      return failure();                                                        \
    var = *var##Or;                                                            \
  }

  if (name == "matmul") {
    size_t required = 2;
    BIND("a", "b", "transpose_a", "transpose_b");
    TENSOR(lhs, 0);
    TENSOR(rhs, 1);
    OPTIONAL_ARG(ta, boolArg, 2, false);
    OPTIONAL_ARG(tb, boolArg, 3, false);
    FailureOr<RankedTensorType> type =
        MatmulOp::inferResultType(cast<RankedTensorType>(lhs.getType()),
                                  cast<RankedTensorType>(rhs.getType()), ta, tb,
                                  [&] { return error(loc) << "matmul: "; });
    if (failed(type))
      return failure();
    return tensorResult(
        checked(builder.create<MatmulOp>(loc, *type, lhs, rhs, ta, tb), loc));
  }
  if (name == "gelu") {
    size_t required = 1;
    BIND("x", "approximate");
    TENSOR(x, 0);
    OPTIONAL_ARG(approx, stringArg, 1, std::string("none"));
    std::optional<GeluApproximation> kind = symbolizeGeluApproximation(approx);
    if (!kind)
      return error(loc) << "gelu's approximate must be \"none\" or \"tanh\", "
                           "got \""
                        << approx << "\"";
    return tensorResult(checked(builder.create<GeluOp>(loc, x, *kind), loc));
  }
  if (name == "relu" || name == "silu") {
    size_t required = 1;
    BIND("x");
    TENSOR(x, 0);
    Operation *op = name == "relu"
                        ? builder.create<ReluOp>(loc, x).getOperation()
                        : builder.create<SiluOp>(loc, x).getOperation();
    return tensorResult(checked(op, loc));
  }
  if (name == "softmax") {
    size_t required = 1;
    BIND("x", "causal", "scale", "mask");
    TENSOR(x, 0);
    OPTIONAL_ARG(causal, boolArg, 1, false);
    OPTIONAL_ARG(scale, floatArg, 2, 1.0);
    Value mask;
    if (a[3] && a[3]->kind != Val::Kind::None) {
      TENSOR(m, 3);
      mask = m;
    }
    return tensorResult(checked(
        builder.create<SoftmaxOp>(loc, x.getType(), x, mask,
                                  causal ? builder.getUnitAttr() : UnitAttr(),
                                  builder.getF64FloatAttr(scale)),
        loc));
  }
  if (name == "layernorm") {
    size_t required = 3;
    BIND("x", "weight", "bias", "eps");
    TENSOR(x, 0);
    TENSOR(w, 1);
    TENSOR(b, 2);
    OPTIONAL_ARG(eps, floatArg, 3, 1e-5);
    return tensorResult(
        checked(builder.create<LayerNormOp>(loc, x.getType(), x, w, b,
                                            builder.getF64FloatAttr(eps)),
                loc));
  }
  if (name == "rmsnorm") {
    size_t required = 2;
    BIND("x", "weight", "eps");
    TENSOR(x, 0);
    TENSOR(w, 1);
    OPTIONAL_ARG(eps, floatArg, 2, 1e-5);
    return tensorResult(
        checked(builder.create<RmsNormOp>(loc, x.getType(), x, w,
                                          builder.getF64FloatAttr(eps)),
                loc));
  }
  if (name == "dropout") {
    size_t required = 2;
    BIND("x", "rate");
    TENSOR(x, 0);
    ARG(rate, floatArg, 1);
    if (call.instanceName == "_")
      return error(loc) << "a dropout needs a site name; write `as NAME`, "
                           "not `as _`";
    FailureOr<std::string> site =
        claimName(call.instanceName.empty() ? "dropout" : call.instanceName,
                  loc, "dropout site");
    if (failed(site))
      return failure();
    return tensorResult(
        checked(builder.create<DropoutOp>(loc, x.getType(), x,
                                          builder.getF64FloatAttr(rate),
                                          builder.getStringAttr(*site)),
                loc));
  }
  if (name == "embedding") {
    size_t required = 2;
    BIND("table", "indices");
    TENSOR(table, 0);
    TENSOR(ids, 1);
    auto tableType = cast<RankedTensorType>(table.getType());
    if (tableType.getRank() != 2)
      return error(loc) << "embedding: the table must be [vocab, hidden], got "
                        << tableType;
    SmallVector<int64_t> shape(
        cast<RankedTensorType>(ids.getType()).getShape());
    shape.push_back(tableType.getDimSize(1));
    return tensorResult(checked(
        builder.create<EmbeddingOp>(
            loc, RankedTensorType::get(shape, tableType.getElementType()),
            table, ids),
        loc));
  }
  if (name == "reshape") {
    size_t required = 2;
    BIND("x", "shape");
    TENSOR(x, 0);
    ARG(shape, intListArg, 1);
    for (int64_t d : shape)
      if (d < 1)
        return error(loc) << "reshape: every dimension must be at least 1, "
                             "got "
                          << d;
    auto type = RankedTensorType::get(
        shape, cast<RankedTensorType>(x.getType()).getElementType());
    return tensorResult(checked(builder.create<ReshapeOp>(loc, type, x), loc));
  }
  if (name == "transpose") {
    size_t required = 2;
    BIND("x", "permutation");
    TENSOR(x, 0);
    ARG(perm, intListArg, 1);
    auto in = cast<RankedTensorType>(x.getType());
    SmallVector<int64_t> shape;
    for (int64_t p : perm) {
      if (p < 0 || p >= in.getRank())
        return error(loc) << "transpose: " << p << " is not a dimension of "
                          << in;
      shape.push_back(in.getDimSize(p));
    }
    return tensorResult(
        checked(builder.create<TransposeOp>(
                    loc, RankedTensorType::get(shape, in.getElementType()), x,
                    builder.getDenseI64ArrayAttr(perm)),
                loc));
  }
  if (name == "split") {
    size_t required = 2;
    BIND("x", "axis", "parts", "sizes");
    TENSOR(x, 0);
    ARG(axisArg, intArg, 1);
    auto in = cast<RankedTensorType>(x.getType());
    int64_t axis = axisArg < 0 ? axisArg + in.getRank() : axisArg;
    if (axis < 0 || axis >= in.getRank())
      return error(loc) << "split: axis " << axisArg
                        << " is not a dimension of " << in;
    SmallVector<int64_t> sizes;
    bool hasParts = a[2] && a[2]->kind != Val::Kind::None;
    bool hasSizes = a[3] && a[3]->kind != Val::Kind::None;
    if (hasParts == hasSizes)
      return error(loc) << "split needs exactly one of parts = N (equal "
                           "pieces) or sizes = [..]";
    if (hasParts) {
      ARG(parts, intArg, 2);
      if (parts < 1 || parts > kMaxSplitPieces ||
          in.getDimSize(axis) % parts != 0)
        return error(loc) << "split: " << parts
                          << " equal parts do not divide dimension " << axis
                          << " of " << in << " (size " << in.getDimSize(axis)
                          << ")";
      sizes.assign(parts, in.getDimSize(axis) / parts);
    } else {
      ARG(list, intListArg, 3);
      sizes = list;
      if (static_cast<int64_t>(sizes.size()) > kMaxSplitPieces)
        return error(loc) << "split into more than " << kMaxSplitPieces
                          << " pieces";
    }
    SmallVector<Type> types;
    for (int64_t size : sizes) {
      if (size < 1)
        return error(loc) << "split: a piece of size " << size
                          << "; every piece needs at least 1";
      SmallVector<int64_t> shape(in.getShape());
      shape[axis] = size;
      types.push_back(RankedTensorType::get(shape, in.getElementType()));
    }
    auto op =
        builder.create<SplitOp>(loc, types, x, builder.getI64IntegerAttr(axis));
    if (failed(checked(op, loc)))
      return failure();
    if (sizes.size() == 1)
      return Val::ofTensor(op.getResult(0));
    std::vector<Val> pieces;
    for (Value v : op.getResults())
      pieces.push_back(Val::ofTensor(v));
    return Val::ofList(std::move(pieces));
  }
  if (name == "concat") {
    size_t required = 2;
    BIND("tensors", "axis");
    ARG(axisArg, intArg, 1);
    if (!a[0] || a[0]->kind != Val::Kind::List || a[0]->list.empty() ||
        llvm::any_of(a[0]->list,
                     [](const Val &v) { return v.kind != Val::Kind::Tensor; }))
      return error(loc) << "concat's first argument must be a non-empty list "
                           "of tensors";
    SmallVector<Value> inputs;
    for (const Val &v : a[0]->list)
      inputs.push_back(v.tensor);
    auto first = cast<RankedTensorType>(inputs.front().getType());
    int64_t axis = axisArg < 0 ? axisArg + first.getRank() : axisArg;
    if (axis < 0 || axis >= first.getRank())
      return error(loc) << "concat: axis " << axisArg
                        << " is not a dimension of " << first;
    SmallVector<int64_t> shape(first.getShape());
    shape[axis] = 0;
    for (Value v : inputs) {
      auto t = cast<RankedTensorType>(v.getType());
      if (t.getRank() != first.getRank())
        return error(loc) << "concat: " << t << " and " << first
                          << " have different ranks";
      if (__builtin_add_overflow(shape[axis], t.getDimSize(axis), &shape[axis]))
        return error(loc) << "concat: the sizes along axis " << axis
                          << " add up to more than 64 bits hold";
    }
    return tensorResult(
        checked(builder.create<ConcatOp>(
                    loc, RankedTensorType::get(shape, first.getElementType()),
                    inputs, builder.getI64IntegerAttr(axis)),
                loc));
  }
  if (name == "reduce_sum" || name == "reduce_mean" || name == "reduce_max") {
    size_t required = 2;
    BIND("x", "dims", "keep_dims");
    TENSOR(x, 0);
    ARG(dims, intListArg, 1);
    OPTIONAL_ARG(keep, boolArg, 2, false);
    auto in = cast<RankedTensorType>(x.getType());
    for (int64_t &d : dims)
      if (d < 0)
        d += in.getRank();
    SmallVector<int64_t> shape;
    for (int64_t i = 0; i < in.getRank(); ++i) {
      if (!llvm::is_contained(dims, i))
        shape.push_back(in.getDimSize(i));
      else if (keep)
        shape.push_back(1);
    }
    ReduceKind kind = name == "reduce_sum"    ? ReduceKind::Sum
                      : name == "reduce_mean" ? ReduceKind::Mean
                                              : ReduceKind::Max;
    return tensorResult(
        checked(builder.create<ReduceOp>(
                    loc, RankedTensorType::get(shape, in.getElementType()),
                    kind, x, dims, keep),
                loc));
  }
  if (name == "cross_entropy") {
    size_t required = 2;
    BIND("logits", "labels", "ignore_index", "reduction");
    TENSOR(logits, 0);
    TENSOR(labels, 1);
    OPTIONAL_ARG(ignore, intArg, 2, int64_t(-100));
    OPTIONAL_ARG(reduction, stringArg, 3, std::string("mean"));
    std::optional<LossReduction> kind = symbolizeLossReduction(reduction);
    if (!kind)
      return error(loc) << "cross_entropy's reduction must be \"none\", "
                           "\"mean\" or \"sum\", got \""
                        << reduction << "\"";
    auto labelType = cast<RankedTensorType>(labels.getType());
    SmallVector<int64_t> shape;
    if (*kind == LossReduction::None)
      shape.assign(labelType.getShape().begin(), labelType.getShape().end());
    return tensorResult(
        checked(builder.create<CrossEntropyOp>(
                    loc, RankedTensorType::get(shape, builder.getF32Type()),
                    logits, labels, *kind, ignore),
                loc));
  }
  if (name == "cast") {
    size_t required = 2;
    BIND("x", "to");
    TENSOR(x, 0);
    if (!a[1] || a[1]->kind != Val::Kind::DType)
      return error(loc) << "cast's second argument must be an element type "
                           "(f32, bf16, f16, i32, i64, i1)";
    auto in = cast<RankedTensorType>(x.getType());
    return tensorResult(
        checked(builder.create<CastOp>(
                    loc,
                    RankedTensorType::get(in.getShape(),
                                          elementTypeNamed(context, a[1]->s)),
                    x),
                loc));
  }
  // Scalars.
  if (name == "dim") {
    size_t required = 2;
    BIND("x", "index");
    TENSOR(x, 0);
    ARG(index, intArg, 1);
    auto type = cast<RankedTensorType>(x.getType());
    int64_t i = index < 0 ? index + type.getRank() : index;
    if (i < 0 || i >= type.getRank())
      return error(loc) << "dim: " << index << " is not a dimension of " << type
                        << " (rank " << type.getRank() << ")";
    return Val::ofInt(type.getDimSize(i));
  }
  if (name == "rank") {
    size_t required = 1;
    BIND("x");
    TENSOR(x, 0);
    return Val::ofInt(cast<RankedTensorType>(x.getType()).getRank());
  }
  if (name == "sqrt") {
    size_t required = 1;
    BIND("x");
    ARG(x, floatArg, 0);
    if (x < 0)
      return error(loc) << "sqrt of a negative number (" << formatFloat(x)
                        << ")";
    return Val::ofFloat(std::sqrt(x));
  }
  if (name == "round_up") {
    size_t required = 2;
    BIND("x", "multiple");
    ARG(x, intArg, 0);
    ARG(m, intArg, 1);
    if (m < 1)
      return error(loc) << "round_up: the multiple must be at least 1, got "
                        << m;
    int64_t up;
    if (x < 0 || __builtin_add_overflow(x, m - 1, &up))
      return error(loc) << "round_up(" << x << ", " << m
                        << ") needs a non-negative x that fits in 64 bits";
    return Val::ofInt(up / m * m);
  }
  if (name == "min" || name == "max") {
    size_t required = 2;
    BIND("a", "b");
    ARG(x, floatArg, 0);
    ARG(y, floatArg, 1);
    bool first = name == "min" ? x <= y : x >= y;
    return *a[first ? 0 : 1];
  }
  if (name == "int") {
    size_t required = 1;
    BIND("x");
    ARG(x, floatArg, 0);
    if (std::floor(x) != x)
      return error(loc) << "int(" << formatFloat(x)
                        << ") is not a whole number";
    if (!wholeNumber(x))
      return error(loc) << "int(" << formatFloat(x)
                        << ") does not fit in 64 bits";
    return Val::ofInt(*wholeNumber(x));
  }
  if (name == "float") {
    size_t required = 1;
    BIND("x");
    ARG(x, floatArg, 0);
    return Val::ofFloat(x);
  }
  if (name == "check") {
    size_t required = 2;
    BIND("condition", "message");
    ARG(cond, boolArg, 0);
    ARG(message, stringArg, 1);
    if (!cond)
      return error(loc) << message;
    return Val();
  }
#undef BIND
#undef TENSOR
#undef ARG
#undef OPTIONAL_ARG

  return unknownCallee(call); // a name of builtinNames() without a case
}

InFlightDiagnostic ModelBuilder::unknownCallee(const ast::Expr &call) {
  InFlightDiagnostic diag = error(call.loc);
  diag << "'" << call.text << "' is neither a block nor a builtin op";
  SmallVector<llvm::StringRef> candidates(builtinNames().begin(),
                                          builtinNames().end());
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
