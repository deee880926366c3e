//===- TempDir.h - a fresh temporary directory per test ---------*- C++ -*-===//

#ifndef LOOM_TEST_RUNTIME_TEMPDIR_H
#define LOOM_TEST_RUNTIME_TEMPDIR_H

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

/// A test fixture with an empty directory under /tmp, removed after the test.
class TempDir : public ::testing::Test {
protected:
  void SetUp() override {
    char pattern[] = "/tmp/loom-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir = pattern;
  }
  void TearDown() override {
    std::string command = "rm -rf '" + dir + "'";
    ASSERT_EQ(std::system(command.c_str()), 0);
  }
  /// Writes `bytes` to `name` in the directory; its path.
  std::string write(const std::string &name, const std::string &bytes) {
    std::string path = dir + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  std::string dir;
};

#endif // LOOM_TEST_RUNTIME_TEMPDIR_H
