// FunctionRouter: several function tables served as one (names unique across tables, calls and
// cancellations reach the table that serves the name, unknown names fail with the original's text),
// its judgement of which functions are quick, and batches split by table.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "prpc/function_router.hpp"
#include "prpc/message.hpp"

namespace prpc {
namespace {

// A table whose calls wait until the test finishes them, so cancellation can be observed.
class RecordingTable final : public FunctionTable {
 public:
  explicit RecordingTable(std::vector<std::string> names) : names_(std::move(names)) {}

  std::vector<FunctionInfo> list() const override {
    std::vector<FunctionInfo> out;
    for (const std::string& n : names_) out.push_back(FunctionInfo{n, "thread", "{}", ""});
    return out;
  }
  void invoke(const Invocation& call, OutcomeCallback done) override {
    invoked.emplace_back(call.func_name);
    waiting.push_back(std::move(done));
  }
  void cancel(std::uint64_t call_id) override { cancelled.push_back(call_id); }

  std::vector<std::string> invoked;
  std::vector<std::uint64_t> cancelled;
  std::vector<OutcomeCallback> waiting;

 private:
  std::vector<std::string> names_;
};

Invocation call_of(std::uint64_t id, std::string_view name) {
  Invocation call;
  call.call_id = id;
  call.func_name = name;
  return call;
}

TEST(FunctionRouter, ListsEveryTablesFunctionsInOrder) {
  FunctionRouter router;
  ASSERT_TRUE(
      router.add(std::make_shared<RecordingTable>(std::vector<std::string>{"a", "b"})).is_ok());
  ASSERT_TRUE(router.add(std::make_shared<RecordingTable>(std::vector<std::string>{"c"})).is_ok());
  std::vector<std::string> names;
  for (const FunctionInfo& f : router.list()) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(FunctionRouter, RefusesATableThatServesANameTwiceAndKeepsTheFirst) {
  FunctionRouter router;
  auto first = std::make_shared<RecordingTable>(std::vector<std::string>{"a", "b"});
  auto second = std::make_shared<RecordingTable>(std::vector<std::string>{"c", "b"});
  ASSERT_TRUE(router.add(first).is_ok());
  Status refused = router.add(second);
  EXPECT_EQ(refused.code(), StatusCode::kAlreadyExists);
  EXPECT_NE(refused.message().find("'b'"), std::string::npos) << refused.message();
  // Nothing of the refused table is served, not even its new name.
  EXPECT_EQ(router.list().size(), 2U);
  std::optional<Outcome> got;
  router.invoke(call_of(1, "c"), [&](Outcome o) { got = std::move(o); });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status.code(), StatusCode::kNotFound);
  EXPECT_TRUE(second->invoked.empty());
}

TEST(FunctionRouter, CallsReachTheTableThatServesTheName) {
  FunctionRouter router;
  auto left = std::make_shared<RecordingTable>(std::vector<std::string>{"a"});
  auto right = std::make_shared<RecordingTable>(std::vector<std::string>{"b"});
  ASSERT_TRUE(router.add(left).is_ok());
  ASSERT_TRUE(router.add(right).is_ok());
  std::vector<std::string> results;
  router.invoke(call_of(1, "b"), [&](Outcome o) { results.push_back(o.result); });
  router.invoke(call_of(2, "a"), [&](Outcome o) { results.push_back(o.result); });
  EXPECT_EQ(left->invoked, std::vector<std::string>{"a"});
  EXPECT_EQ(right->invoked, std::vector<std::string>{"b"});
  right->waiting.at(0)(Outcome::success("2"));
  left->waiting.at(0)(Outcome::success("1"));
  EXPECT_EQ(results, (std::vector<std::string>{"2", "1"}));
}

TEST(FunctionRouter, AnUnknownNameFailsWithTheOriginalText) {
  FunctionRouter router;
  ASSERT_TRUE(router.add(std::make_shared<RecordingTable>(std::vector<std::string>{"a"})).is_ok());
  std::optional<Outcome> got;
  router.invoke(call_of(7, "missing"), [&](Outcome o) { got = std::move(o); });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status.code(), StatusCode::kNotFound);
  EXPECT_EQ(got->error_type, error_types::kUnknownFunction);
  EXPECT_EQ(got->status.message(), not_found_text("missing"));
}

TEST(FunctionRouter, CancelReachesOnlyARunningCallsTable) {
  FunctionRouter router;
  auto left = std::make_shared<RecordingTable>(std::vector<std::string>{"a"});
  auto right = std::make_shared<RecordingTable>(std::vector<std::string>{"b"});
  ASSERT_TRUE(router.add(left).is_ok());
  ASSERT_TRUE(router.add(right).is_ok());
  router.invoke(call_of(5, "b"), [](Outcome) {});
  router.cancel(5);
  router.cancel(99);  // never started: nobody is told
  EXPECT_EQ(right->cancelled, std::vector<std::uint64_t>{5});
  EXPECT_TRUE(left->cancelled.empty());
  // Once the call has finished its id is forgotten: a late cancel goes nowhere.
  right->waiting.at(0)(Outcome::success("null"));
  router.cancel(5);
  EXPECT_EQ(right->cancelled.size(), 1U);
}

// Answers at once ("a"), after a pause ("slow"), and records the batches it is given.
class TimedTable final : public FunctionTable {
 public:
  explicit TimedTable(std::vector<std::string> names) : names_(std::move(names)) {}
  std::vector<FunctionInfo> list() const override {
    std::vector<FunctionInfo> out;
    for (const std::string& n : names_) out.push_back(FunctionInfo{n, "thread", "{}", ""});
    return out;
  }
  void invoke(const Invocation& call, OutcomeCallback done) override {
    if (call.func_name == "slow") std::this_thread::sleep_for(std::chrono::milliseconds(3));
    done(Outcome::success("\"" + std::string(call.func_name) + "\""));
  }
  void invoke_batch(std::span<const Invocation> calls, std::span<OutcomeCallback> done) override {
    batches.push_back(calls.size());
    FunctionTable::invoke_batch(calls, done);
  }
  std::vector<std::size_t> batches;

