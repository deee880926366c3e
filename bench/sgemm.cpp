//===- sgemm.cpp - benchmark: the machine's f32 GEMM rate through OpenBLAS -===//
//
//   sgemm_rate [--reps N] [--seconds T] [--size S]
//
// Times cblas_sgemm on the OpenBLAS the CPU backend links (same library, same
// threads), so that a training step's GFLOP/s can be read as a share of what
// the machine's GEMMs reach at all. Shapes: one large square GEMM (S³,
// default 2048³) and the GEMMs of the GPT-2 124M step at micro-batch 4 ×
// sequence 64 (256 rows): QKV, MLP up and down, and the tied LM head's
// forward and its two backward GEMMs. Each shape runs once to warm up (pages
// touched, OpenBLAS's buffers and threads started), then at least N times
// (default 5) and for at least T seconds (default 1); the best repetition
// counts, as the least disturbed by other processes on a shared machine. Prints a table and a last line `sgemm GFLOP/s: X`, the square
// GEMM's rate, which bench/compare-pytorch.sh reads.
//
//===----------------------------------------------------------------------===//

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

struct Shape {
  const char *name;
  int m, n, k;
  bool transA, transB; // As the runtime calls it: row-major op(A)·op(B).
};

// Fills with small values from a fixed LCG: the data never changes the time
// of a GEMM, but denormals or NaNs could, so keep them out.
void fill(std::vector<float> &v, uint64_t seed) {
  for (float &x : v) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    x = float(int((seed >> 40) % 2001) - 1000) * 1e-3f;
  }
}

// Seconds of the fastest call after one warm-up call: at least `reps` calls
// and at least `minSeconds` of them (at most 1000 calls), so that a short
// GEMM gets as many chances as a long one to run undisturbed.
double bestSeconds(const Shape &s, int reps, double minSeconds) {
  std::vector<float> a(size_t(s.m) * s.k), b(size_t(s.k) * s.n),
      c(size_t(s.m) * s.n);
  fill(a, 1);
  fill(b, 2);
  int lda = s.transA ? s.m : s.k, ldb = s.transB ? s.k : s.n;
  auto run = [&] {
    cblas_sgemm(CblasRowMajor, s.transA ? CblasTrans : CblasNoTrans,
                s.transB ? CblasTrans : CblasNoTrans, s.m, s.n, s.k, 1.0f,
                a.data(), lda, b.data(), ldb, 0.0f, c.data(), s.n);
  };
  run();
  double best = 1e30, total = 0;
  for (int r = 0; r < 1000 && (r < reps || total < minSeconds); ++r) {
    auto start = std::chrono::steady_clock::now();
    run();
    std::chrono::duration<double> d = std::chrono::steady_clock::now() - start;
    best = std::min(best, d.count());
    total += d.count();
  }
  return best;
}

} // namespace

int main(int argc, char **argv) {
  int reps = 5, size = 2048;
  double minSeconds = 1.0;
  const char *usage = "usage: sgemm_rate [--reps N] [--seconds T] [--size S]\n";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--reps" || arg == "--size") && i + 1 < argc)
      (arg == "--reps" ? reps : size) = std::atoi(argv[++i]);
    else if (arg == "--seconds" && i + 1 < argc)
      minSeconds = std::atof(argv[++i]);
    else {
      std::fprintf(stderr, "%s", usage);
      return 2;
    }
  }
  if (reps < 1 || size < 1 || !(minSeconds >= 0)) {
    std::fprintf(stderr, "%s", usage);
    return 2;
  }
  std::string square = std::to_string(size) + "^3";
  // GPT-2 124M at B4×T64: 256 token rows, hidden 768, 3·768 QKV, 4·768 MLP,
  // vocabulary 50257 (the LM head is the tied embedding, [50257, 768]).
  const Shape shapes[] = {
      {square.c_str(), size, size, size, false, false},
      {"qkv         x*W", 256, 2304, 768, false, false},
      {"mlp up      x*W", 256, 3072, 768, false, false},
      {"mlp down    x*W", 256, 768, 3072, false, false},
      {"lm head     x*E^T", 256, 50257, 768, false, true},
      {"lm head dx  dy*E", 256, 768, 50257, false, false},
      {"lm head dE  dy^T*x", 50257, 768, 256, true, false},
  };
  std::printf("| shape              | M      | N      | K      | ms      | GFLOP/s |\n");
  std::printf("|--------------------|--------|--------|--------|---------|---------|\n");
  double squareRate = 0;
  for (const Shape &s : shapes) {
    double seconds = bestSeconds(s, reps, minSeconds);
    double rate = 2.0 * s.m * s.n * s.k / seconds / 1e9;
    if (&s == &shapes[0])
      squareRate = rate;
    std::printf("| %-18s | %6d | %6d | %6d | %7.2f | %7.1f |\n", s.name, s.m,
                s.n, s.k, seconds * 1e3, rate);
  }
  std::printf("sgemm GFLOP/s: %.1f\n", squareRate);
  return 0;
}
