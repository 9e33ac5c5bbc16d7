#include "prpc/jsonpickle/references.hpp"

#include <gtest/gtest.h>

#include <string>

namespace prpc::jsonpickle {
namespace {

Numbering number(const Document& doc) {
  Numbering n;
  EXPECT_TRUE(number_nodes(doc, doc.root(), n).is_ok());
  return n;
}

Document parse(std::string_view text) {
  auto d = Document::parse(text, Limits{});
  EXPECT_TRUE(d.is_ok()) << d.status().to_string();
  return std::move(d).value();
}

// The text of the node numbered `id`, to check which node got which number.
std::string node_text(const Document& doc, const Numbering& n, std::size_t id) {
  std::string out;
  write_node(doc, n.ids.at(id), out);
  return out;
}

TEST(Numbering, FollowsJsonpicklesPreOrder) {
  // Vector ref_ids_numbering: root dict 0, 'first' list 1, inner dict 2, Plain 3.
  Document doc = parse(
      R"({"first": [{"k": 1}], "second": {"py/object": "sample.Plain", "a": {"py/id": 2}, "b": [{"py/id": 2}]}})");
  Numbering n = number(doc);
  ASSERT_EQ(n.ids.size(), 5u);  // the list in "b" is the fifth
  EXPECT_EQ(node_text(doc, n, 2), R"({"k": 1})");
  EXPECT_EQ(node_text(doc, n, 4), R"([{"py/id": 2}])");
}

TEST(Numbering, TuplesSetsBytesTypesAndRefsTakeNoId) {
  Document doc = parse(
      R"([{"py/tuple": [[1], {"py/id": 1}]}, {"py/set": [1]}, {"py/b64": "YQ=="}, {"py/type": "builtins.int"}, {"py/function": "m.f"}])");
  Numbering n = number(doc);
  ASSERT_EQ(n.ids.size(), 2u);
  EXPECT_EQ(node_text(doc, n, 1), "[1]");
}

TEST(Numbering, DatetimeHandlerCountsOnlyItsTimezone) {
  // Vector datetime_tz_shared_ids: outer list 0, datetime 1, timezone 2, timedelta 3.
  Document doc = parse(
      R"([{"py/object": "datetime.datetime", "__reduce__": [{"py/type": "datetime.datetime"}, ["B+gBAgAAAAAAAA==", {"py/reduce": [{"py/type": "datetime.timezone"}, {"py/tuple": [{"py/reduce": [{"py/type": "datetime.timedelta"}, {"py/tuple": [0, 0, 0]}]}]}]}]]}, {"py/id": 2}, {"py/id": 1}])");
  Numbering n = number(doc);
  ASSERT_EQ(n.ids.size(), 4u);
  ASSERT_EQ(n.utc_ids.size(), 1u);
  EXPECT_EQ(n.utc_ids[0], 2u);
  EXPECT_EQ(node_text(doc, n, 3),
            R"({"py/reduce": [{"py/type": "datetime.timedelta"}, {"py/tuple": [0, 0, 0]}]})");
}

TEST(Numbering, DictSubclassStateIsCounted) {
  // Vector dict_subclass_then_shared_ref as 4.x writes it: the '__dict__' value is id 2.
  Document doc =
      parse(R"([{"py/object": "sample.DictSub", "a": 1, "__dict__": {}}, [1], {"py/id": 3}])");
  Numbering n = number(doc);
  ASSERT_EQ(n.ids.size(), 4u);
  EXPECT_EQ(node_text(doc, n, 3), "[1]");
}

TEST(Numbering, ReduceStateAndFrozensetListAreCounted) {
  Document doc = parse(
      R"([{"py/reduce": [{"py/type": "builtins.ValueError"}, {"py/tuple": ["bad", 42]}, {}]}, {"py/reduce": [{"py/type": "builtins.frozenset"}, {"py/tuple": [[1, 2]]}]}])");
  Numbering n = number(doc);
  ASSERT_EQ(n.ids.size(), 5u);
  EXPECT_EQ(node_text(doc, n, 2), "{}");
  EXPECT_EQ(node_text(doc, n, 4), "[1, 2]");
}

TEST(Numbering, ObjectTagWinsAndOtherTagsAreNotAttributes) {
  Document doc = parse(R"({"py/object": "m.C", "py/type": "m.T", "a": [1], "py/seq": [[2]]})");
  EXPECT_EQ(tag_of(doc, doc.root()), Tag::kObject);
  Numbering n = number(doc);
  ASSERT_EQ(n.ids.size(), 3u);  // the object, the attribute's list, the py/seq item
  EXPECT_EQ(node_text(doc, n, 1), "[1]");
  EXPECT_EQ(node_text(doc, n, 2), "[2]");
}

TEST(Rebase, RenumbersAFragmentFromZero) {
  Document doc = parse(R"({"x": [1], "y": [[2], {"py/id": 3}]})");
  Numbering g = number(doc);
  auto y = write_rebased(doc, doc.member(doc.root(), "y"), g, 512);
  ASSERT_TRUE(y.is_ok());
  EXPECT_EQ(*y, R"([[2], {"py/id": 1}])");
}

TEST(Rebase, InlinesReferencesThatPointOutside) {
  // result refers to a list that lives in func_args: the copy keeps its inner sharing.
  Document doc = parse(
      R"({"args": [[1, {"k": 2}], {"py/id": 3}], "result": [{"py/id": 2}, {"py/id": 2}, {"py/id": 3}]})");
  Numbering g = number(doc);
  auto r = write_rebased(doc, doc.member(doc.root(), "result"), g, 512);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(*r, R"([[1, {"k": 2}], {"py/id": 1}, {"py/id": 2}])");
}

TEST(Rebase, KeepsCyclesInsideAFragment) {
  Document doc = parse(R"({"a": [1, {"py/id": 1}]})");
  Numbering g = number(doc);
  auto r = write_rebased(doc, doc.member(doc.root(), "a"), g, 512);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(*r, R"([1, {"py/id": 0}])");
}

TEST(Rebase, WritesATupleRootAsAList) {
  Document doc = parse(R"({"a": {"py/tuple": [[1], {"py/id": 1}]}})");
  Numbering g = number(doc);
  auto r = write_rebased(doc, doc.member(doc.root(), "a"), g, 512, true);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(*r, R"([[1], {"py/id": 1}])");
}

TEST(Rebase, DanglingReferenceBecomesNull) {
  Document doc = parse(R"({"a": [{"py/id": 99}, {"py/id": "x"}]})");
  Numbering g = number(doc);
  auto r = write_rebased(doc, doc.member(doc.root(), "a"), g, 512);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(*r, R"([null, null])");
}

TEST(Rebase, BoundsReferenceChains) {
  // Each list refers to the next one: inlining nests one level per hop.
  std::string text = "{\"r\": [";
  const int kHops = 50;
  for (int i = 0; i < kHops; ++i) {
    if (i) text += ", ";
    text += "[{\"py/id\": " + std::to_string(i + 3) + "}]";
  }
  text += ", []], \"start\": {\"py/id\": 2}}";
  Document doc = parse(text);
  Numbering g = number(doc);
  auto shallow = write_rebased(doc, doc.member(doc.root(), "start"), g, 10);
  ASSERT_FALSE(shallow.is_ok());
  EXPECT_EQ(shallow.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(write_rebased(doc, doc.member(doc.root(), "start"), g, 512).is_ok());
}

TEST(Mapped, ShiftsIdsAndReplacesNodes) {
  Document doc = parse(R"([[1], {"py/id": 1}, {"py/id": 0}])");
  std::string out;
  write_mapped(doc, doc.root(), {5, 6}, {}, out);
  EXPECT_EQ(out, R"([[1], {"py/id": 6}, {"py/id": 5}])");
}

}  // namespace
}  // namespace prpc::jsonpickle
