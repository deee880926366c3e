//===- DistOps.td - the dist dialect ----------------------*- tablegen -*-===//
//
// The device mesh, shardings of values, and explicit collectives: what the
// sharding and partition passes produce from a global-shape loom program.
//
//===----------------------------------------------------------------------===//

#ifndef DIST_OPS_TD
#define DIST_OPS_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/CommonTypeConstraints.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "../Loom/LoomAttrs.td"
include "../Loom/LoomInterfaces.td"

def Dist_Dialect : Dialect {
  let name = "dist";
  let cppNamespace = "::loom::dist";
  let summary = "Loom's device mesh, shardings and collectives";
  let description = [{
    The second level of Loom's compiler. A module compiled for a mesh carries
    `dist.mesh = #dist.mesh<dp = 2, pp = 1, tp = 2>`: named axes with sizes.
    The sharding pass (`--loom-shard`) records on every op how its operands
    and results are split (`#dist.sharding`); the partition pass
    (`--loom-partition`) then rewrites the program to one rank's local shapes
    and inserts the collectives below. The program stays SPMD: one program,
    parameterised by the rank's coordinates, whatever the mesh's size.
  }];
  let dependentDialects = ["::loom::LoomDialect"];
  let useDefaultAttributePrinterParser = 1;

  // What the sharding and partition passes record; each gets a typed helper
  // class (`DistDialect::ShardingAttrHelper`), and verifyOperationAttribute
  // (IR/DistDiscardableAttrs.cpp) checks where each sits and its value.
  let discardableAttrs = (ins
    // The module: the mesh it is compiled for.
    "::loom::dist::MeshAttr":$mesh,
    // An op whose work depends on the rank's block (an embedding table's
    // rows, a dropout mask's global indices, the cross-entropy's partials),
    // or a parameter: how that operand or result is split.
    "::loom::dist::ShardingAttr":$sharding,
    // Any op, from --loom-shard until --loom-partition: the sharding it
    // needs of each operand and gives each result (unit for a non-tensor).
    "::mlir::ArrayAttr":$in_shardings,
    "::mlir::ArrayAttr":$out_shardings,
    // The module: --sequence-parallel.
    "::mlir::UnitAttr":$sequence_parallel
  );
  let hasOperationAttrVerify = 1;
}

//===----------------------------------------------------------------------===//
// Attributes.
//===----------------------------------------------------------------------===//

class Dist_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Dist_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

def Dist_MeshAttr : Dist_Attr<"Mesh", "mesh"> {
  let summary = "a device mesh: named axes with sizes";
  let description = [{
    `#dist.mesh<dp = 2, pp = 1, tp = 4>`. Ranks are numbered row-major over
    the axes in order; the last axis varies fastest (tensor-parallel ranks
    are neighbours, as in Megatron).
  }];
  let parameters = (ins ArrayRefParameter<"::mlir::StringAttr">:$names,
                        ArrayRefParameter<"int64_t">:$sizes);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The size of `axis`, or std::nullopt when the mesh has no such axis.
    std::optional<int64_t> getAxisSize(::llvm::StringRef axis) const;
    int64_t getNumRanks() const;
  }];
}