 private:
  std::vector<std::string> names_;
};

TEST(FunctionRouter, AFunctionIsQuickOnlyAfterEnoughShortRuns) {
  using std::chrono::microseconds;
  FunctionRouter router;
  ASSERT_TRUE(
      router.add(std::make_shared<TimedTable>(std::vector<std::string>{"a", "slow"})).is_ok());
  for (std::uint32_t i = 0; i < RunPace::kRunsBeforeJudged; ++i) {
    EXPECT_FALSE(router.quick("a", microseconds(1'000'000))) << "after " << i << " runs";
    router.invoke(call_of(i, "a"), [](Outcome) {});
    router.invoke(call_of(100 + i, "slow"), [](Outcome) {});
  }
  EXPECT_TRUE(router.quick("a", microseconds(1'000'000)));
  EXPECT_FALSE(router.quick("a", microseconds(0)));
  EXPECT_FALSE(router.quick("slow", microseconds(1'000)));  // 3 ms a run
  EXPECT_TRUE(router.quick("slow", microseconds(1'000'000)));
  EXPECT_FALSE(router.quick("missing", microseconds(1'000'000)));
}

TEST(FunctionRouter, ABatchGoesToEachTableInRunsAndUnknownNamesAreAnswered) {
  FunctionRouter router;
  auto left = std::make_shared<TimedTable>(std::vector<std::string>{"a"});
  auto right = std::make_shared<TimedTable>(std::vector<std::string>{"b"});
  ASSERT_TRUE(router.add(left).is_ok());
  ASSERT_TRUE(router.add(right).is_ok());
  std::vector<std::string> names{"a", "a", "b", "b", "b", "missing", "a"};
  std::vector<Invocation> calls;
  for (std::size_t i = 0; i < names.size(); ++i) calls.push_back(call_of(i, names[i]));
  std::vector<std::string> results(names.size());
  std::vector<OutcomeCallback> done;
  for (std::size_t i = 0; i < names.size(); ++i) {
    done.emplace_back(
        [&results, i](Outcome o) { results[i] = o.ok() ? o.result : std::string(o.error_type); });
  }
  router.invoke_batch(calls, done);
  EXPECT_EQ(results,
            (std::vector<std::string>{"\"a\"", "\"a\"", "\"b\"", "\"b\"", "\"b\"",
                                      std::string(error_types::kUnknownFunction), "\"a\""}));
  EXPECT_EQ(left->batches, (std::vector<std::size_t>{2, 1}));
  EXPECT_EQ(right->batches, (std::vector<std::size_t>{3}));
}

}  // namespace
}  // namespace prpc
