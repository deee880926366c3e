//===- CudaPlanKernels.cpp - compile a plan's CUDA kernels with NVRTC -----===//
//
// One NVRTC program per plan (and per chunk: each chunk is a plan with its
// own prelude and kernels): the prelude is parsed once and NVRTC's start-up
// (~0.15 s warm) is paid once instead of per kernel, and the result is one
// module for the backend to load. Only when that program fails is each
// kernel compiled alone with the prelude, so that the verdict and the log
// name the kernels that fail and the others still get an image: a failure
// is the rare case, and attributing errors by parsing NVRTC's line numbers
// would not give the good kernels a module.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/cuda/PlanKernels.h"

#include <elf.h>

#include <cstring>

namespace loom {
namespace runtime {
namespace cuda {

std::string planCudaSource(const plan::PlanT &plan) {
  if (plan.kernels.empty())
    return "";
  std::string source = plan.kernel_cuda_prelude;
  for (const auto &k : plan.kernels)
    source += "\n" + k->cuda_source;
  return source;
}

namespace {

bool ptxHasEntry(const std::string &ptx, const std::string &name) {
  // `.visible .entry NAME(` — the parenthesis keeps NAME from matching a
  // longer name it is a prefix of.
  return ptx.find(".entry " + name + "(") != std::string::npos;
}

/// The cubin is an ELF64 object: a kernel is a defined STT_FUNC symbol.
bool cubinHasEntry(const std::string &cubin, const std::string &name) {
  const char *data = cubin.data();
  size_t size = cubin.size();
  Elf64_Ehdr header;
  if (size < sizeof(header))
    return false;
  std::memcpy(&header, data, sizeof(header));
  if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 ||
      header.e_ident[EI_CLASS] != ELFCLASS64 ||
      header.e_shentsize != sizeof(Elf64_Shdr))
    return false;
  auto section = [&](size_t i, Elf64_Shdr &out) {
    size_t at = size_t(header.e_shoff) + i * sizeof(Elf64_Shdr);
    if (i >= header.e_shnum || header.e_shoff > size ||
        at + sizeof(Elf64_Shdr) > size)
      return false;
    std::memcpy(&out, data + at, sizeof(out));
    return out.sh_offset <= size && out.sh_size <= size - out.sh_offset;
  };
  for (size_t s = 0; s < header.e_shnum; ++s) {
    Elf64_Shdr symtab, strtab;
    if (!section(s, symtab) || symtab.sh_type != SHT_SYMTAB ||
        !section(symtab.sh_link, strtab))
      continue;
    for (size_t at = 0; at + sizeof(Elf64_Sym) <= symtab.sh_size;
         at += sizeof(Elf64_Sym)) {
      Elf64_Sym sym;
      std::memcpy(&sym, data + symtab.sh_offset + at, sizeof(sym));
      if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF ||
          sym.st_name >= strtab.sh_size)
        continue;
      const char *symName = data + strtab.sh_offset + sym.st_name;
      size_t room = strtab.sh_size - sym.st_name;
      if (strnlen(symName, room) == name.size() && name.size() < room &&
          std::memcmp(symName, name.data(), name.size()) == 0)
        return true;
    }
  }
  return false;
}

NvrtcRequest requestFor(std::string source, std::string name,
                        NvrtcOutput output, int sm) {
  NvrtcRequest request;
  request.source = std::move(source);
  request.name = std::move(name);
  request.smVersion = sm;
  request.output = output;
  // No --use_fast_math: the kernels must compute what the host kernels do.
  return request;
}

/// Sets ok, image and log of `result` from one NVRTC run holding its entry.
void settle(PlanKernelResult &result, const NvrtcResult &compiled,
            const std::shared_ptr<const std::string> &image,
            NvrtcOutput output) {
  result.log = compiled.log;
  if (!compiled.ok)
    return;
  if (!imageHasEntry(*image, output, result.name)) {
    result.log += std::string(result.log.empty() ? "" : "\n") +
                  "NVRTC succeeded but the image has no entry point '" +
                  result.name + "'";
    return;
  }
  result.ok = true;
  result.image = image;
}

void compileOne(const plan::PlanT &p, int chunk, NvrtcOutput output, int sm,
                std::vector<PlanKernelResult> &results) {
  if (p.kernels.empty())
    return;
  std::string what = chunk < 0 ? "plan" : "chunk" + std::to_string(chunk);
  size_t first = results.size();
  for (size_t k = 0; k < p.kernels.size(); ++k) {
    PlanKernelResult r;
    r.name = p.kernels[k]->name;
    r.family = p.kernels[k]->family;
    r.chunk = chunk;
    r.index = int(k);
    results.push_back(std::move(r));
  }
  NvrtcResult whole =
      compileWithNvrtc(requestFor(planCudaSource(p), what + ".cu", output, sm));
  if (whole.ok) {
    auto image = std::make_shared<const std::string>(std::move(whole.image));
    for (size_t k = 0; k < p.kernels.size(); ++k)
      settle(results[first + k], whole, image, output);
    return;
  }
  for (size_t k = 0; k < p.kernels.size(); ++k) {
    const plan::KernelT &kernel = *p.kernels[k];
    NvrtcResult alone = compileWithNvrtc(
        requestFor(p.kernel_cuda_prelude + "\n" + kernel.cuda_source,
                   what + "." + kernel.name + ".cu", output, sm));
    auto image = std::make_shared<const std::string>(std::move(alone.image));
    settle(results[first + k], alone, image, output);
  }
}

} // namespace

bool imageHasEntry(const std::string &image, NvrtcOutput output,
                   const std::string &name) {
  if (name.empty())
    return false;
  return output == NvrtcOutput::Ptx ? ptxHasEntry(image, name)
                                    : cubinHasEntry(image, name);
}

std::vector<PlanKernelResult> compilePlanKernels(const plan::PlanT &plan,
                                                 NvrtcOutput output, int sm) {
  std::vector<PlanKernelResult> results;
  compileOne(plan, -1, output, sm, results);
  for (size_t c = 0; c < plan.chunks.size(); ++c)
    compileOne(*plan.chunks[c], int(c), output, sm, results);
  return results;
}

} // namespace cuda
} // namespace runtime
} // namespace loom
