#include <gtest/gtest.h>

#include "prpc/uuid.hpp"

namespace prpc {
namespace {

TEST(Uuid, NewIdsAreCanonicalVersion4AndDistinct) {
  std::string a = new_uuid();
  std::string b = new_uuid();
  EXPECT_NE(a, b);
  ASSERT_EQ(a.size(), 36u);
  EXPECT_EQ(a[14], '4');
  EXPECT_TRUE(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b');
  EXPECT_EQ(canonical_uuid(a), a);
}

TEST(Uuid, CanonicalForms) {
  const std::string canon = "12345678-1234-5678-1234-567812345678";
  EXPECT_EQ(canonical_uuid("12345678123456781234567812345678"), canon);
  EXPECT_EQ(canonical_uuid("12345678-1234-5678-1234-567812345678"), canon);
  EXPECT_EQ(canonical_uuid("{12345678-1234-5678-1234-567812345678}"), canon);
  EXPECT_EQ(canonical_uuid("urn:uuid:12345678-1234-5678-1234-567812345678"), canon);
  EXPECT_EQ(canonical_uuid("ABCDEF00-1234-5678-1234-567812345678"),
            "abcdef00-1234-5678-1234-567812345678");
  EXPECT_FALSE(canonical_uuid(""));
  EXPECT_FALSE(canonical_uuid("uuid4"));
  EXPECT_FALSE(canonical_uuid("12345678-1234-5678-1234-56781234567g"));
  EXPECT_FALSE(canonical_uuid("1234567-81234-5678-1234-567812345678"));
  EXPECT_FALSE(canonical_uuid("123456781234567812345678123456789"));
}

}  // namespace
}  // namespace prpc
