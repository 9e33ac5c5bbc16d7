// jsonpickle's reference numbering, seen at the JSON level.
//
// jsonpickle gives every "tracked" node (a list, a plain dict, an object, a py/reduce) an id in
// the order its decoder restores them, and writes a later occurrence of the same Python object
// as {"py/id": n}. The envelope of a PRPC message holds several self-contained fragments
// (func_args, func_kwargs, result), so the codec must renumber: shift a fragment's local ids to
// the envelope's numbering when encoding, and rebase them to local numbering when decoding
// (inlining a copy when a reference points outside the fragment, as Python's own encoder does
// when the same object appears in two fields).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "prpc/jsonpickle/document.hpp"
#include "prpc/status.hpp"

namespace prpc::jsonpickle {

// The jsonpickle tag an object node is restored by, in the decoder's order of precedence.
enum class Tag : std::uint8_t {
  kNone,  // not an object node
  kDict,  // a plain dict
  kTuple,
  kSet,
  kB64,
  kB85,
  kId,
  kIterator,
  kObject,
  kType,
  kReduce,
  kFunction,
  kModule,
  kRepr,
};

Tag tag_of(const Document& doc, std::uint32_t node) noexcept;

// True for the reserved "py/..." member names jsonpickle skips when restoring attributes.
bool is_reserved_key(std::string_view key) noexcept;

// Ids in restore order: ids[k] is the node that jsonpickle's decoder numbers k.
struct Numbering {
  std::vector<std::uint32_t> ids;
  // Ids of the nodes that stand for datetime.timezone.utc ({"py/reduce": [timezone,
  // (timedelta(0),)]}), ascending; Python shares this one object, so later uses are references.
  std::vector<std::uint32_t> utc_ids;
};

// Numbers the tracked nodes under `node` (inclusive) as the decoder would, appending to `out`.
// `max_depth` bounds the recursion (the document's own depth is already bounded by its parse).
Status number_nodes(const Document& doc, std::uint32_t node, Numbering& out);

// Writes the subtree at `node` in json.dumps layout with its py/id values mapped to the envelope's
// numbering: local id k becomes local_to_global[k]. A node listed in `replaced` is written as a
// reference to the given id instead of itself (a timezone.utc the envelope already holds).
// Document order is kept: this is the encoder side, whose output must match jsonpickle's.
struct Replacement {
  std::uint32_t node;
  std::int64_t id;
};
void write_mapped(const Document& doc, std::uint32_t node,
                  const std::vector<std::int64_t>& local_to_global,
                  const std::vector<Replacement>& replaced, std::string& out);

// Writes the subtree at `node` as a self-contained document: tracked nodes renumbered from 0 in
// restore order, references resolved through `global` (the numbering of the whole document the
// node belongs to), and references to nodes not yet written inlined as copies.
// `as_list` writes a root {"py/tuple": [...]} as a list (func_args must be a list).
Result<std::string> write_rebased(const Document& doc, std::uint32_t node, const Numbering& global,
                                  std::size_t max_depth, bool as_list = false);

// Follows {"py/id": n} through `global` (at most a few hops); returns the node itself otherwise,
// or kNoNode for a dangling reference.
std::uint32_t resolve(const Document& doc, std::uint32_t node, const Numbering& global) noexcept;

}  // namespace prpc::jsonpickle
