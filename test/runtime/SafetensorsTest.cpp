//===- SafetensorsTest.cpp - safetensors reading, writing, refusing -------===//
//
// Round trips in every dtype, the half and bfloat16 conversions (every
// 16-bit pattern, and rounding ties), the bytes the `safetensors` package
// writes (with $LOOM_TEST_PYTHON), and one case per refusal.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Safetensors.h"

#include "TempDir.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

using namespace loom::runtime;

namespace {

class SafetensorsTest : public TempDir {};

std::vector<float> values(int64_t n, int k) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[size_t(i)] = float(double(i) * 0.37 - 1.1 * k);
  return v;
}

/// The tensors Inputs/write_safetensors.py writes.
struct Fixture {
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"b.weight", {2, 3}},
      {"a", {5}},
      {"scalar", {}},
      {"empty", {0, 4}},
      {"z.bias", {7}}};
  std::vector<std::vector<float>> data;
  Fixture() {
    for (size_t k = 0; k < shapes.size(); ++k) {
      int64_t n = 1;
      for (int64_t d : shapes[k].second)
        n *= d;
      data.push_back(values(n, int(k)));
    }
  }
  std::vector<SafetensorsOutput> outputs() const {
    std::vector<SafetensorsOutput> out;
    for (size_t k = 0; k < shapes.size(); ++k)
      out.push_back({shapes[k].first, shapes[k].second, data[k].data()});
    return out;
  }
};

std::string bytesOf(const std::vector<uint8_t> &v) {
  return std::string(v.begin(), v.end());
}

std::string readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// A file from a header and a data section.
std::string fileOf(const std::string &header, const std::string &data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i)
    out[size_t(i)] = char(uint8_t(n >> (8 * i)));
  return out + header + data;
}

std::string parseError(const std::string &bytes) {
  Result<SafetensorsFile> f = SafetensorsFile::parse(
      reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size(), "F");
  return f.ok() ? "(accepted)" : f.message();
}

TEST_F(SafetensorsTest, RoundTripsEveryDType) {
  Fixture fx;
  for (SafetensorsDType dtype :
       {SafetensorsDType::F32, SafetensorsDType::F16, SafetensorsDType::BF16}) {
    std::string path = dir + "/" + safetensorsDTypeName(dtype);
    ASSERT_TRUE(writeSafetensors(path, fx.outputs(), dtype).ok());
    Result<SafetensorsFile> f = SafetensorsFile::open(path);
    ASSERT_TRUE(f.ok()) << f.message();
    ASSERT_EQ(f->metadata().size(), 1u);
    EXPECT_EQ(f->metadata()[0].first, "format");
    EXPECT_EQ(f->metadata()[0].second, "pt");
    // Written in name order.
    ASSERT_EQ(f->tensors().size(), 5u);
    EXPECT_EQ(f->tensors()[0].name, "a");
    EXPECT_EQ(f->tensors()[4].name, "z.bias");
    for (size_t k = 0; k < fx.shapes.size(); ++k) {
      const SafetensorsEntry *e = f->find(fx.shapes[k].first);
      ASSERT_NE(e, nullptr);
      EXPECT_EQ(e->dtype, dtype);
      EXPECT_EQ(e->shape, fx.shapes[k].second);
      std::vector<float> got = f->read(*e);
      ASSERT_EQ(got.size(), fx.data[k].size());
      for (size_t i = 0; i < got.size(); ++i) {
        float want = fx.data[k][i];
        if (dtype == SafetensorsDType::F16)
          want = halfToFloat(floatToHalf(want));
        if (dtype == SafetensorsDType::BF16)
          want = bfloat16ToFloat(floatToBfloat16(want));
        EXPECT_EQ(got[i], want) << e->name << " " << i;
      }
    }
    // The header is padded to 8 bytes; the data follows it.
    std::string bytes = readBytes(path);
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    EXPECT_EQ(n % 8, 0u);
    EXPECT_NE(std::string(bytes.data() + 8, n)
                  .find("\"dtype\":\"" +
                        std::string(safetensorsDTypeName(dtype)) + "\""),
              std::string::npos);
  }
}

