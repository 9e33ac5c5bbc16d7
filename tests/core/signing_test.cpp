// HMAC-SHA256 signatures (RFC 4231's test vectors), key ids, and what a Signer accepts.
#include <gtest/gtest.h>

#include "prpc/signing.hpp"

namespace prpc {
namespace {

const std::string kKey = "0123456789abcdef-current";
const std::string kOld = "0123456789abcdef-previous";

Signer make(SigningOptions o) {
  auto s = Signer::make(o);
  if (!s.is_ok()) throw std::runtime_error(s.status().to_string());
  return *s;
}

TEST(Signing, Rfc4231Vectors) {
  EXPECT_EQ(hmac_sha256_hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // A key longer than the block is hashed first (test case 6).
  EXPECT_EQ(hmac_sha256_hex(std::string(131, '\xaa'),
                            "Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  EXPECT_EQ(hmac_sha256_hex("key", "").size(), 64u);
}

TEST(Signing, KeyIdsAreTheStartOfTheKeysSha256) {
  // printf %s abc | sha256sum
  EXPECT_EQ(signing_key_id("abc"), "ba7816bf8f01cfea");
  EXPECT_NE(signing_key_id(kKey), signing_key_id(kOld));
}

TEST(Signing, SignsWithTheCurrentKeyAndVerifiesWithEveryAcceptedOne) {
  Signer current = make({kKey, {kOld}, false});
  Signer old = make({kOld, {}, false});
  auto sig = current.sign("payload");
  EXPECT_EQ(sig.signature, hmac_sha256_hex(kKey, "payload"));
  EXPECT_EQ(sig.key_id, signing_key_id(kKey));
  EXPECT_TRUE(current.verify("payload", sig.signature, sig.key_id, "request").is_ok());
  // A message from a sender still on the previous key, with or without its key id.
  auto from_old = old.sign("payload");
  EXPECT_TRUE(current.verify("payload", from_old.signature, from_old.key_id, "request").is_ok());
  EXPECT_TRUE(current.verify("payload", from_old.signature, "", "request").is_ok());
  // Upper-case hex reads the same.
  std::string upper = sig.signature;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(current.verify("payload", upper, "", "request").is_ok());
  // The old key alone does not know the new one.
  Status s = old.verify("payload", sig.signature, sig.key_id, "reply");
  EXPECT_EQ(s.code(), StatusCode::kDecode);
  EXPECT_EQ(s.message(),
            "the reply is signed with an unknown key (key id '" + signing_key_id(kKey) + "')");
}

TEST(Signing, RefusesWhatIsUnsignedOrMisSigned) {
  Signer signer = make({kKey, {}, false});
  auto sig = signer.sign("payload");
  EXPECT_EQ(signer.verify("payload", "", "", "request").message(),
            "unsigned request: signed messages are required (a signing key is configured)");
  EXPECT_EQ(signer.verify("payload!", sig.signature, sig.key_id, "request").message(),
            "the request's signature does not match its bytes under any accepted key");
  std::string flipped = sig.signature;
  flipped[10] = flipped[10] == '0' ? '1' : '0';
  EXPECT_FALSE(signer.verify("payload", flipped, "", "request").is_ok());
  EXPECT_EQ(signer.verify("payload", "xyz", "", "request").message(),
            "the request's signature is not 64 hex digits (an HMAC-SHA256)");
  EXPECT_EQ(signer.verify("payload", sig.signature, "bad'id\nwith a newline", "request").message(),
            "the request is signed with an unknown key (key id 'bad?id?with?a?newline')");
  // Accepting unsigned messages (a rollout) still refuses mis-signed ones.
  Signer lenient = make({kKey, {}, true});
  EXPECT_TRUE(lenient.verify("payload", "", "", "request").is_ok());
  EXPECT_FALSE(lenient.verify("payload", flipped, "", "request").is_ok());
}

TEST(Signing, OffSignsNothingAndAcceptsEverything) {
  Signer off;
  EXPECT_FALSE(off.enabled());
  EXPECT_TRUE(off.sign("x").signature.empty());
  EXPECT_TRUE(off.verify("x", "", "", "request").is_ok());
  EXPECT_TRUE(off.verify("x", "garbage", "id", "request").is_ok());
}

TEST(Signing, BadKeysAreRefusedWithoutBeingShown) {
  auto short_key = Signer::make({"short-secret", {}, false});
  ASSERT_FALSE(short_key.is_ok());
  EXPECT_EQ(short_key.status().message(),
            "security.signing_key: a key must have at least 16 characters (make one with "
            "`openssl rand -hex 32`)");
  auto short_old = Signer::make({kKey, {"tiny-old"}, false});
  ASSERT_FALSE(short_old.is_ok());
  EXPECT_EQ(short_old.status().message().find("tiny-old"), std::string::npos);
  EXPECT_EQ(short_old.status().message().rfind("security.previous_keys: ", 0), 0u);
  EXPECT_FALSE(Signer::make({"", {kOld}, false}).is_ok());
  auto twice = Signer::make({kKey, {kKey}, false});
  ASSERT_FALSE(twice.is_ok());
  EXPECT_EQ(twice.status().message().find(kKey), std::string::npos);
}

}  // namespace
}  // namespace prpc