def Dist_ShardingAttr : Dist_Attr<"Sharding", "sharding"> {
  let summary = "how a value is split over mesh axes";
  let description = [{
    Shardy's notation: one entry per tensor dimension, `{}` for a dimension
    every rank holds whole, `{"tp"}` for one split evenly over mesh axis
    `tp` (rank i of the axis holds the i-th block). `partial = ["tp"]`
    marks pending partial sums: the value is the sum over the `tp` ranks of
    what each holds (a row-parallel matmul's output before its all-reduce).

    For example `#dist.sharding<[{}, {"tp"}, {} ]>` (printed without the
    space) splits the middle dimension of a rank-3 value, and
    `#dist.sharding<[{}, {} ], partial = ["tp"]>` is a partial sum.
  }];
  let parameters = (ins ArrayRefParameter<"::mlir::StringAttr">:$dims,
                        ArrayRefParameter<"::mlir::StringAttr">:$partial);
  let hasCustomAssemblyFormat = 1;
  let extraClassDeclaration = [{
    /// Every dimension whole, nothing partial.
    static ShardingAttr getReplicated(::mlir::MLIRContext *ctx, int64_t rank);
    bool isReplicated() const;
    /// The axis dimension `dim` is split over, or an empty StringRef.
    ::llvm::StringRef getDimAxis(int64_t dim) const;
    /// The local shape of a value of global shape `global` on `mesh`, or
    /// failure when a split dimension is not divisible by its axis.
    ::mlir::FailureOr<::llvm::SmallVector<int64_t>>
    localShape(::llvm::ArrayRef<int64_t> global, MeshAttr mesh) const;
  }];
}

//===----------------------------------------------------------------------===//
// Collectives.
//===----------------------------------------------------------------------===//

def Dist_AnyTensor : StaticShapeTensorOf<[F32, BF16, F16, F64, I32, I64, I1]>;

class Dist_Op<string mnemonic, list<Trait> traits = []>
    : Op<Dist_Dialect, mnemonic, traits>;

class Dist_CollectiveOp<string mnemonic, list<Trait> traits = []>
    : Dist_Op<mnemonic, !listconcat(traits, [Pure,
          DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>,
          DeclareOpInterfaceMethods<Loom_CostOpInterface>])> {
  let hasVerifier = 1;
}

def Dist_AllReduceOp : Dist_CollectiveOp<"all_reduce", [SameOperandsAndResultType]> {
  let summary = "sum (or max) over the ranks of a mesh axis";
  let description = [{
    Turns a partial value into a replicated one: every rank of the `axis`
    group gets the reduction of all their inputs. Its gradient is the
    result's gradient, unchanged (Megatron's `g`); a `max` has no gradient.

    ```mlir
    %y = dist.all_reduce sum %x axis "tp" : tensor<4x64x768xf32>
    ```
  }];
  let arguments = (ins Loom_ReduceKind:$kind, Dist_AnyTensor:$input, StrAttr:$axis);
  let results = (outs Dist_AnyTensor:$result);
  let assemblyFormat = "$kind $input `axis` $axis attr-dict `:` type($result)";
}

def Dist_AllGatherOp : Dist_CollectiveOp<"all_gather"> {
  let summary = "concatenate the blocks of a split dimension";
  let description = [{
    Every rank of the `axis` group gets the whole of dimension `dim`, its
    blocks in rank order. The gradient is each rank's block of the result's
    gradient (`dist.all_slice`).

    ```mlir
    %y = dist.all_gather %x axis "tp" dim 1 : tensor<4x32x768xf32> -> tensor<4x64x768xf32>
    ```
  }];
  let arguments = (ins Dist_AnyTensor:$input, StrAttr:$axis, I64Attr:$dim);
  let results = (outs Dist_AnyTensor:$result);
  let assemblyFormat =
      "$input `axis` $axis `dim` $dim attr-dict `:` type($input) `->` type($result)";
}

