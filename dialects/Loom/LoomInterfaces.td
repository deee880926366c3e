//===- LoomInterfaces.td - loom op interfaces -------------*- tablegen -*-===//
//
// The interfaces every later pass relies on: cost (implemented by every op,
// LoomCost.cpp), differentiation (VJP rules, LoomVJP.cpp) and sharding rules
// (factor based, as Shardy's OpShardingRule; LoomSharding.cpp). Ops opt in
// to the last two in LoomOps.td.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_INTERFACES_TD
#define LOOM_INTERFACES_TD

include "mlir/IR/OpBase.td"

def Loom_CostOpInterface : OpInterface<"CostOpInterface"> {
  let cppNamespace = "::loom";
  let description = [{
    The cost of one execution of an op on its global shapes: floating-point
    operations and bytes moved to and from memory. Pipeline balancing, the
    `--explain` report and the auto-recompute planner read it.

    Conventions (docs/dialect.md lists them per op): a matmul costs
    2·m·n·k per batch element; every elementary arithmetic operation (add,
    mul, div, max, exp, erf, tanh, compare) counts as one FLOP; views
    (reshape) and gathers cost no FLOPs. Bytes are element counts times the
    element size, with i1 stored as one byte. Counts are doubles: exact up
    to 2^53, and a 1T-parameter model's step (~1e19 FLOPs) does not
    overflow them.
  }];
  let methods = [
    InterfaceMethod<"Returns the floating-point operations of one execution.",
      "double", "getFlops">,
    InterfaceMethod<"Returns the bytes read from memory by one execution.",
      "double", "getBytesRead", (ins), "",
      [{ return ::loom::detail::defaultBytesRead($_op.getOperation()); }]>,
    InterfaceMethod<"Returns the bytes written to memory by one execution.",
      "double", "getBytesWritten", (ins), "",
      [{ return ::loom::detail::defaultBytesWritten($_op.getOperation()); }]>,
  ];
}

def Loom_DifferentiableOpInterface : OpInterface<"DifferentiableOpInterface"> {
  let cppNamespace = "::loom";
  let description = [{
    Reverse-mode differentiation: an op's vector-Jacobian product rule. The
    autodiff pass walks the forward program backwards and asks each op for
    the gradients of its operands given the gradients of its results.
  }];
  let methods = [
    InterfaceMethod<[{
        Builds, at the builder's insertion point, the gradients of this op's
        operands from `resultGrads` (one per result; a null Value where that
        result does not reach the loss). Appends one Value per operand to
        `operandGrads`, null for operands that are not differentiable
        (integer indices, masks).
      }],
      "::mlir::LogicalResult", "buildVectorJacobianProduct",
      (ins "::mlir::OpBuilder &":$builder,
           "::mlir::ValueRange":$resultGrads,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>,
  ];
}

def Loom_ShardingRuleOpInterface : OpInterface<"ShardingRuleOpInterface"> {
  let cppNamespace = "::loom";
  let description = [{
    A factor-based sharding rule (as Shardy's OpShardingRule): every tensor
    dimension of every operand and result is mapped to a factor; sharding a
    factor over a mesh axis shards every dimension mapped to it. A factor
    that appears in operands but not in results is a reduction factor:
    sharding it leaves partial sums that need an all-reduce. The sharding
    propagation pass (`--loom-shard`) reads these rules and nothing else
    about an op's dimensions; an op without the interface runs on whole
    values. User annotations and Megatron's choices for parameters win over
    the rules. `--loom-test-sharding-rules` prints them.
  }];
  let methods = [
    InterfaceMethod<"Returns the op's sharding rule.",
      "::loom::ShardingRule", "getShardingRule">,
  ];
}

#endif // LOOM_INTERFACES_TD
