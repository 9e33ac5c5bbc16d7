// Message signing: an HMAC-SHA256 of a message's exact bytes under a shared secret, carried beside
// the message (docs/security.md). Anyone with the key can sign from any language:
//   printf %s "$MESSAGE" | openssl dgst -sha256 -hmac "$KEY" | cut -d' ' -f2
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "prpc/status.hpp"

namespace prpc {

// HMAC-SHA256 of `payload` under `key` (its bytes as given), as 64 lowercase hex digits.
std::string hmac_sha256_hex(std::string_view key, std::string_view payload);

// A key's id, sent beside a signature so the verifier knows which of its keys to try: the first
// 16 hex digits of the key's SHA-256 (`printf %s "$KEY" | sha256sum | cut -c1-16`). It names a
// key without revealing it.
std::string signing_key_id(std::string_view key);

struct SigningOptions {
  std::string key;                    // signs, and verifies; empty: no signing
  std::vector<std::string> previous;  // also verify (a rotation), never sign
  // With a key: still accept messages without a signature (not mis-signed ones), while the
  // other side of a deployment is being given the key.
  bool accept_unsigned = false;
};

// The shortest key accepted (characters): shorter ones are guessed offline from any signature.
inline constexpr std::size_t kMinSigningKeyLength = 16;

class Signer {
 public:
  struct Signature {
    std::string signature;  // empty when signing is off
    std::string key_id;
  };

  Signer() = default;  // signing off: sign() gives nothing, verify() accepts everything
  // Refuses keys shorter than kMinSigningKeyLength, previous keys without a current one, and
  // two keys with one id.
  static Result<Signer> make(const SigningOptions& options);

  bool enabled() const noexcept { return !keys_.empty(); }
  const std::string& key_id() const noexcept;

  Signature sign(std::string_view payload) const;

  // OK when signing is off, or `signature` is the HMAC of `payload` under the key `key_id`
  // names (under each accepted key in turn when `key_id` is empty), or the message is unsigned
  // and unsigned messages are accepted. Otherwise kDecode saying why ("unsigned", "unknown key
  // id", "does not match"). `what` names the message in that text ("request", "reply").
  // Digests are compared in constant time.
  Status verify(std::string_view payload, std::string_view signature, std::string_view key_id,
                std::string_view what) const;

 private:
  struct Key {
    std::string secret;
    std::string id;
  };
  std::vector<Key> keys_;  // the current key first
  bool accept_unsigned_ = false;
};

}  // namespace prpc
