// loomc's errors: each names the file (and line) and what to change, exit 1.
// RUN: not loomc %s 2>&1 | FileCheck %s --check-prefix=NOTHING
// RUN: not loomc %s --json 2>&1 | FileCheck %s --check-prefix=JSON
// RUN: not loomc %t.does-not-exist.mlir --summary 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: not loomc %s --summary -D hidden=8 2>&1 | FileCheck %s --check-prefix=DFLAG
// RUN: not loomc %S/Inputs/bad-matmul.mlir --summary 2>&1 | FileCheck %s --check-prefix=VERIFY
// RUN: not loomc %S/Inputs/conflicting-parameter.mlir --summary 2>&1 | FileCheck %s --check-prefix=CONFLICT
// RUN: not loomc %S/Inputs/syntax.mlir --summary 2>&1 | FileCheck %s --check-prefix=SYNTAX

// NOTHING: loomc: name the plan file with -o (loomc MODEL -o model.plan), or pass --summary or --emit=... to print (see loomc --help)
// JSON: loomc: --json goes with --summary
// MISSING: loomc: cannot read the model '{{.*}}does-not-exist.mlir': No such file or directory
// DFLAG: loomc: -D and --model apply to .loom model files; {{.*}}errors.mlir is read as loom IR
// VERIFY: bad-matmul.mlir:3:8: error: 'loom.matmul' op contraction dimensions differ
// CONFLICT: conflicting-parameter.mlir:4:8: error: parameter 'wte' is declared again with type 'tensor<100x8xf32>'
// CONFLICT-NEXT: %1 = loom.parameter
// CONFLICT-NEXT: ^
// CONFLICT-NEXT: conflicting-parameter.mlir:3:8: note: first declared here with type 'tensor<50x8xf32>'
// SYNTAX: syntax.mlir:2:8: error: custom op 'loom.matmull' is unknown

func.func @unused() { return }
