#include "prpc/version.h"
#include "raw_json_codec.hpp"

PRPC_PLUGIN("codec_rawjson", PRPC_VERSION_STRING, "The raw JSON codec", prpc::rawjson::RawJsonCodec)
