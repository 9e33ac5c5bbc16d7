// The ABI structs' sizes and member offsets are frozen on x86_64 (abi_layout.h): a change fails
// the build of this test in C++ and in C, and the tests below name the row that moved and check
// that the C and C++ compilers lay every struct out alike.
#include <gtest/gtest.h>

#include <cstddef>
#include <iterator>

#include "abi_layout.h"

namespace {

#if defined(__x86_64__)
#define PRPC_CHECK_SIZE(T, n) static_assert(sizeof(T) == (n), "sizeof(" #T ") changed");
#define PRPC_CHECK_OFFSET(T, m, n) static_assert(offsetof(T, m) == (n), #T "." #m " moved");
PRPC_FROZEN_SIZES(PRPC_CHECK_SIZE)
PRPC_FROZEN_OFFSETS(PRPC_CHECK_OFFSET)
#endif

struct Row {
  const char* what;
  std::size_t in_cpp;
  std::size_t frozen;
};

#define PRPC_SIZE_ROW(T, n) Row{"sizeof(" #T ")", sizeof(T), (n)},
#define PRPC_OFFSET_ROW(T, m, n) Row{#T "." #m, offsetof(T, m), (n)},
const Row kRows[] = {PRPC_FROZEN_SIZES(PRPC_SIZE_ROW) PRPC_FROZEN_OFFSETS(PRPC_OFFSET_ROW)};

TEST(AbiLayout, IsFrozenOnX86_64) {
#if !defined(__x86_64__)
  GTEST_SKIP() << "the frozen layout is x86_64's";
#endif
  for (const Row& r : kRows) EXPECT_EQ(r.in_cpp, r.frozen) << r.what;
}

TEST(AbiLayout, CAndCppAgree) {
  ASSERT_EQ(prpc_layout_in_c_count, std::size(kRows));
  for (std::size_t i = 0; i < std::size(kRows); ++i) {
    EXPECT_STREQ(prpc_layout_in_c[i].what, kRows[i].what);
    EXPECT_EQ(prpc_layout_in_c[i].value, kRows[i].in_cpp) << kRows[i].what;
  }
}

}  // namespace
