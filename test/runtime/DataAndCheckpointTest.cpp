//===- DataAndCheckpointTest.cpp - corpora and checkpoints on disk --------===//

#include "loom/runtime/Checkpoint.h"
#include "loom/runtime/Data.h"

#include "TempDir.h"

#include <gtest/gtest.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <string>
#include <sys/stat.h>

using namespace loom::runtime;

namespace {

using DataTest = TempDir;
using CheckpointTest = TempDir;

TEST_F(DataTest, TextIsBytesAndSamplesAreWindowsByGlobalIndex) {
  std::string path = write("corpus.txt", "abcdefghij"); // 10 tokens
  auto data = TokenDataset::open(path, TokenFormat::Bytes, 4, 256);
  ASSERT_TRUE(data.ok()) << data.message();
  // Windows of seq + 1 = 5 starting every 4 tokens: (10 - 1) / 4 = 2.
  EXPECT_EQ(data->samplesPerEpoch(), 2);
  int32_t tokens[4], labels[4];
  data->sample(1, tokens, labels);
  EXPECT_EQ(std::string(tokens, tokens + 4), "efgh");
  EXPECT_EQ(std::string(labels, labels + 4), "fghi");
  // Sample 2 is the next epoch's sample 0.
  data->sample(2, tokens, labels);
  EXPECT_EQ(std::string(tokens, tokens + 4), "abcd");
  EXPECT_EQ(std::string(labels, labels + 4), "bcde");
}

TEST_F(DataTest, RawTokenFiles) {
  // uint16 little-endian ids 1, 513, 2.
  std::string path =
      write("tokens.bin", std::string("\x01\x00\x01\x02\x02\x00", 6));
  auto data = TokenDataset::open(path, TokenFormat::Uint16, 2, 1000);
  ASSERT_TRUE(data.ok()) << data.message();
  int32_t tokens[2], labels[2];
  data->sample(0, tokens, labels);
  EXPECT_EQ(tokens[0], 1);
  EXPECT_EQ(tokens[1], 513);
  EXPECT_EQ(labels[1], 2);
}

TEST_F(DataTest, BadDataIsReportedBeforeTraining) {
  auto missing =
      TokenDataset::open(dir + "/nope.txt", TokenFormat::Bytes, 4, 256);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("cannot open the data file '" + dir +
                                   "/nope.txt'"),
            std::string::npos)
      << missing.message();
  auto empty =
      TokenDataset::open(write("empty.txt", ""), TokenFormat::Bytes, 4, 256);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.message().find(
                "is empty; training needs at least seq + 1 = 5 tokens"),
            std::string::npos)
      << empty.message();
  auto shortFile =
      TokenDataset::open(write("short.txt", "abc"), TokenFormat::Bytes, 4, 256);
  ASSERT_FALSE(shortFile.ok());
  EXPECT_NE(shortFile.message().find(
                "has 3 tokens; training needs at least seq + 1 = 5"),
            std::string::npos)
      << shortFile.message();
  auto odd =
      TokenDataset::open(write("odd.bin", "abc"), TokenFormat::Uint16, 1, 1000);
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.message().find("not a whole number of 2-byte tokens"),
            std::string::npos)
      << odd.message();
  auto vocab =
      TokenDataset::open(write("big.bin", std::string("\xff\xff\x00\x00", 4)),
                         TokenFormat::Uint16, 1, 50257);
  ASSERT_FALSE(vocab.ok());
  EXPECT_NE(vocab.message().find("token id 65535 at position 0, outside the "
                                 "model's vocabulary of 50257"),
            std::string::npos)
      << vocab.message();
}

TEST_F(DataTest, WhatIsNotARegularFileIsRefusedBeforeReading) {
  // A directory used to throw from inside the stream (an abort), and
  // /dev/zero to be read until memory ran out. (A FIFO: FilesTest and
  // test/loom-run/bad-input.test.)
  auto directory = TokenDataset::open(dir, TokenFormat::Bytes, 4, 256);
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.message(),
            "cannot read the data file '" + dir +
                "': it is a directory, not a regular file");
  auto zero = TokenDataset::open("/dev/zero", TokenFormat::Bytes, 4, 256);
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.message().find("it is a character device"), std::string::npos)
      << zero.message();
  // A sequence length whose seq + 1 would overflow is refused, not used.
  auto huge = TokenDataset::open(write("t.txt", "abcdef"), TokenFormat::Bytes,
                                 INT64_MAX, 256);
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.message().find("the sequence length must be in [1, 2^32]"),
            std::string::npos)
      << huge.message();
}

