// Every bundled plugin exports exactly one defined dynamic symbol: prpc_plugin_entry.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

namespace {

std::string run(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  pclose(p);
  return out;
}

TEST(PluginExports, ExactlyOneDefinedDynamicSymbol) {
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(PRPC_TEST_PLUGIN_DIR)) {
    if (entry.path().extension() != ".so") continue;
    std::string symbols =
        run("nm -D --defined-only --format=posix '" + entry.path().string() + "' | cut -d' ' -f1");
    EXPECT_EQ(symbols, "prpc_plugin_entry\n") << entry.path();
    ++checked;
  }
  EXPECT_GE(checked, 4);
}

}  // namespace
