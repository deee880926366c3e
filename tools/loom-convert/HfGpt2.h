//===- HfGpt2.h - Hugging Face GPT-2 <-> Loom checkpoints -------*- C++ -*-===//
//
// The conversions loom-convert runs: a Hugging Face GPT2LMHeadModel
// directory (config.json and model.safetensors, as save_pretrained writes
// them) into a Loom checkpoint for a plan compiled from examples/gpt.loom,
// and back. docs/data.md, "Hugging Face GPT-2 checkpoints", has the name
// mapping, the QKV reorder and what is checked.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TOOLS_LOOM_CONVERT_HFGPT2_H
#define LOOM_TOOLS_LOOM_CONVERT_HFGPT2_H

#include "loom/runtime/Safetensors.h"
#include "loom/runtime/Status.h"

#include <cstdint>
#include <string>

namespace loom {
namespace convert {

/// Reads HF_DIR, checks its config.json and tensors against the plan's
/// model, and writes a whole checkpoint into `checkpointDir` that
/// `loom-run PLAN --load` starts from: step 0, data position 0, zero AdamW
/// moments, `seed`, and the plan's initial loss scale.
runtime::Status hfToLoom(const std::string &hfDir,
                         const std::string &checkpointDir,
                         const std::string &planPath, uint64_t seed);

/// Reads the checkpoint's parameters and writes HF_DIR/config.json and
/// HF_DIR/model.safetensors (HF's names, `dtype`).
runtime::Status loomToHf(const std::string &checkpointDir,
                         const std::string &hfDir, const std::string &planPath,
                         runtime::SafetensorsDType dtype);

} // namespace convert
} // namespace loom

#endif // LOOM_TOOLS_LOOM_CONVERT_HFGPT2_H
