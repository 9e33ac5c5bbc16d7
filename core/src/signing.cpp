#include "prpc/signing.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>

namespace prpc {
namespace {

using Digest = std::array<unsigned char, 32>;

constexpr char kHex[] = "0123456789abcdef";

std::string to_hex(const unsigned char* data, std::size_t size) {
  std::string out(size * 2, '0');
  for (std::size_t i = 0; i < size; ++i) {
    out[2 * i] = kHex[data[i] >> 4];
    out[2 * i + 1] = kHex[data[i] & 0xF];
  }
  return out;
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// 64 hex digits (either case) as the 32 bytes they spell.
bool from_hex(std::string_view text, Digest& out) noexcept {
  if (text.size() != out.size() * 2) return false;
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = hex_value(text[2 * i]);
    int lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return true;
}

Digest hmac(std::string_view key, std::string_view payload) {
  Digest out{};
  unsigned int size = 0;
  // An empty payload still needs a valid pointer.
  static const unsigned char kEmpty = 0;
  const auto* data =
      payload.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(payload.data());
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data, payload.size(), out.data(),
       &size);
  return out;
}

// An id from a message, fit to quote in an error (it may be anything a sender wrote).
std::string quoted_id(std::string_view id) {
  std::string out;
  for (char c : id.substr(0, 32)) out += (c >= 0x21 && c <= 0x7e && c != '\'') ? c : '?';
  return out;
}

}  // namespace

std::string hmac_sha256_hex(std::string_view key, std::string_view payload) {
  Digest d = hmac(key, payload);
  return to_hex(d.data(), d.size());
}

std::string signing_key_id(std::string_view key) {
  Digest d{};
  unsigned int size = 0;
  EVP_Digest(key.data(), key.size(), d.data(), &size, EVP_sha256(), nullptr);
  return to_hex(d.data(), 8);
}

Result<Signer> Signer::make(const SigningOptions& options) {
  Signer s;
  s.accept_unsigned_ = options.accept_unsigned;
  if (options.key.empty()) {
    if (!options.previous.empty()) {
      return Status(StatusCode::kInvalidArgument,
                    "security.previous_keys is set without security.signing_key: previous keys "
                    "only verify, so a signing key is needed too");
    }
    return s;
  }
  std::vector<std::string_view> all{options.key};
  all.insert(all.end(), options.previous.begin(), options.previous.end());
  for (std::size_t i = 0; i < all.size(); ++i) {
    std::string_view name = i == 0 ? "security.signing_key" : "security.previous_keys";
    if (all[i].size() < kMinSigningKeyLength) {
      // The key itself is never part of an error message.
      return Status(StatusCode::kInvalidArgument,
                    std::string(name) + ": a key must have at least " +
                        std::to_string(kMinSigningKeyLength) +
                        " characters (make one with `openssl rand -hex 32`)");
    }
    Key k{std::string(all[i]), signing_key_id(all[i])};
    for (const Key& other : s.keys_) {
      if (other.id == k.id) {
        return Status(StatusCode::kInvalidArgument,
                      std::string(name) + ": the same key is given twice (key id " + k.id + ")");
      }
    }
    s.keys_.push_back(std::move(k));
  }
  return s;
}

const std::string& Signer::key_id() const noexcept {
  static const std::string kNone;
  return keys_.empty() ? kNone : keys_.front().id;
}

Signer::Signature Signer::sign(std::string_view payload) const {
  if (keys_.empty()) return {};
  return {hmac_sha256_hex(keys_.front().secret, payload), keys_.front().id};
}

Status Signer::verify(std::string_view payload, std::string_view signature, std::string_view key_id,
                      std::string_view what) const {
  if (keys_.empty()) return Status::ok();
  if (signature.empty()) {
    if (accept_unsigned_) return Status::ok();
    return Status(StatusCode::kDecode, "unsigned " + std::string(what) +
                                           ": signed messages are required (a signing key is "
                                           "configured)");
  }
  Digest given{};
  if (!from_hex(signature, given)) {
    return Status(StatusCode::kDecode, "the " + std::string(what) +
                                           "'s signature is not 64 hex digits (an HMAC-SHA256)");
  }
  bool known = key_id.empty();
  bool match = false;
  for (const Key& k : keys_) {
    if (!key_id.empty() && k.id != key_id) continue;
    known = true;
    Digest expected = hmac(k.secret, payload);
    if (CRYPTO_memcmp(expected.data(), given.data(), given.size()) == 0) match = true;
  }
  if (!known) {
    return Status(StatusCode::kDecode, "the " + std::string(what) +
                                           " is signed with an unknown key (key id '" +
                                           quoted_id(key_id) + "')");
  }
  if (!match) {
    return Status(StatusCode::kDecode, "the " + std::string(what) +
                                           "'s signature does not match its bytes under any "
                                           "accepted key");
  }
  return Status::ok();
}

}  // namespace prpc