TEST(SafetensorsConversions, EveryHalfAndBfloat16RoundTrips) {
  for (uint32_t b = 0; b < 65536; ++b) {
    uint16_t bits = uint16_t(b);
    float h = halfToFloat(bits);
    if (std::isnan(h))
      EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(h)))) << b;
    else
      EXPECT_EQ(floatToHalf(h), bits) << b;
    float f = bfloat16ToFloat(bits);
    if (std::isnan(f))
      EXPECT_TRUE(std::isnan(bfloat16ToFloat(floatToBfloat16(f)))) << b;
    else
      EXPECT_EQ(floatToBfloat16(f), bits) << b;
  }
  // Known values: 1, -2, 65504 (the largest half), 2^-24 (the smallest).
  EXPECT_EQ(halfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(halfToFloat(0xc000), -2.0f);
  EXPECT_EQ(halfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(halfToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(bfloat16ToFloat(0x3f80), 1.0f);
}

TEST(SafetensorsConversions, RoundsToNearestEven) {
  // Halfway between 1 and the next half (1 + 2^-10) goes to 1 (even);
  // halfway above 1 + 2^-10 goes up to 1 + 2^-9.
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(floatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)),
            0x3c01);
  // Subnormal halves: 2^-25 (a tie) goes to 0, a bit more to 2^-24; 1.5 ·
  // 2^-24 (a tie) goes to 2 · 2^-24.
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -25) * 1.01f), 0x0001);
  EXPECT_EQ(floatToHalf(std::ldexp(1.5f, -24)), 0x0002);
  EXPECT_EQ(floatToHalf(-std::ldexp(1.0f, -30)), 0x8000);
  // 65520 is halfway to 2^16: rounds to infinity.
  EXPECT_EQ(floatToHalf(65519.0f), 0x7bff);
  EXPECT_EQ(floatToHalf(65520.0f), 0x7c00);
  // bfloat16: 1 + 2^-8 is a tie (to 1), 1 + 3 · 2^-8 goes up.
  EXPECT_EQ(floatToBfloat16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(floatToBfloat16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
}

TEST_F(SafetensorsTest, WritesWhatTheSafetensorsPackageWrites) {
  const char *python = std::getenv("LOOM_TEST_PYTHON");
  std::string py = python ? python : "python3";
  if (std::system(
          (py + " -c 'import numpy, safetensors' 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << "requires python packages numpy and safetensors (set "
                    "LOOM_TEST_PYTHON to a python that has them: "
                    "scripts/test-python.sh)";
  std::string command =
      py + " " LOOM_TEST_INPUTS "/write_safetensors.py " + dir;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  Fixture fx;
  for (auto [name, dtype] : {std::pair{"f32", SafetensorsDType::F32},
                             std::pair{"f16", SafetensorsDType::F16}}) {
    Result<std::vector<uint8_t>> ours =
        serializeSafetensors(fx.outputs(), dtype);
    ASSERT_TRUE(ours.ok()) << ours.message();
    EXPECT_EQ(bytesOf(*ours), readBytes(dir + "/" + name + ".safetensors"))
        << name;
  }
}

TEST_F(SafetensorsTest, RefusesDamagedFiles) {
  const std::string t = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],"
                        "\"data_offsets\":[0,8]}}";
  EXPECT_EQ(parseError(fileOf(t, std::string(8, '\0'))), "(accepted)");
  EXPECT_EQ(parseError("abc"),
            "F: it is 3 bytes, too short for the 8-byte header length: "
            "truncated, or not a safetensors file");
  // Truncated: the data is shorter than the tensors.
  EXPECT_EQ(parseError(fileOf(t, std::string(5, '\0'))),
            "F: its tensors cover 8 bytes of data but the file holds 5: "
            "truncated?");
  EXPECT_EQ(parseError(fileOf(t, std::string(9, '\0'))),
            "F: its tensors cover 8 bytes of data but the file holds 9: "
            "extra bytes at the end");
  // The header length past the end, and over the limit.
  std::string longHeader = fileOf(t, std::string(8, '\0'));
  longHeader[0] = char(0xff);
  EXPECT_EQ(parseError(longHeader),
            "F: its header length is 255 bytes, more than the " +
                std::to_string(longHeader.size() - 8) +
                " bytes after it: truncated?");
  std::string huge = longHeader;
  huge[4] = 1; // 2^32 + 255
  EXPECT_EQ(parseError(huge),
            "F: its header length is 4294967551 bytes, over the format's "
            "limit of 100 MB: not a safetensors file?");
  EXPECT_EQ(parseError(fileOf("[1]", "")),
            "F: its header does not start with '{': not a safetensors file?");
  EXPECT_NE(parseError(fileOf("{\"t\":", "")).find("F's header, line 1"),
            std::string::npos);
  // Overlapping and gapped offsets.
  const std::string two = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                          "\"data_offsets\":[0,8]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
                          "\"data_offsets\":[4,12]}}";
  EXPECT_EQ(parseError(fileOf(two, std::string(12, '\0'))),
            "F: tensor 'b' has data_offsets [4, 12] that overlap tensor "
            "'a''s [0, 8]");
  const std::string gap = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                          "\"data_offsets\":[4,8]}}";
  EXPECT_EQ(parseError(fileOf(gap, std::string(8, '\0'))),
            "F: tensor 'a' has data_offsets [4, 8] that leave bytes [0, 4) "
            "of the data unused");
  // A dtype Loom does not read, and one that is no dtype.
  std::string i64 = t;
  i64.replace(i64.find("F32"), 3, "I64");
  EXPECT_EQ(parseError(fileOf(i64, std::string(16, '\0'))),
            "F: tensor 't' has dtype \"I64\"; Loom reads F32, F16 and BF16 "
            "weights");
  // Sizes that do not match the shape.
  std::string wrongSize = t;
  wrongSize.replace(wrongSize.find("[2]"), 3, "[3]");
  EXPECT_EQ(parseError(fileOf(wrongSize, std::string(8, '\0'))),
            "F: tensor 't' has data_offsets [0, 8] (8 bytes) but its shape "
            "[3] of F32 is 12 bytes");
  std::string backwards = t;
  backwards.replace(backwards.find("[0,8]"), 5, "[8,0]");
  EXPECT_EQ(parseError(fileOf(backwards, std::string(8, '\0'))),
            "F: tensor 't' has data_offsets [8, 0] that end before they "
            "begin");
  EXPECT_EQ(parseError(fileOf("{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],"
                              "\"data_offsets\":[0,0]}}",
                              "")),
            "F: tensor 't' has a shape entry '-1' that is not a whole number "
            ">= 0");
  EXPECT_EQ(parseError(fileOf("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", "")),
            "F: tensor 't' has no \"data_offsets\"");
  EXPECT_EQ(parseError(fileOf("{\"__metadata__\":{\"format\":1}}", "")),
            "F: its __metadata__ 'format' is a number, not a string");
  // Padding after the JSON is whitespace, as the writer leaves it.
  EXPECT_EQ(parseError(fileOf("{}      ", "")), "(accepted)");
}

TEST_F(SafetensorsTest, NamesTheFileAndRefusesUnwritableValues) {
  Result<SafetensorsFile> missing = SafetensorsFile::open(dir + "/none");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find(dir + "/none"), std::string::npos);
  std::string path = write("short.safetensors", "abc");
  Result<SafetensorsFile> shortFile = SafetensorsFile::open(path);
  ASSERT_FALSE(shortFile.ok());
  EXPECT_EQ(shortFile.message(),
            "the safetensors file '" + path +
                "': it is 3 bytes, too short for the 8-byte header length: "
                "truncated, or not a safetensors file");
  std::vector<float> big = {1.0f, 1e6f};
  Result<std::vector<uint8_t>> f16 =
      serializeSafetensors({{"w", {2}, big.data()}}, SafetensorsDType::F16);
  ASSERT_FALSE(f16.ok());
  EXPECT_EQ(f16.message(), "tensor 'w' element 1 is 1e+06, which F16 "
                           "cannot hold (it would be inf); write it as f32 "
                           "or bf16");
  EXPECT_TRUE(
      serializeSafetensors({{"w", {2}, big.data()}}, SafetensorsDType::BF16)
          .ok());
}

} // namespace
