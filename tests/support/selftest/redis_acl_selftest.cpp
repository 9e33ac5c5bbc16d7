// Self-test of the ACL fixture: the restricted user runs PRPC's commands on PRPC's keys and is
// refused (NOPERM) anything else; the default user cannot get in without the password.
#include <gtest/gtest.h>

#include <string>

#include "redis_acl.hpp"

namespace prpc::testing {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

TEST(RedisAclFixture, UserRunsPrpcCommandsOnPrpcKeys) {
  RedisAclServer acl;
  EXPECT_EQ(acl.url(3),
            "redis://prpc:" + acl.password() + "@127.0.0.1:" + std::to_string(acl.port()) + "/3");
  auto c = acl.user_client();
  EXPECT_EQ(c.text({"SET", "prpc_x", "1"}), "OK");
  EXPECT_EQ(c.get("prpc_x"), "1");
  EXPECT_EQ(c.integer({"PEXPIRE", "prpc_x", "60000"}), 1);
  EXPECT_EQ(c.integer({"EXISTS", "prpc_x"}), 1);
  EXPECT_EQ(c.text({"SET", "prcp_message_feedback_q_1", "r"}), "OK");
  EXPECT_EQ(c.command({"XADD", "prpc_raw_q", "*", "message", "{}"})->type, REDIS_REPLY_STRING);
  EXPECT_EQ(c.text({"XGROUP", "CREATE", "prpc_raw_q", "g", "0"}), "OK");
  auto read =
      c.command({"XREADGROUP", "GROUP", "g", "c1", "COUNT", "10", "STREAMS", "prpc_raw_q", ">"});
  ASSERT_EQ(read->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(read->elements, 1u);
  EXPECT_EQ(c.integer({"XLEN", "prpc_raw_q"}), 1);
  EXPECT_EQ(c.text({"MULTI"}), "OK");
  EXPECT_EQ(c.text({"SET", "prpc_y", "2"}), "QUEUED");
  EXPECT_EQ(c.command({"EXEC"})->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(c.command({"SCRIPT", "LOAD", "return 1"})->type, REDIS_REPLY_STRING);
  EXPECT_EQ(c.command({"CLIENT", "ID"})->type, REDIS_REPLY_INTEGER);
  EXPECT_EQ(c.text({"SELECT", "1"}), "OK");
  EXPECT_EQ(c.text({"SELECT", "0"}), "OK");
  EXPECT_EQ(c.integer({"DEL", "prpc_y"}), 1);
}

TEST(RedisAclFixture, UserIsRefusedOtherKeysAndCommands) {
  RedisAclServer acl;
  auto c = acl.user_client();
  EXPECT_PRED2(starts_with, c.text({"SET", "other_key", "1"}), "NOPERM");
  EXPECT_PRED2(starts_with, c.text({"GET", "other_key"}), "NOPERM");
  EXPECT_PRED2(starts_with, c.text({"XADD", "celery", "*", "a", "b"}), "NOPERM");
  EXPECT_PRED2(starts_with, c.text({"FLUSHALL"}), "NOPERM");
  EXPECT_PRED2(starts_with, c.text({"KEYS", "*"}), "NOPERM");
  EXPECT_PRED2(starts_with, c.text({"CONFIG", "GET", "*"}), "NOPERM");
  EXPECT_PRED2(starts_with, c.text({"PUBLISH", "prpc_ch", "x"}), "NOPERM");
  // The refused write did not happen.
  EXPECT_EQ(acl.admin_client().integer({"EXISTS", "other_key"}), 0);
  // The user's rules as the server holds them.
  auto rules = acl.admin_client().command({"ACL", "GETUSER", "prpc"});
  ASSERT_EQ(rules->type, REDIS_REPLY_ARRAY);
  std::string keys;
  for (std::size_t i = 0; i + 1 < rules->elements; i += 2) {
    if (std::string(rules->element[i]->str, rules->element[i]->len) == "keys") {
      keys.assign(rules->element[i + 1]->str, rules->element[i + 1]->len);
    }
  }
  EXPECT_EQ(keys, "~prpc_* ~prcp_*");
}

TEST(RedisAclFixture, DefaultUserIsOffAndWrongPasswordsFail) {
  RedisAclServer acl;
  auto anonymous = RedisClient::tcp("127.0.0.1", acl.port());
  EXPECT_PRED2(starts_with, anonymous.text({"PING"}), "NOAUTH");
  EXPECT_PRED2(starts_with, anonymous.text({"AUTH", "default", "anything"}), "WRONGPASS");
  EXPECT_THROW(RedisClient::tcp("127.0.0.1", acl.port(), "prpc", "wrong"), std::runtime_error);
}

TEST(RedisAclFixture, DefaultUserBehindAPasswordAndACustomCommandList) {
  RedisAclOptions options;
  options.user = "worker";
  options.password = "p@ss:word";
  options.default_password = "default-secret";
  options.commands = {"+get", "+set"};
  RedisAclServer acl(options);
  EXPECT_EQ(acl.url(),
            "redis://worker:p%40ss%3Aword@127.0.0.1:" + std::to_string(acl.port()) + "/0");
  auto anonymous = RedisClient::tcp("127.0.0.1", acl.port());
  EXPECT_PRED2(starts_with, anonymous.text({"GET", "prpc_x"}), "NOAUTH");
  EXPECT_EQ(anonymous.text({"AUTH", "default-secret"}), "OK");
  EXPECT_EQ(anonymous.text({"SET", "anything", "1"}), "OK");
  auto c = acl.user_client();
  EXPECT_EQ(c.text({"SET", "prpc_x", "1"}), "OK");
  EXPECT_PRED2(starts_with, c.text({"XADD", "prpc_raw_q", "*", "a", "b"}), "NOPERM");
}

}  // namespace
}  // namespace prpc::testing
