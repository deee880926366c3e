//===- HfGpt2.cpp - Hugging Face GPT-2 <-> Loom checkpoints ---------------===//
//
// Both directions share one table of names (mapping()), one QKV reorder
// (reorderQkv) and one reading of the plan's model (readModel), so they
// cannot disagree. The plan, not the Hugging Face config, decides which
// parameters a checkpoint must hold and their shapes: config.json is checked
// against it field by field, then every tensor against the plan's shape.
//
//===----------------------------------------------------------------------===//

#include "HfGpt2.h"

#include "loom/runtime/Checkpoint.h"
#include "loom/runtime/Files.h"
#include "loom/runtime/Json.h"
#include "loom/runtime/Plan.h"
#include "loom/runtime/Trace.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <sys/stat.h>

namespace loom {
namespace convert {

using namespace runtime;

namespace {

/// What loom-convert needs of the plan: its model's configs and its
/// parameters (name, global shape), each once, in the order Session saves
/// them (chunk order, a tied one where it first appears).
struct Model {
  std::string plan;
  int64_t vocab = 0, seq = 0, hidden = 0, heads = 0, layers = 0, ffn = 0,
          paddedVocab = 0;
  double dropout = 0, initStd = 0.02, lossScale = 1.0;
  std::vector<std::pair<std::string, std::vector<int64_t>>> parameters;
};

Result<Model> readModel(const std::string &planPath) {
  Result<std::unique_ptr<plan::PlanT>> read = readPlan(planPath);
  if (!read.ok())
    return Status::error(read.message());
  const plan::PlanT &p = **read;
  Model m;
  m.plan = planPath;
  if (p.model_config.empty())
    return Status::error(
        "the plan '" + planPath +
        "' records no model configs: compile it from examples/gpt.loom with "
        "this build's loomc (plan format 7 records them)");
  auto integer = [&](const char *name, int64_t &out) {
    const plan::ModelConfigT *c = findModelConfig(p, name);
    if (!c || c->kind != "int")
      return Status::error("the plan '" + planPath +
                           "' has no integer model config '" + name +
                           "': loom-convert converts the GPT of "
                           "examples/gpt.loom");
    out = c->i;
    return Status::success();
  };
  for (auto [name, slot] :
       {std::pair{"vocab", &m.vocab}, std::pair{"seq", &m.seq},
        std::pair{"hidden", &m.hidden}, std::pair{"heads", &m.heads},
        std::pair{"layers", &m.layers}, std::pair{"ffn", &m.ffn},
        std::pair{"padded_vocab", &m.paddedVocab}})
    if (Status s = integer(name, *slot); !s.ok())
      return s;
  for (auto [name, slot] :
       {std::pair{"dropout", &m.dropout}, std::pair{"init_std", &m.initStd}})
    if (const plan::ModelConfigT *c = findModelConfig(p, name))
      *slot = c->kind == "float" ? c->f : double(c->i);
  if (m.heads < 1 || m.hidden % m.heads != 0 || m.vocab > m.paddedVocab)
    return Status::error("the plan '" + planPath +
                         "' has model configs loom-convert cannot use "
                         "(heads must divide hidden, vocab <= padded_vocab)");
  if (p.precision && p.precision->dynamic_loss_scaling)
    m.lossScale = p.precision->initial_loss_scale;
  std::vector<const plan::PlanT *> pieces;
  if (p.chunks.empty())
    pieces.push_back(&p);
  for (const auto &chunk : p.chunks)
    pieces.push_back(chunk.get());
  std::set<std::string> seen;
  for (const plan::PlanT *piece : pieces)
    for (const auto &param : piece->parameters)
      if (seen.insert(param->name).second)
        m.parameters.push_back({param->name, param->global_shape});
  return m;
}

/// How a Loom parameter becomes a Hugging Face tensor.
enum class Layout {
  Same,           // the same values, both [in, out] (HF's Conv1D) or 1-D
  Qkv,            // the fused QKV's 3h outputs reordered (reorderQkv)
  WordEmbeddings, // HF's vocab_size rows of Loom's padded_vocab
};
struct Mapped {
  std::string loom, hf; // hf without the "transformer." prefix
  Layout layout;
};

/// Every parameter of examples/gpt.loom's GPT with `layers` layers.
std::vector<Mapped> mapping(int64_t layers) {
  std::vector<Mapped> m = {
      {"embedding.word_embeddings", "wte.weight", Layout::WordEmbeddings},
      {"embedding.position_embeddings", "wpe.weight", Layout::Same}};
  for (int64_t i = 0; i < layers; ++i) {
    std::string l = "layers." + std::to_string(i) + ".",
                h = "h." + std::to_string(i) + ".";
    for (auto [loom, hf] :
         {std::pair{"ln_1", "ln_1"}, std::pair{"attention.qkv", "attn.c_attn"},
          std::pair{"attention.proj", "attn.c_proj"}, std::pair{"ln_2", "ln_2"},
          std::pair{"mlp.fc1", "mlp.c_fc"}, std::pair{"mlp.fc2", "mlp.c_proj"}})
      for (const char *kind : {".weight", ".bias"})
        m.push_back({l + loom + kind, h + hf + kind,
                     std::string(loom) == "attention.qkv" ? Layout::Qkv
                                                          : Layout::Same});
  }
  m.push_back({"final_ln.weight", "ln_f.weight", Layout::Same});
  m.push_back({"final_ln.bias", "ln_f.bias", Layout::Same});
  return m;
}

/// The fused QKV's 3h output columns of a [rows, 3h] tensor (rows = 1 for
/// the bias): HF's c_attn is [q | k | v], each [heads, head_dim]; Loom's is
/// [heads, 3, head_dim] (Megatron's layout: a tensor-parallel block is
/// whole heads). toLoom picks the direction.
void reorderQkv(const float *from, float *to, int64_t rows, int64_t heads,
                int64_t headDim, bool toLoom) {
  int64_t h = heads * headDim, width = 3 * h;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t head = 0; head < heads; ++head)
      for (int64_t part = 0; part < 3; ++part)
        for (int64_t j = 0; j < headDim; ++j) {
          int64_t loom = r * width + head * 3 * headDim + part * headDim + j,
                  hf = r * width + part * h + head * headDim + j;
          if (toLoom)
            to[loom] = from[hf];
          else
            to[hf] = from[loom];
        }
}

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t elements(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

/// Checks the plan's parameters are exactly the GPT's, by name.
Status checkParameters(const Model &m, const std::vector<Mapped> &table) {
  for (const auto &[name, shape] : m.parameters)
    if (std::none_of(table.begin(), table.end(),
                     [&](const Mapped &e) { return e.loom == name; }))
      return Status::error("the plan '" + m.plan + "' has the parameter '" +
                           name +
                           "', which Hugging Face's GPT-2 has no place for: "
                           "loom-convert converts the GPT of "
                           "examples/gpt.loom");
  for (const Mapped &e : table)
    if (std::none_of(m.parameters.begin(), m.parameters.end(),
                     [&](const auto &p) { return p.first == e.loom; }))
      return Status::error("the plan '" + m.plan + "' has no parameter '" +
                           e.loom +
                           "': loom-convert converts the GPT of "
                           "examples/gpt.loom");
  return Status::success();
}

/// The plan's GPT and its table of names, checked to be each other's.
struct Gpt {
  Model model;
  std::vector<Mapped> table;
};

Result<Gpt> openGpt(const std::string &planPath) {
  Result<Model> model = readModel(planPath);
  if (!model.ok())
    return Status::error(model.message());
  Gpt gpt{std::move(*model), {}};
  gpt.table = mapping(gpt.model.layers);
  if (Status s = checkParameters(gpt.model, gpt.table); !s.ok())
    return s;
  return gpt;
}

/// A number as Python's json writes a float (0.0, 0.1, 1e-05).
std::string pythonFloat(double v) {
  std::string s = jsonDouble(v);
  if (s.find_first_of(".en") == std::string::npos)
    s += ".0";
  return s;
}

Status makeDirectory(const std::string &directory, const char *what) {
  if (directory.empty())
    return Status::error(std::string("the ") + what +
                         " directory's name is empty; name one");
  if (::mkdir(directory.c_str(), 0755) == 0)
    return Status::success();
  struct stat st;
  if (errno == EEXIST && ::stat(directory.c_str(), &st) == 0 &&
      S_ISDIR(st.st_mode))
    return Status::success();
  return Status::error("cannot write the " + std::string(what) +
                       " directory '" + directory + "': " +
                       (errno == EEXIST ? "it exists and is not a directory"
                                        : std::strerror(errno)));
}

// --- Reading a Hugging Face directory ------------------------------------

/// The tensors of HF_DIR: model.safetensors, or the shards that
/// model.safetensors.index.json lists (save_pretrained splits a large
/// model so).
struct HfTensors {
  std::vector<SafetensorsFile> files;
  std::map<std::string, size_t> fileOf; // tensor name -> index in files

  const SafetensorsEntry *find(const std::string &name) const {
    auto it = fileOf.find(name);
    return it == fileOf.end() ? nullptr : files[it->second].find(name);
  }
  const SafetensorsFile &fileFor(const std::string &name) const {
    return files[fileOf.at(name)];
  }
};

bool exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

Result<HfTensors> openTensors(const std::string &dir) {
  HfTensors t;
  std::string single = dir + "/model.safetensors",
              index = dir + "/model.safetensors.index.json";
  if (exists(single) || !exists(index)) {
    if (!exists(single))
      return Status::error(
          "the Hugging Face directory '" + dir + "' has no model.safetensors" +
          (exists(dir + "/pytorch_model.bin")
               ? " (only pytorch_model.bin: save the model with "
                 "save_pretrained(DIR, safe_serialization=True))"
               : ": name a directory save_pretrained wrote"));
    Result<SafetensorsFile> f = SafetensorsFile::open(single);
    if (!f.ok())
      return Status::error(f.message());
    for (const SafetensorsEntry &e : f->tensors())
      t.fileOf[e.name] = 0;
    t.files.push_back(std::move(*f));
    return t;
  }
  Result<std::vector<uint8_t>> bytes =
      readWholeFile(index, "the safetensors index", uint64_t(1) << 28);
  if (!bytes.ok())
    return Status::error(bytes.message());
  Result<JsonValue> json =
      parseJson(std::string_view(reinterpret_cast<const char *>(bytes->data()),
                                 bytes->size()),
                "the safetensors index '" + index + "'");
  if (!json.ok())
    return Status::error(json.message());
  const JsonValue *map = json->find("weight_map");
  if (!map || !map->isObject())
    return Status::error("the safetensors index '" + index +
                         "' has no \"weight_map\" object");
  std::map<std::string, size_t> shardIndex;
  for (const auto &[name, file] : map->object()) {
    if (!file.isString() || file.text().empty() ||
        file.text().find('/') != std::string::npos || file.text() == "..")
      return Status::error("the safetensors index '" + index +
                           "' maps tensor '" + name +
                           "' to something other than a file name beside "
                           "it");
    auto [it, added] = shardIndex.insert({file.text(), t.files.size()});
    if (added) {
      Result<SafetensorsFile> f =
          SafetensorsFile::open(dir + "/" + file.text());
      if (!f.ok())
        return Status::error(f.message());
      t.files.push_back(std::move(*f));
    }
    if (!t.files[it->second].find(name))
      return Status::error("the safetensors index '" + index +
                           "' puts tensor '" + name + "' in '" + file.text() +
                           "', which does not hold it");
    t.fileOf[name] = it->second;
  }
  // A tensor in a shard but not in the index is one the index forgot.
  for (size_t i = 0; i < t.files.size(); ++i)
    for (const SafetensorsEntry &e : t.files[i].tensors())
      if (!t.fileOf.count(e.name))
        return Status::error(t.files[i].what() + " holds tensor '" + e.name +
                             "', which its index '" + index +
                             "' does not list");
  return t;
}

/// config.json against the plan's model: every field that changes the
/// computation, each refusal naming the field and what to change.
Status checkConfig(const JsonValue &config, const std::string &what,
                   const Model &m, int64_t &vocabSize) {
  auto fail = [&](const std::string &why) {
    return Status::error(what + ": " + why);
  };
  if (!config.isObject())
    return fail("it is " + std::string(config.kindName()) +
                ", not a JSON object");
  const JsonValue *type = config.find("model_type");
  if (!type || !type->isString() || type->text() != "gpt2")
    return fail(std::string("model_type is ") +
                (!type              ? "missing"
                 : type->isString() ? "\"" + type->text() + "\""
                                    : type->kindName()) +
                "; loom-convert converts GPT-2 (\"gpt2\")");
  auto integer = [&](const char *field,
                     std::optional<int64_t> fallback) -> Result<int64_t> {
    const JsonValue *v = config.find(field);
    if (!v || v->isNull()) {
      if (fallback)
        return *fallback;
      return fail(std::string(field) + " is missing; GPT-2's config.json "
                                       "has it");
    }
    if (!v->integer() || *v->integer() < 0)
      return fail(std::string(field) + " is " +
                  (v->isNumber() ? v->text() : v->kindName()) +
                  ", not a whole number >= 0");
    return *v->integer();
  };
  auto mismatch = [&](const char *field, int64_t value, const char *config,
                      int64_t planValue) {
    return fail(std::string(field) + " is " + std::to_string(value) +
                " but the plan '" + m.plan + "' has " + config + " = " +
                std::to_string(planValue) + "; compile the plan with loomc " +
                "-D " + config + "=" + std::to_string(value));
  };
  int64_t values[4];
  const char *fields[4][2] = {{"n_embd", "hidden"},
                              {"n_head", "heads"},
                              {"n_layer", "layers"},
                              {"n_positions", "seq"}};
  int64_t planValues[4] = {m.hidden, m.heads, m.layers, m.seq};
  for (int i = 0; i < 4; ++i) {
    Result<int64_t> v = integer(fields[i][0], std::nullopt);
    if (!v.ok())
      return Status::error(v.message());
    values[i] = *v;
    if (*v != planValues[i])
      return mismatch(fields[i][0], *v, fields[i][1], planValues[i]);
  }
  Result<int64_t> inner = integer("n_inner", 4 * values[0]);
  if (!inner.ok())
    return Status::error(inner.message());
  if (*inner != m.ffn) {
    const JsonValue *v = config.find("n_inner");
    if (!v || v->isNull())
      return fail("n_inner is " + std::string(v ? "null" : "missing") +
                  " (4 × n_embd = " + std::to_string(*inner) +
                  ") but the plan '" + m.plan +
                  "' has ffn = " + std::to_string(m.ffn) +
                  "; compile the plan with loomc -D "
                  "ffn=" +
                  std::to_string(*inner));
    return mismatch("n_inner", *inner, "ffn", m.ffn);
  }
  Result<int64_t> vocab = integer("vocab_size", std::nullopt);
  if (!vocab.ok())
    return Status::error(vocab.message());
  if (*vocab > m.vocab || *vocab < 1)
    return mismatch("vocab_size", *vocab, "vocab", m.vocab);
  vocabSize = *vocab;

  const JsonValue *act = config.find("activation_function");
  if (act && !(act->isString() && (act->text() == "gelu_new" ||
                                   act->text() == "gelu_pytorch_tanh")))
    return fail("activation_function is " +
                (act->isString() ? "\"" + act->text() + "\""
                                 : std::string(act->kindName())) +
                " but Loom's GPT uses GELU's tanh form (\"gelu_new\"): this "
                "model cannot be converted");
  const JsonValue *eps = config.find("layer_norm_epsilon");
  if (eps && !(eps->isNumber() && eps->number() == 1e-5))
    return fail("layer_norm_epsilon is " +
                (eps->isNumber() ? eps->text() : eps->kindName()) +
                " but examples/gpt.loom's layernorms use 1e-5: this model "
                "cannot be converted");
  // Flags that change the computation from GPT-2's (when set to `bad`).
  for (auto [field, bad, why] :
       {std::tuple{"tie_word_embeddings", false,
                   "Loom's GPT ties its LM head to the token embeddings"},
        std::tuple{"scale_attn_by_inverse_layer_idx", true,
                   "Loom's attention scales by 1/sqrt(head_dim) only"},
        std::tuple{"scale_attn_weights", false,
                   "Loom's attention scales by 1/sqrt(head_dim)"},
        std::tuple{"add_cross_attention", true,
                   "Loom's GPT has no cross-attention"}}) {
    const JsonValue *v = config.find(field);
    if (!v || v->isNull())
      continue;
    if (!v->isBool())
      return fail(std::string(field) + " is " + v->kindName() +
                  ", not true or false");
    if (v->boolean() == bad)
      return fail(std::string(field) + " is " + (bad ? "true" : "false") +
                  " but " + why + ": this model cannot be converted");
  }
  return Status::success();
}

} // namespace

Status hfToLoom(const std::string &hfDir, const std::string &checkpointDir,
                const std::string &planPath, uint64_t seed) {
  Result<Gpt> gpt = openGpt(planPath);
  if (!gpt.ok())
    return Status::error(gpt.message());
  const Model &m = gpt->model;
  const std::vector<Mapped> &table = gpt->table;

  std::string configPath = hfDir + "/config.json";
  Result<std::vector<uint8_t>> configBytes =
      readWholeFile(configPath, "the Hugging Face config", uint64_t(1) << 24);
  if (!configBytes.ok())
    return Status::error(configBytes.message());
  std::string what = "the Hugging Face config '" + configPath + "'";
  Result<JsonValue> config = parseJson(
      std::string_view(reinterpret_cast<const char *>(configBytes->data()),
                       configBytes->size()),
      what);
  if (!config.ok())
    return Status::error(config.message());
  int64_t vocabSize = 0;
  if (Status s = checkConfig(*config, what, m, vocabSize); !s.ok())
    return s;

  Result<HfTensors> hf = openTensors(hfDir);
  if (!hf.ok())
    return Status::error(hf.message());
  // save_pretrained writes "transformer.wte.weight"; files from before
  // transformers 2.x (and GPT2Model's) have no prefix.
  std::string prefix = hf->find("transformer.wte.weight") ? "transformer."
                       : hf->find("wte.weight")           ? ""
                                                          : "?";
  if (prefix == "?")
    return Status::error(hf->files.front().what() +
                         " has neither 'transformer.wte.weight' nor "
                         "'wte.weight': is it a GPT-2 checkpoint?");

  Checkpoint c;
  c.seed = seed;
  c.scalars = {{"optimizer_steps", 0.0},
               {"loss_scale", m.lossScale},
               {"good_steps", 0.0}};
  std::set<std::string> used;
  std::vector<float> wte;
  int64_t headDim = m.hidden / m.heads;
  for (const auto &[name, shape] : m.parameters) {
    const Mapped &e =
        *std::find_if(table.begin(), table.end(),
                      [&](const Mapped &x) { return x.loom == name; });
    std::string hfName = prefix + e.hf;
    const SafetensorsEntry *t = hf->find(hfName);
    if (!t)
      return Status::error(
          hf->files.front().what() + " has no tensor '" + hfName +
          "', which GPT-2 with n_layer = " + std::to_string(m.layers) + " has");
    const SafetensorsFile &file = hf->fileFor(hfName);
    std::vector<int64_t> want = shape;
    if (e.layout == Layout::WordEmbeddings)
      want[0] = vocabSize;
    if (t->shape != want)
      return Status::error(file.what() + ": tensor '" + hfName +
                           "' has shape " + shapeText(t->shape) +
                           " but config.json and the plan '" + m.plan +
                           "' give " + shapeText(want));
    std::vector<float> values = file.read(*t);
    for (size_t i = 0; i < values.size(); ++i)
      if (!std::isfinite(values[i]))
        return Status::error(file.what() + ": tensor '" + hfName +
                             "' element " + std::to_string(i) + " is " +
                             (std::isnan(values[i]) ? "NaN" : "infinite") +
                             "; weights are finite");
    used.insert(hfName);
    CheckpointTensor out{name, shape, {}};
    out.data.assign(size_t(elements(shape)), 0.0f);
    if (e.layout == Layout::Qkv)
      reorderQkv(values.data(), out.data.data(),
                 shape.size() == 2 ? shape[0] : 1, m.heads, headDim, true);
    else // WordEmbeddings: the padded rows beyond vocab_size stay zero
      std::copy(values.begin(), values.end(), out.data.begin());
    if (e.layout == Layout::WordEmbeddings)
      wte = std::move(values);
    std::vector<float> zeros(out.data.size(), 0.0f);
    c.tensors.push_back(std::move(out));
    c.tensors.push_back({"adam_m." + name, shape, zeros});
    c.tensors.push_back({"adam_v." + name, shape, std::move(zeros)});
  }
  // What else the files hold: the causal-mask buffers of older files, a
  // tied lm_head.weight; anything else is a model Loom's GPT is not.
  for (const auto &[name, index] : hf->fileOf) {
    if (used.count(name))
      continue;
    const SafetensorsFile &file = hf->files[index];
    bool buffer = false;
    for (int64_t i = 0; i < m.layers && !buffer; ++i) {
      std::string layer = prefix + "h." + std::to_string(i) + ".attn.";
      buffer = name == layer + "bias" || name == layer + "masked_bias";
    }
    if (buffer)
      continue;
    if (name == "lm_head.weight") {
      const SafetensorsEntry &t = *file.find(name);
      std::vector<float> head = file.read(t);
      if (t.shape != std::vector<int64_t>{vocabSize, m.hidden} ||
          head.size() != wte.size() ||
          std::memcmp(head.data(), wte.data(), 4 * wte.size()) != 0)
        return Status::error(
            file.what() + ": tensor 'lm_head.weight' is not " + prefix +
            "wte.weight: an LM head not tied to the token embeddings, which "
            "Loom's GPT (tied) cannot hold");
      continue;
    }
    return Status::error(file.what() + " holds tensor '" + name +
                         "', which GPT-2 as the plan '" + m.plan +
                         "' has it has no place for (n_layer = " +
                         std::to_string(m.layers) + ")");
  }
  return saveCheckpoint(checkpointDir, c);
}

Status loomToHf(const std::string &checkpointDir, const std::string &hfDir,
                const std::string &planPath, SafetensorsDType dtype) {
  Result<Gpt> gpt = openGpt(planPath);
  if (!gpt.ok())
    return Status::error(gpt.message());
  const Model &m = gpt->model;
  const std::vector<Mapped> &table = gpt->table;
  Result<Checkpoint> c = loadCheckpoint(checkpointDir);
  if (!c.ok())
    return Status::error(c.message());
  std::string where = "the checkpoint in '" + checkpointDir + "'";
  // A parameter the plan lacks: the checkpoint is of another model (more
  // layers), which writing the plan's subset would silently truncate.
  for (const CheckpointTensor &t : c->tensors)
    if (t.name.rfind("adam_m.", 0) != 0 && t.name.rfind("adam_v.", 0) != 0 &&
        std::none_of(m.parameters.begin(), m.parameters.end(),
                     [&](const auto &p) { return p.first == t.name; }))
      return Status::error(where + " holds '" + t.name + "', which the plan '" +
                           m.plan +
                           "' has no parameter for: was it saved from "
                           "another model?");

  std::vector<std::vector<float>> converted;
  std::vector<SafetensorsOutput> outputs;
  int64_t headDim = m.hidden / m.heads;
  converted.reserve(m.parameters.size()); // outputs point into it
  for (const auto &[name, shape] : m.parameters) {
    const Mapped &e =
        *std::find_if(table.begin(), table.end(),
                      [&](const Mapped &x) { return x.loom == name; });
    const CheckpointTensor *t = nullptr;
    for (const CheckpointTensor &candidate : c->tensors)
      if (candidate.name == name)
        t = &candidate;
    if (!t)
      return Status::error(where + " has no '" + name + "', which the plan '" +
                           m.plan + "' has: was it saved from another model?");
    if (t->shape != shape)
      return Status::error(where + " has '" + name + "' of shape " +
                           shapeText(t->shape) + " but the plan '" + m.plan +
                           "' has " + shapeText(shape) +
                           ": was it saved from another model?");
    std::vector<int64_t> hfShape = shape;
    std::vector<float> values;
    if (e.layout == Layout::Qkv) {
      values.resize(t->data.size());
      reorderQkv(t->data.data(), values.data(),
                 shape.size() == 2 ? shape[0] : 1, m.heads, headDim, false);
    } else if (e.layout == Layout::WordEmbeddings) {
      // The vocabulary's rows; the padding is Loom's (and Megatron's).
      hfShape[0] = m.vocab;
      values.assign(t->data.begin(), t->data.begin() + m.vocab * shape[1]);
    } else {
      values = t->data;
    }
    converted.push_back(std::move(values));
    outputs.push_back(
        {"transformer." + e.hf, hfShape, converted.back().data()});
  }

  if (Status s = makeDirectory(hfDir, "Hugging Face"); !s.ok())
    return s;
  if (Status s = writeSafetensors(hfDir + "/model.safetensors",
                                  std::move(outputs), dtype);
      !s.ok())
    return s;

  // GPT2LMHeadModel's config, keys sorted as save_pretrained writes them.
  std::vector<std::pair<std::string, std::string>> fields = {
      {"activation_function", "\"gelu_new\""},
      {"architectures", "[\n    \"GPT2LMHeadModel\"\n  ]"},
      {"attn_pdrop", pythonFloat(m.dropout)},
      {"embd_pdrop", pythonFloat(m.dropout)},
      {"initializer_range", pythonFloat(m.initStd)},
      {"layer_norm_epsilon", pythonFloat(1e-5)},
      {"model_type", "\"gpt2\""},
      {"n_ctx", std::to_string(m.seq)},
      {"n_embd", std::to_string(m.hidden)},
      {"n_head", std::to_string(m.heads)},
      {"n_inner", std::to_string(m.ffn)},
      {"n_layer", std::to_string(m.layers)},
      {"n_positions", std::to_string(m.seq)},
      {"reorder_and_upcast_attn", "false"},
      {"resid_pdrop", pythonFloat(m.dropout)},
      {"scale_attn_by_inverse_layer_idx", "false"},
      {"scale_attn_weights", "true"},
      {"tie_word_embeddings", "true"},
      {"torch_dtype", dtype == SafetensorsDType::F32    ? "\"float32\""
                      : dtype == SafetensorsDType::BF16 ? "\"bfloat16\""
                                                        : "\"float16\""},
      {"vocab_size", std::to_string(m.vocab)}};
  // GPT-2's <|endoftext|>, only for its own vocabulary.
  if (m.vocab == 50257) {
    fields.push_back({"bos_token_id", "50256"});
    fields.push_back({"eos_token_id", "50256"});
    std::sort(fields.begin(), fields.end());
  }
  std::string json = "{\n";
  for (size_t i = 0; i < fields.size(); ++i)
    json += "  \"" + fields[i].first + "\": " + fields[i].second +
            (i + 1 < fields.size() ? ",\n" : "\n");
  json += "}\n";
  return writeFileAtomically(hfDir + "/config.json",
                             std::vector<uint8_t>(json.begin(), json.end()));
}

} // namespace convert
} // namespace loom
