//===- Sha256Test.cpp - SHA-256 against FIPS 180-4's test vectors ---------===//

#include "loom/runtime/Sha256.h"

#include <gtest/gtest.h>

#include <string>

using loom::runtime::Sha256;
using loom::runtime::sha256Hex;

namespace {

// The vectors of FIPS 180-4's examples (NIST's "SHA256.pdf" and the
// "secure hashing" test vectors).
TEST(Sha256Test, Abc) {
  EXPECT_EQ(sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, Empty) {
  EXPECT_EQ(sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

// 448 bits: the padding no longer fits in the message's block, so the digest
// takes a second, padding-only block.
TEST(Sha256Test, FourHundredFortyEightBits) {
  EXPECT_EQ(
      sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256Test, EightHundredNinetySixBits) {
  EXPECT_EQ(
      sha256Hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklm"
                "noijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256Test, OneMillionA) {
  EXPECT_EQ(sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// The lengths around the padding's boundaries (55 bytes is the longest
// message whose length fits in its own block), checked against coreutils'
// sha256sum.
TEST(Sha256Test, PaddingBoundaries) {
  EXPECT_EQ(sha256Hex(std::string(55, 'a')),
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(sha256Hex(std::string(56, 'a')),
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  EXPECT_EQ(sha256Hex(std::string(63, 'a')),
            "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34");
  EXPECT_EQ(sha256Hex(std::string(64, 'a')),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
  EXPECT_EQ(sha256Hex(std::string(65, 'a')),
            "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0");
}

// Pieces of every size across block boundaries hash as the whole does.
TEST(Sha256Test, IncrementalUpdatesMatchOneShot) {
  std::string million(1000000, 'a');
  for (size_t piece : {1, 3, 63, 64, 65, 1000, 4097}) {
    Sha256 hash;
    for (size_t at = 0; at < million.size(); at += piece)
      hash.update(million.data() + at, std::min(piece, million.size() - at));
    EXPECT_EQ(
        hash.hexDigest(),
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        << "pieces of " << piece << " bytes";
  }
}

} // namespace
