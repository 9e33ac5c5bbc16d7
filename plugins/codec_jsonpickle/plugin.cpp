// The jsonpickle codec as a plugin: prpc_codec_jsonpickle.so.
#include <algorithm>
#include <vector>

#include "prpc/jsonpickle/codec.hpp"
#include "prpc/sdk/plugin.hpp"

namespace {

class JsonpickleCodecPlugin final : public prpc::jsonpickle::JsonpickleCodec {
 public:
  static constexpr const char* kName = "jsonpickle";
  static constexpr const char* kDescription =
      "Python flavour: PRPCMessage as Python's jsonpickle writes it (native, allow-list safe)";

  static std::vector<prpc::sdk::OptionSpec> options() {
    return {
        {"max_depth", PRPC_OPT_INT, "512", "deepest nesting of lists, dicts and objects accepted"},
        {"max_bytes", PRPC_OPT_INT, "67108864", "largest message accepted or produced, in bytes"},
        {"max_int_digits", PRPC_OPT_INT, "4300", "most digits of an integer literal"},
    };
  }

  explicit JsonpickleCodecPlugin(const prpc::sdk::Context& ctx)
      : JsonpickleCodec(limits_from(ctx.options)) {}

 private:
  static prpc::jsonpickle::Limits limits_from(const prpc::sdk::Options& o) {
    prpc::jsonpickle::Limits l;
    // The walks over a document recurse once per level: the cap keeps them well inside a
    // thread's stack whatever the configuration says.
    l.max_depth =
        static_cast<std::size_t>(std::clamp<std::int64_t>(o.get_int("max_depth", 512), 1, 4096));
    l.max_bytes = static_cast<std::size_t>(
        std::max<std::int64_t>(o.get_int("max_bytes", std::int64_t{64} << 20), 1));
    l.max_int_digits =
        static_cast<std::size_t>(std::max<std::int64_t>(o.get_int("max_int_digits", 4300), 1));
    return l;
  }
};

}  // namespace

PRPC_PLUGIN("codec_jsonpickle", "0.1.0", "jsonpickle codec for Python-flavour messages",
            JsonpickleCodecPlugin)
