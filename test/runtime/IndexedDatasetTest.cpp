//===- IndexedDatasetTest.cpp - Megatron's .bin/.idx and GPT sample index -===//

#include "loom/runtime/IndexedDataset.h"
#include "loom/runtime/GptDataset.h"
#include "loom/runtime/IndexedDatasetWriter.h"

#include "TempDir.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <sys/stat.h>

using namespace loom::runtime;

namespace {

using IndexedDatasetTest = TempDir;

std::string readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// Documents of ids 1000 * d + t, as the Python fixture writes them.
const std::vector<int64_t> kLengths = {5, 1, 17, 0, 9, 3, 12, 7, 2, 11};
std::vector<int64_t> document(int64_t d) {
  std::vector<int64_t> tokens;
  for (int64_t t = 0; t < kLengths[size_t(d)]; ++t)
    tokens.push_back(1000 * d + t);
  return tokens;
}

std::string writeFixture(const std::string &dir) {
  IndexedDatasetBuilder builder(IndexedDType::Uint16);
  for (size_t d = 0; d < kLengths.size(); ++d)
    EXPECT_TRUE(builder.addDocument(document(int64_t(d))).ok());
  std::string prefix = dir + "/corpus";
  Status s = builder.finish(prefix);
  EXPECT_TRUE(s.ok()) << s.message();
  return prefix;
}

/// Samples of seq + 1 tokens, as tokens then the last label.
std::vector<int32_t> window(const SampleSource &data, int64_t i, int64_t seq) {
  std::vector<int32_t> tokens(static_cast<size_t>(seq)),
      labels(static_cast<size_t>(seq));
  Status s = data.readSample(i, tokens.data(), labels.data());
  EXPECT_TRUE(s.ok()) << s.message();
  for (int64_t k = 0; k + 1 < seq; ++k)
    EXPECT_EQ(labels[size_t(k)], tokens[size_t(k + 1)]);
  tokens.push_back(labels.back());
  return tokens;
}

GptDataset gpt(const std::string &prefix, int64_t seq, bool shuffle,
               uint64_t seed, int64_t vocab = 65536) {
  Result<IndexedDataset> data = IndexedDataset::open(prefix);
  EXPECT_TRUE(data.ok()) << data.message();
  auto shared = std::make_shared<const IndexedDataset>(std::move(*data));
  Result<GptDataset> g =
      GptDataset::make(shared, 0, shared->numDocuments(), seq, vocab);
  EXPECT_TRUE(g.ok()) << g.message();
  g->shuffle(shuffle, seed);
  return std::move(*g);
}

TEST_F(IndexedDatasetTest, WriterRoundTrips) {
  IndexedDatasetBuilder builder(IndexedDType::Int32);
  ASSERT_TRUE(builder.addDocument({7, 8, 9}).ok());
  // A document of two sequences.
  ASSERT_TRUE(builder.addItem({100000}).ok());
  ASSERT_TRUE(builder.addItem({1, 2}).ok());
  builder.endDocument();
  ASSERT_TRUE(builder.finish(dir + "/rt").ok());
  Result<IndexedDataset> data = IndexedDataset::open(dir + "/rt");
  ASSERT_TRUE(data.ok()) << data.message();
  EXPECT_EQ(data->dtype(), IndexedDType::Int32);
  EXPECT_EQ(data->numSequences(), 3);
  EXPECT_EQ(data->numDocuments(), 2);
  EXPECT_EQ(data->sequenceLength(1), 1);
  EXPECT_EQ(data->sequencePointer(2), 16);
  EXPECT_EQ(data->documentIndex(1), 1);
  EXPECT_EQ(data->documentIndex(2), 3);
  int32_t out[3];
  ASSERT_TRUE(data->read(0, 1, 2, 200000, out).ok());
  EXPECT_EQ(out[0], 8);
  EXPECT_EQ(out[1], 9);
  Status s = data->read(1, 0, 1, 50257, out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("rt.bin' have token id 100000 in sequence 1 at "
                             "position 0, outside the model's vocabulary of "
                             "50257"),
            std::string::npos)
      << s.message();
  // Nothing temporary is left behind.
  struct stat st;
  EXPECT_NE(::stat((dir + "/rt.idx.tmp").c_str(), &st), 0);
  EXPECT_FALSE(IndexedDatasetBuilder(IndexedDType::Uint8).addItem({256}).ok());
}

std::string fileBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
bool exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// The streaming writer gives the builder's bytes, shows nothing under the
// final names until finish, and leaves nothing when dropped unfinished.
TEST_F(IndexedDatasetTest, StreamingWriterMatchesTheBuilder) {
  IndexedDatasetBuilder builder(IndexedDType::Uint16);
  Result<IndexedDatasetWriter> writer =
      IndexedDatasetWriter::create(dir + "/s", IndexedDType::Uint16);
  ASSERT_TRUE(writer.ok()) << writer.message();
  for (size_t d = 0; d < kLengths.size(); ++d) {
    ASSERT_TRUE(builder.addDocument(document(int64_t(d))).ok());
    ASSERT_TRUE(writer->addItem(document(int64_t(d))).ok());
    writer->endDocument();
  }
  // An empty document (no sequence), as preprocess_data.py writes for an
  // empty text.
  builder.endDocument();
  writer->endDocument();
  EXPECT_TRUE(exists(dir + "/s.bin.tmp"));
  EXPECT_FALSE(exists(dir + "/s.bin"));
  EXPECT_FALSE(exists(dir + "/s.idx"));
  EXPECT_FALSE(writer->addItem({70000}).ok());
  ASSERT_TRUE(builder.finish(dir + "/b").ok());
  Status s = writer->finish();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(writer->addItem({1}).ok());
  EXPECT_FALSE(exists(dir + "/s.bin.tmp"));
  EXPECT_FALSE(exists(dir + "/s.idx.tmp"));
  EXPECT_EQ(fileBytes(dir + "/s.bin"), fileBytes(dir + "/b.bin"));
  EXPECT_EQ(fileBytes(dir + "/s.idx"), fileBytes(dir + "/b.idx"));
  Result<IndexedDataset> data = IndexedDataset::open(dir + "/s");
  ASSERT_TRUE(data.ok()) << data.message();
  EXPECT_EQ(data->numDocuments(), int64_t(kLengths.size()) + 1);
  EXPECT_EQ(data->numSequences(), int64_t(kLengths.size()));
  {
    Result<IndexedDatasetWriter> dropped =
        IndexedDatasetWriter::create(dir + "/d", IndexedDType::Int32);
    ASSERT_TRUE(dropped.ok());
    ASSERT_TRUE(dropped->addItem({1, 2, 3}).ok());
  }
  EXPECT_FALSE(exists(dir + "/d.bin.tmp"));
  EXPECT_FALSE(exists(dir + "/d.bin"));
  Result<IndexedDatasetWriter> nowhere =
      IndexedDatasetWriter::create(dir + "/no/such/x", IndexedDType::Int32);
  ASSERT_FALSE(nowhere.ok());
  EXPECT_NE(nowhere.message().find("x.bin.tmp': No such file or directory; "
                                   "the directory '" +
                                   dir + "/no/such' must exist"),
            std::string::npos)
      << nowhere.message();
}

// The reference: Inputs/megatron_indexed.py writes the corpus with numpy as
// Megatron does and reads GPTDataset's samples as Megatron would.
TEST_F(IndexedDatasetTest, MatchesMegatronsFilesAndSamples) {
  const char *python = std::getenv("LOOM_TEST_PYTHON");
  std::string py = python ? python : "python3";
  if (std::system((py + " -c 'import numpy' 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << "requires python package numpy (set LOOM_TEST_PYTHON to "
                    "a python that has it)";
  std::string reference = dir + "/megatron";
  std::string command = py + " " LOOM_TEST_INPUTS "/megatron_indexed.py " +
                        reference + " 4 1234 16";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::string ours = writeFixture(dir);
  EXPECT_EQ(readBytes(ours + ".idx"), readBytes(reference + ".idx"));
  EXPECT_EQ(readBytes(ours + ".bin"), readBytes(reference + ".bin"));

  // 67 tokens, seq 4: 16 samples, epoch 0 exactly Megatron's.
  GptDataset data = gpt(reference, 4, true, 1234);
  ASSERT_EQ(data.samplesPerEpoch(), 16);
  std::ifstream expected(reference + ".samples");
  std::string line;
  for (int64_t i = 0; std::getline(expected, line); ++i) {
    std::istringstream words(line);
    std::vector<int32_t> want{std::istream_iterator<int32_t>(words), {}};
    EXPECT_EQ(window(data, i, 4), want) << "sample " << i;
  }
}

TEST_F(IndexedDatasetTest, NumpyRandomStateIsMt19937) {
  // MT19937's reference output for init_genrand(5489).
  NumpyRandomState random(5489);
  EXPECT_EQ(random.next32(), 3499211612u);
  EXPECT_EQ(random.next32(), 581869302u);
}

TEST_F(IndexedDatasetTest, SamplesRunAcrossDocuments) {
  IndexedDatasetBuilder builder(IndexedDType::Uint8);
  ASSERT_TRUE(builder.addDocument({0, 1, 2}).ok());
  ASSERT_TRUE(builder.addDocument({3, 4}).ok());
  ASSERT_TRUE(builder.addDocument({}).ok());
  ASSERT_TRUE(builder.addDocument({5, 6, 7, 8, 9}).ok());
  ASSERT_TRUE(builder.finish(dir + "/c").ok());
  GptDataset data = gpt(dir + "/c", 3, false, 0);
  // (10 - 1) / 3 samples; each shares its last token with the next's first.
  ASSERT_EQ(data.samplesPerEpoch(), 3);
  EXPECT_EQ(window(data, 0, 3), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(window(data, 1, 3), (std::vector<int32_t>{3, 4, 5, 6}));
  EXPECT_EQ(window(data, 2, 3), (std::vector<int32_t>{6, 7, 8, 9}));
  // The next epoch starts again.
  EXPECT_EQ(window(data, 3, 3), (std::vector<int32_t>{0, 1, 2, 3}));
}

TEST_F(IndexedDatasetTest, SampleIsAFunctionOfItsIndex) {
  std::string prefix = writeFixture(dir);
  GptDataset forward = gpt(prefix, 4, true, 7);
  std::vector<std::vector<int32_t>> seen;
  for (int64_t i = 0; i < 50; ++i) // three epochs and a bit
    seen.push_back(window(forward, i, 4));
  GptDataset backward = gpt(prefix, 4, true, 7);
  for (int64_t i = 49; i >= 0; --i)
    EXPECT_EQ(window(backward, i, 4), seen[size_t(i)]) << "sample " << i;
  EXPECT_EQ(window(gpt(prefix, 4, true, 7), 37, 4), seen[37]);
  // Epochs differ from each other, and another seed differs.
  EXPECT_NE(
      std::vector<std::vector<int32_t>>(seen.begin(), seen.begin() + 16),
      std::vector<std::vector<int32_t>>(seen.begin() + 16, seen.begin() + 32));
  GptDataset other = gpt(prefix, 4, true, 8);
  int same = 0;
  for (int64_t i = 0; i < 16; ++i)
    same += window(other, i, 4) == seen[size_t(i)];
  EXPECT_LT(same, 16);
}

TEST_F(IndexedDatasetTest, BlendTracksItsWeights) {
  std::string prefix = writeFixture(dir);
  std::vector<GptDataset> parts;
  parts.push_back(gpt(prefix, 4, true, 1));
  parts.push_back(gpt(prefix, 4, false, 1));
  Result<BlendedDataset> blend = BlendedDataset::make(std::move(parts), {3, 7});
  ASSERT_TRUE(blend.ok()) << blend.message();
  int64_t counts[2] = {0, 0};
  for (int64_t i = 0; i < 10000; ++i) {
    std::pair<int, int64_t> at = blend->locate(i);
    // Each part's samples are taken in order: the next one each time.
    ASSERT_EQ(at.second, counts[at.first]) << "sample " << i;
    ++counts[at.first];
    // At every prefix, the realised counts are within 1 of the weights.
    ASSERT_LE(std::abs(double(counts[0]) - 0.3 * double(i + 1)), 1.0) << i;
  }
  EXPECT_EQ(counts[0], 3000);
  EXPECT_EQ(counts[1], 7000);
  // Megatron's first choices: 0.3 and 0.7 of max(i, 1).
  std::vector<GptDataset> again;
  again.push_back(gpt(prefix, 4, true, 1));
  again.push_back(gpt(prefix, 4, false, 1));
  Result<BlendedDataset> fresh = BlendedDataset::make(std::move(again), {3, 7});
  ASSERT_TRUE(fresh.ok());
  // Reached out of order (a later chunk first), the same.
  EXPECT_EQ(fresh->locate(9999), blend->locate(9999));
  EXPECT_EQ(fresh->locate(5), blend->locate(5));
  EXPECT_EQ(window(*fresh, 4321, 4), window(*blend, 4321, 4));
  EXPECT_EQ(blend->locate(0).first, 1);
  EXPECT_FALSE(BlendedDataset::make({}, {}).ok());
}

TEST_F(IndexedDatasetTest, SplitRanges) {
  Result<std::array<double, 3>> split = parseSplit("98,2,0");
  ASSERT_TRUE(split.ok()) << split.message();
  EXPECT_EQ(splitDocuments(*split, 0, 100),
            std::make_pair(int64_t(0), int64_t(98)));
  EXPECT_EQ(splitDocuments(*split, 1, 100),
            std::make_pair(int64_t(98), int64_t(100)));
  EXPECT_EQ(splitDocuments(*split, 2, 100),
            std::make_pair(int64_t(100), int64_t(100)));
  // Python's round: 1.5 -> 2, 2.5 -> 2.
  Result<std::array<double, 3>> halves = parseSplit("1,1");
  ASSERT_TRUE(halves.ok());
  EXPECT_EQ(splitDocuments(*halves, 0, 3),
            std::make_pair(int64_t(0), int64_t(2)));
  EXPECT_EQ(splitDocuments(*halves, 0, 5),
            std::make_pair(int64_t(0), int64_t(2)));
  EXPECT_EQ(splitDocuments(*halves, 1, 5),
            std::make_pair(int64_t(2), int64_t(5)));
  for (const char *bad : {"", "a,b", "-1,2", "0,0,0", "1,2,3,4", "1,,2"})
    EXPECT_FALSE(parseSplit(bad).ok()) << bad;

  // The train split of the 10-document fixture (8 documents) and its valid
  // split (documents 8 and 9: 13 tokens) read only their own documents.
  std::string prefix = writeFixture(dir);
  Result<BlendedDataset> valid =
      openMegatronData({{1.0, prefix}}, "8,2,0", 1, 4, 65536);
  ASSERT_TRUE(valid.ok()) << valid.message();
  EXPECT_EQ(valid->parts()[0].tokensPerEpoch(), 13);
  for (int64_t i = 0; i < 6; ++i)
    for (int32_t t : window(*valid, i, 4))
      EXPECT_GE(t, 8000) << "sample " << i;
  Result<BlendedDataset> test =
      openMegatronData({{1.0, prefix}}, "98,2,0", 2, 4, 65536);
  ASSERT_FALSE(test.ok());
  EXPECT_NE(test.message().find("the test split (98,2,0) of '" + prefix +
                                "': the documents [10, 10)"),
            std::string::npos)
      << test.message();
  EXPECT_FALSE(parseDataPath({"0.3", "a", "b"}).ok());
  EXPECT_FALSE(parseDataPath({"x", "a"}).ok());
  Result<std::vector<DataPathEntry>> path =
      parseDataPath({"0.3", "a", "0.7", "b"});
  ASSERT_TRUE(path.ok());
  EXPECT_EQ((*path)[1].prefix, "b");
}

/// Each damage done to a good index (bytes overwritten at an offset, or the
/// file cut), and the message it must give.
struct Damage {
  const char *name;
  std::function<void(std::string &idx, std::string &bin)> apply;
  const char *message;
};

template <typename T> void put(std::string &s, size_t at, T value) {
  std::memcpy(&s[at], &value, sizeof(T));
}

TEST_F(IndexedDatasetTest, EveryCorruptionIsNamed) {
  // Documents {1,2,3}, {4}, {5,6} in uint16: 3 sequences, 4 indices.
  IndexedDatasetBuilder builder(IndexedDType::Uint16);
  ASSERT_TRUE(builder.addDocument({1, 2, 3}).ok());
  ASSERT_TRUE(builder.addDocument({4}).ok());
  ASSERT_TRUE(builder.addDocument({5, 6}).ok());
  ASSERT_TRUE(builder.finish(dir + "/good").ok());
  std::string idx = readBytes(dir + "/good.idx"),
              bin = readBytes(dir + "/good.bin");
  ASSERT_EQ(idx.size(), 34u + 12 * 3 + 8 * 4);
  const size_t lengths = 34, pointers = 34 + 12, indices = 34 + 36;
  std::vector<Damage> damages = {
      {"short", [](std::string &i, std::string &) { i.resize(20); },
       "is 20 bytes, shorter than the 34-byte header"},
      {"magic", [](std::string &i, std::string &) { i[0] = 'X'; },
       "does not start with Megatron's \"MMIDIDX\\0\\0\""},
      {"version", [](std::string &i, std::string &) { put<uint64_t>(i, 9, 2); },
       "has version 2; Megatron's indexed datasets are version 1"},
      {"dtype", [](std::string &i, std::string &) { i[17] = 9; },
       "has dtype code 9, not one of Megatron's 1 to 8"},
      {"float", [](std::string &i, std::string &) { i[17] = 7; },
       "holds float32 values, not token ids"},
      {"truncated", [](std::string &i, std::string &) { i.pop_back(); },
       "is 101 bytes, but 3 sequences and 4 document indices take 102 "},
      {"count", [](std::string &i, std::string &) { put<uint64_t>(i, 18, 4); },
       "is 102 bytes, but 4 sequences and 4 document indices take 114 "},
      {"negative",
       [=](std::string &i, std::string &) { put<int32_t>(i, lengths + 4, -1); },
       "gives sequence 1 the length -1"},
      {"pointer",
       [=](std::string &i, std::string &) { put<int64_t>(i, pointers + 8, 4); },
       "points sequence 1 at byte 4, but the lengths before it end at byte 6"},
      {"length",
       [=](std::string &i, std::string &) { put<int32_t>(i, lengths, 2); },
       "points sequence 1 at byte 6, but the lengths before it end at byte 4"},
      {"past the end", [](std::string &, std::string &b) { b.resize(10); },
       "puts sequence 2 (2 tokens at byte 8) past the end of"},
      {"longer bin", [](std::string &, std::string &b) { b += "xy"; },
       "describes 12 bytes of tokens, but"},
      {"first index",
       [=](std::string &i, std::string &) { put<int64_t>(i, indices, 1); },
       "has document indices starting at 1, not 0"},
      {"falling index",
       [=](std::string &i, std::string &) { put<int64_t>(i, indices + 16, 0); },
       "has document index 0 at position 2 after 1"},
      {"beyond count",
       [=](std::string &i, std::string &) { put<int64_t>(i, indices + 16, 9); },
       "has document index 9 at position 2 after 1"},
      {"last index",
       [=](std::string &i, std::string &) { put<int64_t>(i, indices + 24, 2); },
       "has document indices ending at 2, not at the sequence count 3"},
      {"no documents",
       [](std::string &i, std::string &) {
         put<uint64_t>(i, 26, 0);
         i.resize(34 + 36);
       },
       "has no document indices"},
  };
  for (const Damage &damage : damages) {
    std::string i = idx, b = bin;
    damage.apply(i, b);
    std::string prefix = dir + "/" + damage.name;
    write(std::string(damage.name) + ".idx", i);
    write(std::string(damage.name) + ".bin", b);
    Result<IndexedDataset> data = IndexedDataset::open(prefix);
    ASSERT_FALSE(data.ok()) << damage.name;
    EXPECT_NE(data.message().find("'" + prefix + ".idx' "), std::string::npos)
        << data.message();
    EXPECT_NE(data.message().find(damage.message), std::string::npos)
        << damage.name << ": " << data.message();
  }
  // Missing and irregular files are named.
  Result<IndexedDataset> missing = IndexedDataset::open(dir + "/none");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("cannot open the dataset index '" + dir +
                                   "/none.idx'"),
            std::string::npos)
      << missing.message();
  ASSERT_EQ(::mkdir((dir + "/d.bin").c_str(), 0755), 0);
  write("d.idx", idx);
  Result<IndexedDataset> directory = IndexedDataset::open(dir + "/d");
  ASSERT_FALSE(directory.ok());
  EXPECT_NE(directory.message().find("d.bin': it is a directory"),
            std::string::npos)
      << directory.message();
  // Too few tokens for one sample.
  Result<BlendedDataset> small =
      openMegatronData({{1.0, dir + "/good"}}, "1", 0, 6, 100);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.message().find("hold 6 tokens; a sample needs seq + 1 = 7"),
            std::string::npos)
      << small.message();
}

} // namespace
