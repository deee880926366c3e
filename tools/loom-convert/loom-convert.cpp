//===- loom-convert.cpp - Hugging Face GPT-2 checkpoints in and out -------===//
//
// loom-convert hf-to-loom HF_DIR CKPT_DIR --plan PLAN [--seed N]
// loom-convert loom-to-hf CKPT_DIR HF_DIR --plan PLAN [--dtype f32|bf16|f16]
// The work is HfGpt2.cpp's; this file reads the command line.
//
//===----------------------------------------------------------------------===//

#include "HfGpt2.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

using namespace loom;
using namespace loom::runtime;

namespace {

const char kUsage[] =
    "usage: loom-convert hf-to-loom HF_DIR CKPT_DIR --plan PLAN [--seed N]\n"
    "       loom-convert loom-to-hf CKPT_DIR HF_DIR --plan PLAN\n"
    "                    [--dtype f32|bf16|f16]\n"
    "\n"
    "Converts GPT-2 weights between Hugging Face's format (a directory with\n"
    "config.json and model.safetensors, as save_pretrained writes it) and a\n"
    "Loom checkpoint for PLAN, a plan loomc compiled from examples/gpt.loom\n"
    "(docs/data.md, \"Hugging Face GPT-2 checkpoints\").\n"
    "\n"
    "  hf-to-loom   checks config.json and every tensor against the plan's\n"
    "               model, then writes a checkpoint `loom-run PLAN --load\n"
    "               CKPT_DIR` starts from (step 0, zero optimizer moments)\n"
    "  loom-to-hf   writes HF_DIR/config.json and HF_DIR/model.safetensors\n"
    "               from the checkpoint's parameters\n"
    "  --plan PLAN  the plan whose model the checkpoint is for\n"
    "  --seed N     the checkpoint's seed (dropout, data order; default\n"
    "               1234, loom-run's)\n"
    "  --dtype T    the safetensors dtype loom-to-hf writes (default f32;\n"
    "               bf16 and f16 round to nearest even)\n"
    "  --help       this text\n";

int usage(const std::string &message) {
  std::fprintf(stderr,
               "loom-convert: %s\n(loom-convert --help lists the "
               "options)\n",
               message.c_str());
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  std::vector<std::string> words;
  std::string plan, seedText, dtypeText = "f32";
  bool sawSeed = false, sawDtype = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg.rfind("--", 0) != 0) {
      words.push_back(arg);
      continue;
    }
    std::optional<std::string> value;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    if (arg != "--plan" && arg != "--seed" && arg != "--dtype")
      return usage("unknown option '" + arg + "'");
    if (!value) {
      if (i + 1 >= argc)
        return usage(arg + " needs a value");
      value = argv[++i];
    }
    if (arg == "--plan")
      plan = *value;
    else if (arg == "--seed")
      seedText = *value, sawSeed = true;
    else
      dtypeText = *value, sawDtype = true;
  }
  if (words.empty())
    return usage("name a command: hf-to-loom or loom-to-hf");
  const std::string &command = words[0];
  if (command != "hf-to-loom" && command != "loom-to-hf")
    return usage("unknown command '" + command +
                 "'; the commands are hf-to-loom and loom-to-hf");
  bool in = command == "hf-to-loom";
  if (words.size() != 3)
    return usage(command +
                 (in ? " takes HF_DIR CKPT_DIR"
                     : " takes CKPT_DIR "
                       "HF_DIR") +
                 ", two directories; got " + std::to_string(words.size() - 1));
  if (plan.empty())
    return usage(command + " needs --plan PLAN: the plan (loomc -o) whose "
                           "model the checkpoint is for");
  if (in && sawDtype)
    return usage("--dtype is loom-to-hf's (hf-to-loom reads any of F32, F16 "
                 "and BF16)");
  if (!in && sawSeed)
    return usage("--seed is hf-to-loom's (loom-to-hf writes weights only)");

  Status done = Status::success();
  if (in) {
    uint64_t seed = 1234;
    if (sawSeed) {
      char *end = nullptr;
      errno = 0;
      unsigned long long v = std::strtoull(seedText.c_str(), &end, 10);
      if (seedText.empty() || seedText[0] == '-' || *end || errno)
        return usage("--seed takes a whole number from 0 to 2^64 - 1, not '" +
                     seedText + "'");
      seed = v;
    }
    done = convert::hfToLoom(words[1], words[2], plan, seed);
  } else {
    SafetensorsDType dtype;
    if (dtypeText == "f32")
      dtype = SafetensorsDType::F32;
    else if (dtypeText == "bf16")
      dtype = SafetensorsDType::BF16;
    else if (dtypeText == "f16")
      dtype = SafetensorsDType::F16;
    else
      return usage("--dtype is f32, bf16 or f16, not '" + dtypeText + "'");
    done = convert::loomToHf(words[1], words[2], plan, dtype);
  }
  if (!done.ok()) {
    std::fprintf(stderr, "loom-convert: %s\n", done.message().c_str());
    return 1;
  }
  return 0;
}