Checkpoint sampleCheckpoint() {
  Checkpoint c;
  c.step = 120;
  c.dataPosition = 960;
  c.seed = 1234;
  c.tensors.push_back(
      {"layers.0.mlp.fc1.weight", {2, 3}, {1, -2, 3.5f, 4, 5, 6}});
  c.tensors.push_back(
      {"adam.m.layers.0.mlp.fc1.weight", {2, 3}, {0, 0, 0, 0, 0, 1e-8f}});
  c.tensors.push_back({"scalar", {}, {0.25f}});
  return c;
}

TEST_F(CheckpointTest, SavesAndLoadsEverything) {
  Checkpoint c = sampleCheckpoint();
  Status saved = saveCheckpoint(dir + "/ckpt", c);
  ASSERT_TRUE(saved.ok()) << saved.message();
  auto loaded = loadCheckpoint(dir + "/ckpt");
  ASSERT_TRUE(loaded.ok()) << loaded.message();
  EXPECT_EQ(loaded->step, 120);
  EXPECT_EQ(loaded->dataPosition, 960);
  EXPECT_EQ(loaded->seed, 1234u);
  ASSERT_EQ(loaded->tensors.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(loaded->tensors[i].name, c.tensors[i].name);
    EXPECT_EQ(loaded->tensors[i].shape, c.tensors[i].shape);
    EXPECT_EQ(loaded->tensors[i].data, c.tensors[i].data);
  }
  // A writer killed mid-write leaves a temporary file: the last complete
  // checkpoint still loads, and the next save replaces both.
  write("ckpt/checkpoint.loomckpt.tmp", "half-written");
  auto previous = loadCheckpoint(dir + "/ckpt");
  ASSERT_TRUE(previous.ok()) << previous.message();
  EXPECT_EQ(previous->step, 120);
  c.step = 121;
  ASSERT_TRUE(saveCheckpoint(dir + "/ckpt", c).ok());
  auto next = loadCheckpoint(dir + "/ckpt");
  ASSERT_TRUE(next.ok()) << next.message();
  EXPECT_EQ(next->step, 121);
}

TEST_F(CheckpointTest, DamageIsDetected) {
  ASSERT_TRUE(saveCheckpoint(dir + "/ckpt", sampleCheckpoint()).ok());
  std::string path = dir + "/ckpt/checkpoint.loomckpt";
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  // Truncated.
  write("ckpt/checkpoint.loomckpt", bytes.substr(0, bytes.size() - 10));
  auto truncated = loadCheckpoint(dir + "/ckpt");
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.message().find("is damaged"), std::string::npos)
      << truncated.message();
  // One flipped bit in a value.
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x10;
  write("ckpt/checkpoint.loomckpt", flipped);
  auto corrupted = loadCheckpoint(dir + "/ckpt");
  ASSERT_FALSE(corrupted.ok());
  EXPECT_NE(corrupted.message().find("checksum does not match"),
            std::string::npos)
      << corrupted.message();
  // A damaged version field is damage.
  std::string bad = bytes;
  bad[8] = char(kCheckpointVersion + 1);
  write("ckpt/checkpoint.loomckpt", bad);
  EXPECT_NE(loadCheckpoint(dir + "/ckpt").message().find("is damaged"),
            std::string::npos);
  // A well-formed file of another format version (its checksum rewritten).
  std::string newer = bytes.substr(0, bytes.size() - 4);
  newer[8] = char(kCheckpointVersion + 1);
  uint32_t crc =
      crc32(reinterpret_cast<const uint8_t *>(newer.data()), newer.size());
  for (int i = 0; i < 4; ++i)
    newer.push_back(char((crc >> (8 * i)) & 0xFF));
  write("ckpt/checkpoint.loomckpt", newer);
  auto version = loadCheckpoint(dir + "/ckpt");
  ASSERT_FALSE(version.ok());
  EXPECT_NE(version.message().find(
                "has format version " + std::to_string(kCheckpointVersion + 1) +
                "; this build reads version " +
                std::to_string(kCheckpointVersion)),
            std::string::npos)
      << version.message();
  // Not a checkpoint at all, and no checkpoint.
  write("ckpt/checkpoint.loomckpt", "hello");
  EXPECT_NE(
      loadCheckpoint(dir + "/ckpt").message().find("is not a Loom checkpoint"),
      std::string::npos);
  EXPECT_NE(loadCheckpoint(dir + "/none")
                .message()
                .find("cannot open the checkpoint"),
            std::string::npos);
}

