#include "scripts.hpp"

#include <boost/uuid/detail/sha1.hpp>
#include <cstdio>

namespace prpc::redis::details::scripts {

std::string sha1_hex(std::string_view body) {
  boost::uuids::detail::sha1 h;
  h.process_bytes(body.data(), body.size());
  boost::uuids::detail::sha1::digest_type digest;
  h.get_digest(digest);
  char out[41];
  for (std::size_t i = 0; i < 5; ++i) std::snprintf(out + 8 * i, 9, "%08x", digest[i]);
  return std::string(out, 40);
}

const Shas& shas() {
  static const Shas s{sha1_hex(kFinish),   sha1_hex(kClaim),      sha1_hex(kTouch),
                      sha1_hex(kTrim),     sha1_hex(kRequeue),    sha1_hex(kHeartbeat),
                      sha1_hex(kAnnounce), sha1_hex(kListServers)};
  return s;
}

std::vector<std::string> all() {
  return {kFinish, kClaim, kTouch, kTrim, kRequeue, kHeartbeat, kAnnounce, kListServers};
}

}  // namespace prpc::redis::details::scripts
