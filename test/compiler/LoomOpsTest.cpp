#include <gtest/gtest.h>
TEST(Loom, Builds) { SUCCEED(); }
