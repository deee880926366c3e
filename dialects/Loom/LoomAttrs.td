//===- LoomAttrs.td - loom attributes and enums -----------*- tablegen -*-===//

#ifndef LOOM_ATTRS_TD
#define LOOM_ATTRS_TD

include "LoomDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

//===----------------------------------------------------------------------===//
// Enums (integer attributes that print as a bare keyword: `approximate tanh`).
//===----------------------------------------------------------------------===//

def Loom_GeluApproximation : I32EnumAttr<"GeluApproximation",
    "how gelu is evaluated", [
      I32EnumAttrCase<"None", 0, "none">,
      I32EnumAttrCase<"Tanh", 1, "tanh">]> {
  let cppNamespace = "::loom";
}

def Loom_ReduceKind : I32EnumAttr<"ReduceKind", "reduction kind", [
      I32EnumAttrCase<"Sum", 0, "sum">,
      I32EnumAttrCase<"Mean", 1, "mean">,
      I32EnumAttrCase<"Max", 2, "max">]> {
  let cppNamespace = "::loom";
}

def Loom_LossReduction : I32EnumAttr<"LossReduction",
    "how per-token losses are combined", [
      I32EnumAttrCase<"None", 0, "none">,
      I32EnumAttrCase<"Mean", 1, "mean">,
      I32EnumAttrCase<"Sum", 2, "sum">]> {
  let cppNamespace = "::loom";
}

//===----------------------------------------------------------------------===//
// Parameter initializers.
//===----------------------------------------------------------------------===//

def Loom_InitializerAttrInterface : AttrInterface<"InitializerAttrInterface"> {
  let cppNamespace = "::loom";
  let description = [{
    How a parameter's initial values are drawn. The runtime draws them from a
    counter-based generator keyed by (seed, parameter name, global element
    index), so every mesh shape gets the same initial model.
  }];
  let methods = [
    InterfaceMethod<[{
        Returns the standard deviation of the normal distribution the values
        are drawn from, or 0 for a constant initializer.
      }], "double", "getEffectiveStd">,
    InterfaceMethod<[{
        Returns the constant every element starts at, or std::nullopt for a
        random initializer.
      }], "std::optional<double>", "getConstantValue">,
  ];
}

// A 64-bit float printed and parsed as an MLIR float literal (exact round trip).
def Loom_F64Parameter : AttrOrTypeParameter<"::llvm::APFloat", "a 64-bit float"> {
  let comparator = "$_lhs.bitwiseIsEqual($_rhs)";
  let parser = [{ [&]() -> ::mlir::FailureOr<::llvm::APFloat> {
      double value;
      if ($_parser.parseFloat(value))
        return ::mlir::failure();
      return ::llvm::APFloat(value);
    }() }];
  let printer = [{ $_printer.printFloat($_self) }];
}

class Loom_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Loom_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

def Loom_NormalInitAttr : Loom_Attr<"NormalInit", "normal",
    [DeclareAttrInterfaceMethods<Loom_InitializerAttrInterface>]> {
  let summary = "values drawn from N(0, std^2)";
  let description = [{
    Example: `#loom.normal<std = 2.000000e-02>` (GPT-2 and Megatron use 0.02).
  }];
  let parameters = (ins Loom_F64Parameter:$std);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Loom_ScaledNormalInitAttr : Loom_Attr<"ScaledNormalInit", "scaled_normal",
    [DeclareAttrInterfaceMethods<Loom_InitializerAttrInterface>]> {
  let summary = "N(0, (std / sqrt(2 * layers))^2), for output projections";
  let description = [{
    Megatron's scaled initialisation for the layers that write into the
    residual stream (attention output and second MLP linear): the standard
    deviation is divided by sqrt(2 * num_layers).

    Example: `#loom.scaled_normal<std = 2.000000e-02, layers = 24>`.
  }];
  let parameters = (ins Loom_F64Parameter:$std, "int64_t":$layers);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Loom_ZerosInitAttr : Loom_Attr<"ZerosInit", "zeros",
    [DeclareAttrInterfaceMethods<Loom_InitializerAttrInterface>]> {
  let summary = "every element starts at 0 (biases)";
}

def Loom_OnesInitAttr : Loom_Attr<"OnesInit", "ones",
    [DeclareAttrInterfaceMethods<Loom_InitializerAttrInterface>]> {
  let summary = "every element starts at 1 (norm weights)";
}

#endif // LOOM_ATTRS_TD