def Dist_ReduceScatterOp : Dist_CollectiveOp<"reduce_scatter"> {
  let summary = "sum over the ranks of an axis, each keeping one block";
  let description = [{
    Rank i of the `axis` group gets block i along `dim` of the sum of all
    their inputs: a partial value becomes a split one (sequence
    parallelism's replacement for an all-reduce). The gradient is an
    all-gather.

    ```mlir
    %y = dist.reduce_scatter %x axis "tp" dim 1 : tensor<4x64x768xf32> -> tensor<4x32x768xf32>
    ```
  }];
  let arguments = (ins Dist_AnyTensor:$input, StrAttr:$axis, I64Attr:$dim);
  let results = (outs Dist_AnyTensor:$result);
  let assemblyFormat =
      "$input `axis` $axis `dim` $dim attr-dict `:` type($input) `->` type($result)";
}

def Dist_AllSliceOp : Dist_CollectiveOp<"all_slice"> {
  let summary = "keep this rank's block of a replicated dimension";
  let description = [{
    No communication: rank i of the `axis` group keeps block i along `dim`.
    The gradient of the replicated input is the all-gather of the blocks'
    gradients. An all_slice of an all_reduce over the same axis is a
    reduce_scatter (a canonicalization).

    ```mlir
    %y = dist.all_slice %x axis "tp" dim 0 : tensor<64x768xf32> -> tensor<32x768xf32>
    ```
  }];
  let arguments = (ins Dist_AnyTensor:$input, StrAttr:$axis, I64Attr:$dim);
  let results = (outs Dist_AnyTensor:$result);
  let assemblyFormat =
      "$input `axis` $axis `dim` $dim attr-dict `:` type($input) `->` type($result)";
  let hasCanonicalizer = 1;
}

def Dist_AllToAllOp : Dist_CollectiveOp<"all_to_all"> {
  let summary = "re-split: gather one dimension while splitting another";
  let description = [{
    The input is split along `concat_dim`; the result is split along
    `split_dim` instead (expert and context parallelism's exchange).

    ```mlir
    %y = dist.all_to_all %x axis "tp" split_dim 0 concat_dim 1
           : tensor<8x16xf32> -> tensor<4x32xf32>
    ```
  }];
  let arguments = (ins Dist_AnyTensor:$input, StrAttr:$axis,
                       I64Attr:$split_dim, I64Attr:$concat_dim);
  let results = (outs Dist_AnyTensor:$result);
  let assemblyFormat = [{
    $input `axis` $axis `split_dim` $split_dim `concat_dim` $concat_dim
    attr-dict `:` type($input) `->` type($result)
  }];
}

def Dist_BroadcastOp : Dist_CollectiveOp<"broadcast", [SameOperandsAndResultType]> {
  let summary = "every rank of an axis gets the root's value";
  let description = [{
    ```mlir
    %y = dist.broadcast %x axis "dp" root 0 : tensor<768xf32>
    ```
  }];
  let arguments = (ins Dist_AnyTensor:$input, StrAttr:$axis, I64Attr:$root);
  let results = (outs Dist_AnyTensor:$result);
  let assemblyFormat = "$input `axis` $axis `root` $root attr-dict `:` type($result)";
}

def Dist_FanOutOp : Dist_CollectiveOp<"fan_out", [SameOperandsAndResultType]> {
  let summary = "a replicated value entering a split computation";
  let description = [{
    The identity forward; its gradient is all-reduced over `axis`
    (Megatron's `f`). The partition pass puts one where a replicated value
    feeds an op whose work is split over `axis` along a dimension the value
    does not have (the input of a column-parallel matmul, a layernorm's
    weight under sequence parallelism): each rank's gradient of it is then
    a partial sum.

    ```mlir
    %y = dist.fan_out %x axis "tp" : tensor<4x64x768xf32>
    ```
  }];
  let arguments = (ins Dist_AnyTensor:$input, StrAttr:$axis);
  let results = (outs Dist_AnyTensor:$result);
  let assemblyFormat = "$input `axis` $axis attr-dict `:` type($result)";
}

//===----------------------------------------------------------------------===//
// Point to point (pipeline parallelism).
//===----------------------------------------------------------------------===//

def Dist_SendOp : Dist_Op<"send"> {
  let summary = "send a tensor to a peer along a mesh axis";
  let description = [{
    `peer` is the receiver's coordinate on `axis`; `tag` pairs the send with
    the peer's `dist.recv`.

    ```mlir
    dist.send %x axis "pp" peer 1 tag 0 : tensor<4x64x768xf32>
    ```
  }];
  let arguments = (ins Dist_AnyTensor:$input, StrAttr:$axis, I64Attr:$peer,
                       I64Attr:$tag);
  let assemblyFormat = "$input `axis` $axis `peer` $peer `tag` $tag attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def Dist_RecvOp : Dist_Op<"recv"> {
  let summary = "receive a tensor from a peer along a mesh axis";
  let description = [{
    ```mlir
    %x = dist.recv axis "pp" peer 0 tag 0 : tensor<4x64x768xf32>
    ```
  }];
  let arguments = (ins StrAttr:$axis, I64Attr:$peer, I64Attr:$tag);
  let results = (outs Dist_AnyTensor:$result);
  let assemblyFormat = "`axis` $axis `peer` $peer `tag` $tag attr-dict `:` type($result)";
  let hasVerifier = 1;
}

#endif // DIST_OPS_TD
