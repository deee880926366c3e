//===- TinyGpt.h - examples/gpt.loom at a tiny size, for plan tests -*- C++
//-*-===//

#ifndef LOOM_TEST_COMPILER_TINYGPT_H
#define LOOM_TEST_COMPILER_TINYGPT_H

#include "loom/Frontend/ModelBuilder.h"
#include "loom/Frontend/Parser.h"
#include "loom/Plan/PlanBuilder.h"
#include "loom/Plan/TrainingPipeline.h"
#include "loom/dialects/Loom/IR/LoomDialect.h"
#include "loom/passes/Passes.h"

#include "mlir/Dialect/Func/Extensions/InlinerExtension.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

/// The dialects a tiny GPT's module needs, loaded into `context`.
inline void loadTinyGptDialects(mlir::MLIRContext &context) {
  mlir::DialectRegistry registry;
  registry.insert<loom::LoomDialect, loom::dist::DistDialect,
                  mlir::func::FuncDialect>();
  mlir::func::registerInlinerExtension(registry);
  context.appendDialectRegistry(registry);
  context.loadAllAvailableDialects();
  context.printOpOnDiagnostic(false);
}

/// examples/gpt.loom with the configs `overrides` (-D name=value) as a
/// training step on `mesh` ("" for one rank), differentiated.
inline mlir::OwningOpRef<mlir::ModuleOp>
buildGpt(mlir::MLIRContext &context,
         std::vector<std::pair<std::string, std::string>> overrides,
         int64_t micro, int64_t global, llvm::StringRef compute,
         const loom::DistOptions &dist) {
  auto buffer =
      llvm::MemoryBuffer::getFile(LOOM_SOURCE_DIR "/examples/gpt.loom");
  EXPECT_TRUE(bool(buffer));
  if (!buffer)
    return nullptr;
  auto library = loom::parseModelFile(loom::standardLibrarySource(),
                                      loom::standardLibraryName(), &context);
  auto file =
      loom::parseModelFile((*buffer)->getBuffer(), "gpt.loom", &context);
  EXPECT_TRUE(mlir::succeeded(library) && mlir::succeeded(file));
  if (mlir::failed(library) || mlir::failed(file))
    return nullptr;
  loom::ModelOptions options;
  options.overrides = std::move(overrides);
  options.microBatchSize = micro;
  options.globalBatchSize = global;
  std::string error;
  auto axes = loom::parseMeshSpec(dist.mesh, error);
  EXPECT_TRUE(mlir::succeeded(axes)) << error;
  if (mlir::failed(axes))
    return nullptr;
  options.tensorParallel = (*axes)[2].second;
  auto module = loom::buildModel(*file, *library, options, &context);
  EXPECT_TRUE(mlir::succeeded(module));
  if (mlir::failed(module))
    return nullptr;
  EXPECT_TRUE(
      mlir::succeeded(loom::buildTrainingStep(**module, compute, dist)));
  return std::move(*module);
}

/// The same on `mesh` ("" for one rank) with the other options' defaults.
inline mlir::OwningOpRef<mlir::ModuleOp>
buildGpt(mlir::MLIRContext &context,
         std::vector<std::pair<std::string, std::string>> overrides,
         int64_t micro, int64_t global, llvm::StringRef compute = "f32",
         llvm::StringRef mesh = "") {
  loom::DistOptions dist;
  dist.mesh = mesh.str();
  return buildGpt(context, std::move(overrides), micro, global, compute, dist);
}

/// The tiny GPT (vocab 13, seq 6, hidden 16, 2 heads, 2 layers, dropout 0.1)
/// as a training step on `mesh` ("" for one rank), differentiated.
inline mlir::OwningOpRef<mlir::ModuleOp>
buildTinyGpt(mlir::MLIRContext &context, int64_t micro, int64_t global,
             llvm::StringRef compute = "f32", llvm::StringRef mesh = "") {
  return buildGpt(context,
                  {{"vocab", "13"},
                   {"seq", "6"},
                   {"hidden", "16"},
                   {"heads", "2"},
                   {"layers", "2"}},
                  micro, global, compute, mesh);
}

/// A fixture with the dialects loaded and examples/gpt.loom at a tiny size
/// (vocabulary 13, sequence 6, hidden 16, 2 heads, 2 layers).
class TinyGptTest : public ::testing::Test {
protected:
  TinyGptTest() { loadTinyGptDialects(context); }

  /// The model's training step on `mesh` ("" for one rank), differentiated.
  mlir::OwningOpRef<mlir::ModuleOp> tinyGpt(int64_t micro, int64_t global,
                                            llvm::StringRef compute = "f32",
                                            llvm::StringRef mesh = "") {
    return buildTinyGpt(context, micro, global, compute, mesh);
  }

  /// The plan of a training step (cosine decay, the other defaults).
  std::unique_ptr<loom::plan::PlanT> planOf(mlir::ModuleOp module) {
    loom::PlanOptions options;
    options.optimizer.decay_style = "cosine";
    auto built = loom::buildPlan(module, options);
    EXPECT_TRUE(mlir::succeeded(built));
    return mlir::succeeded(built) ? std::move(*built) : nullptr;
  }

  mlir::MLIRContext context;
};

#endif // LOOM_TEST_COMPILER_TINYGPT_H