TEST_F(CheckpointTest, ImpossibleCountsAndRepeatedScalarsAreRefused) {
  // Written as given (the writer does not judge), so each file has a valid
  // checksum: the reader must catch the value by its range.
  struct Case {
    int64_t step, position;
    const char *message; // empty: loads
  };
  const Case cases[] = {
      {-1, 0, "step -1 (a count in [0, 2^53])"},
      {0, -1, "data position -1 (a count in [0, 2^53])"},
      {5, INT64_MAX, "data position 9223372036854775807 (a count in"},
      {kMaxCheckpointCount + 1, 0, "step 9007199254740993 (a count in"},
      {kMaxCheckpointCount, kMaxCheckpointCount, ""},
  };
  for (const Case &k : cases) {
    Checkpoint c = sampleCheckpoint();
    c.step = k.step;
    c.dataPosition = k.position;
    ASSERT_TRUE(saveCheckpoint(dir + "/ckpt", c).ok());
    auto loaded = loadCheckpoint(dir + "/ckpt");
    if (!*k.message) {
      EXPECT_TRUE(loaded.ok()) << loaded.message();
      continue;
    }
    ASSERT_FALSE(loaded.ok())
        << "step " << k.step << " position " << k.position << " loaded";
    EXPECT_NE(loaded.message().find("holds an impossible value: " +
                                    std::string(k.message)),
              std::string::npos)
        << loaded.message();
  }
  Checkpoint twice = sampleCheckpoint();
  twice.scalars = {{"loss_scale", 1.0}, {"loss_scale", 2.0}};
  ASSERT_TRUE(saveCheckpoint(dir + "/ckpt", twice).ok());
  auto repeated = loadCheckpoint(dir + "/ckpt");
  ASSERT_FALSE(repeated.ok());
  EXPECT_NE(repeated.message().find("the scalar 'loss_scale' twice"),
            std::string::npos)
      << repeated.message();
}

TEST_F(CheckpointTest, AFileOverTheBoundOrNotAFileIsRefused) {
  ASSERT_TRUE(saveCheckpoint(dir + "/ckpt", sampleCheckpoint()).ok());
  auto bounded = loadCheckpoint(dir + "/ckpt", 16);
  ASSERT_FALSE(bounded.ok());
  EXPECT_NE(bounded.message().find("more than the 16 bytes it may be"),
            std::string::npos)
      << bounded.message();
  ASSERT_EQ(mkdir((dir + "/dir").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((dir + "/dir/checkpoint.loomckpt").c_str(), 0755), 0);
  auto directory = loadCheckpoint(dir + "/dir");
  ASSERT_FALSE(directory.ok());
  EXPECT_NE(directory.message().find("it is a directory, not a regular file"),
            std::string::npos)
      << directory.message();
  // An empty name is not the root's /checkpoint.loomckpt.
  auto empty = loadCheckpoint("");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.message(),
            "the checkpoint directory's name is empty; name one");
  EXPECT_FALSE(saveCheckpoint("", sampleCheckpoint()).ok());
}

TEST(Crc32Test, MatchesTheStandardCheckValue) {
  // The CRC-32 of "123456789" is 0xCBF43926 (the catalogue's check value).
  const char *s = "123456789";
  EXPECT_EQ(crc32(reinterpret_cast<const uint8_t *>(s), 9), 0xCBF43926u);
}

} // namespace
