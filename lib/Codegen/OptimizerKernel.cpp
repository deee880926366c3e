//===- OptimizerKernel.cpp - AdamW + zeroing as one kernel description ----===//
//
// The scalar math of runtime/cpu/Optimizer.cpp's adamwStep, in its order of
// operations and in float, with the step's constants as runtime scalars the
// backend computes in double and rounds once, as adamwStep does.
//
//===----------------------------------------------------------------------===//

#include "loom/Codegen/OptimizerKernel.h"

namespace loom {
namespace codegen {

KernelDesc adamwKernel(const std::string &name, bool decay) {
  KernelDesc k;
  k.name = name;
  k.family = decay ? "adamw_decay" : "adamw";
  k.space = Space::Elementwise;
  k.runtimeExtent = true;
  for (const char *a : {"param", "grad", "m", "v"})
    k.args.push_back({a, ElemType::F32, false, -1});
  for (const char *a : {"param", "m", "v", "grad"})
    k.args.push_back({a, ElemType::F32, true, -1});
  k.params.push_back({ParamKind::Count, "", 0});
  auto real = [&](const char *site) {
    k.params.push_back({ParamKind::Real, site, 0});
    return int(k.params.size()) - 1;
  };
  k.stages.emplace_back();
  Stage &s = k.stages.back();
  auto node = [&](NodeOp op, std::vector<int> operands,
                  ValueType type = ValueType::Float) {
    return k.append(op, std::move(operands), type);
  };
  auto param = [&](int p) {
    Node n;
    n.op = NodeOp::ParamReal;
    n.param = p;
    return k.append(n);
  };
  auto load = [&](int arg) {
    Node n;
    n.op = NodeOp::Load;
    n.arg = arg;
    return k.append(n);
  };
  auto constant = [&](double v) {
    Node n;
    n.op = NodeOp::Const;
    n.value = v;
    return k.append(n);
  };
  int scale = param(real("grad_coef")), b1 = param(real("adam_beta1")),
      b2 = param(real("adam_beta2")), c1 = param(real("adam_one_minus_beta1")),
      c2 = param(real("adam_one_minus_beta2")),
      inv1 = param(real("adam_inv_correction1")),
      inv2 = param(real("adam_inv_correction2")), eps = param(real("adam_eps")),
      rate = param(real("lr"));
  int wd = decay ? param(real("weight_decay")) : -1;
  int skipped = param(real("skipped"));
  int p = load(0), g0 = load(1), m0 = load(2), v0 = load(3);
  auto mul = [&](int a, int b) { return node(NodeOp::Mul, {a, b}); };
  auto add = [&](int a, int b) { return node(NodeOp::Add, {a, b}); };
  int g = mul(g0, scale);
  int mi = add(mul(b1, m0), mul(c1, g));
  int vi = add(mul(b2, v0), mul(mul(c2, g), g));
  int update =
      node(NodeOp::Div,
           {mul(mi, inv1), add(node(NodeOp::Sqrt, {mul(vi, inv2)}), eps)});
  int step = decay ? add(update, mul(wd, p)) : update;
  int np = node(NodeOp::Sub, {p, mul(rate, step)});
  int skip = node(NodeOp::Gt, {skipped, constant(0.5)}, ValueType::Bool);
  auto keep = [&](int old, int fresh) {
    return node(NodeOp::Select, {skip, old, fresh});
  };
  int z = constant(0);
  s.stores.push_back({4, keep(p, np), 1, 0, false});
  s.stores.push_back({5, keep(m0, mi), 1, 0, false});
  s.stores.push_back({6, keep(v0, vi), 1, 0, false});
  s.stores.push_back({7, z, 1, 0, false});
  return k;
}

} // namespace codegen
} // namespace loom
